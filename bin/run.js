#!/usr/bin/env node
// The entry point. It sets V8's flags first and only then loads the CLI (a dynamic import:
// a static one would load and compile oclif before the first line here runs), from dist/cli/run.js,
// which in the built CLI is one bundle with oclif and the command table (bundle.mjs).
import v8 from 'node:v8'

// Keep V8's young generation at its starting size instead of letting it grow to 16 MiB per
// semi-space: a snapshot streams gigabytes through short-lived objects, and the larger nursery
// bought no speed here but cost ~20 MB of peak RSS (docs/BENCHMARKS.md). Set before oclif loads,
// start-up itself stays in the 1 MiB semi-spaces too (1.5 MB less RSS).
v8.setFlagsFromString('--semi-space-growth-factor=1')
// Let a function run 16x longer (1 MiB of interrupt budget; V8's default is 66 KiB) before V8
// spends a compiler thread optimizing it. A command is short and its byte-level work is native,
// so most of what got optimized ran a few more times at most: this saved 0.1-0.3 s of CPU per
// command (unchanged snapshot 0.30 -> 0.26 s, 81 -> 71 MB) and cost 5 % on the hottest JavaScript
// we have (decoding a million index entries).
v8.setFlagsFromString('--interrupt-budget=1048576')

// @oclif/core's own start-up check, kept here because its package index (which runs it) is not
// loaded: it also loads the rest of oclif's public surface, and semver to compare the Node version
// with @oclif/core's engines field (>=18, below what ckpt needs anyway).
try {
  process.cwd()
} catch (error) {
  if (error.code === 'ENOENT') process.stderr.write('WARNING: current directory does not exist\n')
}

// dist/ holds what runs: never look for TypeScript sources to transpile. oclif does when
// NODE_ENV is "development" or "test" (vitest sets it for the CLI tests), and reading tsconfig.json
// loads the TypeScript compiler: 0.17 s and 38 MB on every command.
globalThis.oclif = {...globalThis.oclif, enableAutoTranspile: false}

const {execute} = await import('../dist/cli/run.js')
await execute({dir: import.meta.url})
