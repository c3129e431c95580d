// A state directory is often a mount point (a volume mounted at /var/lib/…, a fresh disk to restore
// onto). rename(2) refuses to move a mount point (EBUSY), and a tree written beside it would be on
// the parent's filesystem. A restore into an empty mount point fills it from a temp tree written
// inside it; an in-place restore of a mount point swaps its entries with those of a temp tree
// written inside it, and a killed one is finished or undone by the next restore.
import {spawnSync} from 'node:child_process'
import {promises as fsp, mkdirSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {isMountPoint} from '../../src/core/mounts.js'
import {removeTree} from '../../src/restore/deeptree.js'
import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {mountTmpfs, unmount} from '../helpers/tmpfs.js'
import {buildTree, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

let work: string
let src: string
const repo: string[] = []
let id: string
const mounted: string[] = []

function mountHere(dir: string, ctx: {skip: (note?: string) => void}): void {
  mkdirSync(dir, {recursive: true})
  const m = mountTmpfs(dir, 32 * 1024 * 1024)
  if (!m.ok) ctx.skip(`cannot mount a tmpfs here: ${m.reason}`)
  mounted.push(dir)
}

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-mountpoint-'))
  src = path.join(work, 'src')
  await fsp.mkdir(src)
  await buildTree(src, {
    'a.txt': 'alpha\n',
    'big.bin': {file: {random: 2 * 1024 * 1024, seed: 5}},
    'sub': {dir: {'b.txt': 'beta\n', 'deep': {dir: {}}}},
    [Buffer.from([0x6e, 0xff, 0x0a]).toString('latin1')]: 'odd name\n',
    'link': {symlink: 'a.txt'},
  })
  await fsp.chmod(src, 0o750)
  // The root's own xattrs, default ACL and flags go onto the mount point too (captureTree compares them).
  spawnSync('setfattr', ['-n', 'user.purpose', '-v', 'state', src])
  spawnSync('setfacl', ['-d', '-m', 'u:1234:rwx', src])
  if (process.getuid?.() === 0) spawnSync('chattr', ['+A', src])
  repo.push('-r', path.join(work, 'repo'))
  await ckpt(['init', ...repo])
  id = (await ckptJson<{id: string}>(['snapshot', src, ...repo])).id
})

afterAll(async () => {
  for (const dir of mounted.reverse()) unmount(dir)
  await fsp.rm(work, {recursive: true, force: true})
})

describe('restore into an empty mount point', () => {
  it('fills it with the snapshot, byte for byte, the root\'s mode and mtime included; no temp tree is left in it or beside it', async (ctx) => {
    const vol = path.join(work, 'vol')
    mountHere(vol, ctx)
    expect(isMountPoint(vol)).toBe(true)
    const r = await runCli(['restore', id, '--target', vol, ...repo])
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(await captureTree(src), await captureTree(vol))).toEqual([])
    expect(isMountPoint(vol)).toBe(true)
    expect((await fsp.readdir(vol)).filter((n) => n.includes('ckpt-restore'))).toEqual([])
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore'))).toEqual([])
  })

  it('a restore killed after writing its temp tree leaves it inside the mount point; the next restore removes it and succeeds', async (ctx) => {
    const vol = path.join(work, 'vol-killed')
    mountHere(vol, ctx)
    const killed = await runCli(['restore', id, '--target', vol, ...repo], {env: {CKPT_FAULT: 'restore.temp-synced'}})
    expect(killed.signal).toBe('SIGKILL')
    // The temp tree was written on the mount's own filesystem, not beside it.
    expect((await fsp.readdir(vol)).filter((n) => n.includes('ckpt-restore'))).toHaveLength(1)
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore'))).toEqual([])
    const r = await runCli(['restore', id, '--target', vol, ...repo])
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(await captureTree(src), await captureTree(vol))).toEqual([])
  })

  it('a fresh ext4 filesystem (only its empty lost+found) counts as empty, and keeps its lost+found', async (ctx) => {
    if (spawnSync('mkfs.ext4', ['-V']).status !== 0) ctx.skip('mkfs.ext4 is not installed')
    const image = path.join(work, 'ext4.img')
    const vol = path.join(work, 'vol-ext4')
    mkdirSync(vol)
    spawnSync('truncate', ['-s', '16M', image])
    expect(spawnSync('mkfs.ext4', ['-q', '-F', image]).status).toBe(0)
    if (spawnSync('mount', ['-o', 'loop', image, vol]).status !== 0) ctx.skip('cannot loop-mount an image here')
    mounted.push(vol)
    expect(await fsp.readdir(vol)).toEqual(['lost+found'])
    const r = await runCli(['restore', id, '--target', vol, ...repo])
    expect(r.code, r.stderr).toBe(0)
    const got = await captureTree(vol)
    expect(got.delete(Buffer.from('lost+found').toString('hex'))).toBe(true)
    expect(diffTrees(await captureTree(src), got)).toEqual([])
    // Not empty any more: a second restore there is refused as before.
    expect((await runCli(['restore', id, '--target', vol, ...repo])).code).toBe(5)
  })

  it('checks the room on the mount point\'s filesystem, not its parent\'s', async (ctx) => {
    const small = path.join(work, 'vol-small')
    mkdirSync(small)
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small])
    if (m.status !== 0) ctx.skip('cannot mount a tmpfs here')
    mounted.push(small)
    const r = await runCli(['restore', id, '--target', small, ...repo])
    expect(r.code).toBe(7)
    expect(r.stderr).toMatch(/not enough space to restore to .*vol-small: .*its filesystem has 1\.0 MiB/)
    expect(await fsp.readdir(small)).toEqual([])
  })
})

