// The library behind ls, cat, diff, stats and find, on real snapshots of real directories.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {table} from '../../src/cli/format.js'
import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {fileContents} from '../../src/inspect/cat.js'
import {changeJson, countChange, diffNodes, emptyStats, metadataDiffers} from '../../src/inspect/diff.js'
import {Finder} from '../../src/inspect/find.js'
import {listSnapshot, lsEntry, lsLine} from '../../src/inspect/ls.js'
import {filterSnapshots, parseTagFilter, selectSnapshot, sourcePath} from '../../src/inspect/select.js'
import {repositoryStats} from '../../src/inspect/stats.js'
import {locate, rootNode, Trees, walk} from '../../src/inspect/trees.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {loadCatalog, type SnapshotRecord} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {encodeTree, type TreeNode} from '../../src/snapshot/tree.js'
import {buildTree, seededBytes, tempDir, type TreeSpec} from '../helpers/tree.js'

let work: string
let repo: Repository

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-inspect-'))
  await initLocalRepository(path.join(work, 'repo'), {now: Date.now()})
  repo = await openLocalRepository(path.join(work, 'repo'))
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function snap(src: string, opts: {tags?: string[]; time?: Date; host?: string} = {}): Promise<SnapshotRecord> {
  const {id} = await createSnapshot(repo, {source: src, program: 'test', ...opts})
  await repo.loadIndex()
  return (await loadCatalog(repo)).snapshots.find((s) => s.id === id)!
}

async function diffAll(a: SnapshotRecord, b: SnapshotRecord, p = '') {
  const trees = new Trees(repo)
  const x = await locate(trees, rootNode(a.manifest), p)
  const y = await locate(trees, rootNode(b.manifest), p)
  const stats = emptyStats()
  const changes = []
  for await (const c of diffNodes(trees, x?.node, y?.node, (x ?? y)!.path)) {
    countChange(stats, c)
    changes.push(changeJson(c))
  }
  return {changes, stats: {...stats, treesRead: trees.read}}
}

describe('diff reads only the subtrees whose ids differ', () => {
  it('2,000 files in 100 directories, 3 files changed in 3 directories: 2 roots + 3 x 2 directories read', async () => {
    const src = path.join(work, 'wide')
    const spec: TreeSpec = {}
    for (let d = 0; d < 100; d++) {
      const files: TreeSpec = {}
      for (let f = 0; f < 20; f++) files[`f${f}`] = `dir ${d} file ${f}`
      spec[`d${String(d).padStart(3, '0')}`] = {dir: files}
    }
    await fsp.mkdir(src)
    await buildTree(src, spec)
    const a = await snap(src)
    await fsp.writeFile(path.join(src, 'd007/f3'), 'changed, and longer')
    await fsp.writeFile(path.join(src, 'd050/new'), 'added')
    await fsp.rm(path.join(src, 'd099/f19'))
    const b = await snap(src)
    const {changes, stats} = await diffAll(a, b)
    expect(changes).toEqual([
      {kind: 'modified', path: 'd007/f3', type: 'file', size: 19, oldSize: 12, fields: ['mtime']},
      {kind: 'added', path: 'd050/new', type: 'file', size: 5},
      {kind: 'removed', path: 'd099/f19', type: 'file', size: 14},
    ])
    expect(stats.treesRead).toBe(2 + 3 * 2)
    expect(stats).toMatchObject({added: 1, removed: 1, modified: 1, metadata: 0, type: 0, addedBytes: 5, removedBytes: 14, modifiedBytesBefore: 12, modifiedBytesAfter: 19})
  })

  it('reports metadata-only and type changes, and what a removed or added directory held', async () => {
    const src = path.join(work, 'kinds')
    await fsp.mkdir(src)
    await buildTree(src, {keep: 'same', perm: 'x', swap: 'was a file', gone: {dir: {a: 'aa', sub: {dir: {b: 'bbb'}}}}, link: {symlink: 'keep'}})
    const a = await snap(src)
    await fsp.chmod(path.join(src, 'perm'), 0o600)
    await fsp.rm(path.join(src, 'swap'))
    await fsp.mkdir(path.join(src, 'swap'))
    await fsp.writeFile(path.join(src, 'swap/inside'), '12345')
    await fsp.rm(path.join(src, 'gone'), {recursive: true})
    await fsp.rm(path.join(src, 'link'))
    await fsp.symlink('perm', path.join(src, 'link'))
    const b = await snap(src)
    const {changes, stats} = await diffAll(a, b)
    expect(changes).toEqual([
      {kind: 'removed', path: 'gone', type: 'dir', size: 0},
      {kind: 'removed', path: 'gone/a', type: 'file', size: 2},
      {kind: 'removed', path: 'gone/sub', type: 'dir', size: 0},
      {kind: 'removed', path: 'gone/sub/b', type: 'file', size: 3},
      {kind: 'modified', path: 'link', type: 'symlink', size: 0, oldSize: 0, fields: expect.any(Array)},
      {kind: 'metadata', path: 'perm', type: 'file', size: 1, oldSize: 1, fields: ['mode']},
      {kind: 'type', path: 'swap', type: 'dir', oldType: 'file', size: 0, oldSize: 10},
      {kind: 'added', path: 'swap/inside', type: 'file', size: 5},
    ])
    expect(stats.removedBytes).toBe(5)
    // With a path: only what lies below it.
    expect((await diffAll(a, b, 'gone/sub')).changes.map((c) => c.path)).toEqual(['gone/sub', 'gone/sub/b'])
    // Identical snapshots: the two roots are the same tree, nothing is read.
    expect((await diffAll(b, b)).stats.treesRead).toBe(0)
  })
})

