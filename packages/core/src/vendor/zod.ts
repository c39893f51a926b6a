// zod, bundled into this file after tsc (scripts/bundle-core-vendor.mjs): loaded as its ~95
// modules one by one, it was the largest part of the command line's start-up. This re-export,
// tsc's output, behaves the same, only slower to load (and the bundle's `z.locales` has English
// only).
export * from 'zod';
