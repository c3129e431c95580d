// Restored bytes that are already on this machine: the chunk source of a delta restore. A restore
// over an existing directory (in place, or --target DIR --overwrite) and a restore with --seed DIR
// asks this before reading anything from the repository:
//
// - Is the whole file already there? The old file at the same path (or, when that path is gone,
//   the old file with the inode the snapshot recorded: a rename keeps it) holds the node's
//   content when either
//     * it is the very inode the snapshot read, untouched since: same ino, ctime, size and mtime
//       as the node records. Any write, truncate, chmod, chown, utimes or xattr change moves the
//       ctime, so nothing is read. (A restored file has the node's mtime but a new ino and ctime,
//       so this never holds for a tree ckpt wrote: that falls to the next rule.)
//     * or its chunks, cut with the repository's chunker and hashed, are the node's chunks. The
//       cut is not needed when a snapshot of the tree being replaced (the safety snapshot, or the
//       newest snapshot of it: `known`) recorded the file with its present ino, ctime, size and
//       mtime, changed for the last time before that snapshot began (outside the racy window):
//       its recorded chunks are its content, as for the snapshot's own stat cache.
//   --verify-existing takes only the second rule, and always cuts. The file is then carried into the new tree
//   (reuse.ts): hard linked when it is the inode the snapshot read (same ino: its xattrs and
//   flags were the node's) and its owner, mode and mtime are the node's; else cloned or copied
//   and given the node's metadata. It is checked unchanged once carried. A hard link moves the
//   inode's ctime, so rolling back to the same snapshot again takes the second rule: the old
//   files are read and hashed (no repository read), and linked again.
// - Otherwise, which of its chunks are here? Every old file looked at is cut and hashed as
//   above and its chunks indexed, as is every file under each --seed directory (up front). A
//   chunk found in the index is read from its file and used only if its bytes hash to its id:
//   the check is on the very bytes that are then written, so a file rewritten while the restore
//   runs cannot put a wrong byte in the result; a chunk that fails comes from the repository.
// - Can the changed file start as a clone of its old version? An old file at the node's path
//   that was cut and hashed (or vouched for by the known snapshot) and found different is kept
//   as the file's *base* (baseOf): where the filesystem shares extents (XFS, btrfs), the output
//   clones it and writes only the ranges that differ (fsout.ts). The clone is trusted because
//   the base's stat is the same after the clone as when it was hashed, and the base had not been
//   changed for the racy window (core/racy.ts) before the hash started: a write after that moves
//   its ctime to a later tick, so an unchanged stat means unchanged bytes. A base written just
//   before the restore is not used.
//
// The index is lossy on purpose: keyed by the first 48 bits of a chunk id (one number), since
// every hit is checked anyway. It holds at most MAX_CHUNKS entries, about 100 bytes each: 0.8 MB
// per GiB of seed at the default 128 KiB average chunk, and 100 MB at the bound (128 GiB of seed
// at the default); seed files past the bound are not indexed (counted in skippedSeedFiles, not reported yet).
import {type BigIntStats, constants as fsc, lstatSync, promises as fsp} from 'node:fs'

import type {ChunkerParams} from '../core/chunker.js'
import {errnoCode} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {HashPool, hashBuffer} from '../core/hashpool.js'
import {StreamScanner} from '../core/scan.js'
import {childPath, type TreeNode} from '../snapshot/tree.js'
import {changedBefore, RACY_WINDOW_NS} from '../core/racy.js'

/** Chunks indexed at most (see above). */
export const MAX_CHUNKS = 1 << 20
/** Bytes read from a local file at once while cutting it. */
const READ_SIZE = 1024 * 1024
/** Old-tree files listed at most when looking for renamed files by inode. */
const MAX_INODES = 1 << 20
/** Smallest old file kept as a base to clone (smaller files are written whole: a clone saves little). */
const BASE_MIN = 1024 * 1024
/** Bases waiting for their file's turn at most (large files queue behind the walk; a base is one map per file). */
const MAX_BASES = 256
/** Directory listings of the known tree kept at once (the walk visits directories in order: a few suffice). */
const MAX_KNOWN_DIRS = 64

