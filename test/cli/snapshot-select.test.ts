// snapshot's selection flags and --dry-run, run as a user would: --exclude-file, --files-from,
// --one-file-system (a tmpfs mounted inside the source), --exclude-if-present, --exclude-caches.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {mountTmpfs, unmount} from '../helpers/tmpfs.js'
import {buildTree, captureTree, tempDir} from '../helpers/tree.js'

let work: string
let n = 0
const mounted: string[] = []
beforeAll(async () => {
  work = await tempDir('ckpt-snapshot-select-')
})
afterAll(async () => {
  for (const m of mounted) unmount(m)
  await fsp.rm(work, {recursive: true, force: true})
})

/** A fresh source with `spec`, and a fresh repository. */
async function fixture(spec: Parameters<typeof buildTree>[1]): Promise<{src: string; repo: string}> {
  const src = path.join(work, `src${++n}`)
  const repo = path.join(work, `repo${n}`)
  await fsp.mkdir(src)
  await buildTree(src, spec)
  await ckpt(['init', '--repo', repo])
  return {src, repo}
}

/** The paths a snapshot holds, restored into a new directory. */
async function stored(repo: string, id: string): Promise<string[]> {
  const out = path.join(work, `out${++n}`)
  await ckpt(['restore', id, '--repo', repo, '--target', out])
  return [...(await captureTree(out)).keys()].map((k) => Buffer.from(k, 'hex').toString()).filter(Boolean).sort()
}

const TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n'

describe('--exclude and names that are not plain text (a control character, bytes that are not UTF-8)', () => {
  const names = async (dir: string) => [...(await captureTree(dir)).keys()].map((k) => Buffer.from(k, 'hex').toString('latin1')).filter(Boolean).sort()
  const patterns = ['--exclude', 'a\nb', '--exclude', 'tab?here', '--exclude', 'caf?', '--exclude', 'd?r/inner']
  const all = ['a\nb', 'caf\xe9', 'd\x01r', 'd\x01r/inner', 'd\x01r/kept', 'keep', 'tab\there']
  const left = ['d\x01r', 'd\x01r/kept', 'keep']

  it('snapshot and restore match the name as typed and "?" against each character of it', async () => {
    const {src, repo} = await fixture({'a\nb': 'newline', 'tab\there': 'tab', 'hex:636166e9': 'latin-1', 'hex:640172': {dir: {inner: 'i', kept: 'k'}}, keep: 'k'})
    expect(await names(src)).toEqual(all)
    const id = (await ckpt(['snapshot', src, '--repo', repo, ...patterns])).stdout.trim()
    const out = path.join(work, `out${++n}`)
    await ckpt(['restore', id, '--repo', repo, '--target', out])
    expect(await names(out)).toEqual(left)
    // restore --exclude, from a snapshot of everything.
    const full = (await ckpt(['snapshot', src, '--repo', repo])).stdout.trim()
    const part = path.join(work, `out${++n}`)
    await ckpt(['restore', full, '--repo', repo, '--target', part, ...patterns])
    expect(await names(part)).toEqual(left)
    // In place, what the snapshot left out stays as it is now.
    await fsp.writeFile(path.join(src, 'a\nb'), 'changed since')
    await ckpt(['restore', id, '--repo', repo, '--source', src])
    expect(await names(src)).toEqual(all)
    expect(await fsp.readFile(path.join(src, 'a\nb'), 'utf8')).toBe('changed since')
  })
})

describe('--exclude-file', () => {
  it('reads patterns, skipping comments and blank lines; they are recorded like --exclude', async () => {
    const {src, repo} = await fixture({'a.tmp': 'a', 'keep': 'k', cache: {dir: {x: 'x'}}, '#weird': 'w'})
    const list = path.join(work, 'excludes.txt')
    await fsp.writeFile(list, '# temporary files\n*.tmp\n\n  cache  \n')
    const s = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo, '--exclude-file', list])
    expect(await stored(repo, s.id)).toEqual(['#weird', 'keep'])
    const missing = await runCli(['snapshot', src, '--repo', repo, '--exclude-file', path.join(work, 'nope')])
    expect(missing.code).toBe(5)
    expect(missing.stderr).toMatch(/^ckpt: --exclude-file .*nope: no such file\n$/)
  })
})

