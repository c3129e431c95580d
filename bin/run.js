#!/usr/bin/env node
// The entry point. It imports @oclif/core's `execute` module, not the package index: the index
// also loads the rest of oclif's public surface, and semver to compare the Node version with
// @oclif/core's own engines field (>=18, below what ckpt needs anyway). Its other start-up
// check is kept here.
import {execute} from '@oclif/core/execute'

try {
  process.cwd()
} catch (error) {
  if (error.code === 'ENOENT') process.stderr.write('WARNING: current directory does not exist\n')
}

await execute({dir: import.meta.url})
