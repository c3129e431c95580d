// `verify ID --source DIR`: compare a snapshot with a directory, entry by entry: type, content,
// mode, mtime (ns), symlink target, owner (when run as root, as only root's restore sets owners),
// and entries missing from or extra in the directory. For bitrot checks against the live
// source and for "did the restore match".
//
// What tree version 2 records is compared too: device numbers, xattrs and ACLs (trusted.* only
// as root, who alone can list them), inode flags, holes (a sparse file's data regions hold the
// snapshot's bytes and everything else reads as zeros), and hard links (names of one inode in
// the snapshot are one inode in the directory, and names of different inodes are not). Link
// counts are not compared: a name linked to something outside the tree restores unlinked.
// Sockets are never stored: one in the directory is not "extra", nor is what the snapshot left
// out on purpose (its --exclude patterns, the paths --files-from did not choose, the repository
// inside the directory). A FIFO is never opened.
//
// File content is never compared by reading the repository: the file is streamed through the
// repository's chunker and each chunk's BLAKE3 is compared with the snapshot's chunk ids, so
// memory stays at one read buffer and the first differing chunk ends the read.
import {constants as fsc, promises as fsp, type BigIntStats} from 'node:fs'

import {Chunker, type ChunkerParams} from '../core/chunker.js'
import {errnoCode} from '../core/errors.js'
import {dataExtents, type Extent, readFlags, readXattrs, splitDev} from '../core/fsextra.js'
import {blake3} from '../core/hash.js'
import {LongPaths} from '../core/longpath.js'
import {compileExcludes, compileSelection, type ExcludeMatcher, type PathSelection} from '../snapshot/exclude.js'
import {type RootMeta, rootMetaNode} from '../snapshot/manifest.js'
import {childPath, displayName, FS_FLAG_NODUMP, FS_FLAGS_RECORDED, nodeTypeOf, type NodeType, type TreeNode, type Xattr} from '../snapshot/tree.js'

export type DifferenceKind = 'missing' | 'extra' | 'type' | 'content' | 'mode' | 'mtime' | 'owner' | 'target' | 'device' | 'xattrs' | 'flags' | 'links' | 'unreadable'

export interface Difference {
  /** Path relative to the directory ("." for the directory itself), display form. */
  path: string
  kind: DifferenceKind
  /** What the snapshot has, and what the directory has (absent when not applicable). */
  snapshot?: string
  directory?: string
  message: string
}

export interface CompareOptions {
  chunker: ChunkerParams
  /** The nodes of a tree, or undefined when it cannot be read (verify reports why). */
  readTree: (id: Buffer) => Promise<TreeNode[] | undefined>
  compareOwners: boolean
  /** The snapshot left out entries with the nodump flag (--exclude-nodump): such an entry here is not extra. */
  excludeNodump?: boolean
  /** The snapshot's --exclude patterns (its manifest's excludes): matching entries here are not extra. */
  excludes?: readonly string[]
  /** The paths a --files-from snapshot chose (its manifest's paths): entries outside them are not extra. */
  paths?: readonly string[]
  /** Directories the snapshot skipped (the repository inside the directory): not extra. */
  skipDirs?: readonly {dev: bigint; ino: bigint}[]
  /** Called with the bytes of each file read. */
  onBytes?: (n: number) => void
}

export interface CompareResult {
  /** Entries compared (files, directories, symlinks, the root included). */
  entries: number
  /** File bytes read from the directory. */
  bytesRead: number
  differences: Difference[]
}

const READ_SIZE = 4 * 1024 * 1024

type EntryType = NodeType | 'other'

export async function compareWithDirectory(dir: string, rootTree: Buffer, root: RootMeta, opts: CompareOptions): Promise<CompareResult> {
  const abs = Buffer.from(dir)
  const c = new Comparer(opts, abs.length)
  let st: BigIntStats
  try {
    st = await fsp.lstat(abs, {bigint: true})
  } catch (err) {
    c.diff('.', 'unreadable', `cannot read the directory: ${errnoCode(err) ?? (err as Error).message}`)
    return c.result()
  }
  try {
    await c.dir(rootTree, abs, '')
  } finally {
    c.close()
  }
  c.entries++
  // The manifest's root, as a node: xattrs and flags compared too (absent in a manifest written
  // before ckpt recorded them, so a root ACL or flag then shows as a difference: it would not be restored).
  const node = rootMetaNode(root)
  c.meta('.', node, st)
  c.extra(node, abs, '.')
  return c.result()
}

function typeOf(st: BigIntStats): EntryType | 'socket' {
  return nodeTypeOf(st) ?? (st.isSocket() ? 'socket' : 'other')
}

const isRoot = () => process.getuid?.() === 0