describe('tree format version 2: special files, hard links, holes, xattrs, flags', () => {
  // Trees written directly (the archiver records these as the fidelity work lands), in a store in memory.
  const blobs = new Map<string, Buffer>()
  const mem = {readBlob: async (id: Uint8Array) => blobs.get(Buffer.from(id).toString('hex'))!}
  const put = (bytes: Buffer): Buffer => {
    const id = blake3(bytes)
    blobs.set(id.toString('hex'), bytes)
    return id
  }
  const base = {mode: 0o644, uid: 0, gid: 0, mtimeNs: 1n, ctimeNs: 1n, ino: 1n, size: 0}
  const file = (name: string, extra: Partial<TreeNode>): TreeNode => ({...base, name: Buffer.from(name), type: 'file', chunks: [], ...extra})
  const snapshotOf = (nodes: TreeNode[]): SnapshotRecord => {
    const tree = put(encodeTree(nodes))
    return {id: tree.toString('hex'), manifest: {tree: tree.toString('hex'), root: {mode: 0o755, uid: 0, gid: 0, mtimeNs: '0'}}} as unknown as SnapshotRecord
  }
  const data = put(Buffer.from('headtail'))
  const linked = put(Buffer.from('linked'))
  const sparseSize = (8 << 20) + 4
  const sparse = file('sparse', {size: sparseSize, chunks: [data], extents: [{offset: 0, length: 4}, {offset: 8 << 20, length: 4}], flags: 0x40})
  const note = (v: string) => [{name: Buffer.from('user.note'), value: Buffer.from(v)}]
  const link = (name: string, v: string) => file(name, {size: 6, chunks: [linked], nlink: 2, dev: 7n, ino: 42n, xattrs: note(v)})
  const s1 = snapshotOf([
    link('a', 'one'), link('b', 'one'),
    {...base, name: Buffer.from('null'), type: 'chardev', rdev: {major: 1, minor: 3}},
    {...base, name: Buffer.from('pipe'), type: 'fifo'},
    sparse,
  ])

  it('ls shows them (JSON and -l), cat reads holes as zeros', async () => {
    const trees = new Trees(mem)
    const entries = new Map<string, ReturnType<typeof lsEntry>>()
    const lines = new Map<string, string>()
    for await (const at of listSnapshot(trees, s1, [], {recursive: false})) {
      entries.set(at.path.toString(), lsEntry(at))
      lines.set(at.path.toString(), lsLine(at, true))
    }
    expect(entries.get('pipe')).toMatchObject({type: 'fifo'})
    expect(entries.get('null')).toMatchObject({type: 'chardev', rdev: {major: 1, minor: 3}})
    expect(entries.get('a')).toMatchObject({nlink: 2, inode: '7:42', xattrs: [{name: 'user.note', value: 'one'}]})
    expect(entries.get('sparse')).toMatchObject({size: sparseSize, dataBytes: 8, flags: 0x40})
    expect(lines.get('a')).toMatch(/^-rw-r--r--\+ {2}2 0\/0 +6 /)
    expect(lines.get('null')).toMatch(/^crw-r--r--  {2}1 0\/0 +1, 3 /)
    expect(lines.get('pipe')).toMatch(/^prw-r--r-- /)
    const parts: Buffer[] = []
    for await (const b of fileContents(mem, sparse)) parts.push(Buffer.from(b))
    const want = Buffer.alloc(sparseSize)
    want.write('head', 0)
    want.write('tail', 8 << 20)
    expect(Buffer.concat(parts).equals(want)).toBe(true)
  })

  it('diff: xattr and flag changes are metadata changes, a device number or the holes a content change', async () => {
    const s2 = snapshotOf([
      link('a', 'two'), link('b', 'one'),
      {...base, name: Buffer.from('null'), type: 'chardev', rdev: {major: 1, minor: 5}},
      {...base, name: Buffer.from('pipe'), type: 'file', chunks: []},
      {...sparse, flags: undefined},
    ])
    const trees = new Trees(mem)
    const out = []
    for await (const c of diffNodes(trees, rootNode(s1.manifest), rootNode(s2.manifest), Buffer.alloc(0))) out.push(changeJson(c))
    expect(out).toEqual([
      {kind: 'metadata', path: 'a', type: 'file', size: 6, oldSize: 6, fields: ['xattrs']},
      {kind: 'modified', path: 'null', type: 'chardev', size: 0, oldSize: 0},
      {kind: 'type', path: 'pipe', type: 'file', oldType: 'fifo', size: 0, oldSize: 0},
      {kind: 'metadata', path: 'sparse', type: 'file', size: sparseSize, oldSize: sparseSize, fields: ['flags']},
    ])
    // A node of a version-1 tree recorded no xattrs: not compared.
    const legacy = {...link('a', 'x'), xattrs: undefined, legacy: true}
    expect(metadataDiffers(legacy, link('a', 'one'))).toEqual([])
  })

  it("the root's xattrs and flags (from the manifest): ls shows them, diff sees them change", async () => {
    const plain = snapshotOf([link('a', 'one')])
    const withRoot = (root: object): SnapshotRecord => ({...plain, manifest: {...plain.manifest, root: {...plain.manifest.root, ...root}}})
    const s2 = withRoot({flags: 0x40, xattrs: [{name: 'system.posix_acl_default', value: 'AgAAAA=='}, {name: 'user.note', value: Buffer.from('root').toString('base64')}]})
    const node = rootNode(s2.manifest)
    expect(node).toMatchObject({flags: 0x40, xattrs: [{name: Buffer.from('system.posix_acl_default')}, {name: Buffer.from('user.note'), value: Buffer.from('root')}]})
    expect(lsEntry({node, path: Buffer.alloc(0)})).toMatchObject({flags: 0x40, xattrs: [{name: 'system.posix_acl_default'}, {name: 'user.note', value: 'root'}]})
    const trees = new Trees(mem)
    const out = []
    for await (const c of diffNodes(trees, rootNode(plain.manifest), node, Buffer.alloc(0))) out.push(changeJson(c))
    expect(out).toEqual([{kind: 'metadata', path: '.', type: 'dir', size: 0, oldSize: 0, fields: ['xattrs', 'flags']}])
  })
})

