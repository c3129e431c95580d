// How names and modes are shown. A name is arbitrary bytes: on a terminal it must neither drive the
// terminal (control characters, bidirectional overrides) nor be mistaken for another name, so it is
// escaped as GNU `ls -b` does; JSON carries the exact bytes instead (text when valid UTF-8, else hex).
import {displayName, type NodeType, type TreeNode} from '../snapshot/tree.js'

const C_ESCAPES: Record<number, string> = {0x07: '\\a', 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0b: '\\v', 0x0c: '\\f', 0x0d: '\\r', 0x20: '\\ ', 0x5c: '\\\\'}

/** Code points shown escaped although valid: C1 controls, line separators, bidirectional controls. */
const UNSAFE_CODE_POINT = /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u

/**
 * `ls -b`: C escapes for the usual control characters, space and backslash, octal \ooo for other
 * control bytes and for every byte that is not part of valid UTF-8; printable UTF-8 as is.
 */
export function escapeName(name: Buffer): string {
  // Runs of bytes shown as they are are appended whole: one append a byte made a string of
  // thousands of pieces for a long path, each piece tens of bytes (ckpt find on a tree 10,000
  // levels deep held gigabytes of them).
  let out = ''
  let plain = 0
  let i = 0
  while (i < name.length) {
    const b = name[i]!
    if (b < 0x80) {
      if (b > 0x20 && b < 0x7f && b !== 0x5c) {
        i++
        continue
      }
      if (i > plain) out += name.toString('utf8', plain, i)
      out += C_ESCAPES[b] ?? octal(b)
      plain = ++i
      continue
    }
    const n = utf8Length(name, i)
    if (n && !UNSAFE_CODE_POINT.test(name.toString('utf8', i, i + n))) {
      i += n
      continue
    }
    if (i > plain) out += name.toString('utf8', plain, i)
    for (let k = 0; k < (n || 1); k++) out += octal(name[i + k]!)
    i += n || 1
    plain = i
  }
  if (i > plain) out += name.toString('utf8', plain, i)
  return out
}

function octal(b: number): string {
  return '\\' + b.toString(8).padStart(3, '0')
}

/** Length of the valid UTF-8 sequence starting at `i` (a non-ASCII lead byte), or 0. */
function utf8Length(buf: Buffer, i: number): number {
  const b = buf[i]!
  let n: number
  let min: number
  if (b >= 0xc2 && b <= 0xdf) [n, min] = [2, 0x80]
  else if (b >= 0xe0 && b <= 0xef) [n, min] = [3, 0x800]
  else if (b >= 0xf0 && b <= 0xf4) [n, min] = [4, 0x10000]
  else return 0
  if (i + n > buf.length) return 0
  let cp = b & (0xff >> (n + 1))
  for (let k = 1; k < n; k++) {
    const c = buf[i + k]!
    if ((c & 0xc0) !== 0x80) return 0
    cp = (cp << 6) | (c & 0x3f)
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0
  return n
}

/** The exact bytes for JSON: {text} when they are valid UTF-8, else {text: the escaped form, hex}. */
export function jsonBytes(bytes: Buffer): {text: string; hex?: string} {
  const text = bytes.toString('utf8')
  if (Buffer.byteLength(text) === bytes.length && Buffer.from(text, 'utf8').equals(bytes)) return {text}
  return {text: escapeName(bytes), hex: bytes.toString('hex')}
}

const TYPE_CHAR: Record<string, string> = {file: '-', dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's'}

/** `ls -l`'s mode column: drwxr-sr-x, -rwsr-xr-T. */
export function modeString(type: NodeType | string, mode: number): string {
  const bits = (r: number, w: number, x: number, special: boolean, letter: string) =>
    (mode & r ? 'r' : '-') + (mode & w ? 'w' : '-') + (special ? (mode & x ? letter : letter.toUpperCase()) : mode & x ? 'x' : '-')
  return (TYPE_CHAR[type] ?? '?') +
    bits(0o400, 0o200, 0o100, (mode & 0o4000) !== 0, 's') +
    bits(0o040, 0o020, 0o010, (mode & 0o2000) !== 0, 's') +
    bits(0o004, 0o002, 0o001, (mode & 0o1000) !== 0, 't')
}

/** ns since the epoch as ISO 8601 with all nine digits: 2026-12-06T18:31:08.123456789Z. */
export function isoNs(ns: bigint): string {
  const ms = ns / 1_000_000n - (ns < 0n && ns % 1_000_000n !== 0n ? 1n : 0n)
  const base = new Date(Number(ms)).toISOString().slice(0, 19)
  const frac = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n
  return `${base}.${frac.toString().padStart(9, '0')}Z`
}

/**
 * The entry a typed path component names, in the forms ckpt shows names: its exact bytes (a name
 * holding a newline, as the shell passes it), else the escaped form `ckpt ls` prints (caf\351,
 * a\nb), else the form of warnings and the restore reader (displayName: caf\xe9).
 */
export function findNamed(nodes: readonly TreeNode[], part: string): TreeNode | undefined {
  const exact = Buffer.from(part, 'utf8')
  return nodes.find((n) => n.name.equals(exact)) ?? nodes.find((n) => escapeName(n.name) === part) ?? nodes.find((n) => displayName(n.name) === part)
}

