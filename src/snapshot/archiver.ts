// The archiver: walks a directory (lstat, deterministic byte order), chunks and hashes file
// content on the main thread while the writer compresses on the thread pool, and stores one
// tree blob per directory, bottom up. Memory is bounded: files are streamed through fresh read
// buffers, at most MAX_INFLIGHT chunks wait for compression, and only the directories on the
// current path are held.
//
// Beyond content and stat it records what the file system holds (tree version 2): hard links
// (the names of one inode are read once, the others share its chunks), the holes of sparse files
// (only the data regions SEEK_DATA finds are read), extended attributes and ACLs, inode flags,
// FIFOs and device nodes; sockets are counted and skipped. What a node takes from the parent
// snapshot's stat cache it takes whole, metadata included: any change to xattrs, flags or links
// moves ctime. Paths longer than PATH_MAX are reached through open ancestors (core/longpath.ts).
import {closeSync, constants as fsc, fstatSync, lstatSync, openSync, promises as fsp, readdirSync, readlinkSync, readSync, type BigIntStats} from 'node:fs'

import {Inflight, Limiter, mapLimit} from '../core/concurrency.js'
import {Chunker} from '../core/chunker.js'
import {BadPathError, errnoCode} from '../core/errors.js'
import {boundExtents, dataExtents, type Extent, readFlags, readFlagsFd, readXattrs, splitDev, type Unavailable, xattrKind} from '../core/fsextra.js'
import {LongPaths} from '../core/longpath.js'
import {changedBefore, RACY_WINDOW_COARSE_NS, RACY_WINDOW_NS} from '../core/racy.js'
import {nativeAddon} from '../core/native.js'
import {blake3} from '../core/hash.js'
import {HashPool} from '../core/hashpool.js'
import {type Scanned, StreamScanner} from '../core/scan.js'
import {BlobType} from '../repo/pack.js'
import {type Repository} from '../repo/repository.js'
import type {BlobWriter} from '../repo/writer.js'
import {compileExcludes, type ExcludeMatcher, type Marker, type PathSelection} from './exclude.js'
import {type ReadBuffer, ReadPool} from '../core/readpool.js'
import {MAX_LISTED_WARNINGS, type RootMeta, rootMetaOf, type SnapshotWarning, type WarningKind} from './manifest.js'
import {childPath, dataLength, displayName, encodeTree, FS_FLAG_NODUMP, FS_FLAGS_RECORDED, type TreeNode} from './tree.js'
import {TreeCache} from './treecache.js'

/** Bytes asked of the kernel per read. */
const READ_SIZE = 1024 * 1024
/** Chunks compressing at once. */
const MAX_INFLIGHT = 24
/**
 * Large files streamed at once. One file alone keeps both cores busy while it is being read; two
 * also overlap one file's start and end (open, the first read, the last chunks' writes) with the
 * other's middle: a checkpoint interval (two changed 256 MiB shards) took 0.71-0.78 s instead of
 * 0.78-1.01 s, a first snapshot no longer, and with the same four buffers no more memory.
 */
const LARGE_FILES = 2
/**
 * Pooled read buffers, shared by the large files being read. A file holds one while it waits for
 * the next (the one being scanned, whose chunks go to the writer next); buffers it is done with go
 * back once the chunks in them are written, which never waits for a read buffer. So two files
 * never deadlock on four buffers, and the spare ones keep the disk busy while writes lag.
 */
const READ_BUFFERS = 4
/** Files below this size are read whole, several at a time; larger ones stream through the read pool, LARGE_FILES at a time. */
const SMALL_FILE = 1024 * 1024
/**
 * Small files are read into slabs of this size, several files to a slab, each slab reused once
 * every chunk cut from it is written. A buffer per file was garbage that outlived the young
 * generation (its chunks wait for their writes), so it piled up until a full collection: ~20 MB
 * of peak RSS on a tree of small files.
 */
const SLAB_SIZE = SMALL_FILE
const SLABS = 2
/** Files below this size are read with synchronous calls (see readSmallFile). */
const SYNC_READ = 256 * 1024
/** Entries of one directory stat'ed or read at once. */
const DIR_CONCURRENCY = 16
/** Times a file that changes while read is read again before it is recorded as inconsistent. */
const READ_ATTEMPTS = 3
/**
 * Most data regions one sparse file records: past it the smallest holes are read as data (zeros
 * and all), so a badly fragmented file costs some reading but its tree node stays small.
 */
const SPARSE_EXTENTS = 4096

/**
 * Where the archiver reads the directory: the live filesystem, or a recording of it made while its
 * program was paused (src/live/capture.ts), whose changed files were copied aside. Calls throw as
 * the fs calls they stand for do (ENOENT and so on).
 */
export interface SourceView {
  readdir(abs: Buffer): Buffer[]
  lstat(abs: Buffer): BigIntStats
  readlink(abs: Buffer): Promise<Buffer>
  /** Where a file's bytes are read from, and (for a recording) the stat to record instead of the open file's. */
  content(abs: Buffer): {path: Buffer; stat?: BigIntStats}
  /** This file must be read even if the stat cache vouches for it (a recording's copied files). */
  mustRead?(abs: Buffer): boolean
  /** An entry's xattrs and flags as the recording read them (undefined: read them now). */
  meta?(abs: Buffer): RecordedMeta | undefined
}

/** Xattrs and inode flags read at a recorded instant (a paused capture reads them inside its pause). */
export interface RecordedMeta {
  xattrs: ReturnType<typeof readXattrs>
  flags: ReturnType<typeof readFlags>
}

/** The live filesystem, long paths made short through `paths` (readlink synchronous: a short path is used at once). */
function liveView(paths: LongPaths): SourceView {
  return {
    readdir: (abs) => readdirSync(paths.short(abs), {encoding: 'buffer'}),
    lstat: (abs) => lstatSync(paths.short(abs), {bigint: true}),
    readlink: (abs) => Promise.resolve(readlinkSync(paths.short(abs), {encoding: 'buffer'})),
    content: (abs) => ({path: abs}),
  }
}

