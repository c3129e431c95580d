#!/usr/bin/env node
// The entry point. It imports @oclif/core's `execute` module, not the package index: the index
// also loads the rest of oclif's public surface, and semver to compare the Node version with
// @oclif/core's own engines field (>=18, below what ckpt needs anyway). Its other start-up
// check is kept here.
import v8 from 'node:v8'

import {execute} from '@oclif/core/execute'

// Keep V8's young generation at its starting size instead of letting it grow to 16 MiB per
// semi-space: a snapshot streams gigabytes through short-lived objects, and the larger nursery
// bought no speed here but cost ~20 MB of peak RSS (docs/BENCHMARKS.md).
v8.setFlagsFromString('--semi-space-growth-factor=1')
// Let a function run 16x longer (1 MiB of interrupt budget; V8's default is 66 KiB) before V8
// spends a compiler thread optimizing it. A command is short and its byte-level work is native,
// so most of what got optimized ran a few more times at most: this saved 0.1-0.3 s of CPU per
// command (unchanged snapshot 0.30 -> 0.26 s, 81 -> 71 MB) and cost 5 % on the hottest JavaScript
// we have (decoding a million index entries).
v8.setFlagsFromString('--interrupt-budget=1048576')

try {
  process.cwd()
} catch (error) {
  if (error.code === 'ENOENT') process.stderr.write('WARNING: current directory does not exist\n')
}

await execute({dir: import.meta.url})