/** A file on disk whose contents are a node's, to carry whole into the new tree. */
export interface LocalFile {
  path: Buffer
  /** Its stat when found (or hashed): it must still be this when carried. */
  st: BigIntStats
  /** The inode the snapshot read (same ino and device), its content the node's: it may be hard linked when its metadata is the node's. */
  sameInode: boolean
  /**
   * Its xattrs and inode flags, when a snapshot recorded them with its present ctime (the known
   * snapshot's rule): they cannot have changed without moving the ctime, so they need not be read.
   */
  attrs?: Pick<TreeNode, 'xattrs' | 'flags'>
}

/**
 * The old version of a changed file, hashed: a clone of it holds the node's chunk at `offset`
 * when holds() says so. Valid only while the file's stat is still `st` (ino, size, mtime, ctime).
 */
export interface LocalBase {
  path: Buffer
  st: BigIntStats
  /** The base has the chunk `id` of `length` bytes at `offset`. */
  holds(offset: number, id: Buffer, length: number): boolean
}

/** Where a chunk can be read locally. */
interface Located {
  file: number
  offset: number
  length: number
}

/** What the reader asks of a source of local bytes (restore/reader.ts). */
export interface ChunkSource {
  /** A file on disk holding exactly this node's content; `rel` is its path below the restore root. */
  wholeFile(node: TreeNode, rel: Buffer): Promise<LocalFile | undefined>
  /** The chunk may be here (a hit is checked when read). */
  has(id: Buffer, length: number): boolean
  /** The old version of the file at `rel`, hashed by wholeFile and found different, when it can be cloned from (taken once). */
  baseOf?(rel: Buffer): LocalBase | undefined
  /** Read chunk i (`length` bytes) into dst at at[i]: true for each whose bytes hash to its id. */
  read(chunks: readonly {id: Buffer; length: number}[], dst: Buffer, at: readonly number[]): Promise<boolean[]>
}

export interface LocalOptions {
  chunker: ChunkerParams
  /** The tree being replaced (its root and device), when there is one; names at its top starting with ownPrefix are ckpt's (a temp tree inside a mount point). */
  old?: {root: Buffer; dev: bigint; ownPrefix?: Buffer}
  /** Directories whose files are indexed up front. */
  seeds?: readonly string[]
  /** Trust no stat: hash every old file before reusing it. */
  verifyExisting?: boolean
  /** Most chunks indexed (tests lower it). */
  maxChunks?: number
  /** The racy window for clear (not whole-second) timestamps, ns (tests change it). */
  racyNs?: bigint
  /** A snapshot of the tree being replaced: what it recorded of an old file spares cutting it (see above). */
  known?: KnownTree
}

/** A snapshot of the tree being replaced, and how to read it. */
export interface KnownTree {
  /** Its root tree. */
  tree: Buffer
  /** When it began (its manifest's startTimeNs). */
  startNs: bigint
  readTree(id: Buffer): Promise<readonly TreeNode[]>
  /** A chunk's plain length, from the repository's index (undefined: not there). */
  chunkLength(id: Buffer): number | undefined
}

/** The same inode, untouched between the two stats (any write, truncate or metadata change moves ctime). */
export function unchanged(now: BigIntStats, then: BigIntStats): boolean {
  return now.ino === then.ino && now.dev === then.dev && now.size === then.size && now.mtimeNs === then.mtimeNs && now.ctimeNs === then.ctimeNs
}

const keyOf = (id: Uint8Array): number => (id[0]! * 2 ** 40) + (id[1]! * 2 ** 32) + ((id[2]! << 24) >>> 0) + (id[3]! << 16) + (id[4]! << 8) + id[5]!

