// `ckpt restore`: build the snapshot's tree in a temp directory beside the destination (same
// filesystem), make it durable, then swap it in with one atomic exchange, so the destination
// path always holds the old tree or the new one, whole. Any failure (a corrupt chunk, a full
// disk) removes the temp tree and leaves the destination as it was.
//
// Safety against a hostile repository: tree names are checked by decodeTree (no "", ".", "..",
// "/" or NUL, no duplicates), every entry is created fresh with O_EXCL / mkdir / symlink inside
// directories this restore created, and files are opened with O_NOFOLLOW, so nothing can be
// written through a symlink or outside the destination.
import {randomBytes} from 'node:crypto'
import {closeSync, constants as fsc, fchmodSync, fchownSync, openSync, promises as fsp, writeSync} from 'node:fs'
import path from 'node:path'

import {mapLimit, OneAtATime} from '../core/concurrency.js'
import {Compression, decodeBlob} from '../core/codec.js'
import {BadPathError, errnoCode, IntegrityError, ObjectMissingError, UsageError} from '../core/errors.js'
import {exchangePaths, setTimesNs, syncFilesystem} from '../core/fsmeta.js'
import {blake3} from '../core/hash.js'
import {HashPool} from '../core/hashpool.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import {type BlobLocation, type Repository} from '../repo/repository.js'
import {fsyncDir} from '../store/local.js'
import {withLock} from '../store/lock.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {ReadPool} from '../snapshot/readpool.js'
import {childPath, decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'

/** Runs of adjacent chunks fetched ahead of the one being written. */
const RUNS_AHEAD = 6
/** Largest ranged read of adjacent chunks. */
const MAX_RUN = 4 * 1024 * 1024
/** Files of one directory written at once (files from LARGE_FILE up go one at a time). */
const FILE_CONCURRENCY = 8
const LARGE_FILE = 1024 * 1024

export interface RestoreOptions {
  /** Restore here (must be missing or an empty directory); default: the snapshot's source, replaced atomically. */
  target?: string
  /** Only these paths (relative to the snapshot root) and what is below them. */
  includes?: readonly string[]
  /** Keep the replaced tree beside the destination instead of deleting it. */
  keepOld?: boolean
  /** Called before a non-empty destination is replaced (the CLI takes the pre-restore snapshot here). */
  beforeReplace?: (dest: string) => Promise<void>
  lockRetryMs?: number
  onProgress?: (p: RestoreProgress) => void
}

export interface RestoreProgress {
  files: number
  bytes: number
  path: string
}

export interface RestoreResult {
  destination: string
  files: number
  dirs: number
  symlinks: number
  bytes: number
  /** Where the replaced tree was kept (with keepOld). */
  oldTree?: string
  replaced: boolean
}

export async function restoreSnapshot(repo: Repository, snap: SnapshotRecord, opts: RestoreOptions): Promise<RestoreResult> {
  if (opts.includes?.length && !opts.target) {
    throw new UsageError('--include restores part of a snapshot and needs --target: replacing the source with part of it would delete the rest')
  }
  const dest = path.resolve(opts.target ?? snap.manifest.source)
  const state = await destinationState(dest, Boolean(opts.target))
  return withLock(repo.backend, {exclusive: false, command: 'restore', retryMs: opts.lockRetryMs ?? 0}, async () => {
    // The snapshot was chosen before the lock was ours: a prune may have forgotten it since.
    // Reading its manifest again under the lock turns that into "not found", not missing data.
    await repo.readSnapshotBytes(snap.id)
    await repo.loadIndex()
    if (state === 'non-empty') await opts.beforeReplace?.(dest)
    const parent = path.dirname(dest)
    await fsp.mkdir(parent, {recursive: true})
    await removeAbandonedTemps(parent, path.basename(dest))
    const temp = path.join(parent, `${tempPrefix(path.basename(dest))}${process.pid}-${randomBytes(4).toString('hex')}`)
    await fsp.mkdir(temp, {mode: 0o700})
    const writer = new TreeWriter(repo, opts)
    try {
      const includes = (opts.includes ?? []).map(splitInclude)
      await writer.restoreTree(Buffer.from(snap.manifest.tree, 'hex'), Buffer.from(temp), '', includes.length ? includes : undefined)
      const root = snap.manifest.root
      await writer.applyMeta(Buffer.from(temp), {type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs)})
      // Durable before it is swapped in: one syncfs, or (without the native addon) fsync of every entry.
      if (!syncFilesystem(temp)) await fsyncTree(Buffer.from(temp))
    } catch (err) {
      await fsp.rm(temp, {recursive: true, force: true})
      throw err
    } finally {
      await writer.close()
    }
    const result: RestoreResult = {destination: dest, files: writer.files, dirs: writer.dirs, symlinks: writer.symlinks, bytes: writer.bytes, replaced: state === 'non-empty'}
    if (state === 'non-empty') {
      // temp and dest trade places: dest now holds the new tree, temp the old one.
      if (!exchangePaths(temp, dest)) {
        const aside = `${temp}-old`
        await fsp.rename(dest, aside)
        await fsp.rename(temp, dest)
        await fsp.rename(aside, temp)
      }
      await fsyncDir(parent)
      if (opts.keepOld) {
        const kept = path.join(parent, `${path.basename(dest)}.ckpt-old-${new Date().toISOString().replace(/[:.]/g, '-')}`)
        await fsp.rename(temp, kept)
        result.oldTree = kept
      } else {
        await fsp.rm(temp, {recursive: true, force: true})
      }
    } else {
      // Missing or empty: rename replaces an empty directory atomically.
      await fsp.rename(temp, dest)
    }
    await fsyncDir(parent)
    return result
  })
}

