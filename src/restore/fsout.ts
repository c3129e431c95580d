// The filesystem output of the restore reader: makes a snapshot's entries in a fresh directory
// (restore's temp tree). Small files are written a batch at a time as one thread-pool job
// (writeNewFiles: created, written, owned, moded and timed), beside the main thread; without the
// addon, with synchronous calls. Large files are written piece by piece at their offsets (holes
// of sparse files are left unwritten and the size set at the end), then flushed in the background
// (fdatasync, when a flush is free), so their data goes to disk while the rest is restored and
// the syncfs that ends the restore finds little left to write. Later names of a hard-linked inode
// are links to the first.
//
// Metadata goes on in one order: owner (chown clears setuid bits and file capabilities), xattrs
// (an access ACL sets the group mode bits), mode, times, then inode flags (an immutable or
// append-only inode refuses every later change). A directory gets all of it once everything in
// it is written: its mtime would change otherwise, and a read-only mode would refuse its
// children. Files of a batch get their xattrs and flags after the batch (the native writer sets
// owner, mode and times; an xattr moves only ctime, and an ACL's mode is set again). An
// immutable or append-only file with other names gets its flags at the end (link(2) refuses it).
// What the target refuses (a namespace of xattrs, inode flags, device nodes without root) is a
// warning per kind (warnings.ts), not a failure.
//
// Paths of any length: a directory whose path grows past VIA_MAX is opened, and its entries are
// named through that descriptor (/proc/self/fd/N/name, core/longpath.ts), so no path handed to
// the kernel nears PATH_MAX however deep the tree. A directory holds the descriptors its paths use
// until it is done; descriptors open at once are at most one per VIA_MAX bytes of depth for each
// directory not yet done (the walk's path, and those with batches or large files in flight).
//
// Every entry is created fresh (O_EXCL, mkdir, mknod, symlink, link) inside a directory this
// restore created, files with O_NOFOLLOW; names come checked from decodeTree.
import {closeSync, constants as fsc, fchmodSync, fchownSync, lchownSync, chmodSync, linkSync, lstatSync, mkdirSync, openSync, promises as fsp, symlinkSync, writeSync, writevSync} from 'node:fs'

import {errnoCode} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {makeNode, removeXattr, writeFlags, writeXattr, xattrKind} from '../core/fsextra.js'
import {setTimesNs, writeNewFiles, type NewFile} from '../core/fsmeta.js'
import {DirRef, LongPaths} from '../core/longpath.js'
import type {Repository} from '../repo/repository.js'
import type {ExcludeMatcher} from '../snapshot/exclude.js'
import {childPath, FS_FLAGS_LOCKING, type TreeNode} from '../snapshot/tree.js'
import {type ChunkSource, type LocalBase, type LocalFile, unchanged} from './local.js'
import {carryExisting} from './reuse.js'
import {type LinkTarget, type Piece, type ReaderProgress, type RestoreOutput, type SmallFile, TreeReader} from './reader.js'
import {type RestoreWarning, RestoreWarnings} from './warnings.js'

/** Large files written at once: writes to one file take turns in the kernel, to two need not. */
const LARGE_LANES = 2
/** Background flushes of written large files at once (each holds a thread of the pool), and the smallest file flushed. */
const FLUSHES = 2
const FLUSH_MIN = 8 * 1024 * 1024
/**
 * Longest path a directory's entries are named through: with "/", a name of 255 bytes and the
 * NUL it stays under PATH_MAX (4096). A deeper directory is opened and named by its descriptor.
 */
const VIA_MAX = 4096 - 1 - 255 - 1 - 64
/** copyFile errors meaning this filesystem (or this pair of them) does not share extents. */
const NO_CLONE = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ENOTTY'])
/** Flags an inode refuses links and most changes under. */

export type Meta = Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'> & Partial<Pick<TreeNode, 'xattrs' | 'flags'>>

/** An open directory its descendants are named through, closed when the last of them is done. */
class Anchor {
  private users = 1

  constructor(readonly ref: DirRef, private readonly open: Set<Anchor>) {
    open.add(this)
  }

  hold(): this {
    this.users++
    return this
  }

  release(): void {
    if (--this.users === 0) this.close()
  }

  close(): void {
    if (!this.open.delete(this)) return
    this.ref.close()
  }
}