describe('in-place restore of a mount point', () => {
  /** A mounted state directory holding v1, snapshotted into a repository beside it (or inside it), then changed to v2. */
  async function mountedState(name: string, ctx: {skip: (note?: string) => void}, repoInside = false) {
    const vol = path.join(work, name)
    mountHere(vol, ctx)
    await buildTree(vol, {'a.txt': 'v1\n', 'keep.bin': {file: {random: 300_000, seed: 9}}, 'd': {dir: {'x': 'x1'}}, 'e': {dir: {}}})
    const r2 = ['-r', repoInside ? path.join(vol, '.ckpt') : path.join(work, `${name}-repo`)]
    await ckpt(['init', ...r2])
    const v1 = (await ckptJson<{id: string}>(['snapshot', vol, ...r2])).id
    const want = await captureTree(vol)
    await fsp.writeFile(path.join(vol, 'a.txt'), 'v2\n')
    await fsp.rm(path.join(vol, 'd'), {recursive: true})
    await fsp.writeFile(path.join(vol, 'new.txt'), 'new')
    await fsp.mkdir(path.join(vol, 'f'))
    const changed = await captureTree(vol)
    return {vol, r2, v1, want, changed}
  }

  /** The tree without the repository kept inside it (and the root's mtime, which the carry moves). */
  function withoutRepo(t: Map<string, unknown>): Map<string, unknown> {
    const repoKey = Buffer.from('.ckpt').toString('hex')
    return new Map([...t].filter(([k]) => k !== repoKey && !k.startsWith(repoKey + '2f')))
  }

  const leftovers = async (dir: string) => (await fsp.readdir(dir)).filter((n) => n.includes('ckpt-restore'))

  it('swaps the entries: the snapshot comes back exactly, after the safety snapshot; the volume stays mounted; nothing of ckpt is left', async (ctx) => {
    const {vol, r2, v1, want} = await mountedState('vol-inplace', ctx)
    const r = await ckptJson<{replaced: boolean; filesReused: number}>(['restore', v1, ...r2])
    expect(r.replaced).toBe(true)
    expect(r.filesReused).toBeGreaterThanOrEqual(1) // keep.bin, unchanged, is linked, not read
    expect(diffTrees(want, await captureTree(vol))).toEqual([])
    expect(isMountPoint(vol)).toBe(true)
    expect(await leftovers(vol)).toEqual([])
    expect(await leftovers(work)).toEqual([])
    const snaps = await ckptJson<{tags: string[]}[]>(['snapshots', ...r2])
    expect(snaps.map((s) => s.tags)).toEqual([[], ['pre-restore']])
  })

  it('moves immutable and append-only entries too, old and new: the flag is lifted for the move and put back', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip('chattr +i needs root (CAP_LINUX_IMMUTABLE)')
    const vol = path.join(work, 'vol-immutable')
    mountHere(vol, ctx)
    await buildTree(vol, {'locked.txt': 'v1\n', 'log': {dir: {'l': 'l1'}}, 'plain.txt': 'p1\n'})
    for (const [flag, p] of [['+i', 'locked.txt'], ['+a', 'log']]) {
      if (spawnSync('chattr', [flag!, path.join(vol, p!)]).status !== 0) ctx.skip(`this filesystem refuses chattr ${flag}`)
    }
    const r2 = ['-r', path.join(work, 'vol-immutable-repo')]
    await ckpt(['init', ...r2])
    const v1 = (await ckptJson<{id: string}>(['snapshot', vol, ...r2])).id
    const want = await captureTree(vol)
    // The old tree's entries are locked too: a new immutable file, and plain.txt changed then locked.
    await fsp.writeFile(path.join(vol, 'plain.txt'), 'p2\n')
    await fsp.writeFile(path.join(vol, 'extra.txt'), 'x')
    for (const p of ['plain.txt', 'extra.txt']) expect(spawnSync('chattr', ['+i', path.join(vol, p)]).status).toBe(0)
    const r = await runCli(['restore', v1, ...r2])
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(want, await captureTree(vol))).toEqual([])
    expect(await leftovers(vol)).toEqual([])

    // Into an empty mount point: the snapshot's locked entries are moved up from the temp tree.
    const empty = path.join(work, 'vol-immutable-empty')
    mountHere(empty, ctx)
    const t = await runCli(['restore', v1, '--target', empty, ...r2])
    expect(t.code, t.stderr).toBe(0)
    expect(diffTrees(want, await captureTree(empty))).toEqual([])
    expect(await leftovers(empty)).toEqual([])
  })

  it('keeps the repository inside it, and recovers it when killed after carrying it into the temp tree', async (ctx) => {
    const {vol, r2, v1, want} = await mountedState('vol-repo-inside', ctx, true)
    const killed = await runCli(['restore', v1, ...r2], {env: {CKPT_FAULT: 'restore.inside-aside'}})
    expect(killed.signal).toBe('SIGKILL')
    // The repository is in the temp tree now; the next command finds it there and puts it back.
    const r = await runCli(['restore', v1, ...r2])
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(withoutRepo(want) as never, withoutRepo(await captureTree(vol)) as never, {ignoreRootMtime: true})).toEqual([])
    expect(await leftovers(vol)).toEqual([])
    expect((await ckptJson<{errors: number}>(['verify', '--read-data', ...r2])).errors).toBe(0)
  })

  // Killed at each step of the swap: the next restore first leaves the directory wholly old (before
  // the commit point) or wholly new (after it), then restores it.
  const points: [string, 'old' | 'new'][] = [
    ['restore.temp-synced', 'old'], ['restore.before-exchange', 'old'], ['restore.inside-moved@2', 'old'], ['restore.inside-aside', 'old'],
    ['restore.inside-committed', 'new'], ['restore.inside-moved@7', 'new'], ['restore.after-exchange', 'new'],
  ]
  it.for(points)('killed at %s: the next restore finds the directory wholly %s, then restores it', async ([point, whole], ctx) => {
    const {vol, r2, v1, want, changed} = await mountedState(`vol-kill-${point.replace(/[@.]/g, '-')}`, ctx)
    const killed = await runCli(['restore', v1, ...r2], {env: {CKPT_FAULT: point}})
    expect(killed.signal).toBe('SIGKILL')
    const {removeAbandonedTemps} = await import('../../src/restore/carry.js')
    await removeAbandonedTemps(vol, path.basename(vol), true)
    expect(await leftovers(vol)).toEqual([])
    expect(diffTrees(whole === 'old' ? changed : want, await captureTree(vol), {ignoreRootMtime: true})).toEqual([])
    const r = await runCli(['restore', v1, ...r2])
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(want, await captureTree(vol))).toEqual([])
    expect(await leftovers(vol)).toEqual([])
  })

  it('a snapshot of it after a killed restore first undoes the swap (as the next restore would): it holds the directory as it was', async (ctx) => {
    const {vol, r2, v1, changed} = await mountedState('vol-snap-after-kill', ctx)
    const killed = await runCli(['restore', v1, ...r2], {env: {CKPT_FAULT: 'restore.inside-aside'}})
    expect(killed.signal).toBe('SIGKILL')
    expect((await leftovers(vol)).length).toBeGreaterThan(0) // every old entry is aside now
    const later = (await ckptJson<{id: string}>(['snapshot', vol, ...r2])).id
    expect(await leftovers(vol)).toEqual([])
    expect(diffTrees(changed, await captureTree(vol), {ignoreRootMtime: true})).toEqual([])
    const out = path.join(work, 'snap-after-kill-out')
    await ckpt(['restore', later, '--target', out, ...r2])
    expect(diffTrees(changed, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
  })

  it('an --exclude that matches ckpt\'s own temp names (.*) keeps the user\'s hidden paths, not the temp tree', async (ctx) => {
    const vol = path.join(work, 'vol-hidden')
    mountHere(vol, ctx)
    await buildTree(vol, {'a.txt': 'v1', '.cache': {dir: {'c': 'kept as it is'}}})
    const r2 = ['-r', path.join(work, 'vol-hidden-repo')]
    await ckpt(['init', ...r2])
    const v1 = (await ckptJson<{id: string}>(['snapshot', vol, '--exclude', '.*', ...r2])).id
    await fsp.writeFile(path.join(vol, 'a.txt'), 'v2')
    await fsp.writeFile(path.join(vol, '.cache', 'c'), 'changed since, kept')
    const r = await runCli(['restore', v1, ...r2])
    expect(r.code, r.stderr).toBe(0)
    expect(await fsp.readFile(path.join(vol, 'a.txt'), 'utf8')).toBe('v1')
    expect(await fsp.readFile(path.join(vol, '.cache', 'c'), 'utf8')).toBe('changed since, kept')
    expect((await fsp.readdir(vol)).sort()).toEqual(['.cache', 'a.txt'])
  })

  it('--keep-old is refused for it (the old tree would stay inside), exit 2, nothing changed', async (ctx) => {
    const {vol, r2, v1, changed} = await mountedState('vol-keepold', ctx)
    const r = await runCli(['restore', v1, '--keep-old', ...r2])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--keep-old cannot keep the replaced tree of .*: it is a mount point/)
    expect(diffTrees(changed, await captureTree(vol))).toEqual([])
  })

  it('a bind mount of a directory of the same filesystem is a mount point too: replaced through it', async (ctx) => {
    const from = path.join(work, 'bind-from')
    const at = path.join(work, 'bind-at')
    await fsp.mkdir(from)
    await fsp.mkdir(at)
    await fsp.writeFile(path.join(from, 'x'), 'x')
    expect(isMountPoint(at)).toBe(false)
    if (spawnSync('mount', ['--bind', from, at]).status !== 0) ctx.skip('cannot bind-mount here')
    mounted.push(at)
    expect(isMountPoint(at)).toBe(true)
    const r = await runCli(['restore', id, '--target', at, '--overwrite', ...repo])
    expect(r.code, r.stderr).toBe(0)
    expect(isMountPoint(at)).toBe(true)
    expect(diffTrees(await captureTree(src), await captureTree(at))).toEqual([])
    // What the bind mount shows is the directory it was made of.
    expect(diffTrees(await captureTree(src), await captureTree(from))).toEqual([])
  })
})

