// Directory trees, stored as blobs of type tree and named by the BLAKE3 of their encoding, so an
// unchanged subtree is stored once. The encoding is canonical JSON (fixed key order, nodes sorted
// by the bytes of their names): the same directory always encodes to the same bytes.
// Names and symlink targets are arbitrary bytes on Linux: valid UTF-8 is written as a string,
// anything else as hex under another key, so every name round-trips exactly.
//
// decodeTree is the first line of defence of restore against a hostile repository: it refuses
// names that could escape the target ("", ".", "..", "/" or NUL inside) and duplicate names.
import {IntegrityError} from '../core/errors.js'
import {digestFromHex} from '../core/hash.js'
import {isHexId, toHex} from '../core/ids.js'

export type NodeType = 'file' | 'dir' | 'symlink'

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
}

export const TREE_VERSION = 1

function textOrHex(bytes: Buffer): {text?: string; hex?: string} {
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? {text} : {hex: bytes.toString('hex')}
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
    } else if (n.type === 'dir') {
      o.subtree = toHex(n.subtree!)
    } else {
      const target = textOrHex(n.target!)
      if (target.text !== undefined) o.target = target.text
      else o.targetHex = target.hex
    }
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
  if (!doc || typeof doc !== 'object' || (doc as {version?: unknown}).version !== TREE_VERSION) throw fail('unknown tree version')
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
    if (type !== 'file' && type !== 'dir' && type !== 'symlink') throw fail(`node ${name.toString('utf8')} has unknown type`)
    const mode = o.mode
    if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777) throw fail(`node ${name.toString('utf8')} has a bad mode`)
    const uid = o.uid
    const gid = o.gid
    if (!isOwnerId(uid) || !isOwnerId(gid)) throw fail(`node ${name.toString('utf8')} has a bad owner`)
    const mtimeNs = decimal(o.mtimeNs)
    const ctimeNs = decimal(o.ctimeNs)
    const ino = decimal(o.ino)
    if (mtimeNs === undefined || ctimeNs === undefined || ino === undefined) throw fail(`node ${name.toString('utf8')} has bad times or inode`)
    const node: TreeNode = {name, type, mode: mode as number, uid: uid as number, gid: gid as number, mtimeNs, ctimeNs, ino, size: 0}
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
    } else if (type === 'dir') {
      if (typeof o.subtree !== 'string' || !isHexId(o.subtree)) throw fail(`directory ${name.toString('utf8')} has a bad subtree id`)
      node.subtree = digestFromHex(o.subtree)
    } else {
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
