// Snapshot then restore, through the built CLI, on real trees: everything must come back exactly.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {removeTree} from '../../src/restore/deeptree.js'
import {awkwardSpec, buildTree, captureTree, diffTrees, nameBytes, tempDir, type TreeSpec} from '../helpers/tree.js'

const isRoot = process.getuid?.() === 0

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-roundtrip-')
})
afterAll(async () => {
  removeTree(work) // deeper than PATH_MAX, and immutable files: fs.rm fails on both
})

function deep(levels: number): TreeSpec {
  let spec: TreeSpec = {'leaf.txt': 'bottom'}
  for (let i = levels; i > 0; i--) spec = {[`d${i}`]: {dir: spec}}
  return spec
}

const awkward: TreeSpec = {
  'empty.bin': '',
  'hello.txt': 'hello\n',
  'random-3MiB.bin': {file: {random: 3 * 1024 * 1024 + 17, seed: 7}},
  'private.key': {file: 'secret', mode: 0o600},
  'script.sh': {file: '#!/bin/sh\necho hi\n', mode: 0o755},
  'readonly.txt': {file: 'ro', mode: 0o444},
  'setuid-bin': {file: 'x', mode: 0o4755},
  'sticky': {dir: {}, mode: 0o1777},
  'old.txt': {file: 'old', mtimeNs: 86_400_123_456_789n},
  'empty-dir': {dir: {}},
  'locked-dir': {dir: {'inside.txt': 'in a read-only dir'}, mode: 0o555},
  'link-rel': {symlink: 'hello.txt'},
  'link-abs': {symlink: '/etc/hostname'},
  'link-dangling': {symlink: 'does/not/exist'},
  'link-to-dir': {symlink: 'empty-dir'},
  'hex:6e6f742d757466382dff2e62696e': 'name with byte 0xff', // "not-utf8-\xff.bin"
  'hex:c3a9c3a0': 'valid UTF-8 name',
  'hex:6c696e6b2dfe': {symlink: Buffer.from('target-\xfe-bytes', 'latin1')},
  'spaces and \'quotes\' "double"': 'odd but legal',
  'newline\nname': 'a newline in the name',
  'unicode-日本語.txt': '日本語',
  ...deep(60),
  // Hard links, a sparse file, xattrs, ACLs, a FIFO, a device and flags (root), a path past PATH_MAX.
  ...awkwardSpec(),
}

