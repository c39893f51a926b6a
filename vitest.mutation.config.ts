// The unit tests Stryker runs (stryker.config.mjs): only those of the modules being mutated,
// in one fork, without the integration suite's long timeouts.
import { defineConfig } from 'vitest/config';
import { selectedTests } from './stryker.config.mjs';

export default defineConfig({
  test: {
    include: selectedTests(),
    testTimeout: 20_000,
    pool: 'forks',
    reporters: ['dot'],
  },
});