describe('--exclude-if-present and --exclude-caches', () => {
  it('leave out directories holding the marker, at any depth; in place they are kept', async () => {
    const {src, repo} = await fixture({
      build: {dir: {'.nobackup': '', big: 'b'}},
      deep: {dir: {er: {dir: {'CACHEDIR.TAG': TAG, blob: 'c'}}, kept: 'k'}},
      fake: {dir: {'CACHEDIR.TAG': 'not the signature', kept: 'k'}},
      data: 'd',
    })
    const s = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo, '--exclude-if-present', '.nobackup', '--exclude-caches'])
    expect(await stored(repo, s.id)).toEqual(['data', 'deep', 'deep/kept', 'fake', 'fake/CACHEDIR.TAG', 'fake/kept'])
    // NAME:HEADER: only a marker starting with HEADER counts.
    const h = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo, '--exclude-if-present', 'CACHEDIR.TAG:not the'])
    expect((await stored(repo, h.id)).filter((p) => p.startsWith('fake'))).toEqual([])
    // An in-place restore keeps the directories the markers left out, as they are now.
    await fsp.writeFile(path.join(src, 'build', 'big'), 'newer')
    await fsp.writeFile(path.join(src, 'data'), 'changed')
    await ckpt(['restore', s.id, '--repo', repo, '--no-safety-snapshot'])
    expect(await fsp.readFile(path.join(src, 'build', 'big'), 'utf8')).toBe('newer')
    expect(await fsp.readFile(path.join(src, 'deep', 'er', 'blob'), 'utf8')).toBe('c')
    expect(await fsp.readFile(path.join(src, 'data'), 'utf8')).toBe('d')
  })
})

describe('--one-file-system', () => {
  it('does not descend into a filesystem mounted inside the source', async (ctx) => {
    const {src, repo} = await fixture({mnt: {dir: {}}, own: 'o'})
    const m = mountTmpfs(path.join(src, 'mnt'), 1024 * 1024)
    if (!m.ok) return ctx.skip(m.reason)
    mounted.push(path.join(src, 'mnt'))
    await fsp.writeFile(path.join(src, 'mnt', 'inside'), 'on the tmpfs')
    const all = await ckptJson<{id: string; files: number}>(['snapshot', src, '--repo', repo])
    expect(all.files).toBe(2) // without the flag: the mount's file too
    const one = await ckptJson<{id: string; files: number}>(['snapshot', src, '--repo', repo, '--one-file-system'])
    expect(one.files).toBe(1)
    expect(await stored(repo, one.id)).toEqual(['own'])
    // -x, as restic and tar spell it; a settled capture: nothing under the mount counts as moved.
    const x = await runCli(['snapshot', src, '--repo', repo, '-x'])
    expect(x.code).toBe(0)
  })
})

