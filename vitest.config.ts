import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'plugins/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Integration tests start real servers and move real data: give them room, and keep the
    // two cores of a small CI machine from thrashing.
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // s3rver encrypts list-type=2 continuation tokens with DES, which OpenSSL 3 only has in its
    // legacy provider: without it any listing past 1000 keys fails with HTTP 500.
    execArgv: ['--openssl-legacy-provider'],
    maxWorkers: 2,
    reporters: ['default'],
  },
});
