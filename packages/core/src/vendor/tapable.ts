// tapable, bundled into this file after tsc (scripts/bundle-core-vendor.mjs): one module to load
// instead of 15. This re-export, tsc's output, behaves the same, only slower to load.
export { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, SyncHook } from 'tapable';
