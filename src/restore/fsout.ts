// The filesystem output of the restore reader: makes a snapshot's entries in a fresh directory
// (restore's temp tree). Small files are written a batch at a time as one thread-pool job
// (writeNewFiles: created, written, owned, moded and timed), beside the main thread; without the
// addon, with synchronous calls. Large files are written piece by piece at their offsets (holes
// of sparse files are left unwritten and the size set at the end), then flushed in the background
// (fdatasync, when a flush is free), so their data goes to disk while the rest is restored and
// the syncfs that ends the restore finds little left to write. Later names of a hard-linked inode
// are links to the first.
//
// A directory's owner, mode and times are set once everything in it is written: its mtime would
// change otherwise, and a read-only mode would refuse its children.
//
// Every entry is created fresh (O_EXCL, mkdir, symlink, link) inside a directory this restore
// created, files with O_NOFOLLOW; names come checked from decodeTree.
import {closeSync, constants as fsc, fchmodSync, fchownSync, lchownSync, chmodSync, linkSync, mkdirSync, openSync, promises as fsp, symlinkSync, writeSync, writevSync} from 'node:fs'

import {carryExisting} from './reuse.js'

import {BadPathError} from '../core/errors.js'
import {setTimesNs, writeNewFiles, type NewFile} from '../core/fsmeta.js'
import type {Repository} from '../repo/repository.js'
import type {ChunkSource, LocalFile} from './local.js'
import {childPath, type TreeNode} from '../snapshot/tree.js'
import {type LinkTarget, type Piece, type ReaderProgress, type RestoreOutput, type SmallFile, TreeReader} from './reader.js'

/** Large files written at once: writes to one file take turns in the kernel, to two need not. */
const LARGE_LANES = 2
/** Background flushes of written large files at once (each holds a thread of the pool), and the smallest file flushed. */
const FLUSHES = 2
const FLUSH_MIN = 8 * 1024 * 1024
/** Longest path the kernel takes (Linux PATH_MAX, with its NUL). */
const PATH_MAX = 4096

export type Meta = Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'>

/** A directory this restore made, and the metadata it gets once complete. */
export interface FsDir {
  abs: Buffer
  rel: string
  meta: Meta
}

export class FsOutput implements RestoreOutput<FsDir> {
  readonly ordered = false
  readonly lanes = LARGE_LANES
  private readonly owners = process.getuid?.() === 0
  private readonly flushes = new Set<Promise<void>>()
  private flushFailure: {error: unknown} | undefined

  dir(parent: FsDir, node: TreeNode, rel: string): FsDir {
    const abs = this.path(parent, node, rel)
    mkdirSync(abs, 0o700)
    return {abs, rel, meta: node}
  }

  dirDone(dir: FsDir): void {
    this.applyMeta(dir.abs, dir.meta)
  }

  symlink(parent: FsDir, node: TreeNode, rel: string): void {
    const abs = this.path(parent, node, rel)
    symlinkSync(node.target!, abs)
    this.applyMeta(abs, node)
  }

  special(_parent: FsDir, node: TreeNode, rel: string): void {
    throw new BadPathError(`cannot restore ${rel}: a ${node.type} (special files are not restored yet)`)
  }

  link(parent: FsDir, node: TreeNode, rel: string, first: LinkTarget<FsDir>): void {
    linkSync(childPath(first.dir.abs, first.node.name), this.path(parent, node, rel))
  }

  async smallFiles(batch: readonly SmallFile<FsDir>[]): Promise<void> {
    const files: NewFile[] = batch.map(({dir, node, rel, parts}) => ({path: this.path(dir, node, rel), parts, mode: node.mode, uid: node.uid, gid: node.gid, mtimeNs: node.mtimeNs}))
    // One job on the thread pool for the whole batch; without the addon, here, one call at a time.
    if (!(await writeNewFiles(files, this.owners))) for (const f of files) this.writeSmallFile(f)
  }

  async largeFile(dir: FsDir, node: TreeNode, rel: string, pieces: AsyncIterable<Piece>): Promise<void> {
    const abs = this.path(dir, node, rel)
    const fh = await fsp.open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    let flushing = false
    try {
      let end = 0
      for await (const piece of pieces) end = piece.offset + (await writeAllAt(fh, piece.parts, piece.offset))
      // A sparse file's last hole is its size past the last data.
      if (end < node.size) await fh.truncate(node.size)
      if (this.owners) fchownSync(fh.fd, node.uid, node.gid)
      fchmodSync(fh.fd, node.mode)
      setTimesNs(abs, node.mtimeNs, node.mtimeNs)
      // Never waits: with both flushes busy, or for a file too small to be worth a flush of its
      // own (each is a cache flush of the device), the final syncfs writes it.
      if (node.size >= FLUSH_MIN && this.flushes.size < FLUSHES) {
        this.flushInBackground(fh)
        flushing = true
      }
    } finally {
      if (!flushing) await fh.close()
    }
  }

  // ---- delta restore (reuse.ts) ----
  async existing(dir: FsDir, node: TreeNode, rel: string, from: LocalFile): Promise<boolean> {
    const abs = this.path(dir, node, rel)
    const made = await carryExisting(from, abs, node)
    if (made === 'copied') this.applyMeta(abs, node)
    return made !== 'changed'
  }
  // ---- end delta restore ----

