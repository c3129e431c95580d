import {defineConfig} from 'vitest/config'

// The slow suite: multi-GiB files, object counts, peak memory. Run with `npm run test:slow`.
export default defineConfig({
  test: {
    include: ['test/slow/**/*.test.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 30 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
})
