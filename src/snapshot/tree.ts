// Directory trees, stored as blobs of type tree and named by the BLAKE3 of their encoding, so an
// unchanged subtree is stored once. The encoding is canonical JSON (fixed key order, nodes sorted
// by the bytes of their names): the same directory always encodes to the same bytes.
// Names and symlink targets are arbitrary bytes on Linux: valid UTF-8 is written as a string,
// anything else as hex under another key, so every name round-trips exactly.
//
// Version 2 records what version 1 dropped: hard links (nlink and dev beside ino), the holes of
// sparse files (their data extents), extended attributes (ACLs among them), inode flags, FIFOs
// and device nodes. Version 1 trees still decode; their nodes are marked `legacy` because they
// never recorded those, so the stat cache must not take "nothing" from them as "none".
//
// decodeTree is the first line of defence of restore against a hostile repository: it refuses
// names that could escape the target ("", ".", "..", "/" or NUL inside) and duplicate names.
import type {BigIntStats} from 'node:fs'

import {IntegrityError} from '../core/errors.js'
import {digestFromHex} from '../core/hash.js'
import {isHexId, toHex} from '../core/ids.js'

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev'

/** A data region of a sparse file: `length` bytes at `offset`. */
export interface Extent {
  offset: number
  length: number
}

/** One extended attribute (POSIX ACLs are system.posix_acl_access and system.posix_acl_default). */
export interface Xattr {
  name: Buffer
  value: Buffer
}

/** A device number, split as the kernel's major and minor. */
export interface DeviceNumber {
  major: number
  minor: number
}

export interface TreeNode {
  name: Buffer
  type: NodeType
  /** Permission bits with setuid, setgid and sticky (st_mode & 0o7777). */
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
  ctimeNs: bigint
  ino: bigint
  /** Content size for files, 0 otherwise. */
  size: number
  /** Files: chunk ids in order. */
  chunks?: Buffer[]
  /** Directories: the subtree's id. */
  subtree?: Buffer
  /** Symlinks: the target, as stored by readlink. */
  target?: Buffer
  /** Files with more than one name when read: the link count and st_dev; (dev, ino) names one inode within a snapshot. */
  nlink?: number
  dev?: bigint
  /**
   * Sparse files: the data regions in order, not overlapping, inside `size`. The chunks hold
   * their bytes back to back; everything else reads as zeros (holes). Absent for a file without holes.
   */
  extents?: Extent[]
  /** Extended attributes, sorted by name bytes, names unique; absent when there are none. */
  xattrs?: Xattr[]
  /** Inode flags (FS_IOC_GETFLAGS) within FS_FLAGS_RECORDED; absent when none. */
  flags?: number
  /** Character and block devices: the device number. */
  rdev?: DeviceNumber
  /** Not encoded: decoded from a version-1 tree, which never recorded links, holes, xattrs or flags. */
  legacy?: boolean
}

export const TREE_VERSION = 2
/** Versions decodeTree reads. */
const TREE_VERSIONS: readonly number[] = [1, 2]

/**
 * Inode flags ckpt records and restores (linux/fs.h): sync 0x8, immutable 0x10, append-only
 * 0x20, nodump 0x40, noatime 0x80, nocompress 0x400, notail 0x8000, dirsync 0x10000,
 * project-inherit 0x20000000, nocow 0x800000. Flags the kernel sets itself (extents, inline
 * data, encryption, verity, casefold...) are not ours to restore.
 */
export const FS_FLAGS_RECORDED = 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x400 | 0x8000 | 0x10000 | 0x800000 | 0x20000000
export const FS_FLAG_IMMUTABLE = 0x10
export const FS_FLAG_APPEND = 0x20
export const FS_FLAG_NODUMP = 0x40
/** The flags that forbid renaming, unlinking or rewriting the inode that carries them. */
export const FS_FLAGS_LOCKING = FS_FLAG_IMMUTABLE | FS_FLAG_APPEND

/** Longest xattr name and value Linux takes (XATTR_NAME_MAX, XATTR_SIZE_MAX), and the most names one file lists (XATTR_LIST_MAX). */
export const XATTR_NAME_MAX = 255
export const XATTR_SIZE_MAX = 65536
export const XATTR_LIST_MAX = 65536
/** Most data extents one sparse file records (the archiver merges across small holes beyond it). */
export const MAX_EXTENTS = 65536

/** Bytes a file's chunks hold: its data extents for a sparse file, else its size. */
export function dataLength(node: Pick<TreeNode, 'size' | 'extents'>): number {
  if (!node.extents) return node.size
  let n = 0
  for (const e of node.extents) n += e.length
  return n
}