export class LocalChunks implements ChunkSource {
  /** Seed files not indexed because the index was full. */
  skippedSeedFiles = 0
  /** Files read and hashed (old files and seeds). */
  filesHashed = 0
  private readonly files: Buffer[] = []
  private readonly index = new Map<number, Located>()
  private readonly scanner: StreamScanner
  private pool_: HashPool | undefined
  private inodes: Map<bigint, Buffer> | undefined
  private readonly maxChunks: number
  /** Directories of the old tree (relative, latin1) known to be directories, not symlinks, all the way down. */
  private readonly dirs = new Map<string, boolean>()
  private bufs: Buffer[] | undefined
  /** Bases by path below the restore root (latin1), until their file is written. */
  private readonly bases = new Map<string, LocalBase>()
  /** Listings of the known tree's directories by path (latin1); null: not a directory there. */
  private readonly knownDirs = new Map<string, Map<string, TreeNode> | null>()

  constructor(private readonly opts: LocalOptions) {
    this.scanner = new StreamScanner(opts.chunker, () => this.pool())
    this.maxChunks = opts.maxChunks ?? MAX_CHUNKS
  }

  get chunks(): number {
    return this.index.size
  }

  /** Index every regular file under the seed directories. */
  async indexSeeds(): Promise<void> {
    for (const seed of this.opts.seeds ?? []) await this.indexDir(Buffer.from(seed))
  }

  async wholeFile(node: TreeNode, rel: Buffer): Promise<LocalFile | undefined> {
    const old = this.opts.old
    if (!old || node.type !== 'file') return undefined
    // Synchronous stats: microseconds each, less than a trip through the thread pool (DESIGN.md).
    let foundRel = rel
    let found = this.realDir(dirOf(rel)) ? regularFile(childPath(old.root, rel)) : undefined
    if (!found) {
      // Renamed since the snapshot? A rename keeps the inode, and the mtime.
      const moved = (await this.oldInodes()).get(node.ino)
      const cand = moved && regularFile(childPath(old.root, moved))
      if (cand && cand.st.mtimeNs === node.mtimeNs && cand.st.dev === old.dev) {
        found = cand
        foundRel = moved
      }
    }
    if (!found) return undefined
    const {path, st} = found
    const untouched = st.ino === node.ino && st.ctimeNs === node.ctimeNs && st.size === BigInt(node.size) && st.mtimeNs === node.mtimeNs && st.dev === old.dev
    if (untouched && !this.opts.verifyExisting) return {path, st, sameInode: true}
    // What the known snapshot recorded of it, or else cut and hash it: its chunks are indexed
    // either way, for this file or a later one.
    const cut = (this.opts.verifyExisting ? undefined : await this.recorded(foundRel, path, st)) ?? (await this.indexFile(path, true))
    if (!cut || node.extents) return undefined
    const want = node.chunks ?? []
    if (cut.size === node.size && cut.ids.length === want.length && cut.ids.every((id, i) => id.equals(want[i]!))) {
      return {path, st: cut.st, sameInode: cut.st.ino === node.ino && cut.st.dev === old.dev, attrs: cut.attrs}
    }
    if (cut.size >= BASE_MIN && changedBefore(cut.st.ctimeNs, cut.hashedAtNs, this.opts.racyNs ?? RACY_WINDOW_NS) && this.bases.size < MAX_BASES) {
      this.bases.set(rel.toString('latin1'), fileBase(path, cut))
    }
    return undefined
  }

  baseOf(rel: Buffer): LocalBase | undefined {
    const key = rel.toString('latin1')
    const base = this.bases.get(key)
    this.bases.delete(key)
    return base
  }

  has(id: Buffer, length: number): boolean {
    return this.index.get(keyOf(id))?.length === length
  }