describe('ls', () => {
  it('lists a directory, a file, everything below with recursive, and refuses a path not in the snapshot', async () => {
    const src = path.join(work, 'ls')
    await fsp.mkdir(src)
    await buildTree(src, {a: {dir: {b: {dir: {c: 'x'}}, d: 'y'}}, 'hex:6361660a': 'not utf-8'})
    const s = await snap(src)
    const trees = new Trees(repo)
    const list = async (paths: string[], recursive: boolean) => {
      const out: string[] = []
      for await (const at of listSnapshot(trees, s, paths, {recursive})) out.push(at.path.toString('latin1'))
      return out
    }
    expect(await list([], false)).toEqual(['a', 'caf\n'])
    expect(await list(['a'], true)).toEqual(['a/b', 'a/b/c', 'a/d'])
    expect(await list(['a/d', '/a/b/'], false)).toEqual(['a/d', 'a/b/c'])
    // A name that is not UTF-8 given as ls shows it.
    expect(await list(['caf\\n'], false)).toEqual(['caf\n'])
    await expect(list(['a/nope'], false)).rejects.toMatchObject({code: 'NOT_FOUND', exitCode: 4})
    await expect(list(['a/d/below-a-file'], false)).rejects.toMatchObject({code: 'NOT_FOUND'})
    await expect(list(['../etc'], false)).rejects.toMatchObject({code: 'USAGE'})
  })
})