function textOrHex(bytes: Buffer): {text?: string; hex?: string} {
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? {text} : {hex: bytes.toString('hex')}
}

/** The tree type an entry of this stat is stored as; undefined for a socket (never stored). */
export function nodeTypeOf(st: Pick<BigIntStats, 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice'>): NodeType | undefined {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isCharacterDevice()) return 'chardev'
  if (st.isBlockDevice()) return 'blockdev'
  return undefined
}

export function compareNames(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b)
}

export function encodeTree(nodes: readonly TreeNode[]): Buffer {
  const sorted = [...nodes].sort((a, b) => compareNames(a.name, b.name))
  const out = sorted.map((n) => {
    const name = textOrHex(n.name)
    const o: Record<string, unknown> = {}
    if (name.text !== undefined) o.name = name.text
    else o.nameHex = name.hex
    o.type = n.type
    o.mode = n.mode
    o.uid = n.uid
    o.gid = n.gid
    o.mtimeNs = n.mtimeNs.toString()
    o.ctimeNs = n.ctimeNs.toString()
    o.ino = n.ino.toString()
    if (n.type === 'file') {
      o.size = n.size
      o.chunks = (n.chunks ?? []).map(toHex)
      if (n.extents) o.extents = n.extents.map((e) => [e.offset, e.length])
    } else if (n.type === 'dir') {
      o.subtree = toHex(n.subtree!)
    } else if (n.type === 'symlink') {
      const target = textOrHex(n.target!)
      if (target.text !== undefined) o.target = target.text
      else o.targetHex = target.hex
    } else if (n.type === 'chardev' || n.type === 'blockdev') {
      o.rdev = [n.rdev!.major, n.rdev!.minor]
    }
    if (n.nlink !== undefined && n.nlink > 1) {
      o.nlink = n.nlink
      o.dev = n.dev!.toString()
    }
    if (n.flags) o.flags = n.flags
    if (n.xattrs && n.xattrs.length > 0) o.xattrs = encodeXattrs(n.xattrs)
    return o
  })
  return Buffer.from(JSON.stringify({version: TREE_VERSION, nodes: out}))
}

/** Largest uid or gid: ids are 32-bit, and 2^32-1 is (uid_t)-1, "no change" to chown. */
export const MAX_OWNER_ID = 0xfffffffe

/** True for a uid or gid a file can have. */
export function isOwnerId(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_OWNER_ID
}