  async read(chunks: readonly {id: Buffer; length: number}[], dst: Buffer, at: readonly number[]): Promise<boolean[]> {
    const ok = chunks.map(() => false)
    const views: Buffer[] = []
    const which: number[] = []
    // Sorted by file and offset, so each file is opened once and read front to back.
    const order = chunks.map((c, i) => ({i, loc: this.index.get(keyOf(c.id))})).filter((x) => x.loc && x.loc.length === chunks[x.i]!.length)
    order.sort((a, b) => a.loc!.file - b.loc!.file || a.loc!.offset - b.loc!.offset)
    let fh: fsp.FileHandle | undefined
    let open = -1
    try {
      for (const {i, loc} of order) {
        if (loc!.file !== open) {
          await fh?.close()
          fh = undefined
          open = loc!.file
          fh = await fsp.open(this.files[open]!, fsc.O_RDONLY | fsc.O_NOFOLLOW).catch(() => undefined)
        }
        if (!fh) continue
        const view = dst.subarray(at[i]!, at[i]! + loc!.length)
        const got = await readFull(fh, view, loc!.offset).catch(() => 0)
        if (got !== loc!.length) continue
        views.push(view)
        which.push(i)
      }
    } finally {
      await fh?.close()
    }
    // Tests rewrite a seed here, between the read and the check: the check must catch it.
    faultPoint('restore.local-read')
    const ids = await this.pool().hash(views)
    ids.forEach((id, k) => {
      const i = which[k]!
      ok[i] = id.equals(chunks[i]!.id)
    })
    return ok
  }

  async close(): Promise<void> {
    await this.pool_?.close()
  }

  private pool(): HashPool {
    return (this.pool_ ??= new HashPool())
  }

