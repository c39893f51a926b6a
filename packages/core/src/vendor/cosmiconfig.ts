// cosmiconfig with its YAML parser, bundled into this file after tsc (scripts/bundle-core-vendor.mjs):
// one module to load instead of ~35. This re-export, tsc's output, behaves the same, only slower.
export { cosmiconfig } from 'cosmiconfig';