  /** Wait for the background flushes; throws the first that failed. */
  async finish(): Promise<void> {
    while (this.flushes.size > 0) await Promise.all(this.flushes)
    if (this.flushFailure) throw this.flushFailure.error
  }

  private path(dir: FsDir, node: TreeNode, rel: string): Buffer {
    if (dir.abs.length + 1 + node.name.length >= PATH_MAX) throw tooLong(rel)
    return childPath(dir.abs, node.name)
  }

  /** Owner (when root), mode, then times: chown clears setuid bits, and times must come last. */
  private applyMeta(abs: Buffer, meta: Meta): void {
    if (this.owners) lchownSync(abs, meta.uid, meta.gid)
    if (meta.type !== 'symlink') chmodSync(abs, meta.mode)
    setTimesNs(abs, meta.mtimeNs, meta.mtimeNs)
  }

  /** Create, write, own, mode and time one small file, with synchronous calls (without the addon). */
  private writeSmallFile(f: NewFile): void {
    const fd = openSync(f.path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    try {
      if (f.parts.length === 1) writeAllSync(fd, f.parts[0]!)
      else if (f.parts.length > 1) writevAllSync(fd, f.parts)
      if (this.owners) fchownSync(fd, f.uid, f.gid)
      fchmodSync(fd, f.mode)
    } finally {
      closeSync(fd)
    }
    setTimesNs(f.path, f.mtimeNs, f.mtimeNs)
  }

  /** Start writing a finished file's data to disk now, beside the rest of the restore. */
  private flushInBackground(fh: fsp.FileHandle): void {
    const flush = (async () => {
      try {
        await fh.datasync()
      } finally {
        await fh.close()
      }
    })().catch((err: unknown) => {
      this.flushFailure ??= {error: err}
    })
    const tracked: Promise<void> = flush.finally(() => this.flushes.delete(tracked))
    this.flushes.add(tracked)
  }
}

export interface TreeCounts {
  files: number
  dirs: number
  symlinks: number
  specials: number
  links: number
  bytes: number
  /** Delta restore (local.ts): files carried whole, bytes taken from local files (whole files and chunks), bytes read from the repository. */
  filesReused: number
  bytesReused: number
  bytesFromRepository: number
}

/**
 * Restore tree `treeId` into the existing empty directory `root`, then give `root` the metadata
 * `rootMeta`. `includes`: path parts of each --include; undefined means everything. `maxBytes`:
 * what the snapshot declares its files hold. On failure, returns only once nothing it started is
 * still running.
 */
export async function writeTree(repo: Repository, treeId: Buffer, root: Buffer, rootMeta: Meta, includes: string[][] | undefined, opts: {onProgress?: (p: ReaderProgress) => void; maxBytes?: number; local?: ChunkSource} = {}): Promise<TreeCounts> {
  const output = new FsOutput()
  const reader = new TreeReader(repo, output, opts.onProgress, opts.maxBytes, opts.local)
  try {
    await reader.read(treeId, {abs: root, rel: '', meta: rootMeta}, includes)
  } catch (err) {
    await output.finish().catch(() => undefined) // the first failure is the one reported
    throw err
  }
  await output.finish()
  return {
    files: reader.files, dirs: reader.dirs, symlinks: reader.symlinks, specials: reader.specials, links: reader.links, bytes: reader.bytes,
    filesReused: reader.filesReused, bytesReused: reader.bytesReused + reader.bytesLocal, bytesFromRepository: reader.bytesFromRepository,
  }
}

function tooLong(rel: string): BadPathError {
  const depth = rel.split('/').length
  const shown = rel.length > 120 ? `${rel.slice(0, 60)}...${rel.slice(-60)}` : rel
  return new BadPathError(`cannot restore ${shown}: its path, ${depth} levels deep, is longer than the system allows (PATH_MAX ${PATH_MAX} bytes)`, {depth})
}

function writeAllSync(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off)
}

function writevAllSync(fd: number, parts: readonly Uint8Array[]): void {
  const total = parts.reduce((n, p) => n + p.length, 0)
  const done = writevSync(fd, parts)
  if (done < total) writeRestSync(fd, parts, done) // a short write: rare
}

function writeRestSync(fd: number, parts: readonly Uint8Array[], done: number): void {
  let skip = done
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length
      continue
    }
    writeAllSync(fd, part.subarray(skip))
    skip = 0
  }
}

/** Write `parts` back to back at `position`; returns the bytes written. */
async function writeAllAt(fh: fsp.FileHandle, parts: readonly Uint8Array[], position: number): Promise<number> {
  const total = parts.reduce((n, p) => n + p.length, 0)
  let done = 0
  while (done < total) {
    const rest = done === 0 ? parts : remainder(parts, done)
    const {bytesWritten} = rest.length === 1 ? await fh.write(rest[0]!, 0, rest[0]!.length, position + done) : await fh.writev(rest, position + done)
    if (bytesWritten === 0) throw new Error('write made no progress')
    done += bytesWritten
  }
  return total
}

function remainder(parts: readonly Uint8Array[], done: number): Uint8Array[] {
  const rest: Uint8Array[] = []
  let skip = done
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length
      continue
    }
    rest.push(skip > 0 ? part.subarray(skip) : part)
    skip = 0
  }
  return rest
}