describe('cat', () => {
  const fakeReader = (blobs: Buffer[]) => {
    let inFlight = 0
    let most = 0
    const reader = {
      readBlob: async (id: Uint8Array) => {
        inFlight++
        most = Math.max(most, inFlight)
        await new Promise((r) => setImmediate(r))
        inFlight--
        return blobs[id[0]!]!
      },
      most: () => most,
    }
    return reader
  }
  const node = (size: number, chunks: number, extents?: TreeNode['extents']): TreeNode => ({
    name: Buffer.from('f'), type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, ino: 0n, size,
    chunks: Array.from({length: chunks}, (_, i) => Buffer.alloc(32, i)), ...(extents ? {extents} : {}),
  })
  const collect = async (it: AsyncIterable<Buffer>) => {
    const parts: Buffer[] = []
    for await (const b of it) parts.push(Buffer.from(b))
    return Buffer.concat(parts)
  }

  it('streams the chunks in order with at most 4 read ahead', async () => {
    const blobs = Array.from({length: 20}, (_, i) => seededBytes(1000 + i, i + 1))
    const r = fakeReader(blobs)
    const out = await collect(fileContents(r, node(blobs.reduce((n, b) => n + b.length, 0), 20)))
    expect(out.equals(Buffer.concat(blobs))).toBe(true)
    expect(r.most()).toBeLessThanOrEqual(4)
  })

  it('places a sparse file\'s data regions and reads its holes as zeros', async () => {
    const blobs = [Buffer.from('abc'), Buffer.from('defg')]
    const out = await collect(fileContents(fakeReader(blobs), node(3_000_000, 2, [{offset: 5, length: 2}, {offset: 2_000_000, length: 5}])))
    const want = Buffer.alloc(3_000_000)
    want.write('ab', 5)
    want.write('cdefg', 2_000_000)
    expect(out.equals(want)).toBe(true)
  })

  it('refuses chunks that hold more or fewer bytes than the recorded size (a damaged tree)', async () => {
    const blobs = [Buffer.from('abc')]
    await expect(collect(fileContents(fakeReader(blobs), node(4, 1)))).rejects.toBeInstanceOf(IntegrityError)
    await expect(collect(fileContents(fakeReader(blobs), node(2, 1)))).rejects.toBeInstanceOf(IntegrityError)
  })

  it('reads a real file back byte for byte', async () => {
    const src = path.join(work, 'cat')
    await fsp.mkdir(src)
    const data = seededBytes(3 << 20, 7)
    await fsp.writeFile(path.join(src, 'big'), data)
    const s = await snap(src)
    const at = await locate(new Trees(repo), rootNode(s.manifest), 'big')
    expect((await collect(fileContents(repo, at!.node))).equals(data)).toBe(true)
  })
})