export interface ArchiveOptions {
  source: string
  excludes: readonly string[]
  /** Root tree of the parent snapshot, for the stat cache. */
  parentTree?: Buffer
  parentStartNs?: bigint
  /** Read every file even when the stat cache says it is unchanged. */
  force?: boolean
  /**
   * Take the parent's entry for every file whose stat matches it, without the racy-time guard: the
   * caller has already decided which files changed (a paused capture, against its own pre-copy).
   */
  trustParent?: boolean
  /** The directory to read (default: the live filesystem). */
  view?: SourceView
  /** Decoded trees shared with the rest of the run (default: this archiver's own). */
  trees?: TreeCache
  /** Directories never entered (the repository itself, when it lives inside the source). */
  skipDirs?: readonly {dev: bigint; ino: bigint}[]
  /** Leave out files and directories with the nodump inode flag (chattr +d), as dump(8) does. */
  excludeNodump?: boolean
  /** The parent was written without xattrs and flags (no addon): take its chunks, never its metadata. */
  parentMetadataSkipped?: boolean
  /** Leave out directories on another filesystem than the source's (mount points): listed in `leftOut`. */
  oneFileSystem?: boolean
  /** Leave out directories holding one of these files (--exclude-if-present, --exclude-caches): listed in `leftOut`. */
  markers?: readonly Marker[]
  /** Only these paths and what is below them (--files-from). */
  select?: PathSelection
  onProgress?: (p: ArchiveProgress) => void
  /**
   * For tests only: called synchronously at the walk's points where the source can change under
   * it, so a test can delete, rename, grow or shrink a file exactly there instead of by timing.
   * 'listed': a directory was read (`path` is the directory); 'stat': an entry was stat'ed and is
   * about to be read; 'open': a file was opened and nothing read yet.
   */
  walkHook?: (point: WalkPoint, path: string) => void
}

export type WalkPoint = 'listed' | 'stat' | 'open'

/** Where the archiver puts blobs: the repository's writer, or a dry run's counter (dryrun.ts). */
export type BlobSink = Pick<BlobWriter, 'reuse' | 'add'>

export interface ArchiveProgress {
  files: number
  bytes: number
  bytesRead: number
  path: string
}

export interface ArchiveResult {
  tree: Buffer
  root: RootMeta
  files: number
  dirs: number
  symlinks: number
  /** FIFOs and device nodes. */
  specials: number
  /** Sockets skipped (never stored; counted, not warned about). */
  sockets: number
  bytes: number
  /** What the files occupy: data regions only (no holes), each inode once. */
  dataBytes: number
  /** File bytes read from disk: the data regions only, for sparse files. */
  bytesRead: number
  filesRead: number
  warnings: SnapshotWarning[]
  warningCount: number
  /** Warnings that make the snapshot incomplete (exit code 3): unreadable files, files that changed or vanished while read. */
  errorCount: number
  /** No xattrs or inode flags could be read (no native addon): recorded in the manifest, so the next snapshot does not trust their absence. */
  metadataSkipped: boolean
  /** Directories left out by oneFileSystem or markers (paths from the root), for the manifest's excludes. */
  leftOut: string[]
}

/** A directory of the parent snapshot: its tree id, and its entries by name (latin1 of the bytes). */
interface ParentDir {
  id: Buffer
  nodes: Map<string, TreeNode>
}
/** size: the file's size; dataRead: the bytes read (less for a sparse file); extents: its data regions when it has holes. */
type ReadResult = {chunks: Buffer[]; size: number; dataRead: number; extents?: Extent[]; after: BigIntStats; flags?: number | Unavailable}

export class Archiver {
  private readonly exclude: ExcludeMatcher
  private readonly inflight = new Inflight(MAX_INFLIGHT)
  private readonly pool: ReadPool
  private readonly slabs = new ReadPool(SLABS, SLAB_SIZE)
  /** The slab small files are being read into, and how much of it is taken. */
  private slab: {rb: ReadBuffer; used: number} | undefined
  private readonly largeFiles = new Limiter(LARGE_FILES)
  private pool_: HashPool | undefined

  /** The hash workers, started on the first large file (an unchanged snapshot never needs them). */
  private hashPool(): HashPool {
    return (this.pool_ ??= new HashPool())
  }

  private async closePool(): Promise<void> {
    await this.pool_?.close()
    this.pool_ = undefined
  }
  private readonly result: Omit<ArchiveResult, 'tree' | 'root' | 'metadataSkipped'> = {files: 0, dirs: 0, symlinks: 0, specials: 0, sockets: 0, bytes: 0, dataBytes: 0, bytesRead: 0, filesRead: 0, warnings: [], warningCount: 0, errorCount: 0, leftOut: []}
  /** The source's filesystem (oneFileSystem). */
  private rootDev = 0n

  private readonly fs: SourceView
  private readonly trees: TreeCache
  private readonly paths = new LongPaths()
  /**
   * Files with more than one link, by "dev:ino": the node of the first name read (undefined if it
   * could not be), and how many names are still to come; dropped when all have been met, so a tree
   * of many linked files does not hold them all.
   */
  private readonly links = new Map<string, {node: Promise<TreeNode | undefined>; left: number}>()
  /** Metadata warnings given (one per kind and cause). */
  private readonly warned = new Set<string>()

  constructor(private readonly repo: Repository, private readonly writer: BlobSink, private readonly opts: ArchiveOptions) {
    this.fs = opts.view ?? liveView(this.paths)
    this.trees = opts.trees ?? new TreeCache(repo)
    this.exclude = compileExcludes(opts.excludes)
    this.pool = new ReadPool(READ_BUFFERS, repo.config.chunker.maxSize + READ_SIZE)
  }

