// Progress is drawn only where it can be: on a terminal that reports a width, outside CI.
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {shouldDraw} from '../../src/cli/progress.js'
import {BIN, ckpt} from '../helpers/cli.js'
import {buildTree, tempDir} from '../helpers/tree.js'

describe('shouldDraw', () => {
  test.each([
    [true, {isTTY: true, columns: 80}, {}, true],
    [false, {isTTY: true, columns: 80}, {}, false],
    [true, {isTTY: false, columns: 80}, {}, false],
    [true, {}, {}, false],
    [true, {isTTY: true, columns: 80}, {CI: 'true'}, false],
    [true, {isTTY: true, columns: 0}, {}, false],
    [true, {isTTY: true}, {}, false],
  ])('enabled %s, stream %o, env %o: %s', (enabled, stream, env, want) => {
    expect(shouldDraw(enabled, stream, env)).toBe(want)
  })
})

describe('on a pseudo-terminal', () => {
  let work: string
  beforeAll(async () => {
    work = await tempDir('ckpt-progress-')
  })
  afterAll(async () => {
    await fsp.rm(work, {recursive: true, force: true})
  })

  test('a snapshot on a terminal of 0 columns (script without a size) finishes and draws nothing', async () => {
    const src = path.join(work, 'src')
    await fsp.mkdir(src)
    await buildTree(src, {'a.bin': {file: {random: 3 * 1024 * 1024, seed: 1}}, 'b.txt': 'b\n'})
    const repo = path.join(work, 'repo')
    await ckpt(['init', '--repo', repo])
    // script(1) gives the command a pseudo-terminal; with no terminal of its own to copy, its
    // size is 0 x 0. CI is unset so that only the width decides.
    const env: NodeJS.ProcessEnv = {...process.env, CKPT_REPO: repo}
    delete env['CI']
    const command = `'${process.execPath}' '${BIN}' snapshot '${src}'; echo "exit=$?"`
    const r = spawnSync('script', ['-qec', command, '/dev/null'], {env, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe']})
    expect(r.error).toBeUndefined()
    expect(r.stdout).toMatch(/exit=0/)
    expect(r.stdout).toMatch(/snapshot [0-9a-f]{12} of /)
    // No spinner: none of ora's cursor hiding or line clearing.
    const ESC = String.fromCharCode(27)
    expect(r.stdout).not.toContain(`${ESC}[?25l`)
    expect(r.stdout).not.toContain(`${ESC}[2K`)
  })
})