describe('selection', () => {
  it('--latest N keeps the newest N of each host and source; --tag a,b wants both, repeated wants any', async () => {
    const mk = (id: string, host: string, source: string, tags: string[], t: number): SnapshotRecord =>
      ({id, manifest: {host, source, tags, time: new Date(t * 1000).toISOString()}} as unknown as SnapshotRecord)
    const all = [mk('a1', 'h', '/a', ['x'], 1), mk('b1', 'h', '/b', ['x', 'y'], 2), mk('a2', 'h', '/a', [], 3), mk('a3', 'h', '/a', ['y'], 4), mk('a4', 'g', '/a', ['x'], 5)]
    const ids = (l: SnapshotRecord[]) => l.map((s) => s.id)
    expect(ids(filterSnapshots(all, {}, 1))).toEqual(['b1', 'a3', 'a4'])
    expect(ids(filterSnapshots(all, {source: '/a'}, 2))).toEqual(['a2', 'a3', 'a4'])
    expect(ids(filterSnapshots(all, {host: 'h', tags: parseTagFilter(['x,y'])}))).toEqual(['b1'])
    expect(ids(filterSnapshots(all, {tags: parseTagFilter(['y', 'x'])}))).toEqual(['a1', 'b1', 'a3', 'a4'])
  })

  it('"latest" with a source is the newest of that directory, which need not exist any more', async () => {
    const src = path.join(work, 'gone-later')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'f'), 'x')
    const s = await snap(src, {time: new Date('2020-01-01T00:00:00Z')})
    await fsp.rm(src, {recursive: true})
    // The path is given through a symlink to its parent: resolved as the snapshot recorded it.
    await fsp.symlink(work, path.join(work, 'via-link'))
    const resolved = await sourcePath(path.join(work, 'via-link', 'gone-later'))
    expect(resolved).toBe(src)
    const catalog = await loadCatalog(repo)
    expect(selectSnapshot(catalog, 'latest', {source: resolved}).id).toBe(s.id)
    expect(() => selectSnapshot(catalog, 'latest', {source: '/nowhere'})).toThrow(/no snapshot of \/nowhere/)
    expect(() => selectSnapshot(catalog, 'ffffffffff')).toThrow(/no snapshot matches/)
    // An id given with a source it is not of: refused, not taken for another directory's snapshot.
    expect(selectSnapshot(catalog, s.id.slice(0, 8), {source: resolved}).id).toBe(s.id)
    expect(() => selectSnapshot(catalog, s.id.slice(0, 8), {source: '/elsewhere'})).toThrow(/is of .*gone-later on host .*, not a snapshot of \/elsewhere/)
  })
})