async function fsyncTree(dir: Buffer): Promise<void> {
  for (const entry of await fsp.readdir(dir, {withFileTypes: true, encoding: 'buffer'})) {
    const abs = childPath(dir, entry.name)
    if (entry.isDirectory()) {
      await fsyncTree(abs)
    } else if (entry.isFile()) {
      const fh = await fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW)
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
  }
  await fsyncDir(dir)
}

function tempPrefix(base: string): string {
  return `.${base}.ckpt-restore-`
}

/** Temp trees of restores whose process is gone (killed midway): remove them. */
async function removeAbandonedTemps(parent: string, base: string): Promise<void> {
  const prefix = tempPrefix(base)
  for (const name of await fsp.readdir(parent)) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length).split('-')[0])
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue
    try {
      process.kill(pid, 0)
      continue // still running
    } catch (err) {
      if (errnoCode(err) === 'EPERM') continue
    }
    await fsp.rm(path.join(parent, name), {recursive: true, force: true})
  }
}

async function destinationState(dest: string, explicitTarget: boolean): Promise<'missing' | 'empty' | 'non-empty'> {
  let st
  try {
    st = await fsp.lstat(dest)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing'
    throw new BadPathError(`cannot use ${dest}: ${errnoCode(err) ?? (err as Error).message}`)
  }
  if (!st.isDirectory()) throw new BadPathError(`${dest} exists and is not a directory`)
  const entries = await fsp.readdir(dest)
  if (entries.length === 0) return 'empty'
  if (explicitTarget) throw new BadPathError(`target ${dest} is not empty (restore into a new or empty directory, or omit --target to replace the source)`)
  return 'non-empty'
}

function splitInclude(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.')
  if (parts.length === 0 || parts.includes('..')) throw new UsageError(`--include ${JSON.stringify(p)} must be a path inside the snapshot`)
  return parts
}

type Meta = Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'>

interface Run {
  pack: string
  offset: number
  /** Stored bytes (one ranged read). */
  length: number
  /** Plain bytes once inflated. */
  raw: number
  blobs: {id: Buffer; loc: BlobLocation}[]
}

interface Fetched {
  /** The run's plain bytes, checked. */
  data: Buffer
  release: () => void
}

class TreeWriter {
  private pool: HashPool | undefined
  private readonly largeFiles = new OneAtATime()
  /** One run being written and RUNS_AHEAD being fetched, for the one large file at a time. */
  private readonly runBuffers = new ReadPool(RUNS_AHEAD + 1, MAX_RUN)
  files = 0
  dirs = 0
  symlinks = 0
  bytes = 0
  private readonly owners = process.getuid?.() === 0

  constructor(private readonly repo: Repository, private readonly opts: RestoreOptions) {}