/** A directory this restore made, and the metadata it gets once complete. */
export interface FsDir {
  /**
   * Its full path while that fits VIA_MAX (the root's always). A deeper directory keeps its
   * parent and name instead (fullPath() joins them when needed): a full path per directory would
   * cost memory quadratic in the depth of a tree of short names.
   */
  abs?: Buffer
  up?: FsDir
  name?: Buffer
  rel: string
  meta: Meta
  /** A path the kernel takes that names its entries' parent: `abs`, or through an anchor. Default: abs. */
  via?: Buffer
  /** A path naming the directory itself, not through its own descriptor (lchown and O_NOFOLLOW would take /proc/self/fd/N for the link it is). Default: abs. */
  self?: Buffer
  /** The anchor `via` goes through (undefined: none). */
  anchor?: Anchor
  /** Anchors its paths use, released when it is done. */
  held?: Anchor[]
  done?: boolean
}

/** Special files made, by kind, and those that could not be. */
export interface SpecialCounts {
  fifos: number
  devices: number
  skipped: number
}

export class FsOutput implements RestoreOutput<FsDir> {
  /**
   * `shareReused`: a file reused from the replaced tree may be a hard link to its inode. Not when
   * the replaced tree is kept (--keep-old): the two trees must not share what a write would change.
   */
  constructor(private readonly shareReused = true, warnings: readonly RestoreWarning[] = []) {
    this.warnings = new RestoreWarnings(warnings)
  }

  readonly ordered = false
  readonly lanes = LARGE_LANES
  readonly warnings: RestoreWarnings
  readonly specialCounts: SpecialCounts = {fifos: 0, devices: 0, skipped: 0}
  /** Whether clones can still be tried (false after the filesystem refused one). */
  private clones = true
  private readonly root = process.getuid?.() === 0
  private readonly flushes = new Set<Promise<void>>()
  private flushFailure: {error: unknown} | undefined
  /** Flags of hard-linked files that would refuse their later names, set by finish(). */
  private readonly lateFlags: {abs: Buffer; rel: string; flags: number}[] = []
  /** Anchors open (all closed by close(), whatever failed). */
  private readonly anchors = new Set<Anchor>()

  dir(parent: FsDir, node: TreeNode, rel: string): FsDir {
    const self = this.path(parent, node)
    mkdirSync(self, 0o700)
    const held: Anchor[] = parent.anchor ? [parent.anchor.hold()] : []
    let via = self
    let anchor = parent.anchor
    if (self.length > VIA_MAX) {
      anchor = new Anchor(DirRef.open(self), this.anchors)
      held.push(anchor)
      via = anchor.ref.path
    }
    const abs = parent.abs && parent.abs.length + 1 + node.name.length <= VIA_MAX ? childPath(parent.abs, node.name) : undefined
    return {abs, up: parent, name: node.name, rel, meta: node, via, self, anchor, held}
  }

  dirDone(dir: FsDir): void {
    const self = dir.self ?? dir.abs!
    try {
      this.applyMeta(self, dir.meta, dir.rel)
      this.applyFlags(self, dir.meta, dir.rel)
    } finally {
      dir.done = true
      for (const a of dir.held ?? []) a.release()
      dir.held = undefined
    }
  }

  symlink(parent: FsDir, node: TreeNode, rel: string): void {
    const p = this.path(parent, node)
    symlinkSync(node.target!, p)
    this.applyMeta(p, node, rel)
  }

  /** FIFOs always; device nodes when root (else skipped, with one warning). */
  special(parent: FsDir, node: TreeNode, rel: string): void {
    const device = node.type !== 'fifo'
    if (device && !this.root) {
      this.specialCounts.skipped++
      this.warnings.add('device:not-root', rel, 'device nodes need root to restore: not restored')
      return
    }
    const p = this.path(parent, node)
    let made: string
    try {
      made = makeNode(p, node.type as 'fifo' | 'chardev' | 'blockdev', 0o600, node.rdev?.major, node.rdev?.minor)
    } catch (err) {
      const code = errnoCode(err)
      // A container without CAP_MKNOD, a filesystem mounted nodev that refuses them.
      if (!device || (code !== 'EPERM' && code !== 'EACCES')) throw err
      made = code
    }
    if (made !== 'ok') {
      this.specialCounts.skipped++
      const why = made === 'unavailable' ? 'the native addon is not built: FIFOs and device nodes are not restored' : `this system refuses to make device nodes here (${made}): not restored`
      this.warnings.add(made === 'unavailable' ? 'special:unavailable' : `device:${made}`, rel, why)
      return
    }
    if (device) this.specialCounts.devices++
    else this.specialCounts.fifos++
    this.applyMeta(p, node, rel)
  }

