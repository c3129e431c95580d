// SIGINT and SIGTERM release the locks a command holds, then exit 130 / 143. The signal is sent
// once the command's lock exists (polled: no guessed delay). Needs `npm run build`.
import {spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, describe, expect, test} from 'vitest'

import {BIN, ckpt} from '../helpers/cli.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

let root: string | undefined
afterEach(async () => {
  if (root) await fsp.rm(root, {recursive: true, force: true})
  root = undefined
})

async function locks(repo: string): Promise<string[]> {
  return (await fsp.readdir(path.join(repo, 'locks'))).filter((n) => !n.startsWith('.'))
}

/** Start `ckpt args`, wait until its lock is in the repository, send `signal`; resolve its exit code and stderr. */
async function interrupt(args: string[], repo: string, signal: NodeJS.Signals): Promise<{code: number | null; signal: NodeJS.Signals | null; stderr: string}> {
  const child = spawn(process.execPath, [BIN, ...args], {env: {...process.env, CKPT_REPO: undefined, CI: '1'}, stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('exit', (code, sig) => resolve({code, signal: sig})))
  let done = false
  void exited.then(() => (done = true))
  const deadline = Date.now() + 30_000
  while ((await locks(repo)).length === 0) {
    if (done) throw new Error(`ckpt ${args.join(' ')} ended before its lock was seen: ${stderr}`)
    if (Date.now() > deadline) throw new Error('no lock appeared within 30 s')
    await new Promise((r) => setTimeout(r, 5))
  }
  child.kill(signal)
  const end = await exited
  return {...end, stderr}
}

async function setUp(): Promise<{repo: string; src: string}> {
  root = await tempDir('ckpt-signal-')
  const repo = path.join(root, 'repo')
  const src = path.join(root, 'src')
  await fsp.mkdir(src)
  await ckpt(['init', '-q', '--repo', repo])
  return {repo, src}
}

describe('signals release locks', () => {
  test.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s during a snapshot: exit %i and no lock left', async (signal, code) => {
    const {repo, src} = await setUp()
    // 8 GiB of hole: no disk used, and seconds of reading and hashing, so the signal lands inside.
    const fh = await fsp.open(path.join(src, 'big'), 'w')
    await fh.truncate(8 * 1024 ** 3)
    await fh.close()
    const end = await interrupt(['snapshot', src, '--repo', repo], repo, signal)
    expect(end.signal).toBe(null)
    expect(end.code, end.stderr).toBe(code)
    expect(end.stderr).toMatch(signal === 'SIGINT' ? /^ckpt: interrupted$/m : /^ckpt: terminated$/m)
    expect(await locks(repo)).toEqual([])
    expect(await fsp.readdir(path.join(repo, 'snapshots'))).toEqual([])
  })

  test('SIGINT during an in-place restore: exit 130, no lock left, the directory wholly old', async () => {
    const {repo, src} = await setUp()
    await fsp.writeFile(path.join(src, 'data'), seededBytes(48 * 1024 * 1024, 5))
    await fsp.writeFile(path.join(src, 'version'), 'old')
    await ckpt(['snapshot', src, '-q', '--repo', repo])
    await fsp.writeFile(path.join(src, 'version'), 'current')
    const end = await interrupt(['restore', 'latest', '--no-safety-snapshot', '--repo', repo], repo, 'SIGINT')
    expect(await locks(repo)).toEqual([])
    // The signal lands while the tree is being built (its lock is taken first); should the
    // restore have finished first, the directory must be wholly new instead.
    if (end.code === 130) {
      expect(await fsp.readFile(path.join(src, 'version'), 'utf8')).toBe('current')
    } else {
      expect(end.code, end.stderr).toBe(0)
      expect(await fsp.readFile(path.join(src, 'version'), 'utf8')).toBe('old')
    }
    expect((await fsp.readdir(src)).sort()).toEqual(['data', 'version'])
  })
})
