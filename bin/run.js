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

try {
  process.cwd()
} catch (error) {
  if (error.code === 'ENOENT') process.stderr.write('WARNING: current directory does not exist\n')
}

await execute({dir: import.meta.url})