  async run(): Promise<ArchiveResult> {
    const source = Buffer.from(this.opts.source)
    let st: BigIntStats
    try {
      st = this.fs.lstat(source)
    } catch (err) {
      const code = errnoCode(err)
      if (code === 'ENOENT') throw new BadPathError(`source ${this.opts.source} does not exist`)
      throw new BadPathError(`cannot read source ${this.opts.source}: ${code ?? (err as Error).message}`)
    }
    if (!st.isDirectory()) throw new BadPathError(`source ${this.opts.source} is not a directory`)
    this.rootDev = st.dev
    // Read as any directory's are, never from the parent (the root has no tree node to compare
    // ctimes with); never left out for nodump either: the root is what was asked for.
    const rootExtra = this.readMeta(source, '', 'dir')
    const parent = this.opts.parentTree ? await this.loadParent(this.opts.parentTree) : undefined
    let tree: Buffer | undefined
    try {
      tree = await this.dir(source, '', parent)
      await this.inflight.drain()
    } catch (err) {
      // Writes still running would go on filling the pack the caller is about to abort.
      await this.inflight.drain().catch(() => undefined)
      throw err
    } finally {
      await this.closePool()
      this.paths.close()
    }
    if (!tree) throw new BadPathError(`cannot read source ${this.opts.source}`)
    const root: RootMeta = rootMetaOf({mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs}, rootExtra)
    return {...this.result, tree, root, metadataSkipped: nativeAddon() === null}
  }

  private warn(kind: WarningKind, path: string, message: string): void {
    this.result.warningCount++
    // A file that changed or vanished under the walk is not in the snapshot as the user sees it
    // now: never a silent exit 0.
    if (kind !== 'special' && kind !== 'metadata') this.result.errorCount++
    if (this.result.warnings.length < MAX_LISTED_WARNINGS) this.result.warnings.push({kind, path: path || '.', message})
  }

  private async loadParent(id: Buffer): Promise<ParentDir | undefined> {
    // A parent tree we cannot read only costs the stat cache, never the snapshot.
    try {
      const nodes = await this.trees.read(id)
      const byName = new Map<string, TreeNode>()
      for (const n of nodes) byName.set(n.name.toString('latin1'), n)
      return {id, nodes: byName}
    } catch {
      return undefined
    }
  }

