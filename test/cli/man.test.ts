// The man pages are generated from the command classes; this keeps them from drifting.
import {spawnSync} from 'node:child_process'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {ROOT} from '../helpers/cli.js'

describe('man pages', () => {
  it('match what the commands say (regenerate with npm run man)', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'man', 'generate.mjs'), '--check'], {encoding: 'utf8'})
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})