  private async indexDir(dir: Buffer): Promise<void> {
    let entries
    try {
      entries = await fsp.readdir(dir, {withFileTypes: true, encoding: 'buffer'})
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'EACCES' || errnoCode(err) === 'ENOTDIR') return
      throw err
    }
    for (const e of entries) {
      const abs = childPath(dir, e.name)
      if (e.isDirectory()) await this.indexDir(abs)
      else if (e.isFile()) {
        if (this.index.size >= this.maxChunks) this.skippedSeedFiles++
        else await this.indexFile(abs, false)
      }
    }
  }

  /**
   * The chunks the known snapshot recorded for the old file at `rel` (stat `st`), indexed as
   * found at their offsets in it, when that record is its content (see above); else undefined.
   */
  private async recorded(rel: Buffer, path: Buffer, st: BigIntStats): Promise<Cut | undefined> {
    const known = this.opts.known
    if (!known) return undefined
    const dir = dirOf(rel)
    const n = (await this.knownListing(dir))?.get(rel.subarray(dir ? dir.length + 1 : 0).toString('latin1'))
    if (n?.type !== 'file' || !n.chunks || n.extents || n.legacy) return undefined
    if (n.ino !== st.ino || n.ctimeNs !== st.ctimeNs || n.mtimeNs !== st.mtimeNs || BigInt(n.size) !== st.size || (n.dev !== undefined && n.dev !== st.dev)) return undefined
    if (!changedBefore(st.ctimeNs, known.startNs, this.opts.racyNs ?? RACY_WINDOW_NS) || !changedBefore(st.mtimeNs, known.startNs, this.opts.racyNs ?? RACY_WINDOW_NS)) return undefined
    const lengths: number[] = []
    let size = 0
    for (const id of n.chunks) {
      const length = known.chunkLength(id)
      if (length === undefined) return undefined
      lengths.push(length)
      size += length
    }
    if (size !== n.size) return undefined
    const file = this.files.push(path) - 1
    let offset = 0
    n.chunks.forEach((id, i) => {
      this.index.set(keyOf(id), {file, offset, length: lengths[i]!})
      offset += lengths[i]!
    })
    return {ids: n.chunks, lengths, size, st, hashedAtNs: known.startNs, attrs: {xattrs: n.xattrs, flags: n.flags}}
  }

  /** The known tree's directory at `dir` (undefined: the root), by name; undefined when it has none there or cannot be read. */
  private async knownListing(dir: Buffer | undefined): Promise<Map<string, TreeNode> | undefined> {
    const key = dir ? dir.toString('latin1') : ''
    const cached = this.knownDirs.get(key)
    if (cached !== undefined) return cached ?? undefined
    let tree: Buffer | undefined
    if (!dir) tree = this.opts.known!.tree
    else {
      const up = dirOf(dir)
      const n = (await this.knownListing(up))?.get(dir.subarray(up ? up.length + 1 : 0).toString('latin1'))
      tree = n?.type === 'dir' ? n.subtree : undefined
    }
    let listing: Map<string, TreeNode> | null = null
    // Only a shortcut: a tree that cannot be read (damaged, gone) leaves its files to be cut.
    const nodes = tree && (await this.opts.known!.readTree(tree).catch(() => undefined))
    if (nodes) listing = new Map(nodes.map((n) => [n.name.toString('latin1'), n]))
    if (this.knownDirs.size >= MAX_KNOWN_DIRS) this.knownDirs.clear()
    this.knownDirs.set(key, listing)
    return listing ?? undefined
  }

  /**
   * Cut `path` with the repository's chunker and index its chunks; returns its chunk ids, size
   * and stat, or undefined when it cannot be read or changed while it was read.
   */
  private async indexFile(path: Buffer, always: boolean): Promise<Cut | undefined> {
    const hashedAtNs = BigInt(Date.now()) * 1_000_000n
    this.filesHashed++
    let fh: fsp.FileHandle
    try {
      fh = await fsp.open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW)
    } catch {
      return undefined
    }
    // A read ahead still running when the loop stops must end before the buffer is used again;
    // so must the hash of the buffer before.
    let reading: Promise<number> | undefined
    let hashing: Promise<unknown> | undefined
    try {
      const before = await fh.stat({bigint: true})
      if (!before.isFile()) return undefined
      const file = this.files.push(path) - 1
      const ids: Buffer[] = []
      const lengths: number[] = []
      // Three buffers for every file (files are cut one at a time: the walk awaits each): while
      // one is cut, the one before is hashed (the two jobs on two cores) and the next is read.
      // Each keeps `front` bytes before its read for the unfinished chunk of the buffer before
      // (shorter than the chunker's maxSize).
      const front = this.opts.chunker.maxSize
      const bufs = (this.bufs ??= [0, 1, 2].map(() => hashBuffer(front + READ_SIZE)))
      let k = 0
      let carry: Buffer = Buffer.alloc(0)
      let offset = 0 // file offset of the carry's first byte
      let pos = 0 // file offset of the next read
      // The chunks of the buffer cut last, at their file offsets, until their ids are in.
      let cut: {ids: Promise<Buffer[]>; at: number[]; lengths: number[]} | undefined
      const take = async (): Promise<void> => {
        if (!cut) return
        const got = await cut.ids
        got.forEach((id, i) => {
          ids.push(id)
          lengths.push(cut!.lengths[i]!)
          if (always || this.index.size < this.maxChunks) this.index.set(keyOf(id), {file, offset: cut!.at[i]!, length: cut!.lengths[i]!})
        })
        cut = undefined
      }
      this.scanner.reset()
      reading = readFull(fh, bufs[0]!.subarray(front, front + READ_SIZE), 0)
      for (;;) {
        const n: number = await reading!
        const buf = bufs[k % 3]!
        const final: boolean = n < READ_SIZE
        pos += n
        // The carry leaves the buffer before (being hashed: read only) for this one.
        carry.copy(buf, front - carry.length)
        const data = buf.subarray(front - carry.length, front + n)
        // Into the buffer two before this one, whose chunks are hashed and taken.
        reading = final ? undefined : readFull(fh, bufs[(k + 1) % 3]!.subarray(front, front + READ_SIZE), pos)
        reading?.catch(() => undefined) // reported when awaited
        const scanned = await this.scanner.scan(data, carry.length, final)
        await take()
        const at: number[] = []
        const lens: number[] = []
        let o = 0
        for (const c of scanned.chunks) {
          at.push(offset + o)
          lens.push(c.length)
          o += c.length
        }
        cut = {ids: scanned.ids, at, lengths: lens}
        hashing = scanned.ids.catch(() => undefined)
        if (final) {
          offset += o
          break
        }
        carry = data.subarray(scanned.rest)
        offset += scanned.rest
        k++
      }
      await take()
      const after = await fh.stat({bigint: true})
      if (!unchanged(after, before)) return undefined
      return {ids, lengths, size: offset, st: after, hashedAtNs}
    } finally {
      await reading?.catch(() => undefined)
      await hashing
      await fh.close()
    }
  }

  /**
   * Whether the old tree's `rel` is a real directory at every level: a path through a symlink
   * there (a directory replaced by a link since the snapshot) must not reach a file outside.
   */
  private realDir(rel: Buffer | undefined): boolean {
    if (!rel) return true
    const key = rel.toString('latin1')
    const known = this.dirs.get(key)
    if (known !== undefined) return known
    let ok = this.realDir(dirOf(rel))
    if (ok) ok = regularOrDir(childPath(this.opts.old!.root, rel))?.isDirectory() ?? false
    if (this.dirs.size >= MAX_INODES) this.dirs.clear()
    this.dirs.set(key, ok)
    return ok
  }

  /** Regular files of the old tree by inode (listed once, on first need). */
  private async oldInodes(): Promise<Map<bigint, Buffer>> {
    if (this.inodes) return this.inodes
    this.inodes = new Map()
    const list = async (dir: Buffer, rel: Buffer | undefined): Promise<void> => {
      let entries
      try {
        entries = await fsp.readdir(dir, {withFileTypes: true, encoding: 'buffer'})
      } catch {
        return
      }
      const own = rel ? undefined : this.opts.old!.ownPrefix
      for (const e of entries) {
        if (this.inodes!.size >= MAX_INODES) return
        // A restore in place of a mount point writes its temp tree inside the old one: not old files.
        if (own && e.name.subarray(0, own.length).equals(own)) continue
        const childRel = rel ? childPath(rel, e.name) : e.name
        if (e.isDirectory()) await list(childPath(dir, e.name), childRel)
        else if (e.isFile()) {
          const st = await fsp.lstat(childPath(dir, e.name), {bigint: true}).catch(() => undefined)
          if (st) this.inodes!.set(st.ino, childRel)
        }
      }
    }
    await list(this.opts.old!.root, undefined)
    return this.inodes
  }
}