  /** Archive one directory; returns its tree id, or undefined if it vanished or cannot be listed. */
  private async dir(abs: Buffer, rel: string, parent: ParentDir | undefined): Promise<Buffer | undefined> {
    // The parent's subtrees of this directory's subdirectories are fetched at once, first, so they
    // arrive while the entries are listed and stat'ed instead of each being waited for on descent.
    const parentSubtrees = new Map<TreeNode, Promise<ParentDir | undefined>>()
    for (const prev of parent?.nodes.values() ?? []) if (prev.type === 'dir' && prev.subtree) parentSubtrees.set(prev, this.loadParent(prev.subtree))
    let names: Buffer[]
    try {
      names = this.fs.readdir(abs)
    } catch (err) {
      const code = errnoCode(err)
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        this.warn('vanished', rel, 'directory vanished during the snapshot')
      } else {
        this.warn('unreadable', rel, `cannot list directory: ${code ?? (err as Error).message}`)
      }
      return undefined
    }
    names.sort(Buffer.compare)
    this.opts.walkHook?.('listed', rel)
    // Stat everything, then read the files several at a time (small files cost round trips, not
    // CPU), then descend into subdirectories one by one so only the current path is held.
    interface Entry {name: Buffer; abs: Buffer; rel: string; st?: BigIntStats; prev?: TreeNode; node?: TreeNode; onlyLeadsOn?: boolean}
    const entries: Entry[] = []
    const rawParent = rel ? abs.subarray(Buffer.byteLength(this.opts.source) + 1) : undefined
    for (const name of names) {
      const shown = displayName(name)
      const childRel = rel ? `${rel}/${shown}` : shown
      const selected = this.opts.select?.(childRel) ?? 'all'
      if (selected !== 'none' && !this.exclude(childRel, shown, name, rawParent)) entries.push({name, abs: childPath(abs, name), rel: childRel, onlyLeadsOn: selected === 'ancestor'})
    }
    // Metadata calls are synchronous: each takes microseconds, less than a thread-pool round trip.
    for (const e of entries) {
      try {
        e.st = this.fs.lstat(e.abs)
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') this.warn('vanished', e.rel, 'vanished during the snapshot')
        else this.warn('unreadable', e.rel, `cannot stat: ${errnoCode(err) ?? (err as Error).message}`)
      }
    }
    // Files the stat cache vouches for are taken from the parent here; the rest are read.
    const toRead: Entry[] = []
    const subdirs: Entry[] = []
    let lastCached: Entry | undefined
    for (const e of entries) {
      if (!e.st) continue
      if (e.onlyLeadsOn && !e.st.isDirectory()) continue // --files-from named something below a file
      if (e.st.isDirectory()) {
        subdirs.push(e)
        continue
      }
      if (parent) e.prev = parent.nodes.get(e.name.toString('latin1'))
      const cached = this.fs.mustRead?.(e.abs) ? undefined : this.fromStatCache(e.name, e.abs, e.rel, e.st, e.prev)
      if (cached === null) continue // nodump
      e.node = cached
      if (e.node) lastCached = e
      else toRead.push(e)
    }
    if (lastCached) this.opts.onProgress?.({files: this.result.files, bytes: this.result.bytes, bytesRead: this.result.bytesRead, path: lastCached.rel})
    await mapLimit(toRead, DIR_CONCURRENCY, async (e) => {
      this.opts.walkHook?.('stat', e.rel)
      e.node = await this.entry(e.abs, e.rel, e.name, e.st!, e.prev)
      this.opts.onProgress?.({files: this.result.files, bytes: this.result.bytes, bytesRead: this.result.bytesRead, path: e.rel})
    })
    for (const e of subdirs) {
      if (parent) e.prev = parent.nodes.get(e.name.toString('latin1'))
      e.node = await this.subdirectory(e.abs, e.rel, e.name, e.st!, e.prev, e.prev ? await parentSubtrees.get(e.prev) : undefined)
    }
    const nodes: TreeNode[] = []
    for (const e of entries) if (e.node) nodes.push(e.node)
    // Every entry as in the parent (same names, nothing added or gone): the tree encodes to the
    // parent's bytes, so it is the parent's tree, stored already. Reusing its id skips encoding
    // and hashing, most of the work of an unchanged snapshot. (Names are unique on both sides,
    // so equal counts and a match for each node mean the same set.)
    // (A restore record's tree is not in the repository: it is stored below like any new tree.)
    if (parent && nodes.length === parent.nodes.size && entries.every((e) => !e.node || (e.prev !== undefined && sameNode(e.node, e.prev))) && this.repo.has(parent.id)) return parent.id
    const bytes = encodeTree(nodes)
    const id = blake3(bytes)
    this.trees.put(id, nodes)
    await this.writer.add(BlobType.tree, id, bytes)
    return id
  }

  private async subdirectory(abs: Buffer, rel: string, name: Buffer, st: BigIntStats, prev: TreeNode | undefined, parent: ParentDir | undefined): Promise<TreeNode | undefined> {
    if (this.opts.skipDirs?.some((d) => d.dev === st.dev && d.ino === st.ino)) return undefined
    if (this.leavesOut(abs, st)) {
      this.result.leftOut.push(rel)
      return undefined
    }
    // The path must still name the directory that was listed, before and after its entries are
    // read: one replaced by a symlink mid-walk would lead the walk (readdir follows links) outside
    // the source, and what it read there must not be stored as this directory.
    const sameDir = (x: BigIntStats | undefined) => x !== undefined && x.isDirectory() && x.dev === st.dev && x.ino === st.ino
    const restat = (): BigIntStats | undefined => {
      try {
        return this.fs.lstat(abs)
      } catch {
        return undefined
      }
    }
    const before = restat()
    if (before && !sameDir(before)) {
      this.warn('vanished', rel, 'directory replaced during the snapshot; not entered')
      return undefined
    }
    const extra = this.metadata(abs, rel, 'dir', st, prev)
    if (extra === null) return undefined // nodump
    const subtree = await this.dir(abs, rel, parent)
    if (!subtree) return undefined
    // Re-stat: the directory's own metadata as it is after its entries were read.
    const after = restat()
    if (after && !sameDir(after)) {
      this.warn('vanished', rel, 'directory replaced during the snapshot; what was read under it is left out')
      return undefined
    }
    this.result.dirs++
    // Gone since: keep what it was.
    return {...meta(name, 'dir', after ?? st), subtree, ...extra}
  }

  /** A directory on another filesystem (oneFileSystem) or holding a marker file is left out whole. */
  private leavesOut(abs: Buffer, st: BigIntStats): boolean {
    if (this.opts.oneFileSystem && st.dev !== this.rootDev) return true
    return (this.opts.markers ?? []).some((m) => this.hasMarker(abs, m))
  }

  private hasMarker(dir: Buffer, marker: Marker): boolean {
    const file = childPath(dir, Buffer.from(marker.name))
    try {
      if (!this.fs.lstat(file).isFile()) return false
      if (!marker.header) return true
      const fd = openSync(this.fs.content(file).path, fsc.O_RDONLY | fsc.O_NOFOLLOW)
      try {
        const head = Buffer.alloc(marker.header.length)
        return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(marker.header)
      } finally {
        closeSync(fd)
      }
    } catch {
      return false // no marker there (or none that can be read)
    }
  }

  /** A file (not in the stat cache), symlink or special file. */
  private async entry(abs: Buffer, rel: string, name: Buffer, st: BigIntStats, prev: TreeNode | undefined): Promise<TreeNode | undefined> {
    if (st.isSymbolicLink()) {
      let target: Buffer
      try {
        target = await this.fs.readlink(abs)
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') this.warn('vanished', rel, 'vanished during the snapshot')
        else this.warn('unreadable', rel, `cannot read link: ${errnoCode(err) ?? (err as Error).message}`)
        return undefined
      }
      this.result.symlinks++
      return {...meta(name, 'symlink', st), target, ...this.metadata(abs, rel, 'symlink', st, prev)}
    }
    if (st.isFile()) return this.linkedFile(abs, rel, name, st, prev)
    // A socket is a rendezvous of a running program, nothing a restore could bring back.
    if (st.isSocket()) {
      this.result.sockets++
      return undefined
    }
    const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'blockdev' : undefined
    if (!type) {
      this.warn('special', rel, 'skipped special file of unknown type')
      return undefined
    }
    this.result.specials++
    const node: TreeNode = {...meta(name, type, st), ...this.metadata(abs, rel, type, st, prev)}
    if (type !== 'fifo') node.rdev = splitDev(st.rdev)
    return node
  }

  /**
   * A file that may have other names: the first name of an inode met in this snapshot is read;
   * the others wait for it and share its chunks (their bytes are the same bytes), read again only
   * if it could not be read.
   */
  private async linkedFile(abs: Buffer, rel: string, name: Buffer, st: BigIntStats, prev: TreeNode | undefined): Promise<TreeNode | undefined> {
    if (st.nlink <= 1n) return this.file(abs, rel, name, st, prev)
    const key = `${st.dev}:${st.ino}`
    const first = this.links.get(key)
    if (first) {
      if (--first.left <= 0) this.links.delete(key)
      const node = await first.node
      if (node) {
        this.result.files++
        this.result.bytes += node.size
        return {...node, name}
      }
    }
    const read = this.file(abs, rel, name, st, prev)
    if (!first) this.links.set(key, {node: read, left: Number(st.nlink) - 1})
    return read
  }

  /**
   * Xattrs and inode flags of an entry: the parent's when its ctime says nothing changed (setting
   * either moves ctime), else read. null: left out, for it has the nodump flag and --exclude-nodump.
   */
  private metadata(abs: Buffer, rel: string, type: TreeNode['type'], st: BigIntStats, prev: TreeNode | undefined): Pick<TreeNode, 'xattrs' | 'flags'> | null {
    const out = this.sameMeta(st, prev, type) ? keptMeta(prev) : this.readMeta(abs, rel, type)
    if (this.opts.excludeNodump && ((out.flags ?? 0) & FS_FLAG_NODUMP) !== 0) return null
    return out
  }

  /** True when prev (same type and inode) records this entry's xattrs and flags: its ctime has not moved, and is not so recent that a change could hide in the same tick. */
  private sameMeta(st: BigIntStats, prev: TreeNode | undefined, type: TreeNode['type']): prev is TreeNode {
    if (this.opts.force || this.opts.parentMetadataSkipped || !prev || prev.legacy || prev.type !== type || prev.ctimeNs !== st.ctimeNs || prev.ino !== st.ino) return false
    if (this.opts.trustParent) return true
    const start = this.opts.parentStartNs
    if (start === undefined) return false
    return changedBefore(st.ctimeNs, start)
  }

  /**
   * Read xattrs (all the kernel lists: user, and for root trusted and security ones; ACLs) and,
   * for files and directories unless `withFlags` is false (the caller takes them from the
   * descriptor it reads the file through), inode flags.
   */
  private readMeta(abs: Buffer, rel: string, type: TreeNode['type'], withFlags = true): Pick<TreeNode, 'xattrs' | 'flags'> {
    const out: Pick<TreeNode, 'xattrs' | 'flags'> = {}
    let path: Buffer
    try {
      path = this.paths.short(abs)
    } catch {
      return out // the walk itself reports a path it cannot reach
    }
    const recorded = this.fs.meta?.(abs)
    if (withFlags && (type === 'file' || type === 'dir')) {
      try {
        this.recordFlags(out, recorded ? recorded.flags : readFlags(path, type === 'dir'), rel)
      } catch (err) {
        this.metaError('inode flags', rel, err)
      }
    }
    try {
      const x = recorded ? recorded.xattrs : readXattrs(path)
      if (typeof x === 'string') {
        this.metaWarn(`xattrs ${x}`, rel, x === 'unavailable' ? 'extended attributes and ACLs not recorded: the native addon is not built' : 'extended attributes not recorded: the file system does not support them')
      } else {
        if (x.xattrs.length > 0) out.xattrs = x.xattrs
        for (const r of x.refused) this.metaWarn(`xattr ${xattrKind(r.name)} ${r.code}`, rel, `${xattrKind(r.name)} extended attributes not recorded: ${r.code}`)
      }
    } catch (err) {
      this.metaError('extended attributes', rel, err)
    }
    return out
  }

  private recordFlags(out: Pick<TreeNode, 'flags'>, f: number | Unavailable, rel: string): void {
    if (typeof f === 'number') {
      if ((f & FS_FLAGS_RECORDED) !== 0) out.flags = f & FS_FLAGS_RECORDED
    } else {
      this.metaWarn(`flags ${f}`, rel, f === 'unavailable' ? 'inode flags not recorded: the native addon is not built' : 'inode flags not recorded: the file system has none')
    }
  }

  /** One warning per kind and cause, however many files share it. */
  private metaWarn(key: string, rel: string, message: string): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.warn('metadata', rel, message)
  }

  private metaError(what: string, rel: string, err: unknown): void {
    const code = errnoCode(err)
    // Gone, replaced or unreadable: reading its content or listing it reports that.
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'EACCES') return
    if (code === undefined) throw err
    this.metaWarn(`${what} ${code}`, rel, `cannot read ${what}: ${code}`)
  }

  private unchangedSinceParent(st: BigIntStats, prev: TreeNode | undefined): prev is TreeNode & {chunks: Buffer[]} {
    if (this.opts.force || !prev || prev.type !== 'file' || !prev.chunks) return false
    if (prev.size !== Number(st.size) || prev.mtimeNs !== st.mtimeNs || prev.ctimeNs !== st.ctimeNs || prev.ino !== st.ino) return false
    if (this.opts.trustParent) return prev.chunks.every((c) => this.repo.has(c))
    const start = this.opts.parentStartNs
    if (start === undefined) return false
    // Times older than the wider window are safe at either granularity: the usual case, decided
    // without working out the granularity.
    if (st.mtimeNs >= start - RACY_WINDOW_COARSE_NS || st.ctimeNs >= start - RACY_WINDOW_COARSE_NS) {
      const coarse = st.mtimeNs % 1_000_000_000n === 0n && st.ctimeNs % 1_000_000_000n === 0n
      const window = coarse ? RACY_WINDOW_COARSE_NS : RACY_WINDOW_NS
      if (st.mtimeNs >= start - window || st.ctimeNs >= start - window) return false
    }
    return prev.chunks.every((c) => this.repo.has(c))
  }

  /**
   * The node of a file whose stat matches the parent's entry (which is not read again), else
   * undefined; null when it is left out (nodump). A parent node of a version-1 tree gives its
   * chunks (the whole content, holes as zeros: correct, only not sparse) but never recorded xattrs
   * or flags: those are read.
   */
  private fromStatCache(name: Buffer, abs: Buffer, rel: string, st: BigIntStats, prev: TreeNode | undefined): TreeNode | null | undefined {
    if (!st.isFile() || !this.unchangedSinceParent(st, prev)) return undefined
    const extra = prev.legacy || this.opts.parentMetadataSkipped ? this.readMeta(abs, rel, 'file') : keptMeta(prev)
    if (this.opts.excludeNodump && ((extra.flags ?? 0) & FS_FLAG_NODUMP) !== 0) return null
    this.result.files++
    this.result.bytes += prev.size
    const node = meta(name, 'file', st)
    node.size = prev.size
    node.chunks = prev.chunks
    if (prev.extents && !prev.legacy) node.extents = prev.extents
    Object.assign(node, extra)
    if (node.nlink === undefined || !this.links.has(`${st.dev}:${st.ino}`)) this.result.dataBytes += dataLength(node)
    if (node.nlink !== undefined) {
      const key = `${st.dev}:${st.ino}`
      const seen = this.links.get(key)
      if (!seen) this.links.set(key, {node: Promise.resolve(node), left: node.nlink - 1})
      else if (--seen.left <= 0) this.links.delete(key)
    }
    return node
  }

  private async file(abs: Buffer, rel: string, name: Buffer, st: BigIntStats, prev: TreeNode | undefined): Promise<TreeNode | undefined> {
    // Flags come from the descriptor the content is read through (one ioctl, no open of its
    // own), unless --exclude-nodump needs them before deciding to read at all.
    const reuse = this.sameMeta(st, prev, 'file')
    const flagsFromRead = !reuse && !this.opts.excludeNodump
    const extra = reuse ? keptMeta(prev) : this.readMeta(abs, rel, 'file', !flagsFromRead)
    if (this.opts.excludeNodump && ((extra.flags ?? 0) & FS_FLAG_NODUMP) !== 0) return undefined
    let before = st
    for (let attempt = 1; ; attempt++) {
      let read: ReadResult
      try {
        // Fewer blocks allocated than the size holds: there may be holes, looked for with
        // SEEK_DATA. Any other file costs no extra call.
        read = await this.readFile(abs, rel, Number(before.size), before.blocks * 512n < before.size)
      } catch (err) {
        const code = errnoCode(err)
        if (code === 'ENOENT') {
          this.warn('vanished', rel, 'vanished during the snapshot')
        } else if (code === 'ELOOP') {
          this.warn('vanished', rel, 'replaced by a symlink during the snapshot')
        } else if (code && /^E[A-Z]+$/.test(code)) {
          this.warn('unreadable', rel, `cannot read: ${code}`)
        } else {
          throw err
        }
        return undefined
      }
      this.result.bytesRead += read.dataRead
      this.result.filesRead++
      const {after} = read
      // A sparse file's size is its stat's, not what was read: the stat comparison covers it.
      const consistent = (read.extents !== undefined || read.size === Number(after.size)) && sameContentStat(before, after)
      if (consistent || attempt >= READ_ATTEMPTS) {
        if (!consistent) this.warn('changed', rel, `changed while being read (${READ_ATTEMPTS} attempts); stored as last read, may be inconsistent`)
        else if (attempt > 1) this.warn('changed', rel, `changed while being read; stored as read again (attempt ${attempt}), not as it was when the walk reached it`)
        if (after.nlink === 0n) this.warn('vanished', rel, 'deleted while being read; stored as read')
        this.result.files++
        this.result.bytes += read.size
        if (flagsFromRead) {
          try {
            this.recordFlags(extra, read.flags ?? this.fs.meta?.(abs)?.flags ?? readFlags(this.paths.short(abs), false), rel)
          } catch (err) {
            this.metaError('inode flags', rel, err)
          }
        }
        const node: TreeNode = {...meta(name, 'file', after), size: read.size, chunks: read.chunks, ...extra}
        if (read.extents) node.extents = read.extents
        this.result.dataBytes += dataLength(node)
        return node
      }
      before = after
    }
  }

  /**
   * Stream a file through the chunker; every new chunk goes to the writer. The next read is in
   * flight while the current buffer is chunked and hashed. Each buffer keeps `maxSize` bytes of
   * room in front of the data, where the unfinished chunk of the previous buffer is copied.
   */
  private async readFile(abs: Buffer, rel: string, expected: number, mayHaveHoles: boolean): Promise<ReadResult> {
    if (mayHaveHoles) return this.largeFiles.run(() => this.readLargeFile(abs, rel, expected, true))
    if (expected < SMALL_FILE) return this.readSmallFile(abs, rel, expected)
    return this.largeFiles.run(() => this.readLargeFile(abs, rel, expected, false))
  }

  /**
   * Read a small file whole and chunk it in memory. Files up to SYNC_READ are read with
   * synchronous calls: from the page cache (where files changed since the last snapshot usually
   * are) open, read, fstat and close take microseconds each, far less than four round trips
   * through the thread pool.
   */
  private async readSmallFile(abs: Buffer, rel: string, expected: number): Promise<ReadResult> {
    // One byte more than expected: if it comes back, the file grew and the caller sees a size change.
    const {rb, buf} = await this.slabSpace(expected + 1)
    try {
      return await this.readSmallFileInto(abs, rel, buf, rb)
    } finally {
      rb.drop()
    }
  }

  /** `size` bytes of a slab, held (drop when done; each chunk cut from it holds it until written). */
  private async slabSpace(size: number): Promise<{rb: ReadBuffer; buf: Buffer}> {
    for (;;) {
      const slab = this.slab
      if (slab && slab.used + size <= slab.rb.buf.length) {
        const buf = slab.rb.buf.subarray(slab.used, slab.used + size)
        slab.used += size
        slab.rb.hold()
        return {rb: slab.rb, buf}
      }
      // Full: it goes back to the pool once the files and chunks in it are done with it.
      if (slab) {
        this.slab = undefined
        slab.rb.retire()
      }
      const rb = await this.slabs.acquire()
      if (this.slab) rb.retire() // another file took a fresh slab meanwhile: use that one
      else this.slab = {rb, used: 0}
    }
  }

  private async readSmallFileInto(abs: Buffer, rel: string, buf: Buffer, rb: ReadBuffer): Promise<ReadResult> {
    let size = 0
    let after: BigIntStats
    let flags: number | Unavailable | undefined
    const content = this.fs.content(abs)
    if (buf.length <= SYNC_READ) {
      const fd = openSync(this.paths.short(content.path), fsc.O_RDONLY | fsc.O_NOFOLLOW)
      try {
        this.opts.walkHook?.('open', rel)
        for (let n = -1; n !== 0 && size < buf.length; size += n) n = readSync(fd, buf, size, buf.length - size, size)
        after = content.stat ?? fstatSync(fd, {bigint: true})
        flags = content.path === abs ? fdFlags(fd) : undefined
      } finally {
        closeSync(fd)
      }
    } else {
      const fh = await fsp.open(this.paths.short(content.path), fsc.O_RDONLY | fsc.O_NOFOLLOW)
      try {
        this.opts.walkHook?.('open', rel)
        for (let n = -1; n !== 0 && size < buf.length; size += n) n = (await fh.read(buf, size, buf.length - size, size)).bytesRead
        after = content.stat ?? await fh.stat({bigint: true})
        flags = content.path === abs ? fdFlags(fh.fd) : undefined
      } finally {
        await fh.close()
      }
    }
    const data = buf.subarray(0, size)
    const chunks: Buffer[] = []
    const compress = new CompressionGuess()
    if (size <= this.repo.config.chunker.minSize) {
      if (size > 0) await this.emit(chunks, data, rb, compress)
    } else {
      const chunker = new Chunker(this.repo.config.chunker)
      let start = 0
      for (let cut = chunker.next(data, 0); cut >= 0; cut = chunker.next(data, cut)) {
        await this.emit(chunks, data.subarray(start, cut), rb, compress)
        start = cut
      }
      if (start < size) await this.emit(chunks, data.subarray(start), rb, compress)
    }
    return {chunks, size, dataRead: size, after, flags}
  }

  /**
   * Stream a file through the chunker. With `sparse`, its data regions are asked of the file
   * system first (SEEK_DATA/SEEK_HOLE), and only they are read, back to back: the chunks hold the
   * data, the extents say where it goes, and no hole is ever read as zeros.
   */
  private async readLargeFile(abs: Buffer, rel: string, expected: number, sparse: boolean): Promise<ReadResult> {
    const content = this.fs.content(abs)
    const fh = await fsp.open(this.paths.short(content.path), fsc.O_RDONLY | fsc.O_NOFOLLOW)
    try {
      this.opts.walkHook?.('open', rel)
    } catch (err) {
      await fh.close()
      throw err
    }
    const scanner = new StreamScanner(this.repo.config.chunker, () => this.hashPool())
    const front = this.repo.config.chunker.maxSize
    const compress = new CompressionGuess()
    const chunks: Buffer[] = []
    let current: ReadBuffer | undefined
    let next: Promise<{rb: ReadBuffer; bytesRead: number; want: number}> | undefined
    // The previous buffer's chunks: handed to the writer while the current buffer is scanned.
    // Its buffer is held until they are (each chunk then holds it until written).
    let pending: {rb: ReadBuffer; scanned: Scanned} | undefined
    const emitPending = async () => {
      const p = pending
      if (!p) return
      pending = undefined
      try {
        const ids = await p.scanned.ids
        for (let i = 0; i < ids.length; i++) await this.emitHashed(chunks, ids[i]!, p.scanned.chunks[i]!, p.rb, compress)
      } finally {
        p.rb.drop()
      }
    }
    try {
      const regions = sparse ? holesOf(fh.fd, expected) : undefined
      let total = Infinity
      if (regions) {
        total = 0
        for (const r of regions) total += r.length
        if (total === 0) return {chunks, size: expected, dataRead: 0, extents: regions, after: content.stat ?? await fh.stat({bigint: true})}
      }
      // The region holding the next data offset (reads go forward only).
      let region = 0
      let regionStart = 0
      scanner.reset()
      let size = 0
      const startRead = (offset: number) => {
        let want = Math.min(READ_SIZE, Math.max(64 * 1024, expected - offset + 1))
        let position = offset
        if (regions) {
          while (offset >= regionStart + regions[region]!.length) regionStart += regions[region++]!.length
          position = regions[region]!.offset + (offset - regionStart)
          want = Math.min(READ_SIZE, regionStart + regions[region]!.length - offset)
        }
        const read = this.pool.acquire().then(async (rb) => {
          try {
            const {bytesRead} = await fh.read(rb.buf, front, want, position)
            return {rb, bytesRead, want}
          } catch (err) {
            rb.retire()
            throw err
          }
        })
        // It may fail while the previous buffer is being scanned: handled here, reported when awaited.
        read.catch(() => undefined)
        return read
      }
      let carry: Buffer = Buffer.alloc(0)
      next = startRead(0)
      try {
        for (;;) {
          const got: {rb: ReadBuffer; bytesRead: number; want: number} = await next!
          next = undefined
          const {rb, bytesRead, want} = got
          size += bytesRead
          // A short read of a regular file is its end; otherwise read ahead while we scan this one.
          const more = bytesRead === want && size < total
          if (more) next = startRead(size)
          // Move the previous buffer's unfinished chunk in front of the new data.
          carry.copy(rb.buf, front - carry.length)
          current?.retire()
          current = rb
          const data = rb.buf.subarray(front - carry.length, front + bytesRead)
          rb.hold()
          // The scan reads the buffer off the main thread: it is waited for even if emitting fails.
          // Its chunks are hashed while the next buffer is read and cut.
          const [emitted, scanned] = await Promise.allSettled([emitPending(), scanner.scan(data, carry.length, !more)])
          if (scanned.status === 'rejected') {
            rb.drop()
            throw scanned.reason
          }
          pending = {rb, scanned: scanned.value}
          if (emitted.status === 'rejected') throw emitted.reason
          carry = data.subarray(scanned.value.rest)
          if (!more) break
        }
        await emitPending()
      } finally {
        // On failure, let go of the buffer whose chunks were never emitted (once its hashing,
        // which reads it, is over).
        if (pending) {
          const p = pending
          pending = undefined
          await p.scanned.ids.catch(() => undefined)
          p.rb.drop()
        }
      }
      const after = content.stat ?? await fh.stat({bigint: true})
      const flags = content.path === abs ? fdFlags(fh.fd) : undefined
      if (regions) return {chunks, size: expected, dataRead: size, extents: regions, after, flags}
      return {chunks, size, dataRead: size, after, flags}
    } finally {
      current?.retire()
      if (next) await next.then((n) => n.rb.retire(), () => undefined)
      await fh.close()
    }
  }

  /** Hash a chunk on this thread, then as emitHashed. */
  private async emit(chunks: Buffer[], chunk: Buffer, rb: ReadBuffer | undefined, compress: CompressionGuess): Promise<void> {
    await this.emitHashed(chunks, blake3(chunk), chunk, rb, compress)
  }

  /** List a chunk and hand it to the writer unless stored already. `rb`, if any, is held until written. */
  private async emitHashed(chunks: Buffer[], id: Buffer, chunk: Buffer, rb: ReadBuffer | undefined, compress: CompressionGuess): Promise<void> {
    chunks.push(id)
    if (this.writer.reuse(id)) return
    rb?.hold()
    const added = this.writer.add(BlobType.data, id, chunk, {raw: !compress.shouldTry()}).then(
      (compressed) => {
        rb?.drop()
        if (compressed !== undefined) compress.record(compressed)
      },
      (err: unknown) => {
        rb?.drop()
        throw err
      },
    )
    await this.inflight.add(added)
  }
}