  link(parent: FsDir, node: TreeNode, rel: string, first: LinkTarget<FsDir>): void {
    const to = this.path(parent, node)
    const dir = first.dir
    // A finished directory's descriptors may be closed: reach it from the top again.
    if (dir.done && dir.anchor) {
      const long = new LongPaths()
      try {
        linkSync(long.short(childPath(fullPath(dir), first.node.name)), to)
      } finally {
        long.close()
      }
      return
    }
    linkSync(childPath(dir.via ?? dir.abs!, first.node.name), to)
  }

  async smallFiles(batch: readonly SmallFile<FsDir>[]): Promise<void> {
    const files: NewFile[] = batch.map(({dir, node, parts}) => ({path: this.path(dir, node), parts, mode: node.mode, uid: node.uid, gid: node.gid, mtimeNs: node.mtimeNs}))
    // One job on the thread pool for the whole batch; without the addon, here, one call at a time.
    if (!(await writeNewFiles(files, this.root))) for (const f of files) this.writeSmallFile(f)
    batch.forEach(({dir, node, rel}, i) => {
      if (!node.xattrs && !node.flags) return
      const p = files[i]!.path
      if (node.xattrs && this.applyXattrs(p, node, rel)) chmodSync(p, node.mode)
      this.applyFlags(p, node, rel, dir)
    })
  }

