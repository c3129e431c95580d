import {type ChildProcess, spawn} from 'node:child_process'
import {mkdirSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {describeUse, filesBeingWritten, parseMaps, processesUsing, under} from '../../src/core/procfs.js'
import {stopChild, tempDir, waitFor} from './helpers.js'

const base = tempDir()
const dir = path.join(base, 'state dir') // a space, as /proc prints it
const outside = path.join(base, 'outside')
mkdirSync(path.join(dir, 'sub'), {recursive: true})
mkdirSync(outside)
for (const f of ['a.log', 'r.txt', 'sub/m.bin', 'ro.bin']) writeFileSync(path.join(dir, f), Buffer.alloc(8192, 1))
writeFileSync(path.join(outside, 'x.log'), '')
// Reached through a symlink: /proc shows canonical paths, and so must the answer.
const link = path.join(base, 'link')
symlinkSync(dir, link)

const children: ChildProcess[] = []
afterAll(async () => {
  for (const c of children) await stopChild(c)
  rmSync(base, {recursive: true, force: true})
})

const output = new Map<ChildProcess, string>()

function child(cmd: string, args: string[], cwd?: string): ChildProcess {
  const c = spawn(cmd, args, {stdio: ['pipe', 'pipe', 'inherit'], cwd, detached: true})
  children.push(c)
  output.set(c, '')
  c.stdout!.on('data', (d: Buffer) => output.set(c, output.get(c) + d.toString()))
  return c
}

async function ready(c: ChildProcess): Promise<void> {
  await waitFor(() => output.get(c)!.includes('ready'), 'the child to be ready', 15_000)
}

// One shell holding a file open for appending, one for reading, one outside the directory.
const holder = child('/bin/sh', ['-c', `exec 3>>"${dir}/a.log" 4<"${dir}/r.txt" 5>>"${outside}/x.log"; echo ready; exec sleep 1000`])
// One python holding a shared writable mapping and a private read-only one (python's mmap keeps a
// duplicate of the file descriptor, so the files are also open).
const mapper = child('python3', ['-c', `
import mmap, sys
with open(sys.argv[1], 'r+b') as f:
    shared = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
with open(sys.argv[2], 'rb') as f:
    private = mmap.mmap(f.fileno(), 0, mmap.MAP_PRIVATE, mmap.PROT_READ)
shared[0:1] = b'x'
print('ready', flush=True)
sys.stdin.read()
`, path.join(dir, 'sub/m.bin'), path.join(dir, 'ro.bin')])
// A process whose working directory is inside.
const sitter = child('/bin/sh', ['-c', 'echo ready; exec sleep 1000'], path.join(dir, 'sub'))

describe('files the paused processes may be writing', () => {
  it('finds files open for writing and shared writable mappings, relative to the directory', async () => {
    await Promise.all([ready(holder), ready(mapper), ready(sitter)])
    const found = filesBeingWritten([holder.pid!, mapper.pid!, sitter.pid!], link)
    expect(found.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      {pid: holder.pid, path: 'a.log', use: 'write'},
      {pid: mapper.pid, path: 'sub/m.bin', use: 'write'},
      {pid: mapper.pid, path: 'sub/m.bin', use: 'mmap'},
    ])
  })

  it('skips processes that are gone', () => {
    expect(filesBeingWritten([2 ** 22 + 4321], dir)).toEqual([])
  })
})

describe('processes using a directory (restore refuses to swap it under them)', () => {
  it('names each process and how it uses the directory', async () => {
    await Promise.all([ready(holder), ready(mapper), ready(sitter)])
    const found = new Map(processesUsing(dir).map((p) => [p.pid, p]))
    expect(found.get(holder.pid!)?.uses.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      {path: 'a.log', use: 'write'},
      {path: 'r.txt', use: 'read'},
    ])
    expect(found.get(mapper.pid!)?.uses.filter((u) => u.use === 'mmap').sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      {path: 'ro.bin', use: 'mmap'},
      {path: 'sub/m.bin', use: 'mmap'},
    ])
    expect(found.get(sitter.pid!)?.uses).toEqual([{path: 'sub', use: 'cwd'}])
    expect(found.get(sitter.pid!)?.command).toBe('sleep')
    expect(describeUse(found.get(holder.pid!)!)).toBe(`pid ${holder.pid} (sleep): a.log (open for writing), r.txt (open)`)
    expect(found.has(process.pid)).toBe(false)
  })

  it('finds nobody in a directory nobody uses', () => {
    expect(processesUsing(path.join(outside, '..', 'link', 'sub', '..', '..', 'outside')).filter((p) => p.pid === holder.pid)).toEqual([
      {pid: holder.pid, command: 'sleep', uses: [{path: 'x.log', use: 'write'}]},
    ])
    const empty = path.join(base, 'empty')
    mkdirSync(empty)
    expect(processesUsing(empty)).toEqual([])
  })
})

describe('parsing', () => {
  it.each([
    ['7f0000-7f1000 rw-s 00000000 08:01 1234                       /data/a b.bin', [{target: '/data/a b.bin', writable: true}]],
    ['7f0000-7f1000 r--s 00000000 08:01 1234 /data/ro.bin', [{target: '/data/ro.bin', writable: false}]],
    ['7f0000-7f1000 rw-p 00000000 08:01 1234 /data/private.bin', [{target: '/data/private.bin', writable: false}]],
    ['7f0000-7f1000 rw-s 00000000 08:01 1234 /data/gone.bin (deleted)', []],
    ['7f0000-7f1000 rw-p 00000000 00:00 0                          [heap]', []],
    ['7f0000-7f1000 rw-p 00000000 00:00 0 ', []],
    ['7f0000-7f1000 rw-s 00000000 08:01 99 /data/new\\012line', [{target: '/data/new\nline', writable: true}]],
  ])('%s', (line, expected) => {
    expect(parseMaps(line)).toEqual(expected)
  })

  it.each([
    ['/a/b', '/a/b', ''],
    ['/a/b', '/a/b/c/d', 'c/d'],
    ['/a/b', '/a/bc', undefined],
    ['/a/b', '/a', undefined],
    ['/', '/x', 'x'],
  ])('under(%s, %s) = %s', (root, file, rel) => {
    expect(under(root, file)).toBe(rel)
  })
})
