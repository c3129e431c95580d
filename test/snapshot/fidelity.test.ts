// What the snapshot records beyond content (tree version 2), on real files: hard links read once,
// sparse files read by their data regions only, xattrs and ACLs, inode flags and --exclude-nodump,
// FIFOs and device nodes, sockets counted, paths longer than PATH_MAX; and the stat cache keeps
// all of it for unchanged files while noticing a changed xattr. Trees are decoded from the
// repository to check what was stored.
import {spawnSync} from 'node:child_process'
import {closeSync, ftruncateSync, linkSync, mkdirSync, openSync, symlinkSync, writeFileSync, writeSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {makeNode, writeXattr} from '../../src/core/fsextra.js'
import {LongPaths} from '../../src/core/longpath.js'
import {BlobType} from '../../src/repo/pack.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {blake3} from '../../src/core/hash.js'
import {BlobWriter} from '../../src/repo/writer.js'
import {Archiver} from '../../src/snapshot/archiver.js'
import {dataLength, decodeTree, encodeTree, type TreeNode} from '../../src/snapshot/tree.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

const MiB = 1024 * 1024
const isRoot = process.getuid?.() === 0

let work: string
let src: string
let repoDir: string
beforeEach(async () => {
  work = await tempDir('ckpt-fidelity-')
  src = path.join(work, 'src')
  repoDir = path.join(work, 'repo')
  mkdirSync(src)
  await initLocalRepository(repoDir, {now: Date.now()})
})
afterEach(() => {
  spawnSync('chattr', ['-R', '-i', '-a', work], {stdio: 'ignore'})
  // GNU rm copes with trees deeper than PATH_MAX.
  spawnSync('rm', ['-rf', work])
})

/**
 * Snapshot src. The clock is set 10 s ahead: the files were all written just before, and a real
 * clock would make every one "written during the capture" (racy) and read again next time.
 */
async function snapshot(opts: {excludeNodump?: boolean} = {}) {
  const repo = await openLocalRepository(repoDir)
  const nowNs = () => BigInt(Date.now()) * 1_000_000n + 10_000_000_000n
  return (await createSnapshot(repo, {source: src, program: 'test', nowNs, ...opts})).manifest
}

/** The node at `rel` (slash-separated) in the tree `treeHex`. */
async function nodeAt(treeHex: string, rel: string): Promise<TreeNode> {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  let tree: Buffer = Buffer.from(treeHex, 'hex')
  const parts = rel.split('/')
  for (let i = 0; ; i++) {
    const nodes = decodeTree(await repo.readBlob(tree, BlobType.tree), tree.toString('hex'))
    const node = nodes.find((n) => n.name.toString() === parts[i])
    if (!node) throw new Error(`${rel}: no ${parts[i]}`)
    if (i === parts.length - 1) return node
    tree = node.subtree!
  }
}

async function content(node: TreeNode): Promise<Buffer> {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  return Buffer.concat(await Promise.all(node.chunks!.map((c) => repo.readBlob(c, BlobType.data))))
}

describe('hard links', () => {
  it('reads an inode with three names in two directories once; each name records nlink and dev', async () => {
    mkdirSync(path.join(src, 'a'))
    mkdirSync(path.join(src, 'b'))
    const data = seededBytes(3 * MiB, 5)
    writeFileSync(path.join(src, 'a', 'one'), data)
    linkSync(path.join(src, 'a', 'one'), path.join(src, 'a', 'two'))
    linkSync(path.join(src, 'a', 'one'), path.join(src, 'b', 'three'))
    // Linked to a name outside the tree: still just a file, with its count recorded.
    writeFileSync(path.join(src, 'solo'), 'solo')
    linkSync(path.join(src, 'solo'), path.join(work, 'outside'))

    const m = await snapshot()
    expect(m.summary.bytesRead).toBe(3 * MiB + 4)
    expect(m.summary.files).toBe(4)
    const nodes = await Promise.all(['a/one', 'a/two', 'b/three'].map((p) => nodeAt(m.tree, p)))
    for (const n of nodes) {
      expect(n.nlink).toBe(3)
      expect(n.ino).toBe(nodes[0]!.ino)
      expect(n.dev).toBe(nodes[0]!.dev)
      expect(n.chunks).toEqual(nodes[0]!.chunks)
    }
    expect((await content(nodes[2]!)).equals(data)).toBe(true)
    expect((await nodeAt(m.tree, 'solo')).nlink).toBe(2)

    // Unchanged: nothing read, the same tree.
    const again = await snapshot()
    expect(again.summary.bytesRead).toBe(0)
    expect(again.tree).toBe(m.tree)
  })
})

describe('sparse files', () => {
  it('reads only the data of a 10 GiB file holding 3 MiB, and records its extents', async () => {
    const file = path.join(src, 'disk.img')
    const fd = openSync(file, 'w')
    const pieces = [[0, seededBytes(MiB, 1)], [4096 * MiB, seededBytes(MiB, 2)], [10 * 1024 * MiB - MiB, seededBytes(MiB, 3)]] as const
    try {
      ftruncateSync(fd, 10 * 1024 * MiB)
      for (const [at, bytes] of pieces) writeSync(fd, bytes, 0, bytes.length, at)
    } finally {
      closeSync(fd)
    }
    writeFileSync(path.join(src, 'dense'), seededBytes(2 * MiB, 4))

    const m = await snapshot()
    expect(m.summary.bytesRead).toBe(3 * MiB + 2 * MiB)
    expect(m.summary.bytes).toBe(10 * 1024 * MiB + 2 * MiB)
    const node = await nodeAt(m.tree, 'disk.img')
    expect(node.size).toBe(10 * 1024 * MiB)
    expect(node.extents).toEqual(pieces.map(([at, b]) => ({offset: at, length: b.length})))
    expect(dataLength(node)).toBe(3 * MiB)
    expect((await content(node)).equals(Buffer.concat(pieces.map(([, b]) => b)))).toBe(true)
    expect((await nodeAt(m.tree, 'dense')).extents).toBeUndefined()

    const again = await snapshot()
    expect(again.summary.bytesRead).toBe(0)
    expect(again.tree).toBe(m.tree)
  })

  it('records a file that is all hole, and a small one with a trailing hole', async () => {
    const empty = openSync(path.join(src, 'hole'), 'w')
    ftruncateSync(empty, 5 * MiB)
    closeSync(empty)
    const small = openSync(path.join(src, 'small'), 'w')
    writeSync(small, Buffer.alloc(4096, 9), 0, 4096, 0)
    ftruncateSync(small, 512 * 1024)
    closeSync(small)
    const m = await snapshot()
    expect(m.summary.bytesRead).toBe(4096)
    const hole = await nodeAt(m.tree, 'hole')
    expect(hole.extents).toEqual([])
    expect(hole.chunks).toEqual([])
    expect((await nodeAt(m.tree, 'small')).extents).toEqual([{offset: 0, length: 4096}])
  })
})

describe('xattrs, ACLs and flags', () => {
  it('records user xattrs with binary values and ACLs on files, directories and (access) defaults', async () => {
    const file = path.join(src, 'f')
    writeFileSync(file, 'x')
    mkdirSync(path.join(src, 'd'))
    const binary = Buffer.from([0, 1, 2, 255, 0])
    expect(writeXattr(file, Buffer.from('user.bin'), binary)).toBe('ok')
    expect(writeXattr(path.join(src, 'd'), Buffer.from('user.dir'), Buffer.from('on a dir'))).toBe('ok')
    expect(spawnSync('setfacl', ['-m', 'u:nobody:rw', file]).status).toBe(0)
    expect(spawnSync('setfacl', ['-d', '-m', 'g:daemon:rx', path.join(src, 'd')]).status).toBe(0)

    const m = await snapshot()
    expect(m.warnings).toEqual([])
    const f = await nodeAt(m.tree, 'f')
    expect(f.xattrs!.map((x) => x.name.toString())).toEqual(['system.posix_acl_access', 'user.bin'])
    expect(f.xattrs![1]!.value.equals(binary)).toBe(true)
    const d = await nodeAt(m.tree, 'd')
    expect(d.xattrs!.map((x) => x.name.toString())).toEqual(['system.posix_acl_default', 'user.dir'])

    // Unchanged: taken from the parent with its xattrs; one changed: its ctime moved, read again.
    const same = await snapshot()
    expect(same.tree).toBe(m.tree)
    expect(writeXattr(file, Buffer.from('user.bin'), Buffer.from('new'))).toBe('ok')
    const changed = await snapshot()
    const f2 = await nodeAt(changed.tree, 'f')
    expect(f2.xattrs![1]!.value.toString()).toBe('new')
  })

  it('records the nodump flag, and --exclude-nodump leaves such files and directories out (and the capture stays consistent)', async () => {
    writeFileSync(path.join(src, 'keep'), 'k')
    writeFileSync(path.join(src, 'cache'), 'c')
    mkdirSync(path.join(src, 'tmp'))
    writeFileSync(path.join(src, 'tmp', 'inside'), 'i')
    const chattr = spawnSync('chattr', ['+d', path.join(src, 'cache'), path.join(src, 'tmp')], {encoding: 'utf8'})
    if (chattr.status !== 0) return expect.soft(chattr.stderr, 'chattr +d unsupported here').toBe('')

    const all = await snapshot()
    expect((await nodeAt(all.tree, 'cache')).flags).toBe(0x40)
    expect((await nodeAt(all.tree, 'tmp')).flags).toBe(0x40)
    expect((await nodeAt(all.tree, 'keep')).flags).toBeUndefined()

    const m = await snapshot({excludeNodump: true})
    const repo = await openLocalRepository(repoDir)
    await repo.loadIndex()
    const names = decodeTree(await repo.readBlob(Buffer.from(m.tree, 'hex'), BlobType.tree), m.tree).map((n) => n.name.toString())
    expect(names).toEqual(['keep'])
    expect(m.capture?.consistent).toBe(true)
  })
})

describe('special files', () => {
  it('records a FIFO and (as root) a device node, and counts a socket without a warning', async () => {
    expect(makeNode(path.join(src, 'pipe'), 'fifo', 0o640)).toBe('ok')
    if (isRoot) expect(makeNode(path.join(src, 'null'), 'chardev', 0o666, 1, 3)).toBe('ok')
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(path.join(src, 'sock'), resolve))
    try {
      const m = await snapshot()
      expect(m.warnings).toEqual([])
      expect(m.summary.sockets).toBe(1)
      expect(m.summary.specials).toBe(isRoot ? 2 : 1)
      expect(m.capture?.consistent).toBe(true)
      const pipe = await nodeAt(m.tree, 'pipe')
      expect(pipe.type).toBe('fifo')
      expect(pipe.mode).toBe(0o640 & ~process.umask())
      if (isRoot) {
        const dev = await nodeAt(m.tree, 'null')
        expect(dev.type).toBe('chardev')
        expect(dev.rdev).toEqual({major: 1, minor: 3})
      }
      await expect(nodeAt(m.tree, 'sock')).rejects.toThrow(/no sock/)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

describe('long paths', () => {
  it('stores a file under a path of more than 8 KiB, and a symlink beside it', async () => {
    const paths = new LongPaths()
    const names: string[] = []
    let abs = Buffer.from(src)
    try {
      while (abs.length < 8300) {
        const name = `${names.length}`.padEnd(200, 'x')
        names.push(name)
        abs = Buffer.concat([abs, Buffer.from('/' + name)])
        mkdirSync(paths.short(abs))
      }
      writeFileSync(paths.short(Buffer.concat([abs, Buffer.from('/deep')])), 'at the bottom')
      symlinkSync('deep', paths.short(Buffer.concat([abs, Buffer.from('/link')])))
    } finally {
      paths.close()
    }
    const m = await snapshot()
    expect(m.warnings).toEqual([])
    const deep = await nodeAt(m.tree, [...names, 'deep'].join('/'))
    expect((await content(deep)).toString()).toBe('at the bottom')
    expect((await nodeAt(m.tree, [...names, 'link'].join('/'))).target!.toString()).toBe('deep')
    expect(m.capture?.consistent).toBe(true)
  })
})

it('from a version-1 parent tree: chunks reused when the stat matches, xattrs and links read afresh', async () => {
  writeFileSync(path.join(src, 'f'), seededBytes(100_000, 8))
  linkSync(path.join(src, 'f'), path.join(src, 'g'))
  expect(writeXattr(path.join(src, 'f'), Buffer.from('user.k'), Buffer.from('v'))).toBe('ok')
  const m = await snapshot()
  // The same directory as a version-1 tree would hold it: no links, no xattrs.
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  const v2 = decodeTree(await repo.readBlob(Buffer.from(m.tree, 'hex'), BlobType.tree), m.tree)
  const v1Bytes = Buffer.from(encodeTree(v2.map((n) => ({...n, nlink: undefined, dev: undefined, xattrs: undefined}))).toString().replace('{"version":2,', '{"version":1,'))
  const v1Id = blake3(v1Bytes)
  const writer = new BlobWriter(repo, {verifyReused: false})
  await writer.add(BlobType.tree, v1Id, v1Bytes)
  await writer.flush()
  expect(decodeTree(v1Bytes, 'v1').every((n) => n.legacy)).toBe(true)

  const writer2 = new BlobWriter(repo, {verifyReused: false})
  const r = await new Archiver(repo, writer2, {source: src, excludes: [], parentTree: v1Id, parentStartNs: BigInt(Date.now()) * 1_000_000n + 10_000_000_000n}).run()
  await writer2.flush()
  expect(r.bytesRead).toBe(0)
  // Everything version 2 records is back: the very tree the first snapshot stored.
  expect(r.tree.toString('hex')).toBe(m.tree)
})

it('after a snapshot written without the addon, reads xattrs afresh (the parent recorded none because it could not)', async () => {
  writeFileSync(path.join(src, 'f'), seededBytes(50_000, 9))
  expect(writeXattr(path.join(src, 'f'), Buffer.from('user.k'), Buffer.from('v'))).toBe('ok')
  const first = await snapshot()
  // The same snapshot as a build without the addon would have written it: no xattrs, and said so.
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  const nodes = decodeTree(await repo.readBlob(Buffer.from(first.tree, 'hex'), BlobType.tree), first.tree)
  const bare = encodeTree(nodes.map((n) => ({...n, xattrs: undefined})))
  const writer = new BlobWriter(repo, {verifyReused: false})
  await writer.add(BlobType.tree, blake3(bare), bare)
  await writer.flush()
  const r = await new Archiver(repo, new BlobWriter(repo, {verifyReused: false}), {
    source: src, excludes: [], parentTree: blake3(bare), parentStartNs: BigInt(Date.now()) * 1_000_000n + 10_000_000_000n, parentMetadataSkipped: true,
  }).run()
  expect(r.bytesRead).toBe(0)
  expect(r.tree.toString('hex')).toBe(first.tree)
})