/**
 * Whether the next chunk of a file is worth a compression attempt. Model weights and media do
 * not compress: after a few chunks that did not shrink, only every 16th chunk is tried, so such a
 * file costs no zstd time while a file that turns compressible is noticed again.
 */
export class CompressionGuess {
  private misses = 0
  private skipped = 0

  shouldTry(): boolean {
    if (this.misses < 4) return true
    this.skipped++
    return this.skipped % 16 === 0
  }

  record(compressed: boolean): void {
    if (compressed) {
      this.misses = 0
      this.skipped = 0
    } else {
      this.misses++
    }
  }
}

function sameContentStat(a: BigIntStats, b: BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino
}

/**
 * The data regions of the open file `fd` of `size` bytes when it has holes, bounded to
 * SPARSE_EXTENTS and cut at `size`; undefined when it has none (or holes cannot be found here:
 * no addon), and the file is read whole.
 */
function holesOf(fd: number, size: number): Extent[] | undefined {
  let found: Extent[] | undefined
  try {
    found = dataExtents(fd)
  } catch {
    return undefined // a file system that answers SEEK_DATA with an error of its own: read it whole
  }
  if (!found || (found.length === 1 && found[0]!.offset === 0 && found[0]!.length >= size)) return undefined
  const out: Extent[] = []
  for (const e of boundExtents(found, SPARSE_EXTENTS)) {
    const end = Math.min(e.offset + e.length, size)
    if (end > e.offset) out.push({offset: e.offset, length: end - e.offset})
  }
  return out
}