  async largeFile(dir: FsDir, node: TreeNode, rel: string, pieces: AsyncIterable<Piece>): Promise<void> {
    const p = this.path(dir, node)
    const fh = await fsp.open(p, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    let end = 0
    await this.fill(fh, p, dir, node, rel, async () => {
      for await (const piece of pieces) end = piece.offset + (await writeAllAt(fh, piece.parts, piece.offset))
      // A sparse file's last hole is its size past the last data.
      if (end < node.size) await fh.truncate(node.size)
    })
  }

  // ---- delta restore: clone and patch (local.ts, "Can the changed file start as a clone") ----
  async largeFileFrom(dir: FsDir, node: TreeNode, rel: string, base: LocalBase, pieces: AsyncIterable<Piece>): Promise<boolean> {
    if (!this.clones) return false
    const p = this.path(dir, node)
    // Tests rewrite the base here, between its hash and its clone: the stat after the clone must say so.
    faultPoint('restore.clone')
    try {
      await fsp.copyFile(base.path, p, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE_FORCE)
    } catch (err) {
      const code = errnoCode(err) ?? ''
      // No extents shared on this filesystem (ext4, tmpfs): every later file would fail the same
      // way. Across two (a mount inside the tree, EXDEV): only this file.
      if (NO_CLONE.has(code)) this.clones = code === 'EXDEV'
      else if (code !== 'ENOENT') throw err
      await fsp.rm(p, {force: true})
      return false
    }
    const now = lstatSync(base.path, {bigint: true, throwIfNoEntry: false})
    const st = base.st
    if (!now || !unchanged(now, st)) {
      await fsp.rm(p, {force: true})
      return false
    }
    const fh = await fsp.open(p, fsc.O_WRONLY | fsc.O_NOFOLLOW)
    await this.fill(fh, p, dir, node, rel, async () => {
      if (BigInt(node.size) !== st.size) await fh.truncate(node.size)
      for await (const piece of pieces) await writeAllAt(fh, piece.parts, piece.offset)
    })
    return true
  }

  /** Write a file's data into `fh` (`write`), then its metadata, then start its flush; closes fh. */
  private async fill(fh: fsp.FileHandle, p: Buffer, dir: FsDir, node: TreeNode, rel: string, write: () => Promise<void>): Promise<void> {
    let flushing = false
    try {
      await write()
      if (this.root) fchownSync(fh.fd, node.uid, node.gid)
      if (node.xattrs) this.applyXattrs(p, node, rel)
      fchmodSync(fh.fd, node.mode)
      setTimesNs(p, node.mtimeNs, node.mtimeNs)
      this.applyFlags(p, node, rel, dir)
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
    const abs = this.path(dir, node)
    const made = await carryExisting(from, abs, node, this.shareReused)
    if (made === 'copied') {
      this.applyMeta(abs, node, rel)
      this.applyFlags(abs, node, rel, dir)
    }
    return made !== 'changed'
  }
  // ---- end delta restore ----

  /** Wait for the background flushes (throws the first that failed), then (`complete`: the tree is whole) set the flags held back. */
  async finish(complete = true): Promise<void> {
    while (this.flushes.size > 0) await Promise.all(this.flushes)
    if (this.flushFailure) throw this.flushFailure.error
    if (!complete || this.lateFlags.length === 0) return
    const long = new LongPaths()
    try {
      for (const f of this.lateFlags.splice(0)) setFlags(long.short(f.abs), false, f.flags, f.rel, this.warnings)
    } finally {
      long.close()
    }
  }

  /** Close the descriptors of directories left unfinished (after a failure). */
  close(): void {
    for (const a of [...this.anchors]) a.close()
  }

  /** A path the kernel takes for `node` in `dir`. */
  /** Give an existing directory (not written by this output) the owner, xattrs, mode and times of `meta`, as dirDone gives one it wrote. */
  setDirMeta(p: Buffer, meta: Meta): void {
    this.applyMeta(p, meta, '')
  }

  private path(dir: FsDir, node: TreeNode): Buffer {
    return childPath(dir.via ?? dir.abs!, node.name)
  }

  /** Owner (when root), xattrs, mode, then times. */
  private applyMeta(p: Buffer, meta: Meta, rel: string): void {
    if (this.root) lchownSync(p, meta.uid, meta.gid)
    if (meta.xattrs) this.applyXattrs(p, meta, rel)
    if (meta.type !== 'symlink') chmodSync(p, meta.mode)
    setTimesNs(p, meta.mtimeNs, meta.mtimeNs)
  }

  /**
   * Set the node's xattrs; what the target refuses is a warning per kind. Returns true when an
   * access ACL was set: it rewrote the group mode bits, so the mode must be set after it.
   */
  private applyXattrs(p: Buffer, meta: Meta, rel: string): boolean {
    let acl = false
    for (const x of meta.xattrs ?? []) {
      const kind = xattrKind(x.name)
      if (!this.root && (kind === 'trusted' || kind === 'security')) {
        this.warnings.add(`xattr:${kind}:not-root`, rel, `${kind}.* extended attributes need root to restore: not restored`)
        continue
      }
      let done: string
      try {
        done = writeXattr(p, x.name, x.value)
      } catch (err) {
        done = refusedXattr(err)
      }
      if (done === 'ok') {
        if (kind === 'acl') acl = true
        continue
      }
      this.warnings.add(done === 'unavailable' ? 'xattr:unavailable' : `xattr:${kind}:${done}`, rel, xattrWarning(kind, done, meta.type))
    }
    return acl
  }

  /** Inode flags, last of all (an immutable inode refuses any change after them). */
  private applyFlags(p: Buffer, meta: Meta, rel: string, dir?: FsDir): void {
    if (!meta.flags) return
    const isDir = meta.type === 'dir'
    // link(2) refuses an immutable or append-only inode: its other names come first.
    if (!isDir && (meta.flags & FS_FLAGS_LOCKING) !== 0 && (meta as TreeNode).nlink !== undefined && dir) {
      this.lateFlags.push({abs: childPath(fullPath(dir), (meta as TreeNode).name), rel, flags: meta.flags})
      return
    }
    setFlags(p, isDir, meta.flags, rel, this.warnings)
  }

  /** Create, write, own, mode and time one small file, with synchronous calls (without the addon). */
  private writeSmallFile(f: NewFile): void {
    const fd = openSync(f.path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    try {
      if (f.parts.length === 1) writeAllSync(fd, f.parts[0]!)
      else if (f.parts.length > 1) writevAllSync(fd, f.parts)
      if (this.root) fchownSync(fd, f.uid, f.gid)
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

/** Set inode flags; what the target refuses is a warning per cause. */
function setFlags(p: Buffer, dir: boolean, flags: number, rel: string, warnings: RestoreWarnings): void {
  let done: string
  try {
    done = writeFlags(p, dir, flags)
  } catch (err) {
    const code = errnoCode(err)
    if (code !== 'EPERM' && code !== 'EACCES' && code !== 'EOPNOTSUPP') throw err
    done = code
  }
  if (done === 'ok') return
  const why =
    done === 'unavailable' ? 'the native addon is not built: inode flags (chattr) are not restored'
    : done === 'unsupported' ? 'this filesystem has no inode flags (chattr): not restored'
    : `inode flags (chattr) could not be set (${done}; immutable and append-only need root): not restored`
  warnings.add(`flags:${done}`, rel, why)
}

/**
 * Give the restored root directory its inode flags (the manifest's), once it is in place: last of
 * all, as any directory's, and after the swap and what is carried into it, which an immutable or
 * append-only directory would refuse. A refusal joins `warnings` (the tree's, counted as theirs).
 */
export function setRootFlags(root: string, flags: number | undefined, warnings: RestoreWarning[]): void {
  if (!flags) return
  const w = new RestoreWarnings(warnings)
  setFlags(Buffer.from(root), true, flags, '', w)
  warnings.splice(0, warnings.length, ...w.list())
}

/** The full path of `dir`, however deep. */
function fullPath(dir: FsDir): Buffer {
  const names: Buffer[] = []
  let d: FsDir | undefined = dir
  for (; d && !d.abs; d = d.up) names.push(d.name!)
  if (!d) throw new Error('restore: a directory without a path')
  const parts = [d.abs!]
  for (let i = names.length - 1; i >= 0; i--) parts.push(Buffer.from('/'), names[i]!)
  return Buffer.concat(parts)
}

/** Errors of setxattr that say "not here" rather than "failed": the entry is restored without it. */
function refusedXattr(err: unknown): string {
  const code = errnoCode(err)
  // EPERM: user.* on a symlink or special file (Linux allows them on files and directories
  // only), or a namespace this user may not write; E2BIG/ENOSPC: a value larger than this
  // filesystem holds (ext4 without ea_inode: one block); EINVAL: an ACL this kernel will not take.
  if (code === 'EPERM' || code === 'EACCES' || code === 'E2BIG' || code === 'ENOSPC' || code === 'EINVAL' || code === 'EOPNOTSUPP') return code
  throw err
}

function xattrWarning(kind: string, why: string, type: string): string {
  const what = kind === 'acl' ? 'POSIX ACLs' : `${kind}.* extended attributes`
  if (why === 'unavailable') return 'the native addon is not built: extended attributes and ACLs are not restored'
  if (why === 'unsupported') return `this filesystem does not support ${what}: not restored`
  if (why === 'EPERM' && kind === 'user' && type !== 'file' && type !== 'dir') return `${what} on symlinks and special files are refused by Linux: not restored`
  if (why === 'E2BIG' || why === 'ENOSPC') return `${what} too large for this filesystem (${why}): not restored`
  return `${what} refused (${why}): not restored`
}

export interface TreeCounts {
  files: number
  dirs: number
  symlinks: number
  /** FIFOs and device nodes made, and those that could not be (a warning says why). */
  fifos: number
  devices: number
  skippedSpecials: number
  /** Later names of hard-linked files, made as links (counted in `files` too). */
  links: number
  bytes: number
  warnings: RestoreWarning[]
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
export async function writeTree(repo: Repository, treeId: Buffer, root: Buffer, rootMeta: Meta, includes: string[][] | undefined, opts: {onProgress?: (p: ReaderProgress) => void; maxBytes?: number; exclude?: ExcludeMatcher; local?: ChunkSource; shareReused?: boolean} = {}): Promise<TreeCounts> {
  const output = new FsOutput(opts.shareReused ?? true)
  const reader = new TreeReader(repo, output, opts.onProgress, opts.maxBytes, opts.local)
  try {
    await reader.read(treeId, {abs: root, rel: '', meta: rootMeta}, includes, opts.exclude)
  } catch (err) {
    await output.finish(false).catch(() => undefined) // the first failure is the one reported
    throw err
  } finally {
    output.close()
  }
  await output.finish()
  const {fifos, devices, skipped} = output.specialCounts
  return {
    files: reader.files + reader.links, dirs: reader.dirs, symlinks: reader.symlinks, fifos, devices, skippedSpecials: skipped, links: reader.links, bytes: reader.bytes, warnings: output.warnings.list(),
    filesReused: reader.filesReused, bytesReused: reader.bytesReused + reader.bytesLocal, bytesFromRepository: reader.bytesFromRepository,
  }
}

const INHERITED_ACLS = [Buffer.from('system.posix_acl_access'), Buffer.from('system.posix_acl_default')]

/**
 * Remove the ACLs the directory `dir`, just made for a restored tree, took from its parent's
 * default ACL: every entry written below it would inherit them, and the snapshot recorded none of
 * them (the entries' own ACLs, the root's included, are set from the snapshot afterwards).
 */
export function dropInheritedAcls(dir: string): void {
  for (const name of INHERITED_ACLS) {
    try {
      removeXattr(dir, name)
    } catch (err) {
      if (errnoCode(err) !== 'ENODATA') throw err
    }
  }
}

/**
 * Give the restored root `root` (a mount point, filled from inside: not written by an output) the
 * snapshot root's owner, xattrs, mode and times; what it refuses joins `warnings`, by kind. Its
 * flags: setRootFlags, last.
 */
export function setRootMeta(root: string, meta: Meta, warnings: RestoreWarning[]): void {
  const output = new FsOutput(true, warnings)
  try {
    output.setDirMeta(Buffer.from(root), meta)
  } finally {
    output.close()
  }
  warnings.splice(0, warnings.length, ...output.warnings.list())
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
