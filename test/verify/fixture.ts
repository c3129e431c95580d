// A small real repository for the verify tests, built with the CLI: four snapshots of three
// directories, with one file shared by two of them (so one pack serves two snapshots), and
// helpers that find where an object lives and damage it.
import {execFileSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {blake3} from '../../src/core/hash.js'
import {openLocalRepository} from '../../src/repo/open.js'
import {BlobType, PACK_ENTRY_BYTES, PACK_TRAILER_BYTES} from '../../src/repo/pack.js'
import type {BlobLocation, Repository} from '../../src/repo/repository.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, resolveSnapshot} from '../../src/snapshot/catalog.js'
import {BlobWriter} from '../../src/repo/writer.js'
import {decodeManifest, encodeManifest} from '../../src/snapshot/manifest.js'
import {decodeTree, encodeTree, type TreeNode} from '../../src/snapshot/tree.js'
import {ckpt, runCli, type RunResult} from '../helpers/cli.js'
import {buildTree, type Captured, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

export interface Snap {
  id: string
  dir: string
  /** The directory as it was when snapshotted. */
  capture: Map<string, Captured>
}

export interface Fixture {
  base: string
  repo: string
  /** a: dirA; b: dirB (shares a file with a); c: dirC; a2: dirA again after one change (parent a). */
  snaps: {a: Snap; b: Snap; c: Snap; a2: Snap}
}

const scratch: string[] = []

/** A temp directory removed by removeScratch() (call it in afterAll). */
export async function scratchDir(prefix = 'ckpt-verify-'): Promise<string> {
  const dir = await tempDir(prefix)
  scratch.push(dir)
  return dir
}

export async function removeScratch(): Promise<void> {
  await Promise.all(scratch.splice(0).map((d) => fsp.rm(d, {recursive: true, force: true})))
}

async function snapshot(repo: string, dir: string): Promise<Snap> {
  const r = await ckpt(['snapshot', dir, '--repo', repo, '--quiet'])
  return {id: r.stdout.trim(), dir, capture: await captureTree(dir)}
}

export async function buildFixture(): Promise<Fixture> {
  const base = await scratchDir('ckpt-verify-')
  const repo = path.join(base, 'repo')
  await ckpt(['init', '--repo', repo, '--quiet'])
  const dirs = {a: path.join(base, 'dirA'), b: path.join(base, 'dirB'), c: path.join(base, 'dirC')}
  for (const d of Object.values(dirs)) await fsp.mkdir(d)
  const shared = {file: {random: 150_000, seed: 99}}
  await buildTree(dirs.a, {
    'a1.bin': {file: {random: 300_000, seed: 1}},
    'a2.txt': 'first version\n',
    'log.txt': Array.from({length: 4000}, (_, i) => `${1_700_000_000 + i} INFO step ${i} loss ${(1 / (i + 1)).toFixed(6)}\n`).join(''),
    sub: {dir: {'a3.bin': {file: {random: 200_000, seed: 3}}, 'note.txt': 'in a subdirectory\n'}},
    link: {symlink: 'a2.txt'},
    'shared.bin': shared,
  })
  await buildTree(dirs.b, {
    'b1.bin': {file: {random: 400_000, seed: 2}, mode: 0o600},
    nested: {dir: {deeper: {dir: {'b2.txt': 'deep\n'}}}},
    'shared.bin': shared,
  })
  await buildTree(dirs.c, {'c1.bin': {file: {random: 250_000, seed: 4}}, 'c2.txt': 'only in c\n', empty: {dir: {}}})
  const a = await snapshot(repo, dirs.a)
  const b = await snapshot(repo, dirs.b)
  const c = await snapshot(repo, dirs.c)
  await fsp.writeFile(path.join(dirs.a, 'a2.txt'), 'second version\n')
  const a2 = await snapshot(repo, dirs.a)
  return {base, repo, snaps: {a, b, c, a2}}
}

/** A private copy of the fixture's repository for one test to damage. */
export async function copyRepo(fx: Fixture): Promise<string> {
  const dir = await scratchDir('ckpt-verify-case-')
  const copy = path.join(dir, 'repo')
  execFileSync('cp', ['-a', fx.repo, copy])
  return copy
}

export function packFile(repo: string, pack: string): string {
  return path.join(repo, 'data', pack.slice(0, 2), pack)
}

export async function withRepo<T>(repo: string, fn: (r: Repository) => Promise<T>): Promise<T> {
  const r = await openLocalRepository(repo)
  await r.loadIndex()
  return fn(r)
}

/** The nodes of a snapshot's tree at `dir` ("" for the root). */
export async function treeAt(repo: Repository, snapshotId: string, dir = ''): Promise<{id: Buffer; nodes: TreeNode[]}> {
  const manifest = JSON.parse((await repo.readSnapshotBytes(snapshotId)).toString()) as {tree: string}
  let id: Buffer = Buffer.from(manifest.tree, 'hex')
  for (const part of dir.split('/').filter(Boolean)) {
    const nodes = decodeTree(await repo.readBlob(id, BlobType.tree), id.toString('hex'))
    id = nodes.find((n) => n.name.toString() === part)!.subtree!
  }
  return {id, nodes: decodeTree(await repo.readBlob(id, BlobType.tree), id.toString('hex'))}
}

/**
 * A new snapshot like `base` whose root tree is `edit` of base's, written as someone who can write
 * the repository would: correctly hashed tree, blobs and manifest. Returns its id.
 */
export async function plantSnapshot(repo: Repository, base: string, edit: (nodes: TreeNode[], writer: BlobWriter) => Promise<TreeNode[]>): Promise<string> {
  const writer = new BlobWriter(repo)
  const {nodes} = await treeAt(repo, base)
  const bytes = encodeTree(await edit(nodes, writer))
  const tree = blake3(bytes)
  await writer.add(BlobType.tree, tree, bytes)
  await writer.flush()
  const m = decodeManifest(await repo.readSnapshotBytes(base), base)
  // What the archiver would declare for this tree: the attacker keeps the manifest consistent.
  const fileBytes = async (id: Buffer): Promise<number> => {
    let total = 0
    for (const n of decodeTree(await repo.readBlob(id, BlobType.tree), id.toString('hex'))) total += n.type === 'file' ? n.size : n.type === 'dir' ? await fileBytes(n.subtree!) : 0
    return total
  }
  const summary = {...m.summary, bytes: await fileBytes(tree)}
  return repo.writeSnapshotBytes(encodeManifest({...m, summary, tree: tree.toString('hex'), time: new Date(Date.parse(m.time) + 1000).toISOString()}))
}

export interface Located extends BlobLocation {
  id: string
}

/** Where the first chunk of a file, or a directory's tree, is stored. */
export async function locate(repoPath: string, snapshotId: string, file: string, what: 'chunk' | 'tree'): Promise<Located> {
  return withRepo(repoPath, async (repo) => {
    let id: Buffer
    if (what === 'tree') {
      id = (await treeAt(repo, snapshotId, file)).id
    } else {
      const dir = path.posix.dirname(file)
      const {nodes} = await treeAt(repo, snapshotId, dir === '.' ? '' : dir)
      id = nodes.find((n) => n.name.toString() === path.posix.basename(file))!.chunks![0]!
    }
    return {id: id.toString('hex'), ...repo.lookup(id)!}
  })
}

/** Sizes of a pack's parts, from its trailer. */
export async function packLayout(file: string): Promise<{size: number; headerStart: number; trailerStart: number}> {
  const bytes = await fsp.readFile(file)
  const count = bytes.readUInt32LE(bytes.length - PACK_TRAILER_BYTES + 32)
  const trailerStart = bytes.length - PACK_TRAILER_BYTES
  return {size: bytes.length, headerStart: trailerStart - count * PACK_ENTRY_BYTES, trailerStart}
}

// Repository objects are written read-only (0444): make them writable before damaging them.
export async function flipByte(file: string, offset: number): Promise<void> {
  await fsp.chmod(file, 0o644)
  const fh = await fsp.open(file, 'r+')
  try {
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, offset)
    b[0] = b[0]! ^ 0x5a
    await fh.write(b, 0, 1, offset)
  } finally {
    await fh.close()
  }
}

export async function truncateTo(file: string, length: number): Promise<void> {
  await fsp.chmod(file, 0o644)
  await fsp.truncate(file, length)
}

/** Restore a snapshot into a new directory; returns the result and the restored tree (when it worked). */
export async function restore(repo: string, id: string): Promise<RunResult & {target: string; capture?: Map<string, Captured>}> {
  const target = path.join(await scratchDir('ckpt-verify-restore-'), 'out')
  const r = await runCli(['restore', id, '--repo', repo, '--target', target, '--quiet'])
  return {...r, target, capture: r.code === 0 ? await captureTree(target) : undefined}
}

/**
 * Restore through the library (the CLI's restore runs the same code; a process per restore
 * would make the matrix slow) and return the differences from the snapshotted tree.
 */
export async function expectRestores(repo: string, snap: Snap): Promise<string[]> {
  const target = path.join(await scratchDir('ckpt-verify-restore-'), 'out')
  try {
    const r = await openLocalRepository(repo)
    const {snapshots} = await loadCatalog(r)
    await restoreSnapshot(r, resolveSnapshot(snapshots, snap.id), {target})
  } catch (err) {
    return [`restore ${snap.id.slice(0, 8)} failed: ${(err as Error).message}`]
  }
  const diff = diffTrees(snap.capture, await captureTree(target))
  await fsp.rm(path.dirname(target), {recursive: true, force: true})
  return diff
}

export interface VerifyJson {
  ok: boolean
  exitCode: number
  readData: string
  subset?: string
  snapshots: string[]
  counts: Record<'snapshots' | 'indexFiles' | 'packs' | 'packsRead' | 'trees' | 'chunks' | 'blobsRead' | 'bytesRead' | 'bytesHashed', number>
  findings: {kind: string; severity: string; object: string; id: string; pack?: string; message: string; snapshots: string[]}[]
  errors: number
  infos: number
  packsRead: string[]
  source?: {snapshot: string; directory: string; entries: number; differences: {path: string; kind: string; message: string}[]}
}

/** Run verify --json; returns the exit code and the report. */
export async function verifyJson(args: readonly string[]): Promise<{code: number | null; report: VerifyJson; stderr: string}> {
  const r = await runCli(['verify', ...args, '--json'])
  let report: VerifyJson
  try {
    report = JSON.parse(r.stdout) as VerifyJson
  } catch {
    throw new Error(`verify ${args.join(' ')} printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
  return {code: r.code, report, stderr: r.stderr}
}