/** Inode flags through an open descriptor of a regular file; undefined when that fails (the caller asks by path). */
function fdFlags(fd: number): number | Unavailable | undefined {
  try {
    return readFlagsFd(fd)
  } catch {
    return undefined
  }
}

/** The xattrs and flags of a parent node, taken as they are. */
function keptMeta(prev: TreeNode): Pick<TreeNode, 'xattrs' | 'flags'> {
  const out: Pick<TreeNode, 'xattrs' | 'flags'> = {}
  if (prev.xattrs) out.xattrs = prev.xattrs
  if (prev.flags) out.flags = prev.flags
  return out
}

/** True only when two nodes of the same name encode to the same bytes (never for a version-1 node: this encodes as version 2). */
function sameNode(a: TreeNode, b: TreeNode): boolean {
  return !b.legacy && a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs &&
    a.ino === b.ino && a.size === b.size && sameIds(a.chunks, b.chunks) && sameBytes(a.subtree, b.subtree) && sameBytes(a.target, b.target) &&
    (a.nlink ?? 1) === (b.nlink ?? 1) && a.dev === b.dev && (a.flags ?? 0) === (b.flags ?? 0) && a.rdev?.major === b.rdev?.major && a.rdev?.minor === b.rdev?.minor &&
    sameExtents(a.extents, b.extents) && sameXattrs(a.xattrs, b.xattrs)
}