/** Xattrs as "name=hex" lines, trusted.* left out unless root (the kernel lists them only to root). */
function xattrText(xattrs: readonly Xattr[] | undefined): string {
  const root = isRoot()
  return (xattrs ?? [])
    .filter((x) => root || !x.name.toString('latin1').startsWith('trusted.'))
    .map((x) => `${displayName(x.name)}=${x.value.toString('hex')}`)
    .sort()
    .join(' ')
}

const octal = (mode: number) => mode.toString(8).padStart(4, '0')

class Comparer {
  entries = 0
  bytesRead = 0
  private readonly differences: Difference[] = []
  private readonly chunker: Chunker
  private readonly paths = new LongPaths()
  /** Hard links: the snapshot's inode ("dev:ino") to the directory's inode of its first name, and back. */
  private readonly inodes = new Map<string, {dir: string; rel: string}>()
  private readonly dirInodes = new Map<string, {snap: string; rel: string}>()

  private readonly exclude: ExcludeMatcher
  private readonly select: PathSelection | undefined

  /** `rootLength`: the length of the directory's path, which the paths below it start with. */
  constructor(private readonly opts: CompareOptions, private readonly rootLength: number) {
    this.chunker = new Chunker(opts.chunker)
    this.exclude = compileExcludes(opts.excludes ?? [])
    this.select = opts.paths ? compileSelection(opts.paths) : undefined
  }

  close(): void {
    this.paths.close()
  }

  result(): CompareResult {
    return {entries: this.entries, bytesRead: this.bytesRead, differences: this.differences}
  }

  diff(path: string, kind: DifferenceKind, message: string, snapshot?: string, directory?: string): void {
    this.differences.push({path, kind, ...(snapshot !== undefined ? {snapshot} : {}), ...(directory !== undefined ? {directory} : {}), message})
  }

  async dir(treeId: Buffer, abs: Buffer, rel: string): Promise<void> {
    const shown = rel || '.'
    const nodes = await this.opts.readTree(treeId)
    if (!nodes) {
      this.diff(shown, 'unreadable', `cannot compare ${shown}: the snapshot's tree ${treeId.toString('hex')} cannot be read (see the findings)`)
      return
    }
    let names: Buffer[]
    try {
      names = await fsp.readdir(this.paths.short(abs), {encoding: 'buffer'})
    } catch (err) {
      this.diff(shown, 'unreadable', `cannot list ${shown}: ${errnoCode(err) ?? (err as Error).message}`)
      return
    }
    names.sort(Buffer.compare)
    let i = 0
    let j = 0
    while (i < nodes.length || j < names.length) {
      const node = nodes[i]
      const name = names[j]
      const order = !node ? 1 : !name ? -1 : Buffer.compare(node.name, name)
      const childName = order <= 0 ? node!.name : name!
      const childRel = rel ? `${rel}/${displayName(childName)}` : displayName(childName)
      const childAbs = childPath(abs, childName)
      if (order < 0) {
        this.diff(childRel, 'missing', `${childRel}: in the snapshot (${node!.type}), not in the directory`, node!.type)
        i++
      } else if (order > 0) {
        const st = await fsp.lstat(this.paths.short(childAbs), {bigint: true}).catch(() => undefined)
        const type = st ? typeOf(st) : 'other'
        // A socket is never stored, nor (with --exclude-nodump) a nodump entry: left out on purpose.
        if (type !== 'socket' && !(st && this.nodump(childAbs, st)) && !this.leftOut(childRel, name!, abs, rel, st)) this.diff(childRel, 'extra', `${childRel}: in the directory (${type}), not in the snapshot`, undefined, type)
        j++
      } else {
        await this.entry(node!, childAbs, childRel)
        i++
        j++
      }
    }
  }

  private async entry(node: TreeNode, abs: Buffer, rel: string): Promise<void> {
    this.entries++
    let st: BigIntStats
    try {
      st = await fsp.lstat(this.paths.short(abs), {bigint: true})
    } catch (err) {
      this.diff(rel, 'unreadable', `${rel}: cannot stat: ${errnoCode(err) ?? (err as Error).message}`)
      return
    }
    const type = typeOf(st)
    if (type !== node.type) {
      this.diff(rel, 'type', `${rel}: a ${node.type} in the snapshot, a ${type} in the directory`, node.type, type)
      return
    }
    if (node.type === 'dir') {
      await this.dir(node.subtree!, abs, rel)
    } else if (node.type === 'symlink') {
      const target = await fsp.readlink(this.paths.short(abs), {encoding: 'buffer'}).catch(() => undefined)
      if (!target || !target.equals(node.target!)) {
        this.diff(rel, 'target', `${rel}: symlink target differs`, displayName(node.target!), target ? displayName(target) : undefined)
      }
    } else if (node.type === 'file') {
      this.links(node, rel, st)
      await this.content(node, abs, rel, st)
    } else if (node.type === 'chardev' || node.type === 'blockdev') {
      const {major, minor} = splitDev(st.rdev)
      if (major !== node.rdev?.major || minor !== node.rdev?.minor) {
        const want = `${node.rdev?.major}:${node.rdev?.minor}`
        this.diff(rel, 'device', `${rel}: device ${major}:${minor}, the snapshot has ${want}`, want, `${major}:${minor}`)
      }
    }
    this.meta(rel, node, st)
    if (!node.legacy) this.extra(node, abs, rel)
  }