  /**
   * Restore the children of tree `id` into directory `dir`. `includes`: remaining path parts of
   * each --include that passes through here; undefined means everything below.
   */
  async restoreTree(id: Buffer, dir: Buffer, rel: string, includes: string[][] | undefined): Promise<void> {
    const nodes = decodeTree(await this.repo.readBlob(id, BlobType.tree), toHex(id))
    const leaves: {node: TreeNode; abs: Buffer; rel: string}[] = []
    const dirs: {node: TreeNode; abs: Buffer; rel: string; below: string[][] | undefined}[] = []
    for (const node of nodes) {
      const shown = displayName(node.name)
      let below: string[][] | undefined
      if (includes) {
        const matching = includes.filter((parts) => parts[0] === shown)
        if (matching.length === 0) continue
        below = matching.some((parts) => parts.length === 1) ? undefined : matching.map((parts) => parts.slice(1))
      }
      const entry = {node, abs: childPath(dir, node.name), rel: rel ? `${rel}/${shown}` : shown}
      if (node.type === 'dir') dirs.push({...entry, below})
      else if (!below) leaves.push(entry) // an include naming something below a non-directory restores nothing
    }
    // Files and symlinks several at a time (small files cost round trips), directories one by one.
    await mapLimit(leaves, FILE_CONCURRENCY, async ({node, abs, rel: childRel}) => {
      if (node.type === 'symlink') {
        await fsp.symlink(node.target!, abs)
        await this.applyMeta(abs, node)
        this.symlinks++
      } else {
        if (node.size >= LARGE_FILE) {
          // One large file at a time: its read-ahead is sized for one.
          await this.largeFiles.run(() => this.writeFile(abs, node))
          await this.applyMeta(abs, node)
        } else {
          await this.writeSmallFile(abs, node)
        }
        this.files++
        this.bytes += node.size
      }
      this.opts.onProgress?.({files: this.files, bytes: this.bytes, path: childRel})
    })
    for (const {node, abs, rel: childRel, below} of dirs) {
      await fsp.mkdir(abs, {mode: 0o700})
      await this.restoreTree(node.subtree!, abs, childRel, below)
      await this.applyMeta(abs, node)
      this.dirs++
    }
  }

  /**
   * A small file: its data is fetched and checked first, then created, written, owned, moded and
   * timed with synchronous calls. Each would otherwise be a thread-pool round trip, which costs
   * more than the call itself when thousands of small files are restored.
   */
  private async writeSmallFile(abs: Buffer, node: TreeNode): Promise<void> {
    const fetched = await Promise.all(this.planRuns(node).map((run) => this.fetchRun(run, false)))
    const total = fetched.reduce((n, f) => n + f.data.length, 0)
    if (total !== node.size) throw new IntegrityError(`file ${displayName(node.name)}: chunks add up to ${total} bytes, the tree says ${node.size}`)
    const fd = openSync(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    try {
      for (const {data} of fetched) {
        for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off)
      }
      if (this.owners) fchownSync(fd, node.uid, node.gid)
      fchmodSync(fd, node.mode)
    } finally {
      closeSync(fd)
    }
    setTimesNs(abs, node.mtimeNs, node.mtimeNs)
  }

  /**
   * Write a file from its chunks. Chunks stored next to each other in a pack are fetched with one
   * ranged read (a run); each run's chunks are checked against their ids on the hash pool while
   * the previous run is written, so no unverified byte reaches the file.
   */
  private async writeFile(abs: Buffer, node: TreeNode): Promise<void> {
    const runs = this.planRuns(node)
    const fh = await fsp.open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    const pending: Promise<Fetched>[] = []
    try {
      let written = 0
      for (let i = 0; i < runs.length; i++) {
        while (pending.length < RUNS_AHEAD && i + pending.length < runs.length) {
          const fetch = this.fetchRun(runs[i + pending.length]!, node.size >= LARGE_FILE)
          // It may fail while an earlier run is being written: handled here, reported when its turn comes.
          fetch.catch(() => undefined)
          pending.push(fetch)
        }
        const fetched = await pending.shift()!
        try {
          // A run's chunks lie back to back in its buffer: one write for the whole run.
          const data = fetched.data
          let off = 0
          while (off < data.length) {
            const {bytesWritten} = await fh.write(data, off, data.length - off, null)
            off += bytesWritten
          }
          written += data.length
        } finally {
          fetched.release()
        }
      }
      if (written !== node.size) {
        throw new IntegrityError(`file ${displayName(node.name)}: chunks add up to ${written} bytes, the tree says ${node.size}`)
      }
    } catch (err) {
      // Reads already started must not surface later as unhandled rejections, nor keep buffers.
      for (const p of pending) p.then((f) => f.release(), () => undefined)
      throw err
    } finally {
      await fh.close()
    }
  }