function sameExtents(a: readonly Extent[] | undefined, b: readonly Extent[] | undefined): boolean {
  if (a === b) return true
  if (!a || !b || a.length !== b.length) return false
  return a.every((e, i) => e.offset === b[i]!.offset && e.length === b[i]!.length)
}

function sameXattrs(a: TreeNode['xattrs'], b: TreeNode['xattrs']): boolean {
  if (a === b || ((a?.length ?? 0) === 0 && (b?.length ?? 0) === 0)) return true
  if (!a || !b || a.length !== b.length) return false
  return a.every((x, i) => x.name.equals(b[i]!.name) && x.value.equals(b[i]!.value))
}

function sameIds(a: readonly Buffer[] | undefined, b: readonly Buffer[] | undefined): boolean {
  if (a === b) return true // a file taken from the stat cache shares the parent's list
  if (!a || !b || a.length !== b.length) return false
  return a.every((id, i) => id.equals(b[i]!))
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.equals(b))
}

function meta(name: Buffer, type: TreeNode['type'], st: BigIntStats): TreeNode {
  const node: TreeNode = {name, type, mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, size: 0}
  // A file with other names: (dev, ino) lets restore link the names the snapshot holds.
  if (type === 'file' && st.nlink > 1n) {
    node.nlink = Number(st.nlink)
    node.dev = st.dev
  }
  return node
}