  /** Whether the snapshot left out this entry of the directory on purpose (`dirAbs`, `dirRel`: its parent's). */
  private leftOut(childRel: string, name: Buffer, dirAbs: Buffer, dirRel: string, st: BigIntStats | undefined): boolean {
    if (this.select?.(childRel) === 'none') return true
    if (this.exclude(childRel, displayName(name), name, dirRel ? dirAbs.subarray(this.rootLength + 1) : undefined)) return true
    return st !== undefined && st.isDirectory() && (this.opts.skipDirs ?? []).some((d) => d.dev === st.dev && d.ino === st.ino)
  }

  private nodump(abs: Buffer, st: BigIntStats): boolean {
    if (!this.opts.excludeNodump || !(st.isFile() || st.isDirectory())) return false
    try {
      const f = readFlags(this.paths.short(abs), st.isDirectory())
      return typeof f === 'number' && (f & FS_FLAG_NODUMP) !== 0
    } catch {
      return false
    }
  }

  /** Names of one inode in the snapshot are one inode here; names of two are two. */
  private links(node: TreeNode, rel: string, st: BigIntStats): void {
    const here = `${st.dev}:${st.ino}`
    if (node.nlink !== undefined) {
      const snap = `${node.dev}:${node.ino}`
      const first = this.inodes.get(snap)
      if (!first) this.inodes.set(snap, {dir: here, rel})
      else if (first.dir !== here) this.diff(rel, 'links', `${rel}: not a hard link of ${first.rel} as in the snapshot`, first.rel)
    }
    if (st.nlink > 1n) {
      const snap = node.nlink !== undefined ? `${node.dev}:${node.ino}` : `name:${rel}`
      const first = this.dirInodes.get(here)
      if (!first) this.dirInodes.set(here, {snap, rel})
      else if (first.snap !== snap) this.diff(rel, 'links', `${rel}: a hard link of ${first.rel}, which the snapshot has as a separate file`, undefined, first.rel)
    }
  }

  /** Xattrs (ACLs among them) and inode flags, where this system can read them. */
  extra(node: Pick<TreeNode, 'type' | 'xattrs' | 'flags'>, abs: Buffer, rel: string): void {
    const path = this.paths.short(abs)
    try {
      const x = readXattrs(path)
      if (typeof x !== 'string') {
        const want = xattrText(node.xattrs)
        const have = xattrText(x.xattrs)
        if (want !== have) this.diff(rel, 'xattrs', `${rel}: extended attributes differ`, want, have)
      }
    } catch (err) {
      this.diff(rel, 'unreadable', `${rel}: cannot read extended attributes: ${errnoCode(err) ?? (err as Error).message}`)
    }
    if (node.type !== 'file' && node.type !== 'dir') return
    try {
      const f = readFlags(path, node.type === 'dir')
      if (typeof f === 'number' && (f & FS_FLAGS_RECORDED) !== (node.flags ?? 0)) {
        const want = (node.flags ?? 0).toString(16)
        const have = (f & FS_FLAGS_RECORDED).toString(16)
        this.diff(rel, 'flags', `${rel}: inode flags 0x${have}, the snapshot has 0x${want}`, want, have)
      }
    } catch (err) {
      this.diff(rel, 'unreadable', `${rel}: cannot read inode flags: ${errnoCode(err) ?? (err as Error).message}`)
    }
  }

  meta(rel: string, node: Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'>, st: BigIntStats): void {
    const mode = Number(st.mode & 0o7777n)
    if (node.type !== 'symlink' && mode !== node.mode) this.diff(rel, 'mode', `${rel}: mode ${octal(mode)}, the snapshot has ${octal(node.mode)}`, octal(node.mode), octal(mode))
    if (st.mtimeNs !== node.mtimeNs) this.diff(rel, 'mtime', `${rel}: mtime ${st.mtimeNs} ns, the snapshot has ${node.mtimeNs} ns`, String(node.mtimeNs), String(st.mtimeNs))
    if (this.opts.compareOwners && (Number(st.uid) !== node.uid || Number(st.gid) !== node.gid)) {
      this.diff(rel, 'owner', `${rel}: owner ${st.uid}:${st.gid}, the snapshot has ${node.uid}:${node.gid}`, `${node.uid}:${node.gid}`, `${st.uid}:${st.gid}`)
    }
  }