describe('in-place restore of a directory with a volume mounted inside', () => {
  it('is refused (exit 5) before the safety snapshot: the volume keeps its files and stays mounted where it was', async (ctx) => {
    const state = path.join(work, 'nested')
    await fsp.mkdir(path.join(state, 'wal'), {recursive: true})
    await fsp.writeFile(path.join(state, 'a'), 'v1')
    mountHere(path.join(state, 'wal'), ctx)
    await fsp.writeFile(path.join(state, 'wal', 'segment'), 'on the volume')
    const r2 = ['-r', path.join(work, 'repo-nested')]
    await ckpt(['init', ...r2])
    await ckpt(['snapshot', state, ...r2])
    await fsp.writeFile(path.join(state, 'a'), 'v2')
    const r = await runCli(['restore', 'latest', ...r2])
    expect(r.code, r.stderr).toBe(5)
    expect(r.stderr).toMatch(/^ckpt: cannot replace .*nested: wal inside it is a mount point, .*Nothing was changed$/m)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(await fsp.readFile(path.join(state, 'a'), 'utf8')).toBe('v2')
    expect(await fsp.readFile(path.join(state, 'wal', 'segment'), 'utf8')).toBe('on the volume')
    expect(isMountPoint(path.join(state, 'wal'))).toBe(true)
    expect(await ckptJson<unknown[]>(['snapshots', ...r2])).toHaveLength(1)
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore'))).toEqual([])
  })
})

describe('removing a tree', () => {
  it('never goes into a volume mounted in it (EXDEV): the volume keeps its files', async (ctx) => {
    const top = path.join(work, 'old-tree')
    await fsp.mkdir(path.join(top, 'a', 'vol'), {recursive: true})
    await fsp.writeFile(path.join(top, 'a', 'f'), 'f')
    mountHere(path.join(top, 'a', 'vol'), ctx)
    await fsp.writeFile(path.join(top, 'a', 'vol', 'kept'), 'kept')
    expect(() => removeTree(top)).toThrow(/EXDEV: .*old-tree\/a\/vol is a mount point/)
    expect(await fsp.readFile(path.join(top, 'a', 'vol', 'kept'), 'utf8')).toBe('kept')
  })
})