describe('--files-from', () => {
  it('snapshots only the listed paths (relative or absolute inside the source) and what leads to them', async () => {
    const {src, repo} = await fixture({db: {dir: {CURRENT: 'c', OTHER: 'o'}}, wal: {dir: {'1.log': 'l'}}, top: 't', f: 'file'})
    const list = path.join(work, 'files.txt')
    await fsp.writeFile(list, `# what matters\ndb/CURRENT\n${src}/wal\n\nf/below\nmissing\n`)
    const r = await runCli(['snapshot', src, '--repo', repo, '--files-from', list, '--json'])
    expect(r.code).toBe(3) // a listed path that is not there is a warning
    expect(r.stderr).toMatch(/^warning: f\/below: listed in --files-from, not found in .*\nwarning: missing: listed in --files-from, not found/)
    const s = JSON.parse(r.stdout) as {id: string}
    expect(await stored(repo, s.id)).toEqual(['db', 'db/CURRENT', 'wal', 'wal/1.log'])
    // It holds a part of the directory: an in-place restore would remove the rest.
    const inPlace = await runCli(['restore', s.id, '--repo', repo])
    expect(inPlace.code).toBe(2)
    expect(inPlace.stderr).toMatch(/holds only the paths --files-from chose: restore it with --target/)
    expect(await fsp.readFile(path.join(src, 'top'), 'utf8')).toBe('t')
  })

  it('none of the paths there: exit 5; one outside the source: exit 2', async () => {
    const {src, repo} = await fixture({a: 'a'})
    const list = path.join(work, 'none.txt')
    await fsp.writeFile(list, 'x\ny\n')
    expect((await runCli(['snapshot', src, '--repo', repo, '--files-from', list])).code).toBe(5)
    await fsp.writeFile(list, '/etc/passwd\n')
    const outside = await runCli(['snapshot', src, '--repo', repo, '--files-from', list])
    expect(outside.code).toBe(2)
    expect(outside.stderr).toMatch(/\/etc\/passwd is not inside the source/)
  })

  it('a listed name that is not UTF-8 is found as its bytes, under a UTF-8 directory too', async () => {
    const {src, repo} = await fixture({'hex:636166e9': 'latin-1', 'ünï': {dir: {'hex:ff': 'ff', x: 'x'}}, other: 'o'})
    const list = path.join(work, 'bytes.txt')
    await fsp.writeFile(list, Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(`\n${src}/ünï/`), Buffer.from([0xff]), Buffer.from('\n')]))
    const id = (await ckpt(['snapshot', src, '--repo', repo, '--files-from', list])).stdout.trim()
    const out = path.join(work, `out${++n}`)
    await ckpt(['restore', id, '--repo', repo, '--target', out])
    const names = [...(await captureTree(out)).keys()].filter(Boolean).map((k) => Buffer.from(k, 'hex').toString('hex')).sort()
    expect(names).toEqual([Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from('ünï'), Buffer.concat([Buffer.from('ünï/'), Buffer.from([0xff])])].map((b) => b.toString('hex')).sort())
  })
})

describe('snapshot --dry-run', () => {
  it('says what would be stored, exactly what the snapshot then adds, and writes nothing', async () => {
    const {src, repo} = await fixture({a: 'alpha', b: {dir: {c: 'gamma gamma'}}, 'x.tmp': 'tmp'})
    const before = await captureTree(repo)
    const dry = await ckptJson<{dryRun: boolean; files: number; bytes: number; newBytes: number; newBlobs: number; parent: null}>(['snapshot', src, '--repo', repo, '--dry-run', '--exclude', '*.tmp'])
    expect(dry).toMatchObject({dryRun: true, files: 2, bytes: 16, parent: null})
    const after = await captureTree(repo)
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort()) // not even a lock
    const real = await ckptJson<{newBytes: number; newBlobs: number}>(['snapshot', src, '--repo', repo, '--exclude', '*.tmp'])
    expect(dry.newBytes).toBe(real.newBytes)
    expect(dry.newBlobs).toBe(real.newBlobs)
    // Unchanged since: nothing new.
    const again = await ckpt(['snapshot', src, '--repo', repo, '-n', '--exclude', '*.tmp'])
    expect(again.stdout).toMatch(new RegExp(`^snapshot \\(dry run\\) of ${src}: would store 2 files, 16 B, 0 B new \\(0 B read\\), parent [0-9a-f]{12}\\n$`))
  })

  it('does not create the default repository', async () => {
    const cwd = path.join(work, 'no-default')
    await fsp.mkdir(cwd)
    await buildTree(cwd, {src: {dir: {a: 'a'}}})
    const r = await runCli(['snapshot', 'src', '--dry-run'], {cwd})
    expect(r.code).toBe(10)
    await expect(fsp.lstat(path.join(cwd, '.ckpt'))).rejects.toThrow(/ENOENT/)
  })
})