const DECIMAL = /^-?[0-9]{1,20}$/
const HEX = /^(?:[0-9a-f]{2})+$/
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const NODE_TYPES: ReadonlySet<unknown> = new Set(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev'])

/** Check that a name is one path component that cannot leave its directory. */
export function unsafeNameReason(name: Buffer): string | undefined {
  if (name.length === 0) return 'empty name'
  // One pass in JS: names are short, and Buffer.includes costs a native call per search.
  let nul = false
  let slash = false
  for (let i = 0; i < name.length; i++) {
    const b = name[i]
    if (b === 0) nul = true
    else if (b === 0x2f) slash = true
  }
  if (nul) return 'name contains NUL'
  if (slash) return 'name contains "/"'
  if (name.length === 1 && name[0] === 0x2e) return 'name is "."'
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return 'name is ".."'
  if (name.length > 4096) return 'name is too long'
  return undefined
}

export function decodeTree(bytes: Buffer, id: string): TreeNode[] {
  const fail = (what: string) => new IntegrityError(`tree ${id}: ${what}`, {tree: id})
  let doc: unknown
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw fail('not valid JSON')
  }
  const version = doc && typeof doc === 'object' ? (doc as {version?: unknown}).version : undefined
  if (!TREE_VERSIONS.includes(version as number)) throw fail('unknown tree version')
  const legacy = version === 1
  const raw = (doc as {nodes?: unknown}).nodes
  if (!Array.isArray(raw)) throw fail('no node list')
  const nodes: TreeNode[] = []
  let previous: Buffer | undefined
  for (const r of raw as unknown[]) {
    if (!r || typeof r !== 'object') throw fail('a node is not an object')
    const o = r as Record<string, unknown>
    const name = bytesField(o, 'name', 'nameHex')
    if (!name) throw fail('a node has no name')
    const unsafe = unsafeNameReason(name)
    if (unsafe) throw fail(`unsafe node name ${JSON.stringify(name.toString('utf8'))}: ${unsafe}`)
    if (previous && compareNames(previous, name) >= 0) throw fail(`names out of order or repeated at ${JSON.stringify(name.toString('utf8'))}`)
    previous = name
    const type = o.type
    if (!NODE_TYPES.has(type) || (legacy && type !== 'file' && type !== 'dir' && type !== 'symlink')) throw fail(`node ${name.toString('utf8')} has unknown type`)
    const mode = o.mode
    if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777) throw fail(`node ${name.toString('utf8')} has a bad mode`)
    const uid = o.uid
    const gid = o.gid
    if (!isOwnerId(uid) || !isOwnerId(gid)) throw fail(`node ${name.toString('utf8')} has a bad owner`)
    const mtimeNs = decimal(o.mtimeNs)
    const ctimeNs = decimal(o.ctimeNs)
    const ino = decimal(o.ino)
    if (mtimeNs === undefined || ctimeNs === undefined || ino === undefined) throw fail(`node ${name.toString('utf8')} has bad times or inode`)
    const node: TreeNode = {name, type: type as NodeType, mode: mode as number, uid: uid as number, gid: gid as number, mtimeNs, ctimeNs, ino, size: 0}
    if (legacy) node.legacy = true
    else decodeV2Fields(o, node, fail)
    if (type === 'file') {
      if (!Number.isSafeInteger(o.size) || (o.size as number) < 0) throw fail(`file ${name.toString('utf8')} has a bad size`)
      node.size = o.size as number
      const hexIds = o.chunks
      if (!Array.isArray(hexIds)) throw fail(`file ${name.toString('utf8')} has a bad chunk list`)
      const chunks: Buffer[] = new Array<Buffer>(hexIds.length)
      for (let i = 0; i < hexIds.length; i++) {
        const c: unknown = hexIds[i]
        if (typeof c !== 'string' || !isHexId(c)) throw fail(`file ${name.toString('utf8')} has a bad chunk list`)
        chunks[i] = digestFromHex(c)
      }
      node.chunks = chunks
      if (node.extents) checkExtents(node, fail)
    } else if (type === 'dir') {
      if (typeof o.subtree !== 'string' || !isHexId(o.subtree)) throw fail(`directory ${name.toString('utf8')} has a bad subtree id`)
      node.subtree = digestFromHex(o.subtree)
    } else if (type === 'symlink') {
      const target = bytesField(o, 'target', 'targetHex')
      if (!target || target.length === 0 || target.includes(0)) throw fail(`symlink ${name.toString('utf8')} has a bad target`)
      // Linux stores at most PATH_MAX - 1 bytes of a target: a longer one was never read from a filesystem.
      if (target.length >= 4096) throw fail(`symlink ${name.toString('utf8')} has a target of ${target.length} bytes (at most 4095 exist)`)
      node.target = target
    }
    nodes.push(node)
  }
  return nodes
}

/** The fields version 2 added; checked as strictly as the rest (a hostile tree meets restore's syscalls). */
function decodeV2Fields(o: Record<string, unknown>, node: TreeNode, fail: (what: string) => IntegrityError): void {
  const shown = node.name.toString('utf8')
  if (o.nlink !== undefined) {
    if (!Number.isSafeInteger(o.nlink) || (o.nlink as number) < 2) throw fail(`node ${shown} has a bad link count`)
    const dev = decimal(o.dev)
    if (dev === undefined || dev < 0n) throw fail(`node ${shown} has a bad device`)
    node.nlink = o.nlink as number
    node.dev = dev
  }
  if (o.flags !== undefined) node.flags = decodeFlags(o.flags, `node ${shown}`, fail)
  if (o.rdev !== undefined || node.type === 'chardev' || node.type === 'blockdev') {
    const r = o.rdev
    const isPart = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff
    if (node.type !== 'chardev' && node.type !== 'blockdev') throw fail(`node ${shown} has a device number but is not a device`)
    if (!Array.isArray(r) || r.length !== 2 || !isPart(r[0]) || !isPart(r[1])) throw fail(`device ${shown} has a bad device number`)
    node.rdev = {major: r[0] as number, minor: r[1] as number}
  }
  if (o.extents !== undefined) {
    const raw = o.extents
    if (node.type !== 'file' || !Array.isArray(raw) || raw.length > MAX_EXTENTS) throw fail(`node ${shown} has a bad extent list`)
    node.extents = raw.map((e: unknown) => {
      if (!Array.isArray(e) || e.length !== 2 || !Number.isSafeInteger(e[0]) || !Number.isSafeInteger(e[1]) || (e[0] as number) < 0 || (e[1] as number) <= 0) throw fail(`file ${shown} has a bad extent list`)
      return {offset: e[0] as number, length: e[1] as number}
    })
  }
  if (o.xattrs !== undefined) node.xattrs = decodeXattrs(o.xattrs, `node ${shown}`, fail)
}

/** How xattrs are written in JSON, in a tree node and in a manifest's root: sorted by name bytes, the name as text (or hex), the value in base64. */
export type EncodedXattr = {name: string; value: string} | {nameHex: string; value: string}