  private async content(node: TreeNode, abs: Buffer, rel: string, st: BigIntStats): Promise<void> {
    if (Number(st.size) !== node.size) {
      this.diff(rel, 'content', `${rel}: ${st.size} bytes, the snapshot has ${node.size}`, `${node.size} bytes`, `${st.size} bytes`)
      return
    }
    let differsAt: number | undefined
    try {
      differsAt = await this.firstDifference(abs, node.chunks ?? [], node.extents, node.size)
    } catch (err) {
      this.diff(rel, 'unreadable', `${rel}: cannot read: ${errnoCode(err) ?? (err as Error).message}`)
      return
    }
    if (differsAt === undefined) return
    const sameStat = st.mtimeNs === node.mtimeNs
    this.diff(rel, 'content', `${rel}: content differs from byte ${differsAt}${sameStat ? ' although size and mtime match (bitrot, or a write that kept the mtime)' : ''}`, undefined, `differs from byte ${differsAt}`)
  }

  /**
   * Stream the file through the chunker (a sparse file: its data regions, back to back); the
   * offset of the first chunk that is not the snapshot's, or undefined if all match. For a sparse
   * file, data found outside its regions must be zeros.
   */
  private async firstDifference(abs: Buffer, expected: readonly Buffer[], extents: readonly Extent[] | undefined, size: number): Promise<number | undefined> {
    const fh = await fsp.open(this.paths.short(abs), fsc.O_RDONLY | fsc.O_NOFOLLOW)
    const chunker = this.chunker
    chunker.reset()
    try {
      let n = 0
      let offset = 0
      let carry: Buffer | undefined
      const matches = (chunk: Buffer): boolean => {
        const ok = n < expected.length && blake3(chunk).equals(expected[n]!)
        if (ok) {
          n++
          offset += chunk.length
        }
        return ok
      }
      // Reads go through the data regions in order (the whole file when there are none).
      const regions = extents ?? [{offset: 0, length: Infinity}]
      let region = 0
      let within = 0
      if (extents) {
        const stray = await this.dataInHoles(fh, extents, size)
        if (stray !== undefined) return stray
      }
      for (;;) {
        const carryLength = carry?.length ?? 0
        const buf = Buffer.allocUnsafeSlow(carryLength + READ_SIZE)
        if (carry) carry.copy(buf, 0)
        while (region < regions.length && within >= regions[region]!.length) {
          region++
          within = 0
        }
        const r = regions[region]
        const want = r ? Math.min(READ_SIZE, r.length - within) : 0
        const {bytesRead} = want > 0 ? await fh.read(buf, carryLength, want, r!.offset + within) : {bytesRead: 0}
        within += bytesRead
        if (extents && bytesRead < want) within = Infinity // shorter than the snapshot's regions: the chunk comparison says where
        this.bytesRead += bytesRead
        this.opts.onBytes?.(bytesRead)
        const data = buf.subarray(0, carryLength + bytesRead)
        let start = 0
        for (let cut = chunker.next(data, carryLength); cut >= 0; cut = chunker.next(data, cut)) {
          if (!matches(data.subarray(start, cut))) return offset
          start = cut
        }
        carry = data.subarray(start)
        if (bytesRead === 0) break
      }
      if (carry && carry.length > 0 && !matches(carry)) return offset
      return n === expected.length ? undefined : offset
    } finally {
      chunker.reset()
      await fh.close()
    }
  }

  /** The first byte that is not zero outside the snapshot's data regions (only data the file system has there is read), or undefined. */
  private async dataInHoles(fh: fsp.FileHandle, extents: readonly Extent[], size: number): Promise<number | undefined> {
    const found = dataExtents(fh.fd) ?? [{offset: 0, length: size}]
    let e = 0
    for (const d of found) {
      for (let at = d.offset; at < Math.min(d.offset + d.length, size);) {
        while (e < extents.length && extents[e]!.offset + extents[e]!.length <= at) e++
        const inside = e < extents.length && extents[e]!.offset <= at
        if (inside) {
          at = extents[e]!.offset + extents[e]!.length
          continue
        }
        const end = Math.min(d.offset + d.length, size, e < extents.length ? extents[e]!.offset : Infinity, at + READ_SIZE)
        const buf = Buffer.allocUnsafe(end - at)
        const {bytesRead} = await fh.read(buf, 0, buf.length, at)
        this.bytesRead += bytesRead
        for (let i = 0; i < bytesRead; i++) if (buf[i] !== 0) return at + i
        at = end
      }
    }
    return undefined
  }
}
