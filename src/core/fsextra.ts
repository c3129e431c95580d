// What a file holds beyond its bytes and stat, through the native addon (src/native/fsextra.c):
// extended attributes (ACLs are the system.posix_acl_* ones), the data regions of sparse files
// (SEEK_DATA/SEEK_HOLE), inode flags (FS_IOC_GETFLAGS: immutable, append-only, nodump...) and
// FIFOs and device nodes (mknod). Node's fs has none of these.
//
// Each answer tells apart three cases, so that callers warn once per kind and never fail a
// snapshot or restore over them:
// - 'unavailable': no addon (CKPT_NATIVE=0, or not built). Xattrs and flags are then neither
//   read nor written, and special files are not created: the caller says so once. Holes are not
//   detected: a sparse file is read whole, zeros included, which is correct, only not sparse.
// - 'unsupported': this file system (or this kind of file) has none or refuses them (ENOTSUP,
//   and for flags ENOTTY or EINVAL too).
// - a value, or a thrown Node-style fs error for everything else (ENOENT, EACCES, EPERM...).
import {errnoCode} from './errors.js'
import {nativeAddon} from './native.js'

export type Unavailable = 'unavailable' | 'unsupported'

export interface Xattr {
  name: Buffer
  value: Buffer
}

/** The attributes of a path (a final symlink not followed), sorted by name bytes; `refused` names those the kernel listed but would not let us read. */
export interface XattrList {
  xattrs: Xattr[]
  refused: {name: Buffer; code: string}[]
}

// ENOTSUP is libuv's name for EOPNOTSUPP, which is what Linux answers for a file system without
// xattrs (or a namespace it does not handle).
const XATTR_UNSUPPORTED = new Set(['ENOTSUP', 'ENOSYS'])
// Flags: ENOTTY where the file system has no such ioctl, EINVAL or ENOTSUP on some that
// answer it for some inodes, ENOSYS off Linux.
const FLAGS_UNSUPPORTED = new Set(['ENOTTY', 'ENOTSUP', 'EINVAL', 'ENOSYS'])

function unsupportedOr(err: unknown, codes: ReadonlySet<string>): 'unsupported' {
  if (codes.has(errnoCode(err) ?? '')) return 'unsupported'
  throw err
}

export function readXattrs(path: Buffer | string): XattrList | Unavailable {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  let listed: ReturnType<typeof addon.listXattrs>
  try {
    listed = addon.listXattrs(path)
  } catch (err) {
    return unsupportedOr(err, XATTR_UNSUPPORTED)
  }
  const out: XattrList = {xattrs: [], refused: []}
  for (const e of listed) {
    if (e.value) out.xattrs.push({name: e.name, value: e.value})
    else out.refused.push({name: e.name, code: e.error ?? 'EIO'})
  }
  out.xattrs.sort((a, b) => Buffer.compare(a.name, b.name))
  return out
}

/** Sets one attribute (created or replaced). 'unsupported': the file system refuses this name's namespace. */
export function writeXattr(path: Buffer | string, name: Buffer, value: Buffer): 'ok' | Unavailable {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  try {
    addon.setXattr(path, name, value)
    return 'ok'
  } catch (err) {
    return unsupportedOr(err, XATTR_UNSUPPORTED)
  }
}

export function removeXattr(path: Buffer | string, name: Buffer): 'ok' | Unavailable {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  try {
    addon.removeXattr(path, name)
    return 'ok'
  } catch (err) {
    return unsupportedOr(err, XATTR_UNSUPPORTED)
  }
}

/** The kind of an attribute for "refused" warnings: its namespace ("user", "trusted", "security", "system") or, for ACLs, "acl". */
export function xattrKind(name: Buffer): string {
  const s = name.toString('latin1')
  if (s.startsWith('system.posix_acl_')) return 'acl'
  const dot = s.indexOf('.')
  return dot > 0 ? s.slice(0, dot) : s
}

export interface Extent {
  offset: number
  length: number
}

/**
 * The data regions of the open file `fd`, in order; the rest of its size reads as zeros. An
 * empty list: no data at all (all hole). Undefined without the addon (read the file whole). A
 * file system without SEEK_DATA reports the whole file as one region.
 */
export function dataExtents(fd: number): Extent[] | undefined {
  const addon = nativeAddon()
  if (!addon) return undefined
  const pairs = addon.dataExtents(fd)
  const out: Extent[] = []
  for (let i = 0; i + 1 < pairs.length; i += 2) out.push({offset: pairs[i]!, length: pairs[i + 1]!})
  return out
}

/**
 * At most `max` extents covering every data byte of `extents` (sorted, disjoint): where there
 * are more, the smallest holes between neighbours are filled (read as data, zeros and all) until
 * few enough remain. A tree node stays small whatever the file's fragmentation; the cost is
 * reading those small holes' zeros.
 */
export function boundExtents(extents: readonly Extent[], max: number): Extent[] {
  if (extents.length <= max) return extents.slice()
  // The gaps to keep: the (max - 1) largest. Ties keep the earlier gap, for a stable answer.
  const gaps = extents.slice(1).map((e, i) => ({i, size: e.offset - (extents[i]!.offset + extents[i]!.length)}))
  gaps.sort((a, b) => b.size - a.size || a.i - b.i)
  const keep = new Set(gaps.slice(0, Math.max(0, max - 1)).map((g) => g.i))
  const out: Extent[] = []
  let cur = {...extents[0]!}
  for (let i = 1; i < extents.length; i++) {
    const e = extents[i]!
    if (keep.has(i - 1)) {
      out.push(cur)
      cur = {...e}
    } else {
      cur.length = e.offset + e.length - cur.offset
    }
  }
  out.push(cur)
  return out
}

/** The inode flags of a regular file or directory (`dir`), never following a symlink. */
export function readFlags(path: Buffer | string, dir: boolean): number | Unavailable {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  try {
    return addon.getFlags(path, dir)
  } catch (err) {
    return unsupportedOr(err, FLAGS_UNSUPPORTED)
  }
}

export function readFlagsFd(fd: number): number | Unavailable {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  try {
    return addon.getFlagsFd(fd)
  } catch (err) {
    return unsupportedOr(err, FLAGS_UNSUPPORTED)
  }
}

/** Sets the inode flags (all of them: read, mask in, write). Immutable and append-only need CAP_LINUX_IMMUTABLE (EPERM otherwise). */
export function writeFlags(path: Buffer | string, dir: boolean, flags: number): 'ok' | Unavailable {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  try {
    addon.setFlags(path, dir, flags)
    return 'ok'
  } catch (err) {
    return unsupportedOr(err, FLAGS_UNSUPPORTED)
  }
}

const S_IFIFO = 0o010000
const S_IFCHR = 0o020000
const S_IFBLK = 0o060000

/**
 * Creates a FIFO or device node (devices need CAP_MKNOD: EPERM otherwise). 'unavailable' without
 * the addon: Node cannot make either, and the caller warns once.
 */
export function makeNode(path: Buffer | string, type: 'fifo' | 'chardev' | 'blockdev', mode: number, major = 0, minor = 0): 'ok' | 'unavailable' {
  const addon = nativeAddon()
  if (!addon) return 'unavailable'
  const kind = type === 'fifo' ? S_IFIFO : type === 'chardev' ? S_IFCHR : S_IFBLK
  addon.mknod(path, kind | (mode & 0o7777), major, minor)
  return 'ok'
}

/** The major and minor numbers of a device number (st_rdev), as glibc's major()/minor() split it. */
export function splitDev(rdev: bigint): {major: number; minor: number} {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n))
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n))
  return {major, minor}
}
