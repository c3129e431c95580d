// Everything a filesystem holds, snapshot then restore on real files (ext4 under /tmp, tmpfs where
// ext4 cannot): xattrs with binary values and at the kernel's limits, ACLs getfacl reads back the
// same, FIFOs and device nodes, inode flags (set last, and cleared when an old tree holding them is
// removed after an in-place restore), hard links, sparse files, paths of 8 KiB; warnings, not
// failures, for what the target refuses.
import {spawnSync} from 'node:child_process'
import {mkdirSync, promises as fsp, statSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {removeTree} from '../../src/restore/deeptree.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, resolveSnapshot} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {mountTmpfs, unmount} from '../helpers/tmpfs.js'
import {awkwardSpec, buildTree, captureTree, diffTrees, seededBytes, tempDir, type TreeSpec} from '../helpers/tree.js'

const isRoot = process.getuid?.() === 0
let work: string
let repoDir: string

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-restore-fidelity-'))
  repoDir = path.join(work, 'repo')
  await initLocalRepository(repoDir, {now: Date.now()})
})

afterAll(() => {
  removeTree(work)
})

async function snapshot(src: string): Promise<string> {
  const repo = await openLocalRepository(repoDir)
  // The clock 10 s ahead: files written just before are not "written during the capture".
  const nowNs = () => BigInt(Date.now()) * 1_000_000n + 10_000_000_000n
  return (await createSnapshot(repo, {source: src, program: 'test', nowNs})).id
}

async function restore(id: string, target?: string) {
  const repo = await openLocalRepository(repoDir)
  const {snapshots} = await loadCatalog(repo)
  return restoreSnapshot(repo, resolveSnapshot(snapshots, id), {target})
}

async function roundTrip(name: string, spec: TreeSpec) {
  const src = path.join(work, `${name}-src`)
  mkdirSync(src)
  await buildTree(src, spec)
  const want = await captureTree(src)
  const id = await snapshot(src)
  const out = path.join(work, `${name}-out`)
  const result = await restore(id, out)
  return {src, out, want, got: await captureTree(out), result, id}
}

function getfacl(p: string): string {
  const r = spawnSync('getfacl', ['-p', '--omit-header', p], {encoding: 'utf8'})
  expect(r.status).toBe(0)
  return r.stdout
}

describe('the awkward tree', () => {
  it('comes back whole: links, holes, xattrs, ACLs, FIFO, device, flags, a path past PATH_MAX', async () => {
    const {src, out, want, got, result} = await roundTrip('awkward', awkwardSpec())
    expect(diffTrees(want, got, {ignoreRootMtime: true})).toEqual([])
    expect(result.warnings).toEqual([])
    expect(result.hardLinks).toBe(isRoot ? 4 : 3)
    expect(result.fifos).toBe(1)
    expect(result.devices).toBe(isRoot ? 1 : 0)
    expect(getfacl(path.join(out, 'acl-dir'))).toBe(getfacl(path.join(src, 'acl-dir')))
    expect(getfacl(path.join(out, 'acl-dir/acl.txt'))).toBe(getfacl(path.join(src, 'acl-dir/acl.txt')))
    expect(statSync(path.join(out, 'sparse.img')).blocks * 512).toBeLessThan(256 * 1024)
    // The captures compare every xattr, link shape and device number; make sure they were there to compare.
    const keyOf = (rel: string) => Buffer.from(rel).toString('hex')
    expect(got.get(keyOf('xattr.txt'))!.xattrs).toContain('user.binary=000102ff000a')
    expect(got.get(keyOf('links-dir/links-b'))!.nlink).toBe(3)
    if (isRoot) {
      expect(got.get(keyOf('null'))!.node).toBe('chardev 1:3')
      expect(got.get(keyOf('immutable.txt'))!.flags).toBe(0x10)
      expect(got.get(keyOf('links-dir/locked-b'))!).toMatchObject({flags: 0x10, nlink: 2, link: got.get(keyOf('locked-a'))!.link})
    }
    expect([...got.keys()].some((k) => k.length / 2 >= 8192)).toBe(true)
  })

  it('an in-place restore over a tree holding immutable files and deep paths removes the old tree', async () => {
    const src = path.join(work, 'inplace')
    mkdirSync(src)
    await buildTree(src, {keep: 'kept'})
    const id = await snapshot(src)
    await buildTree(src, {old: {dir: {locked: {file: 'x', chattr: isRoot ? '+i' : undefined}, also: {file: 'y', chattr: isRoot ? '+a' : undefined}}, chattr: isRoot ? '+a' : undefined}, deep: {deep: 5000, leaf: 'old and deep'}})
    const result = await restore(id)
    expect(result.replaced).toBe(true)
    expect((await fsp.readdir(src)).sort()).toEqual(['keep'])
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore'))).toEqual([])
  })
})

