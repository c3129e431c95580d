// Progress is drawn only where it can be: on a terminal that reports a width, outside CI.
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {estimate, figuresLine, formatRate, progressEvent, shouldDraw} from '../../src/cli/progress.js'
import {BIN, ckpt, runCli} from '../helpers/cli.js'
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

describe('percentage and ETA', () => {
  test.each([
    [0, 100, 5000, {percent: 0}],
    [50, 100, 500, {percent: 50}], // under a second: no rate to go by yet
    [25, 100, 3000, {percent: 25, etaMs: 9000}],
    [100, 100, 3000, {percent: 100}],
    [150, 100, 3000, {percent: 100}],
    [1, 3, 2000, {percent: 33.3, etaMs: 4000}],
  ])('%d of %d after %d ms', (done, total, ms, want) => {
    expect(estimate(done, total, ms)).toEqual(want)
  })
  test('figuresLine: percentage, rate and ETA, those known', () => {
    expect(figuresLine({text: 't', done: 25, total: 100, bytes: 50 * 1024 * 1024}, 20_000)).toBe('25.0%, 2.50 MiB/s, ETA 1m00s')
    expect(figuresLine({text: 't', done: 35, total: 1000}, 500)).toBe('3.5%')
    expect(figuresLine({text: 't', bytes: 3 * 1024 ** 3}, 2000)).toBe('1.50 GiB/s')
    expect(figuresLine({text: 't', bytes: 4096}, 999)).toBe('') // no rate in the first second
    expect(figuresLine({text: 't'}, 5000)).toBe('')
    expect(formatRate(0, 1000)).toBe('0 B/s')
  })
  test('progressEvent', () => {
    expect(JSON.parse(progressEvent('restore', {text: 't', figures: {files: 2, path: 'a'}, done: 25, total: 100}, 3000))).toEqual(
      {type: 'progress', command: 'restore', elapsedMs: 3000, files: 2, path: 'a', done: 25, total: 100, percent: 25, etaMs: 9000})
    expect(JSON.parse(progressEvent('prune', {text: 't', figures: {phase: 'x'}}, 10.4, true))).toEqual({type: 'progress', command: 'prune', elapsedMs: 10, phase: 'x', finished: true})
  })
})

describe('under --json', () => {
  let work: string
  let src: string
  let repo: string
  beforeAll(async () => {
    work = await tempDir('ckpt-progress-json-')
    src = path.join(work, 'src')
    repo = path.join(work, 'repo')
    await fsp.mkdir(src)
    await buildTree(src, {a: 'a', d: {dir: {b: 'bb', c: 'ccc'}}})
    await ckpt(['init', '--repo', repo])
  })
  afterAll(async () => {
    await fsp.rm(work, {recursive: true, force: true})
  })

  const events = (stderr: string) => stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)

  test.each([['snapshot'], ['restore'], ['verify'], ['prune']])('%s: NDJSON events on stderr, the result alone on stdout', async (command) => {
    if (command !== 'snapshot') await ckpt(['snapshot', src, '--repo', repo])
    const args = command === 'snapshot' ? [src] : command === 'restore' ? ['latest', '--target', path.join(work, 'out')] : command === 'verify' ? ['--read-data'] : ['--keep-last', '1']
    const r = await runCli([command, ...args, '--repo', repo, '--json'], {env: {CKPT_PROGRESS_INTERVAL_MS: '0'}})
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toBeTypeOf('object')
    const list = events(r.stderr)
    expect(list.length).toBeGreaterThan(1)
    for (const e of list) expect(e).toMatchObject({type: 'progress', command})
    expect(list.at(-1)!.finished).toBe(true)
    if (command === 'restore') expect(list.at(-1)).toMatchObject({done: 6, total: 6, percent: 100, files: 3})
    if (command === 'snapshot') expect(list.at(-1)).toMatchObject({files: 3, bytes: 6})
  })

  test('a command shorter than the interval prints none; --quiet none at all', async () => {
    const r = await runCli(['snapshot', src, '--repo', repo, '--json'])
    expect(r.stderr).toBe('')
    const q = await runCli(['snapshot', src, '--repo', repo, '--json', '-q'], {env: {CKPT_PROGRESS_INTERVAL_MS: '0'}})
    expect(q.stderr).toBe('')
  })
})