describe('stats', () => {
  it('bytes unique to a snapshot are the blobs no other reaches', async () => {
    const src = path.join(work, 'stats')
    await fsp.mkdir(src)
    await buildTree(src, {shared: {file: {random: 200_000, seed: 3}}, sub: {dir: {s: 'same'}}})
    const a = await snap(src)
    await fsp.writeFile(path.join(src, 'only-b'), seededBytes(100_000, 9))
    const b = await snap(src)
    const catalog = await loadCatalog(repo)
    const report = await repositoryStats(repo, catalog.snapshots, [a, b])
    const [sa, sb] = [report.snapshots.find((s) => s.id === a.id)!, report.snapshots.find((s) => s.id === b.id)!]
    // a's only unique blob is its root tree; b's are its root tree and the chunks of only-b.
    expect(sa.unique.blobs).toBe(1)
    const onlyB = (await locate(new Trees(repo), rootNode(b.manifest), 'only-b'))!.node
    expect(sb.unique.blobs).toBe(1 + onlyB.chunks!.length)
    expect(sb.unique.rawBytes).toBeGreaterThan(100_000)
    expect(sb.reached.blobs).toBe(sa.reached.blobs + onlyB.chunks!.length)
    expect(sb.logicalBytes).toBe(300_000 + 4)
    expect(report.totals.unreferenced.blobs).toBe(0)
    expect(report.totals.referenced.blobs).toBe(report.totals.indexed.blobs)
    // Forgetting b leaves exactly b's unique blobs unreferenced: what prune would free.
    await repo.deleteSnapshot(b.id)
    const after = await repositoryStats(repo, (await loadCatalog(repo)).snapshots, [])
    expect(after.totals.unreferenced).toEqual(sb.unique)
  })
})

describe('find', () => {
  it('finds names at any depth or paths from the root, in each snapshot', async () => {
    const src = path.join(work, 'find')
    await fsp.mkdir(src)
    await buildTree(src, {db: {dir: {'001.sst': 'a', '002.sst': 'b', CURRENT: 'c'}}, 'top.sst': 'd'})
    const a = await snap(src)
    const finder = new Finder(new Trees(repo), '*.sst')
    expect((await finder.inSnapshot(a)).map((f) => f.path.toString())).toEqual(['db/001.sst', 'db/002.sst', 'top.sst'])
    expect((await new Finder(new Trees(repo), 'db/*.sst').inSnapshot(a)).map((f) => f.path.toString())).toEqual(['db/001.sst', 'db/002.sst'])
  })
})

describe('trees of any shape: 20,000 levels deep, 150,000 matches in one directory', () => {
  const blobs = new Map<string, Buffer>()
  const mem = {readBlob: async (id: Uint8Array) => blobs.get(Buffer.from(id).toString('hex'))!}
  const put = (nodes: TreeNode[]): Buffer => {
    const bytes = encodeTree(nodes)
    const id = blake3(bytes)
    blobs.set(id.toString('hex'), bytes)
    return id
  }
  const base = {mode: 0o755, uid: 0, gid: 0, mtimeNs: 1n, ctimeNs: 1n, ino: 1n, size: 0}
  const dir = (name: string, subtree: Buffer): TreeNode => ({...base, name: Buffer.from(name), type: 'dir', subtree})
  const root = (tree: Buffer): TreeNode => ({...base, name: Buffer.alloc(0), type: 'dir', subtree: tree})

  it('ls -R (walk) goes 20,000 levels deep, in order, without overflowing the stack', async () => {
    let tree = put([])
    for (let i = 0; i < 20_000; i++) tree = put([dir('d', tree)])
    let n = 0
    let last: Buffer = Buffer.alloc(0)
    for await (const e of walk(new Trees(mem), root(tree), Buffer.alloc(0))) {
      n++
      last = e.path
    }
    expect(n).toBe(20_000)
    expect(last.length).toBe(20_000 * 2 - 1)
  })

  it('find and its table take a directory holding 150,000 matches (one spread of them overflowed the stack)', async () => {
    const many = Array.from({length: 150_000}, (_, i) => ({...base, mode: 0o644, name: Buffer.from(`f${String(i).padStart(6, '0')}`), type: 'file' as const, chunks: []}))
    const tree = put([dir('sub', put(many))])
    const snapshot = {id: tree.toString('hex'), manifest: {tree: tree.toString('hex')}} as unknown as SnapshotRecord
    const found = await new Finder(new Trees(mem), 'f*').inSnapshot(snapshot)
    expect(found.length).toBe(150_000)
    expect(found[149_999]!.path.toString()).toBe('sub/f149999')
    expect(table(['PATH'], found.map((f) => [f.path.toString()])).split('\n').length).toBe(150_001)
  })
})