  private planRuns(node: TreeNode): Run[] {
    const runs: Run[] = []
    let run: Run | undefined
    for (const id of node.chunks ?? []) {
      const loc = this.repo.lookup(id)
      if (!loc) throw new ObjectMissingError(`chunk ${toHex(id)} of ${displayName(node.name)} is not in the index`, {blob: toHex(id)})
      if (loc.type !== BlobType.data) throw new IntegrityError(`chunk ${toHex(id)} of ${displayName(node.name)} is not a data blob`, {blob: toHex(id)})
      const last = run?.blobs[run.blobs.length - 1]
      const adjacent = run && last && last.loc.pack === loc.pack && last.loc.offset + last.loc.storedLength === loc.offset
      if (run && adjacent && run.length + loc.storedLength <= MAX_RUN && run.raw + loc.rawLength <= MAX_RUN) {
        run.blobs.push({id, loc})
        run.length += loc.storedLength
        run.raw += loc.rawLength
      } else {
        run = {pack: loc.pack, offset: loc.offset, length: loc.storedLength, raw: loc.rawLength, blobs: [{id, loc}]}
        runs.push(run)
      }
    }
    return runs
  }

  /**
   * Read a run and check its blobs; the caller writes the views, then releases. A run of blobs
   * stored as is (the common case for large binary files) is read straight into shared memory and
   * hashed there: no copy. Compressed blobs are inflated into it.
   */
  private async fetchRun(run: Run, pooled: boolean): Promise<Fetched> {
    // Runs of large files (one at a time) use pooled buffers; a small file's run gets its own small one.
    const rb = pooled ? await this.runBuffers.acquire() : undefined
    const release = () => rb?.retire()
    try {
      // A small run is hashed here: a round trip to the pool costs more than hashing a few KiB.
      const target = rb ? rb.buf : Buffer.allocUnsafe(run.raw)
      const allRaw = run.blobs.every((b) => b.loc.compression === Compression.none)
      const stored = await this.repo.backend.get('data', run.pack, {offset: run.offset, length: run.length}, allRaw ? target : undefined)
      const views: Buffer[] = []
      let at = 0
      for (const {loc} of run.blobs) {
        const from = loc.offset - run.offset
        let plain: Buffer
        try {
          plain = await decodeBlob(stored.subarray(from, from + loc.storedLength), loc.compression, loc.rawLength)
        } catch (err) {
          throw err instanceof IntegrityError ? new IntegrityError(`blob in pack ${loc.pack} is corrupt: ${err.message}`, {pack: loc.pack}, {cause: err}) : err
        }
        if (!allRaw) plain.copy(target, at)
        views.push(target.subarray(at, at + loc.rawLength))
        at += loc.rawLength
      }
      const ids = rb ? await this.hashes().hash(views) : views.map((v) => blake3(v))
      ids.forEach((id, i) => {
        const {id: want, loc} = run.blobs[i]!
        if (!id.equals(want)) throw new IntegrityError(`blob ${toHex(want)} in pack ${loc.pack} fails its BLAKE3 check`, {blob: toHex(want), pack: loc.pack})
      })
      return {data: target.subarray(0, at), release}
    } catch (err) {
      release()
      throw err
    }
  }

  private hashes(): HashPool {
    return (this.pool ??= new HashPool())
  }

  async close(): Promise<void> {
    await this.pool?.close()
  }

  /** Owner (when root), mode, then times: chown clears setuid bits, and times must come last. */
  async applyMeta(abs: Buffer, meta: Meta): Promise<void> {
    if (this.owners) await fsp.lchown(abs, meta.uid, meta.gid)
    if (meta.type !== 'symlink') await fsp.chmod(abs, meta.mode)
    setTimesNs(abs, meta.mtimeNs, meta.mtimeNs)
  }
}