/** A file cut and hashed: its chunks in order, and its stat once read (when the read started: hashedAtNs, wall clock). */
interface Cut {
  ids: Buffer[]
  lengths: number[]
  size: number
  st: BigIntStats
  hashedAtNs: bigint
  /** Its xattrs and flags as the known snapshot recorded them (undefined: hashed, not recorded). */
  attrs?: Pick<TreeNode, 'xattrs' | 'flags'>
}

function fileBase(path: Buffer, cut: Cut): LocalBase {
  // Whole ids, not the index's lossy keys: a kept range of a clone is not read again.
  const at = new Map<number, {id: Buffer; length: number}>()
  let offset = 0
  cut.ids.forEach((id, i) => {
    at.set(offset, {id, length: cut.lengths[i]!})
    offset += cut.lengths[i]!
  })
  return {path, st: cut.st, holds: (o, id, length) => {
    const c = at.get(o)
    return c !== undefined && c.length === length && c.id.equals(id)
  }}
}

/** The directory part of a relative path, or undefined at the top. */
function dirOf(rel: Buffer): Buffer | undefined {
  const slash = rel.lastIndexOf(0x2f)
  return slash < 0 ? undefined : rel.subarray(0, slash)
}

function regularFile(path: Buffer): {path: Buffer; st: BigIntStats} | undefined {
  const st = regularOrDir(path)
  return st?.isFile() ? {path, st} : undefined
}

/** lstat, or undefined when there is nothing there to reuse. */
function regularOrDir(path: Buffer): BigIntStats | undefined {
  try {
    return lstatSync(path, {bigint: true, throwIfNoEntry: false})
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR' || errnoCode(err) === 'ENAMETOOLONG' || errnoCode(err) === 'EACCES') return undefined
    throw err
  }
}

/** Read until `buf` is full or the file ends: the bytes read. */
async function readFull(fh: fsp.FileHandle, buf: Buffer, position: number): Promise<number> {
  let done = 0
  while (done < buf.length) {
    const {bytesRead} = await fh.read(buf, done, buf.length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}