describe("a destination whose parent has a default ACL", () => {
  // Every entry made below such a parent inherits it; the snapshot recorded none of that.
  async function inheritingParent(name: string): Promise<{parent: string; src: string; want: Awaited<ReturnType<typeof captureTree>>; id: string}> {
    const src = path.join(work, `${name}-src`)
    mkdirSync(src)
    await buildTree(src, {a: 'a', sub: {dir: {deeper: {dir: {b: 'b'}}}}, acl: {file: 'own', acl: 'u:4321:r--'}})
    const want = await captureTree(src)
    const id = await snapshot(src)
    const parent = path.join(work, `${name}-parent`)
    mkdirSync(parent)
    expect(spawnSync('setfacl', ['-d', '-m', 'u:1234:rwx', parent]).status).toBe(0)
    expect(getfacl(parent)).toMatch(/default:user:1234:rwx/)
    return {parent, src, want, id}
  }

  it('restore --target below it: no entry takes the inherited ACL, the recorded ones stay', async () => {
    const {parent, src, want, id} = await inheritingParent('inherit-target')
    const out = path.join(parent, 'out')
    const result = await restore(id, out)
    expect(result.warnings).toEqual([])
    expect(diffTrees(want, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
    expect(getfacl(out)).not.toMatch(/1234/)
    expect(getfacl(path.join(out, 'sub/deeper/b'))).not.toMatch(/1234/)
    expect(getfacl(path.join(out, 'acl'))).toBe(getfacl(path.join(src, 'acl')))
  })

  it('an in-place restore of a directory below it', async () => {
    const {parent, want, id} = await inheritingParent('inherit-inplace')
    const dir = path.join(parent, 'state')
    await fsp.rename(path.join(work, 'inherit-inplace-src'), dir)
    await fsp.writeFile(path.join(dir, 'a'), 'changed')
    const repo = await openLocalRepository(repoDir)
    const {snapshots} = await loadCatalog(repo)
    const result = await restoreSnapshot(repo, resolveSnapshot(snapshots, id), {target: dir, overwrite: true})
    expect(result.replaced).toBe(true)
    expect(diffTrees(want, await captureTree(dir), {ignoreRootMtime: true})).toEqual([])
    expect(getfacl(path.join(dir, 'sub'))).not.toMatch(/1234/)
  })
})

describe("the snapshot root's own xattrs, ACLs and flags", () => {
  /** The root's access and default ACL, a user xattr, and noatime + nodump (ext4 and tmpfs take both). */
  function dressRoot(dir: string, extra = ''): void {
    for (const args of [['setfacl', '-m', 'u:1234:r-x', dir], ['setfacl', '-d', '-m', 'u:1234:rwx', dir], ['setfattr', '-n', 'user.purpose', '-v', 'state', dir]]) {
      expect(spawnSync(args[0]!, args.slice(1)).status).toBe(0)
    }
    if (isRoot) expect(spawnSync('chattr', [`+Ad${extra}`, dir]).status).toBe(0)
  }
  const rootFlags = 0x80 | 0x40

  it('come back with --target', async () => {
    const src = path.join(work, 'root-meta-src')
    mkdirSync(src)
    await buildTree(src, {a: 'a', sub: {dir: {b: 'b'}}})
    dressRoot(src)
    const want = await captureTree(src)
    const id = await snapshot(src)
    const out = path.join(work, 'root-meta-out')
    const result = await restore(id, out)
    expect(result.warnings).toEqual([])
    expect(diffTrees(want, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
    expect(getfacl(out)).toBe(getfacl(src))
    expect(getfacl(out)).toMatch(/default:user:1234:rwx/)
    expect((await captureTree(out)).get('')!.xattrs).toContain(`user.purpose=${Buffer.from('state').toString('hex')}`)
    if (isRoot) expect((await captureTree(out)).get('')!.flags).toBe(rootFlags)
  })

  it('come back in place, over a root that lost them', async () => {
    const src = path.join(work, 'root-meta-inplace')
    mkdirSync(src)
    await buildTree(src, {a: 'a'})
    dressRoot(src)
    const want = await captureTree(src)
    const id = await snapshot(src)
    for (const args of [['setfacl', '-b', '-k', src], ['setfattr', '-x', 'user.purpose', src], ...(isRoot ? [['chattr', '-A', '-d', src]] : [])]) {
      expect(spawnSync(args[0]!, args.slice(1)).status).toBe(0)
    }
    await fsp.writeFile(path.join(src, 'a'), 'changed')
    const result = await restore(id)
    expect(result.replaced).toBe(true)
    expect(result.warnings).toEqual([])
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(getfacl(src)).toMatch(/user:1234:r-x[\s\S]*default:user:1234:rwx/)
  })

  it('an immutable root is made immutable last, once it is in place', async (ctx) => {
    if (!isRoot) ctx.skip('needs root')
    const src = path.join(work, 'root-immutable-src')
    mkdirSync(src)
    await buildTree(src, {a: 'a'})
    dressRoot(src, 'i')
    const out = path.join(work, 'root-immutable-out')
    try {
      const want = await captureTree(src)
      const id = await snapshot(src)
      const result = await restore(id, out)
      expect(result.warnings).toEqual([])
      expect(diffTrees(want, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
      expect((await captureTree(out)).get('')!.flags).toBe(rootFlags | 0x10)
    } finally {
      spawnSync('chattr', ['-i', src])
      spawnSync('chattr', ['-i', out])
    }
  })

  it('a nodump root is still snapshotted whole with --exclude-nodump, and keeps its flag', async (ctx) => {
    if (!isRoot) ctx.skip('needs root')
    const src = path.join(work, 'root-nodump-src')
    mkdirSync(src)
    await buildTree(src, {a: 'a', skipped: {file: 'x', chattr: '+d'}})
    expect(spawnSync('chattr', ['+d', src]).status).toBe(0)
    const repo = await openLocalRepository(repoDir)
    const nowNs = () => BigInt(Date.now()) * 1_000_000n + 10_000_000_000n
    const {id} = await createSnapshot(repo, {source: src, program: 'test', nowNs, excludeNodump: true})
    const out = path.join(work, 'root-nodump-out')
    await restore(id, out)
    expect((await fsp.readdir(out)).sort()).toEqual(['a'])
    expect((await captureTree(out)).get('')!.flags).toBe(0x40)
  })
})

describe('xattrs at the kernel limits', () => {
  it('255-byte names and binary values; 64 KiB values on tmpfs', async (ctx) => {
    const longName = `user.${'n'.repeat(250)}`
    const {want, got} = await roundTrip('limits', {f: {file: 'x', xattrs: {[longName]: seededBytes(3000, 9), 'user.empty': Buffer.alloc(0), 'user.nul': Buffer.from([0, 0, 0])}}})
    expect(diffTrees(want, got, {ignoreRootMtime: true})).toEqual([])
    expect(got.get(Buffer.from('f').toString('hex'))!.xattrs).toContain(longName)

    const mnt = path.join(work, 'tmpfs')
    mkdirSync(mnt)
    const m = mountTmpfs(mnt, 64 * 1024 * 1024)
    if (!m.ok) ctx.skip(`cannot mount a tmpfs here: ${m.reason}`)
    try {
      const src = path.join(mnt, 'src')
      mkdirSync(src)
      await buildTree(src, {big: {file: 'x', xattrs: {'user.big': seededBytes(65536, 10)}}})
      const wantBig = await captureTree(src)
      const id = await snapshot(src)
      const out = path.join(mnt, 'out')
      const r = await restore(id, out)
      expect(r.warnings).toEqual([])
      expect(diffTrees(wantBig, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
      // ext4 holds a value within one block: restored there, the attribute is refused with one warning, the file restored.
      const onExt4 = await restore(id, path.join(work, 'big-on-ext4'))
      expect(onExt4.warnings.map((w) => w.kind)).toEqual([expect.stringMatching(/^xattr:user:(ENOSPC|E2BIG)$/)])
      expect(await fsp.readFile(path.join(work, 'big-on-ext4', 'big'), 'utf8')).toBe('x')
    } finally {
      unmount(mnt)
    }
  })
})

describe('what the target refuses is one warning per kind', () => {
  it('ramfs (no xattrs, ACLs or inode flags): every file restored, one warning per kind with its count', async (ctx) => {
    if (!isRoot) ctx.skip('needs root')
    const src = path.join(work, 'refused-src')
    mkdirSync(src)
    await buildTree(src, {
      a: {file: 'a', xattrs: {'user.a': 'a'}, chattr: '+d'},
      b: {file: seededBytes(2 * 1024 * 1024, 3), xattrs: {'user.b': 'b'}, acl: 'u:65534:r--', chattr: '+d'},
      c: {dir: {d: {file: 'd', xattrs: {'user.d': 'd'}}}, chattr: '+d'},
    })
    const id = await snapshot(src)
    const mnt = path.join(work, 'ramfs')
    mkdirSync(mnt)
    const r = spawnSync('mount', ['-t', 'ramfs', 'ramfs', mnt])
    if (r.status !== 0) ctx.skip()
    try {
      const res = await restore(id, path.join(mnt, 'out'))
      expect((await fsp.readFile(path.join(mnt, 'out', 'a'), 'utf8'))).toBe('a')
      expect((await fsp.readFile(path.join(mnt, 'out', 'b'))).equals(seededBytes(2 * 1024 * 1024, 3))).toBe(true)
      expect((await fsp.readFile(path.join(mnt, 'out', 'c/d'), 'utf8'))).toBe('d')
      const byKind = Object.fromEntries(res.warnings.map((w) => [w.kind, w.count]))
      expect(byKind).toEqual({'xattr:user:unsupported': 3, 'xattr:acl:unsupported': 1, 'flags:unsupported': 3})
      expect(res.warnings.find((w) => w.kind === 'flags:unsupported')!.message).toMatch(/no inode flags/)
    } finally {
      spawnSync('umount', [mnt])
    }
  })
})

describe('room for a sparse snapshot', () => {
  it('a 1 GiB sparse file with 64 KiB of data restores onto a 32 MiB filesystem (the check counts data, not holes)', async (ctx) => {
    const src = path.join(work, 'sparse-src')
    mkdirSync(src)
    await buildTree(src, {'vm.img': {sparse: 1024 ** 3, data: [[4096, seededBytes(65536, 12)]]}, again: {dir: {'vm-link.img': {hardlink: 'vm.img'}}}})
    const id = await snapshot(src)
    const mnt = path.join(work, 'tmpfs-small')
    mkdirSync(mnt)
    const m = mountTmpfs(mnt, 32 * 1024 * 1024)
    if (!m.ok) ctx.skip(`cannot mount a tmpfs here: ${m.reason}`)
    try {
      const out = path.join(mnt, 'out')
      await restore(id, out)
      const st = statSync(path.join(out, 'vm.img'))
      expect([st.size, st.nlink]).toEqual([1024 ** 3, 2])
      expect(st.blocks * 512).toBeLessThan(1024 * 1024)
    } finally {
      unmount(mnt)
    }
  })
})

describe('on XFS (a loop image)', () => {
  it('the awkward tree and a 64 KiB xattr restore the same onto XFS, flags included', async (ctx) => {
    if (!isRoot || spawnSync('mkfs.xfs', ['-V']).status !== 0) ctx.skip()
    const image = path.join(work, 'xfs.img')
    const mnt = path.join(work, 'xfs')
    mkdirSync(mnt)
    // XFS needs 300 MiB at least; the image is sparse.
    spawnSync('truncate', ['-s', '320M', image])
    expect(spawnSync('mkfs.xfs', ['-q', image]).status).toBe(0)
    if (spawnSync('mount', ['-o', 'loop', image, mnt]).status !== 0) ctx.skip()
    try {
      const src = path.join(mnt, 'src')
      mkdirSync(src)
      await buildTree(src, {...awkwardSpec(), big: {file: 'x', xattrs: {'user.big': seededBytes(65536, 13)}}})
      const want = await captureTree(src)
      const id = await snapshot(src)
      const out = path.join(mnt, 'out')
      const r = await restore(id, out)
      expect(r.warnings).toEqual([])
      expect(diffTrees(want, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
      // Immutable and append-only files on both sides.
      removeTree(src)
      removeTree(out)
    } finally {
      spawnSync('umount', [mnt])
    }
  })
})

describe('an append-only destination', () => {
  it('an in-place restore over it stops with a clear BadPathError and changes nothing', async (ctx) => {
    if (!isRoot) ctx.skip('needs root')
    const src = path.join(work, 'append-dest')
    mkdirSync(src)
    await buildTree(src, {a: 'snapshot'})
    const id = await snapshot(src)
    await fsp.writeFile(path.join(src, 'a'), 'current')
    spawnSync('chattr', ['+a', src])
    try {
      await expect(restore(id)).rejects.toThrow(/cannot replace .*append-dest: the system refuses to move it \(EPERM/)
      expect(await fsp.readFile(path.join(src, 'a'), 'utf8')).toBe('current')
      expect((await fsp.readdir(work)).filter((n) => n.startsWith('.append-dest.ckpt-restore'))).toEqual([])
    } finally {
      spawnSync('chattr', ['-a', src])
    }
  })
})