describe('snapshot and restore round trip', () => {
  it('restores contents, modes, ns mtimes, symlinks, empty dirs and odd names exactly', async () => {
    const src = path.join(work, 'src1')
    await fsp.mkdir(src)
    await buildTree(src, awkward)
    if (isRoot) await fsp.lchown(path.join(src, 'hello.txt'), 1234, 5678)
    const repo = path.join(work, 'repo1')
    await ckpt(['init', '--repo', repo])
    const snap = await ckptJson<{id: string; files: number; symlinks: number}>(['snapshot', src, '--repo', repo])
    expect(snap.id).toMatch(/^[0-9a-f]{64}$/)
    expect(snap.symlinks).toBe(5)

    const target = path.join(work, 'out1')
    await ckpt(['restore', snap.id.slice(0, 10), '--target', target, '--repo', repo])
    const before = await captureTree(src)
    const after = await captureTree(target)
    expect(diffTrees(before, after)).toEqual([])
    // The non-UTF-8 name came back as the same bytes.
    const names = await fsp.readdir(target, {encoding: 'buffer'})
    expect(names.some((n) => n.equals(nameBytes('hex:6e6f742d757466382dff2e62696e')))).toBe(true)
    if (isRoot) expect((await fsp.lstat(path.join(target, 'hello.txt'))).uid).toBe(1234)
  })

  it('round-trips large and zero-length files, and a file of exactly one max chunk', async () => {
    const src = path.join(work, 'src2')
    await fsp.mkdir(src)
    await buildTree(src, {
      'zero': '',
      'one-byte': 'x',
      'exact-512k': {file: {random: 512 * 1024, seed: 3}},
      'zeros-40MiB': Buffer.alloc(40 * 1024 * 1024),
      'random-33MiB': {file: {random: 33 * 1024 * 1024 + 5, seed: 11}},
    })
    const repo = path.join(work, 'repo2')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo, '-q'])
    const target = path.join(work, 'out2')
    await ckpt(['restore', 'latest', '--target', target, '--repo', repo])
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
  })

  it('creates the default repository .ckpt in the current directory on first use, and says so', async () => {
    const dir = path.join(work, 'cwd3')
    await fsp.mkdir(path.join(dir, 'state'), {recursive: true})
    await buildTree(path.join(dir, 'state'), {'a.txt': 'a', sub: {dir: {'b.txt': 'b'}}})
    const r = await ckpt(['snapshot', 'state'], {cwd: dir})
    expect(r.stderr).toContain('created repository')
    expect(r.stdout.trim()).toMatch(/^[0-9a-f]{64}$/)
    expect((await fsp.stat(path.join(dir, '.ckpt', 'config'))).isFile()).toBe(true)
    // CKPT_REPO is honoured too.
    const r2 = await ckpt(['snapshots', '--json'], {cwd: work, env: {CKPT_REPO: path.join(dir, '.ckpt')}})
    expect(JSON.parse(r2.stdout)).toHaveLength(1)
  })

  it('excludes a repository that lives inside the source, and --exclude patterns', async () => {
    const dir = path.join(work, 'inside4')
    await fsp.mkdir(dir)
    await buildTree(dir, {'keep.txt': 'k', 'skip.tmp': 't', cache: {dir: {'x': 'x'}}, sub: {dir: {'deep.tmp': 'd', 'ok': 'o'}}})
    await ckpt(['snapshot', '.', '--exclude', '*.tmp', '--exclude', 'cache'], {cwd: dir})
    const target = path.join(work, 'out4')
    await ckpt(['restore', 'latest', '--target', target], {cwd: dir})
    const names = [...(await captureTree(target)).keys()].map((k) => Buffer.from(k, 'hex').toString()).sort()
    expect(names).toEqual(['', 'keep.txt', 'sub', 'sub/ok'])
  })

  it('restores only the paths given with --include', async () => {
    const src = path.join(work, 'src5')
    await fsp.mkdir(src)
    await buildTree(src, {a: {dir: {b: {dir: {'c.txt': 'c', 'd.txt': 'd'}}, 'e.txt': 'e'}}, 'f.txt': 'f'})
    const repo = path.join(work, 'repo5')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    const target = path.join(work, 'out5')
    await ckpt(['restore', 'latest', '--target', target, '--include', 'a/b/c.txt', '--include', 'f.txt', '--repo', repo])
    const names = [...(await captureTree(target)).keys()].map((k) => Buffer.from(k, 'hex').toString()).sort()
    expect(names).toEqual(['', 'a', 'a/b', 'a/b/c.txt', 'f.txt'])
    // Without --target, --include is refused: it would replace the source with a part of it.
    const r = await runCli(['restore', 'latest', '--include', 'f.txt', '--repo', repo])
    expect(r.code).toBe(2)
  })
})

describe('bad input gets a one-line error and a documented exit code', () => {
  it('missing source directory: exit 5', async () => {
    const r = await runCli(['snapshot', path.join(work, 'nope'), '--repo', path.join(work, 'r-missing')])
    expect(r.code).toBe(5)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/^ckpt: .*nope/)
  })

  it('explicit repository that does not exist: exit 10', async () => {
    const src = path.join(work, 'src-e10')
    await fsp.mkdir(src)
    const r = await runCli(['snapshot', src, '--repo', path.join(work, 'no-such-repo')])
    expect(r.code).toBe(10)
    expect(r.stderr).toContain('no ckpt repository')
  })

  it('unknown snapshot: exit 4; --json gives an error document', async () => {
    const repo = path.join(work, 'repo-e4')
    await ckpt(['init', '--repo', repo])
    const r = await runCli(['restore', 'abcdef12', '--target', path.join(work, 'x-e4'), '--repo', repo, '--json'])
    expect(r.code).toBe(4)
    expect(JSON.parse(r.stdout).error.code).toBe('NOT_FOUND')
  })

  it('restore --target into a non-empty directory is refused and leaves it alone', async () => {
    const src = path.join(work, 'src-ne')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'a'})
    const repo = path.join(work, 'repo-ne')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    const target = path.join(work, 'busy')
    await fsp.mkdir(target)
    await fsp.writeFile(path.join(target, 'mine'), 'do not touch')
    const r = await runCli(['restore', 'latest', '--target', target, '--repo', repo])
    expect(r.code).toBe(5)
    expect(await fsp.readFile(path.join(target, 'mine'), 'utf8')).toBe('do not touch')
  })

  it('a file given as the repository path: exit 2, nothing written', async () => {
    const file = path.join(work, 'repo-is-a-file')
    await fsp.writeFile(file, 'x')
    const r = await runCli(['init', '--repo', file])
    expect(r.code).toBe(2)
    expect(await fsp.readFile(file, 'utf8')).toBe('x')
  })
})