export function encodeXattrs(xattrs: readonly Xattr[]): EncodedXattr[] {
  return [...xattrs].sort((a, b) => Buffer.compare(a.name, b.name)).map((x) => {
    const xname = textOrHex(x.name)
    return xname.text !== undefined ? {name: xname.text, value: x.value.toString('base64')} : {nameHex: xname.hex!, value: x.value.toString('base64')}
  })
}

/**
 * Decode and check an encoded xattr list (`who` names its owner in errors): what Linux could
 * hold, in order, names unique. A hostile list meets restore's setxattr calls.
 */
export function decodeXattrs(raw: unknown, who: string, fail: (what: string) => IntegrityError): Xattr[] {
  if (!Array.isArray(raw) || raw.length === 0) throw fail(`${who} has a bad xattr list`)
  const xattrs: Xattr[] = []
  let listed = 0
  for (const x of raw as unknown[]) {
    if (!x || typeof x !== 'object') throw fail(`${who} has a bad xattr list`)
    const xo = x as Record<string, unknown>
    const xname = bytesField(xo, 'name', 'nameHex')
    const value = xo.value
    if (!xname || xname.length === 0 || xname.length > XATTR_NAME_MAX || xname.includes(0)) throw fail(`${who} has a bad xattr name`)
    if (typeof value !== 'string' || value.length > ((XATTR_SIZE_MAX + 2) / 3) * 4 + 4 || !BASE64.test(value)) throw fail(`${who} has a bad xattr value`)
    const bytes = Buffer.from(value, 'base64')
    if (bytes.length > XATTR_SIZE_MAX) throw fail(`${who} has an xattr value over ${XATTR_SIZE_MAX} bytes`)
    const last = xattrs[xattrs.length - 1]
    if (last && Buffer.compare(last.name, xname) >= 0) throw fail(`${who} has xattrs out of order or repeated`)
    listed += xname.length + 1
    if (listed > XATTR_LIST_MAX) throw fail(`${who} lists more xattr names than Linux holds`)
    xattrs.push({name: xname, value: bytes})
  }
  return xattrs
}

/** Check recorded inode flags: non-zero (zero is written as nothing) and only those ckpt restores. */
export function decodeFlags(raw: unknown, who: string, fail: (what: string) => IntegrityError): number {
  if (!Number.isInteger(raw) || (raw as number) <= 0 || ((raw as number) & ~FS_FLAGS_RECORDED) !== 0) throw fail(`${who} has bad inode flags`)
  return raw as number
}

/** Extents in order, not overlapping, inside the file, and adding up to what its chunks hold (checked by the reader). */
function checkExtents(node: TreeNode, fail: (what: string) => IntegrityError): void {
  let end = 0
  for (const e of node.extents!) {
    if (e.offset < end || e.offset + e.length > node.size) throw fail(`file ${node.name.toString('utf8')} has extents out of order or past its size`)
    end = e.offset + e.length
  }
}

/** A decimal integer field (times, inode), or undefined. */
function decimal(v: unknown): bigint | undefined {
  return typeof v === 'string' && DECIMAL.test(v) ? BigInt(v) : undefined
}

function bytesField(o: Record<string, unknown>, textKey: string, hexKey: string): Buffer | undefined {
  const text = o[textKey]
  if (typeof text === 'string') return Buffer.from(text, 'utf8')
  const hex = o[hexKey]
  if (typeof hex === 'string' && HEX.test(hex)) return Buffer.from(hex, 'hex')
  return undefined
}

/** The path of entry `name` inside directory `dir`, as bytes (names need not be UTF-8). */
export function childPath(dir: Buffer, name: Buffer): Buffer {
  const out = Buffer.allocUnsafe(dir.length + 1 + name.length)
  out.set(dir, 0)
  out[dir.length] = 0x2f
  out.set(name, dir.length + 1)
  return out
}

/**
 * Display form of a name: UTF-8 where valid and free of control characters (a hostile name must
 * not drive the terminal), otherwise with \xNN escapes for the offending bytes.
 */
export function displayName(name: Buffer): string {
  if (isPrintableAscii(name)) return name.toString('latin1') // the common case, without a UTF-8 round trip
  const t = textOrHex(name)
  if (t.text !== undefined && !hasControl(name)) return t.text
  let out = ''
  for (const b of name) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`
  return out
}

function isPrintableAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if (b < 0x20 || b >= 0x7f) return false
  }
  return true
}

function hasControl(bytes: Buffer): boolean {
  for (const b of bytes) if (b < 0x20 || b === 0x7f) return true
  return false
}
