// An in-place restore beside a running program is refused, naming it (exit code 15), before
// anything changes; --force replaces the directory anyway. Real processes hold the directory.
import {type ChildProcess, spawn} from 'node:child_process'
import {closeSync, openSync, readFileSync, readlinkSync, promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {removeTree} from '../../src/restore/deeptree.js'
import {BIN, ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

let work: string
const children: ChildProcess[] = []
beforeAll(async () => {
  work = await tempDir('ckpt-restore-busy-')
})
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r))
      c.kill('SIGKILL')
      await gone
    }
  }
})
afterAll(() => {
  removeTree(work) // a deep tree (below) is past what fs.rm reaches
})

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim()
  } catch {
    return ''
  }
}

/** A `sleep` that runs with `cwd` and with `stdoutFile` (if given) open for writing as its fd 1; resolves once exec'd. */
async function holder(cwd: string, stdoutFile?: string): Promise<ChildProcess> {
  const fd = stdoutFile === undefined ? 'ignore' : openSync(stdoutFile, 'a')
  const child = spawn('sleep', ['1000'], {cwd, stdio: ['ignore', fd, 'ignore']})
  if (typeof fd === 'number') closeSync(fd)
  children.push(child)
  // Until exec the child is a copy of node: wait for the program itself, with what it holds.
  const t0 = performance.now()
  while (comm(child.pid!) !== 'sleep') {
    if (performance.now() - t0 > 30_000) throw new Error('sleep did not start')
    await new Promise((r) => setTimeout(r, 2))
  }
  return child
}

/** A source with two snapshots' worth of history: v1 snapshotted, then changed to v2. */
async function setup(name: string): Promise<{src: string; repo: string}> {
  const src = path.join(work, name)
  await fsp.mkdir(path.join(src, 'data'), {recursive: true})
  await buildTree(path.join(src, 'data'), {'a.txt': 'version 1'})
  const repo = path.join(work, `${name}-repo`)
  await ckpt(['init', '--repo', repo])
  await ckpt(['snapshot', src, '--repo', repo])
  await fsp.writeFile(path.join(src, 'data', 'a.txt'), 'version 2')
  return {src, repo}
}

describe('in-place restore beside a running program', () => {
  it('is refused with exit code 15, naming the process and the file it has open, and changes nothing', async () => {
    const {src, repo} = await setup('open-file')
    const child = await holder(work, path.join(src, 'data', 'server.log'))
    const before = await captureTree(src)
    const r = await runCli(['restore', 'latest', '--repo', repo])
    expect(r.code).toBe(15)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(`pid ${child.pid} (sleep)`)
    expect(lines[0]).toContain('data/server.log (open for writing)')
    expect(lines[0]).toContain('--force')
    expect(diffTrees(before, await captureTree(src))).toEqual([])
    // No safety snapshot was taken, no temp tree was left.
    expect(await ckptJson<unknown[]>(['snapshots', '--repo', repo])).toHaveLength(1)
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore'))).toEqual([])

    const json = await runCli(['restore', 'latest', '--repo', repo, '--json'])
    expect(json.code).toBe(15)
    const err = JSON.parse(json.stdout).error
    expect(err.code).toBe('BUSY')
    expect(err.data.processes).toEqual([{pid: child.pid, command: 'sleep', uses: [{path: 'data/server.log', use: 'write'}]}])
  })

  it('counts a process whose working directory alone is inside', async () => {
    const {src, repo} = await setup('cwd')
    const child = await holder(path.join(src, 'data'))
    const r = await runCli(['restore', 'latest', '--repo', repo])
    expect(r.code).toBe(15)
    expect(r.stderr).toContain(`pid ${child.pid} (sleep): its cwd`)
    expect(await fsp.readFile(path.join(src, 'data', 'a.txt'), 'utf8')).toBe('version 2')
  })

  it('is not stopped by a process elsewhere whose cwd and open file lie deeper than PATH_MAX (their links cannot be read)', async () => {
    const {src, repo} = await setup('deep-elsewhere')
    const deep = path.join(work, 'deep-root')
    await fsp.mkdir(deep)
    // 20 levels of 250-byte names: 5,000 bytes, past what the kernel spells in a /proc link.
    const script = 'import os\nfor i in range(20):\n    d = "%0250d" % i\n    os.mkdir(d)\n    os.chdir(d)\nfd = os.open("deep.log", os.O_WRONLY | os.O_CREAT)\nos.dup2(fd, 1)\nos.execvp("sleep", ["sleep", "1000"])\n'
    const child = spawn('python3', ['-c', script], {cwd: deep, stdio: 'ignore'})
    children.push(child)
    const t0 = performance.now()
    while (comm(child.pid!) !== 'sleep') {
      if (child.exitCode !== null || performance.now() - t0 > 30_000) throw new Error('the deep sleep did not start')
      await new Promise((r) => setTimeout(r, 2))
    }
    expect(() => readlinkSync(`/proc/${child.pid}/cwd`)).toThrow(/ENAMETOOLONG/)
    const r = await runCli(['restore', 'latest', '--repo', repo])
    expect(r.code, r.stderr).toBe(0)
    expect(await fsp.readFile(path.join(src, 'data', 'a.txt'), 'utf8')).toBe('version 1')
  })

  it('--force replaces the directory anyway', async () => {
    const {src, repo} = await setup('force')
    await holder(path.join(src, 'data'), path.join(src, 'data', 'server.log'))
    const r = await runCli(['restore', 'latest', '--repo', repo, '--force'])
    expect(r.code).toBe(0)
    expect(await fsp.readFile(path.join(src, 'data', 'a.txt'), 'utf8')).toBe('version 1')
  })

  it("does not count ckpt's caller (its cwd inside: told to cd again) nor a process using only the repository kept inside", async () => {
    const src = path.join(work, 'caller')
    await fsp.mkdir(src)
    await buildTree(src, {'a.txt': 'version 1'})
    const repo = path.join(src, '.ckpt')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    await fsp.writeFile(path.join(src, 'a.txt'), 'version 2')
    // Something holds a file in the repository, which the restore carries into the new tree.
    await holder(repo, path.join(repo, 'held'))
    // The CLI's parent here is a shell whose working directory is the source (not exec'd: it stays the parent).
    const sh = await new Promise<{code: number | null; out: string; err: string}>((resolve) => {
      const c = spawn('sh', ['-c', `"$0" "$1" restore latest --repo .ckpt; exit $?`, process.execPath, BIN], {cwd: src, env: {...process.env, CKPT_REPO: undefined, CI: '1'}})
      let out = ''
      let err = ''
      c.stdout.on('data', (d: Buffer) => (out += d.toString()))
      c.stderr.on('data', (d: Buffer) => (err += d.toString()))
      c.on('exit', (code) => resolve({code, out, err}))
    })
    expect(sh.err).toContain('cd into it again')
    expect(sh.code).toBe(0)
    expect(await fsp.readFile(path.join(src, 'a.txt'), 'utf8')).toBe('version 1')
    expect(await fsp.readFile(path.join(repo, 'held'), 'utf8')).toBe('')
  })
})
