// Restore must be safe: atomic in place, never a half tree, never outside the target, never wrong bytes.
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import {BlobType} from '../../src/repo/pack.js'
import {openLocalRepository} from '../../src/repo/open.js'
import {removeTree} from '../../src/restore/deeptree.js'
import {BlobWriter} from '../../src/repo/writer.js'
import {encodeManifest, type Manifest} from '../../src/snapshot/manifest.js'
import {decodeTree, encodeTree, type TreeNode} from '../../src/snapshot/tree.js'
import {ckpt, ckptJson, ROOT, runCli} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, tempDir, type Captured} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-restore-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

function same(a: Map<string, Captured>, b: Map<string, Captured>): boolean {
  return diffTrees(a, b).length === 0
}

describe('in-place restore', () => {
  it('replaces the source atomically, after saving it as a pre-restore snapshot that undoes the restore', async () => {
    const src = path.join(work, 'inplace')
    await fsp.mkdir(src)
    await buildTree(src, {'a.txt': 'version 1', sub: {dir: {'b.txt': 'b1'}}})
    const repo = path.join(work, 'repo-inplace')
    await ckpt(['init', '--repo', repo])
    const v1 = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo])
    const v1Tree = await captureTree(src)
    await fsp.writeFile(path.join(src, 'a.txt'), 'version 2, longer')
    await fsp.writeFile(path.join(src, 'new.txt'), 'only in v2')
    await fsp.rm(path.join(src, 'sub'), {recursive: true})
    const v2Tree = await captureTree(src)

    const restored = await ckptJson<{safetySnapshot: string; replaced: boolean}>(['restore', 'latest', '--repo', repo])
    expect(restored.replaced).toBe(true)
    expect(diffTrees(v1Tree, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    // No temp or old trees left beside the source.
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore') || n.includes('ckpt-old'))).toEqual([])

    // "latest" still means the latest checkpoint, not the safety snapshot.
    const list = await ckptJson<{id: string; tags: string[]}[]>(['snapshots', '--repo', repo])
    expect(list.map((s) => s.tags)).toEqual([[], ['pre-restore']])
    // Undo: restore the safety snapshot.
    await ckpt(['restore', restored.safetySnapshot, '--repo', repo, '--no-safety-snapshot'])
    expect(diffTrees(v2Tree, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(v1.id).not.toBe(restored.safetySnapshot)
  })

  it('--keep-old keeps the replaced tree beside the source', async () => {
    const src = path.join(work, 'keepold')
    await fsp.mkdir(src)
    await buildTree(src, {'x': '1'})
    const repo = path.join(work, 'repo-keepold')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    await fsp.writeFile(path.join(src, 'x'), '2')
    const r = await ckptJson<{oldTree: string}>(['restore', 'latest', '--repo', repo, '--keep-old', '--no-safety-snapshot'])
    expect(await fsp.readFile(path.join(src, 'x'), 'utf8')).toBe('1')
    expect(await fsp.readFile(path.join(r.oldTree, 'x'), 'utf8')).toBe('2')
  })

  it('killed at any moment, the source path holds the old tree or the new one, whole; the next restore cleans up', async () => {
    const src = path.join(work, 'killme')
    await fsp.mkdir(src)
    const files = Object.fromEntries(Array.from({length: 400}, (_, i) => [`f${i}`, {file: {random: 40_000 + i, seed: i + 1}}]))
    await buildTree(src, {big: {file: {random: 48 * 1024 * 1024, seed: 9}}, many: {dir: files}})
    const repo = path.join(work, 'repo-killme')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    const snapTree = await captureTree(src)
    // The "old" tree: something else entirely.
    await fsp.rm(src, {recursive: true})
    await fsp.mkdir(src)
    await buildTree(src, {'other.txt': 'the tree that was there before the restore'})
    const oldTree = await captureTree(src)

    let sawOld = 0
    let sawNew = 0
    for (const delay of [150, 300, 450, 600, 750, 900, 1100, 1400]) {
      const r = await runCli(['restore', 'latest', '--repo', repo, '--no-safety-snapshot'], {killAfterMs: delay})
      const now = await captureTree(src)
      const isOld = same(oldTree, now)
      const isNew = diffTrees(snapTree, now, {ignoreRootMtime: true}).length === 0
      expect(isOld || isNew, `after kill at ${delay} ms (exit ${r.code}, ${r.signal})`).toBe(true)
      if (isOld) sawOld++
      else sawNew++
      if (isNew) {
        // Put the old tree back for the next round.
        await fsp.rm(src, {recursive: true})
        await fsp.mkdir(src)
        await buildTree(src, {'other.txt': 'the tree that was there before the restore'})
      }
    }
    expect(sawOld).toBeGreaterThan(0)
    await ckpt(['restore', 'latest', '--repo', repo, '--no-safety-snapshot'])
    expect(diffTrees(snapTree, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect((await fsp.readdir(work)).filter((n) => n.startsWith('.killme.ckpt-restore'))).toEqual([])
    expect(sawOld + sawNew).toBe(8)
  }, 120_000)
})

describe('an in-place restore keeps the repository and what the snapshot excluded', () => {
  /** The newcomer's sequence: a v1 snapshot, a change to v2, restore latest, then undo with the pre-restore snapshot. */
  async function roundTrip(cwd: string, s: string, repoArgs: string[]): Promise<void> {
    await fsp.writeFile(path.join(s, 'a'), 'v1\n')
    await ckpt(['snapshot', '.', ...repoArgs], {cwd})
    await fsp.writeFile(path.join(s, 'a'), 'v2\n')
    const restored = await ckptJson<{safetySnapshot: string}>(['restore', 'latest', ...repoArgs], {cwd})
    expect(await fsp.readFile(path.join(s, 'a'), 'utf8')).toBe('v1\n')
    const list = await ckptJson<{id: string; tags: string[]}[]>(['snapshots', ...repoArgs], {cwd})
    expect(list.map((x) => x.tags)).toEqual([[], ['pre-restore']])
    expect(list[1]!.id).toBe(restored.safetySnapshot)
    await ckpt(['restore', restored.safetySnapshot.slice(0, 12), ...repoArgs], {cwd})
    expect(await fsp.readFile(path.join(s, 'a'), 'utf8')).toBe('v2\n')
    expect((await ckptJson<unknown[]>(['snapshots', ...repoArgs], {cwd})).length).toBe(3)
    expect((await fsp.readdir(path.dirname(s))).filter((n) => n.includes('ckpt-restore'))).toEqual([])
  }

  it('the default .ckpt in the directory restored (cd s && ckpt snapshot . && ckpt restore latest)', async () => {
    const s = path.join(work, 'newcomer')
    await fsp.mkdir(s)
    await ckpt(['init'], {cwd: s})
    await roundTrip(s, s, [])
    // The repository was never part of a snapshot: the pre-restore snapshot did not take it in either.
    const r = await ckptJson<{id: string}[]>(['snapshots'], {cwd: s})
    await ckpt(['restore', r[0]!.id, '--target', path.join(work, 'newcomer-copy')], {cwd: s})
    expect(await fsp.readdir(path.join(work, 'newcomer-copy'))).toEqual(['a'])
  })

  it('a repository given with -r s/.repo', async () => {
    const s = path.join(work, 'newcomer-r')
    await fsp.mkdir(s)
    await ckpt(['init', '-r', 'newcomer-r/.repo'], {cwd: work})
    await roundTrip(work, s, ['-r', 'newcomer-r/.repo'])
  })

  it('paths matching the snapshot\'s --exclude patterns survive, as they are now', async () => {
    const s = path.join(work, 'excl')
    await fsp.mkdir(s)
    await buildTree(s, {'a.txt': 'v1', 'x.tmp': 'tmp 1', cache: {dir: {'blob': 'cached 1'}}, sub: {dir: {'y.tmp': 'tmp y 1', 'b': 'b1'}}})
    const repo = ['-r', path.join(work, 'repo-excl')]
    await ckpt(['init', ...repo])
    await ckpt(['snapshot', s, '--exclude', '*.tmp', '--exclude', 'cache/**', ...repo])
    const subMtime = (await fsp.stat(path.join(s, 'sub'), {bigint: true})).mtimeNs
    await fsp.writeFile(path.join(s, 'a.txt'), 'v2')
    await fsp.writeFile(path.join(s, 'x.tmp'), 'tmp 2')
    await fsp.writeFile(path.join(s, 'cache', 'blob'), 'cached 2')
    await fsp.writeFile(path.join(s, 'sub', 'y.tmp'), 'tmp y 2')
    await fsp.rm(path.join(s, 'sub', 'b'))
    // A directory the snapshot does not have, holding only an excluded file.
    await fsp.mkdir(path.join(s, 'new'), {mode: 0o750})
    await fsp.writeFile(path.join(s, 'new', 'z.tmp'), 'z')
    await ckpt(['restore', 'latest', '--no-safety-snapshot', ...repo])
    expect(await fsp.readFile(path.join(s, 'a.txt'), 'utf8')).toBe('v1')
    expect(await fsp.readFile(path.join(s, 'sub', 'b'), 'utf8')).toBe('b1')
    expect(await fsp.readFile(path.join(s, 'x.tmp'), 'utf8')).toBe('tmp 2')
    expect(await fsp.readFile(path.join(s, 'cache', 'blob'), 'utf8')).toBe('cached 2')
    expect(await fsp.readFile(path.join(s, 'sub', 'y.tmp'), 'utf8')).toBe('tmp y 2')
    expect(await fsp.readFile(path.join(s, 'new', 'z.tmp'), 'utf8')).toBe('z')
    expect((await fsp.stat(path.join(s, 'new'))).mode & 0o777).toBe(0o750)
    // The restored directory keeps the snapshot's mtime although an entry was moved into it.
    expect((await fsp.stat(path.join(s, 'sub'), {bigint: true})).mtimeNs).toBe(subMtime)
    expect((await fsp.readdir(work)).filter((n) => n.startsWith('.excl.'))).toEqual([])
  })

  it('refuses (exit 5) before changing anything when a path to keep is on another filesystem', async () => {
    const s = path.join(work, 'excl-mnt')
    await fsp.mkdir(path.join(s, 'scratch'), {recursive: true})
    await fsp.writeFile(path.join(s, 'a'), 'v1')
    const repo = ['-r', path.join(work, 'repo-excl-mnt')]
    await ckpt(['init', ...repo])
    await ckpt(['snapshot', s, '--exclude', 'scratch', ...repo])
    await fsp.writeFile(path.join(s, 'a'), 'v2')
    const {execFileSync} = await import('node:child_process')
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path.join(s, 'scratch')])
    try {
      await fsp.writeFile(path.join(s, 'scratch', 'keep'), 'on tmpfs')
      const r = await runCli(['restore', 'latest', ...repo])
      expect(r.code, r.stderr).toBe(5)
      expect(r.stderr).toMatch(/^ckpt: cannot restore .*excl-mnt in place: scratch must be kept .* another filesystem/)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(await fsp.readFile(path.join(s, 'a'), 'utf8')).toBe('v2')
      expect(await fsp.readFile(path.join(s, 'scratch', 'keep'), 'utf8')).toBe('on tmpfs')
      // Refused before the pre-restore snapshot: nothing new in the repository.
      expect(await ckptJson<unknown[]>(['snapshots', ...repo])).toHaveLength(1)
    } finally {
      execFileSync('umount', [path.join(s, 'scratch')])
    }
  })

  it('a restore killed between carrying the repository and the swap: the next command puts the repository back', async () => {
    const s = path.join(work, 'crash-carry')
    await fsp.mkdir(s)
    await ckpt(['init'], {cwd: s})
    await fsp.writeFile(path.join(s, 'a'), 'v1\n')
    await ckpt(['snapshot', '.'], {cwd: s})
    await fsp.writeFile(path.join(s, 'a'), 'v2\n')
    // The library's restore, killed by SIGKILL at its last step before the swap.
    const script = `
      const {openLocalRepository} = await import(${JSON.stringify(path.join(ROOT, 'dist/repo/open.js'))})
      const {loadCatalog} = await import(${JSON.stringify(path.join(ROOT, 'dist/snapshot/catalog.js'))})
      const {restoreSnapshot} = await import(${JSON.stringify(path.join(ROOT, 'dist/restore/restorer.js'))})
      const repo = await openLocalRepository(${JSON.stringify(path.join(s, '.ckpt'))})
      const {snapshots} = await loadCatalog(repo)
      await restoreSnapshot(repo, snapshots[0], {keep: [${JSON.stringify(path.join(s, '.ckpt'))}], beforeSwap: () => process.kill(process.pid, 'SIGKILL')})
    `
    const {spawnSync} = await import('node:child_process')
    const killed = spawnSync(process.execPath, ['--input-type=module', '-e', script], {encoding: 'utf8'})
    expect(killed.signal, killed.stderr).toBe('SIGKILL')
    // As the kill left it: the repository sits in the temp tree, beside its journal.
    await expect(fsp.access(path.join(s, '.ckpt'))).rejects.toThrow()
    const left = (await fsp.readdir(work)).filter((n) => n.startsWith('.crash-carry.ckpt-restore-'))
    expect(left.filter((n) => n.endsWith('.carry'))).toHaveLength(1)
    // The next command finds it again; the directory is wholly old (the swap never happened).
    const list = await ckptJson<unknown[]>(['snapshots'], {cwd: s})
    expect(list).toHaveLength(1)
    expect(await fsp.readFile(path.join(s, 'a'), 'utf8')).toBe('v2\n')
    expect((await fsp.readdir(work)).filter((n) => n.startsWith('.crash-carry.ckpt-restore-'))).toEqual([])
    await ckpt(['restore', 'latest'], {cwd: s})
    expect(await fsp.readFile(path.join(s, 'a'), 'utf8')).toBe('v1\n')
  })
})

/** Write a hand-made (hostile) snapshot whose root tree has `nodes`. */
async function hostileSnapshot(repoDir: string, nodes: TreeNode[], extraTrees: Buffer[] = [], declaredBytes = nodes.reduce((n, x) => n + x.size, 0)): Promise<string> {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  const writer = new BlobWriter(repo)
  for (const t of extraTrees) await writer.add(BlobType.tree, blake3(t), t)
  const root = encodeTree(nodes)
  await writer.add(BlobType.tree, blake3(root), root)
  await writer.flush()
  const manifest: Manifest = {
    version: 1, time: new Date().toISOString(), startTimeNs: '0', parent: null, host: 'evil', source: '/nonexistent/evil', tags: [],
    tree: blake3(root).toString('hex'), root: {mode: 0o755, uid: 0, gid: 0, mtimeNs: '0'},
    summary: {files: 0, dirs: 0, symlinks: 0, bytes: declaredBytes, newBytes: 0, storedBytes: 0, newBlobs: 0, bytesRead: 0, filesRead: 0, durationMs: 0, warnings: 0, incomplete: 0},
    warnings: [], program: 'test',
  }
  return repo.writeSnapshotBytes(encodeManifest(manifest))
}

const node = (name: string | Buffer, type: TreeNode['type'], extra: Partial<TreeNode> = {}): TreeNode => ({
  name: Buffer.isBuffer(name) ? name : Buffer.from(name), type, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, ino: 0n, size: 0, ...extra,
})

describe('a hostile repository cannot make restore write outside the target', () => {
  const cases: [string, () => TreeNode[]][] = [
    ['a ".." entry', () => [node('..', 'file', {chunks: []})]],
    ['a name with "/"', () => [node('../../escaped', 'file', {chunks: []})]],
    ['an absolute name', () => [node('/tmp/escaped', 'file', {chunks: []})]],
    ['a NUL in a name', () => [node('a\0b', 'file', {chunks: []})]],
    ['an empty name', () => [node('', 'file', {chunks: []})]],
    ['a "." entry', () => [node('.', 'dir', {subtree: blake3(encodeTree([]))})]],
  ]
  for (const [what, nodes] of cases) {
    it(`refuses ${what} (exit 12) and writes nothing`, async () => {
      const repo = path.join(work, `repo-evil-${cases.findIndex((c) => c[0] === what)}`)
      await ckpt(['init', '--repo', repo])
      const id = await hostileSnapshot(repo, nodes(), [encodeTree([])])
      const target = path.join(work, `evil-target-${cases.findIndex((c) => c[0] === what)}`)
      const r = await runCli(['restore', id, '--target', target, '--repo', repo])
      expect(r.code).toBe(12)
      expect(r.stderr).toMatch(/^ckpt: tree [0-9a-f]+: unsafe node name/)
      await expect(fsp.access(target)).rejects.toThrow()
      await expect(fsp.access(path.join(work, 'escaped'))).rejects.toThrow()
    })
  }

  it('refuses a symlink and a directory of the same name (the classic write-through-symlink trick)', async () => {
    const repo = path.join(work, 'repo-evil-dup')
    await ckpt(['init', '--repo', repo])
    const outside = path.join(work, 'outside-dup')
    await fsp.mkdir(outside)
    const inner = encodeTree([node('pwned', 'file', {chunks: []})])
    // encodeTree sorts; the duplicate survives encoding and must be caught on decode.
    const id = await hostileSnapshot(repo, [node('a', 'symlink', {target: Buffer.from(outside)}), node('a', 'dir', {subtree: blake3(inner)})], [inner])
    const r = await runCli(['restore', id, '--target', path.join(work, 'dup-target'), '--repo', repo])
    expect(r.code).toBe(12)
    expect(await fsp.readdir(outside)).toEqual([])
  })

  it('restores symlinks as links and never follows them', async () => {
    const repo = path.join(work, 'repo-links')
    await ckpt(['init', '--repo', repo])
    const outside = path.join(work, 'outside-links')
    await fsp.mkdir(outside)
    const id = await hostileSnapshot(repo, [node('escape', 'symlink', {target: Buffer.from(outside)})])
    const target = path.join(work, 'links-target')
    await ckpt(['restore', id, '--target', target, '--repo', repo])
    expect(await fsp.readlink(path.join(target, 'escape'))).toBe(outside)
    expect(await fsp.readdir(outside)).toEqual([])
  })
})

describe('a hostile repository cannot make restore misuse memory or owners', () => {
  it('refuses a chunk larger than the repository\'s largest chunk before reading it (exit 12, naming the blob)', async () => {
    const repo = path.join(work, 'repo-evil-bigchunk')
    await ckpt(['init', '--repo', repo])
    // 1 MiB in one chunk: twice the default maxSize (512 KiB), as a hostile writer could store it.
    const big = Buffer.alloc(1024 * 1024, 7)
    const r0 = await openLocalRepository(repo)
    await r0.loadIndex()
    const w = new BlobWriter(r0)
    await w.add(BlobType.data, blake3(big), big)
    await w.flush()
    const id = await hostileSnapshot(repo, [node('big', 'file', {size: big.length, chunks: [blake3(big)]})])
    const target = path.join(work, 'bigchunk-target')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(12)
    expect(r.stderr).toContain(`blob ${blake3(big).toString('hex')}`)
    expect(r.stderr).toMatch(/largest chunk \(524288 bytes\)/)
    await expect(fsp.access(target)).rejects.toThrow()
  })

  it('refuses a uid beyond 2^32-2 instead of restoring it as root (exit 12)', async () => {
    const repo = path.join(work, 'repo-evil-uid')
    await ckpt(['init', '--repo', repo])
    const id = await hostileSnapshot(repo, [node('owned', 'file', {chunks: [], uid: 2 ** 40})])
    const target = path.join(work, 'uid-target')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(12)
    expect(r.stderr).toMatch(/^ckpt: tree [0-9a-f]+: node owned has a bad owner/)
    await expect(fsp.access(target)).rejects.toThrow()
  })
})

describe('corruption is detected on restore', () => {
  it('a flipped byte in a chunk stops the restore (exit 12) and leaves the source untouched', async () => {
    const src = path.join(work, 'corrupt')
    await fsp.mkdir(src)
    await buildTree(src, {'data.bin': {file: {random: 2 * 1024 * 1024, seed: 42}}, 'small.txt': 'small'})
    const repo = path.join(work, 'repo-corrupt')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    const snapTree = await captureTree(src)
    // Damage one data chunk of data.bin in its pack.
    const r0 = await openLocalRepository(repo)
    await r0.loadIndex()
    let victim: {pack: string; offset: number} | undefined
    r0.index.forEach((id) => {
      const loc = r0.lookup(id)!
      if (!victim && loc.type === BlobType.data && loc.storedLength > 100_000) victim = {pack: loc.pack, offset: loc.offset + 1000}
    })
    expect(victim).toBeDefined()
    const packFile = path.join(repo, 'data', victim!.pack.slice(0, 2), victim!.pack)
    await fsp.chmod(packFile, 0o644)
    const bytes = await fsp.readFile(packFile)
    bytes[victim!.offset] = bytes[victim!.offset]! ^ 0x40
    await fsp.writeFile(packFile, bytes)

    // Into a new target: fails, and the target is not left half-written.
    const target = path.join(work, 'corrupt-out')
    const r = await runCli(['restore', 'latest', '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(12)
    expect(r.stderr, r.stderr).toMatch(/fails its BLAKE3 check|corrupt/)
    await expect(fsp.access(target)).rejects.toThrow()
    // In place: fails, and the source is exactly as it was.
    await fsp.writeFile(path.join(src, 'small.txt'), 'changed since')
    // Other bytes in data.bin: a delta restore would otherwise take its chunks from the old file, never reading the damaged one.
    await fsp.writeFile(path.join(src, 'data.bin'), Buffer.alloc(2 * 1024 * 1024, 7))
    const before = await captureTree(src)
    const r2 = await runCli(['restore', 'latest', '--repo', repo, '--no-safety-snapshot'])
    expect(r2.code).toBe(12)
    expect(diffTrees(before, await captureTree(src))).toEqual([])
    expect(diffTrees(snapTree, before).length).toBeGreaterThan(0)
    expect((await fsp.readdir(work)).filter((n) => n.includes('ckpt-restore'))).toEqual([])
  })
})

describe('a full disk', () => {
  async function withTmpfs<T>(mnt: string, size: string, fn: () => Promise<T>): Promise<T> {
    await fsp.mkdir(mnt)
    const {execFileSync} = await import('node:child_process')
    execFileSync('mount', ['-t', 'tmpfs', '-o', size, 'tmpfs', mnt])
    try {
      return await fn()
    } finally {
      execFileSync('umount', [mnt])
    }
  }

  it('a target without room for the snapshot is refused (exit 7) naming the target and both sizes, before anything is written', async () => {
    const src = path.join(work, 'full-src')
    await fsp.mkdir(src)
    await buildTree(src, {'big.bin': {file: {random: 5 * 1024 * 1024, seed: 31}}, 'small.txt': 'fits'})
    const repo = ['-r', path.join(work, 'full-repo')]
    await ckpt(['init', ...repo])
    await ckpt(['snapshot', src, ...repo])
    // A 2 MiB filesystem of its own, so the disk that fills is the target's and nothing else's.
    const mnt = path.join(work, 'full-mnt')
    await withTmpfs(mnt, 'size=2m', async () => {
      const r = await runCli(['restore', 'latest', '--target', path.join(mnt, 'out'), ...repo])
      expect(r.code).toBe(7)
      expect(r.stderr).toMatch(/^ckpt: not enough space to restore to .*full-mnt\/out: the snapshot needs 6\.0 MiB \(\d+ bytes\), its filesystem has 2\.0 MiB \(2097152 bytes\) free$/m)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(await fsp.readdir(mnt)).toEqual([])
    })
  })

  it('a disk that fills anyway (many small files take whole blocks) stops the restore with exit 7 and leaves nothing', async () => {
    const src = path.join(work, 'full-src-small')
    await fsp.mkdir(src)
    await buildTree(src, Object.fromEntries(Array.from({length: 800}, (_, i) => [`f${i}`, `file ${i}`])))
    const repo = ['-r', path.join(work, 'full-repo-small')]
    await ckpt(['init', ...repo])
    await ckpt(['snapshot', src, ...repo])
    const mnt = path.join(work, 'full-mnt-small')
    await withTmpfs(mnt, 'size=2m', async () => {
      const r = await runCli(['restore', 'latest', '--target', path.join(mnt, 'out'), ...repo])
      expect(r.code, r.stderr).toBe(7)
      expect(r.stderr).toMatch(/no space left on device while writing the restored tree beside .*full-mnt-small\/out/)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(await fsp.readdir(mnt)).toEqual([])
    })
  })

  it('a manifest that declares more than the target has is refused before anything is written', async () => {
    const repo = path.join(work, 'repo-evil-huge')
    await ckpt(['init', '--repo', repo])
    const id = await hostileSnapshot(repo, [], [], 2 ** 50)
    const target = path.join(work, 'huge-target')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(7)
    expect(r.stderr).toMatch(/^ckpt: not enough space to restore to .*huge-target: the snapshot needs 1073741825\.0 MiB/)
    await expect(fsp.access(target)).rejects.toThrow()
  })
})

describe('a hostile repository cannot make restore write more than it declares, or too deep', () => {
  it('a subtree referenced many times stops once the files would exceed the manifest\'s bytes (exit 12), leaving nothing', async () => {
    const repo = path.join(work, 'repo-evil-bomb')
    await ckpt(['init', '--repo', repo])
    const content = Buffer.alloc(64 * 1024, 1)
    const r0 = await openLocalRepository(repo)
    await r0.loadIndex()
    const w = new BlobWriter(r0)
    await w.add(BlobType.data, blake3(content), content)
    await w.flush()
    const inner = encodeTree([node('f', 'file', {size: content.length, chunks: [blake3(content)]})])
    const dirs = Array.from({length: 512}, (_, i) => node(`d${String(i).padStart(3, '0')}`, 'dir', {subtree: blake3(inner)}))
    // 512 x 64 KiB = 32 MiB of files; the manifest says 64 KiB.
    const id = await hostileSnapshot(repo, dirs, [inner], content.length)
    const target = path.join(work, 'bomb-target')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(12)
    expect(r.stderr).toMatch(/^ckpt: the snapshot's files hold more than the 65536 bytes its manifest declares \(at d001\/f\)/)
    await expect(fsp.access(target)).rejects.toThrow()
    expect((await fsp.readdir(work)).filter((n) => n.startsWith('.bomb-target'))).toEqual([])
  })

  it('nesting past PATH_MAX (40 levels of 200-byte names: 8 KiB) is restored whole, through directory descriptors', async () => {
    // Long names pass PATH_MAX in 20 levels, and the temp tree's name is longer than the target's.
    const repo = path.join(work, 'repo-evil-deep')
    await ckpt(['init', '--repo', repo])
    const name = 'd'.repeat(200)
    const trees: Buffer[] = []
    let tree = encodeTree([])
    trees.push(tree)
    for (let i = 0; i < 40; i++) {
      tree = encodeTree([node(name, 'dir', {subtree: blake3(tree)})])
      trees.push(tree)
    }
    const top = trees.pop()!
    const id = await hostileSnapshot(repo, decodeTree(top, 'top'), trees)
    const target = path.join(work, 'deep-target')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(0)
    // GNU find walks past PATH_MAX.
    const found = spawnSync('find', [target, '-mindepth', '40', '-type', 'd'], {encoding: 'utf8'})
    expect(found.stdout.trim().split('\n')).toHaveLength(1)
    expect(found.stdout.trim().length).toBeGreaterThan(8000)
    removeTree(target) // fs.rm fails past PATH_MAX (ENAMETOOLONG)
    expect((await fsp.readdir(work)).filter((n) => n.startsWith('.deep-target'))).toEqual([])
  })
})
