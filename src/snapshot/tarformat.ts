// What ckpt reads and writes of the tar format beyond what tar-stream does (pure: no I/O).
// tar-stream frames the archive (512-byte headers, padding, the end marker, backpressure); these
// functions handle what it treats as text but ckpt must keep as bytes:
// - pax records: tar-stream decodes them as UTF-8, which loses every name that is not. GNU tar
//   writes such a name into the pax `path` record as raw bytes (no hdrcharset), and xattr values
//   (SCHILY.xattr.*) are binary. So records are decoded byte for byte (latin1 strings, one char
//   per byte) and ckpt writes them the same way: a name round-trips through GNU tar exactly.
// - archive paths: made relative and checked, so nothing an archive names can leave the root.
// - GNU sparse files in pax format 1.0 (what GNU tar --sparse --format=pax writes): the map of
//   data regions that precedes the data.
import {BadArchiveError} from '../core/errors.js'

/** Longest path (bytes) an archive may name: PATH_MAX less the terminating NUL; restore could not create a longer one. */
export const MAX_ARCHIVE_PATH = 4095
/** Longest name of one component (NAME_MAX). */
export const MAX_ARCHIVE_NAME = 255

/**
 * The records of a pax extended header, keys and values as latin1 strings of their bytes
 * (Buffer.from(v, 'latin1') gives the bytes back). Throws on a malformed record: a header that
 * lies about its lengths is not guessed at.
 */
export function decodePaxRecords(buf: Uint8Array): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  let pos = 0
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  while (pos < bytes.length) {
    // Headers are padded with NULs to their block; what follows the last record is padding.
    if (bytes[pos] === 0) break
    const space = bytes.indexOf(0x20, pos)
    if (space < 0 || space - pos > 12) throw new BadArchiveError('malformed pax header: a record has no length')
    const lenText = bytes.toString('latin1', pos, space)
    if (!/^[0-9]+$/.test(lenText)) throw new BadArchiveError('malformed pax header: a record length is not a number')
    const len = Number(lenText)
    const end = pos + len
    if (len <= space - pos + 1 || end > bytes.length || bytes[end - 1] !== 0x0a) throw new BadArchiveError('malformed pax header: a record length is wrong')
    const eq = bytes.indexOf(0x3d, space + 1)
    if (eq < 0 || eq >= end - 1 || eq === space + 1) throw new BadArchiveError('malformed pax header: a record has no key')
    const key = bytes.toString('latin1', space + 1, eq)
    const value = bytes.toString('latin1', eq + 1, end - 1)
    // An empty value deletes the key (POSIX): a global default no longer applies.
    if (value === '') delete out[key]
    else out[key] = value
    pos = end
  }
  return out
}

/** One pax record: "LEN key=value\n", LEN counting itself. Key and value are bytes. */
function paxRecord(key: Buffer, value: Buffer): Buffer {
  const body = key.length + value.length + 3 // ' ', '=', '\n'
  let len = body + String(body).length
  if (String(len).length !== String(body).length) len = body + String(len).length
  return Buffer.concat([Buffer.from(`${len} `, 'latin1'), key, Buffer.from('=', 'latin1'), value, Buffer.from('\n', 'latin1')])
}

/** Encode pax records (keys and values as bytes or UTF-8 strings) in the given order. */
export function encodePaxRecords(records: readonly (readonly [string | Buffer, string | Buffer])[]): Buffer {
  return Buffer.concat(records.map(([k, v]) => paxRecord(typeof k === 'string' ? Buffer.from(k, 'utf8') : k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v)))
}

/** A pax time ("1700000000.123456789", possibly negative) in ns; undefined when malformed. */
export function parsePaxTime(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined
  const m = /^(-?)([0-9]{1,19})(?:\.([0-9]{1,30}))?$/.exec(text)
  if (!m) return undefined
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0')
  const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt(frac)
  return m[1] ? -ns : ns
}

/** ns since the epoch as a pax time: seconds, and the fraction without trailing zeros. */
export function formatPaxTime(ns: bigint): string {
  const neg = ns < 0n
  const abs = neg ? -ns : ns
  const sec = abs / 1_000_000_000n
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '')
  return `${neg ? '-' : ''}${sec}${frac ? `.${frac}` : ''}`
}

export interface ArchivePath {
  /** Components below the root; none for the root itself ("." or "./"). */
  parts: Buffer[]
  /** Leading "/" were removed (GNU tar does the same, and says so). */
  absolute: boolean
}

/**
 * An archive member's path as components below the import's root. Leading "/" are removed (an
 * absolute member lands under the root, as GNU tar extracts it); "." components and repeated
 * slashes are dropped; ".." anywhere, NUL, and names restore could never create are refused.
 */
export function archivePath(raw: Buffer, what = 'path'): ArchivePath {
  const shown = JSON.stringify(raw.toString('latin1'))
  if (raw.includes(0)) throw new BadArchiveError(`archive ${what} ${shown} contains a NUL byte`)
  if (raw.length > MAX_ARCHIVE_PATH) throw new BadArchiveError(`archive ${what} of ${raw.length} bytes is longer than PATH_MAX (${MAX_ARCHIVE_PATH + 1})`)
  let start = 0
  while (start < raw.length && raw[start] === 0x2f) start++
  const parts: Buffer[] = []
  let from = start
  for (let i = start; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== 0x2f) continue
    const part = raw.subarray(from, i)
    from = i + 1
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) throw new BadArchiveError(`archive ${what} ${shown} has a ".." component: it could leave the directory it is extracted into`)
    if (part.length > MAX_ARCHIVE_NAME) throw new BadArchiveError(`archive ${what} ${shown} has a component of ${part.length} bytes (at most ${MAX_ARCHIVE_NAME})`)
    parts.push(Buffer.from(part))
  }
  return {parts, absolute: start > 0}
}

/** A data region of a sparse file. */
export interface SparseRegion {
  offset: number
  length: number
}

/**
 * Check a sparse map against the file's real size: regions in order, not overlapping, inside
 * the file. Returns the bytes of data they hold.
 */
export function checkSparseMap(regions: readonly SparseRegion[], realSize: number): number {
  let end = 0
  let data = 0
  for (const r of regions) {
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < end || r.length < 0 || r.offset + r.length > realSize) {
      throw new BadArchiveError(`sparse map region ${r.offset}+${r.length} is out of order or outside the file's ${realSize} bytes`)
    }
    end = r.offset + r.length
    data += r.length
  }
  return data
}

/** Most regions a sparse map may list (GNU tar writes one per data run; a map is read into memory). */
export const MAX_SPARSE_REGIONS = 1 << 20

/**
 * Parse the text map GNU sparse 1.0 puts before the data: decimal numbers one per line (the
 * count, then offset and length of each region), padded with NULs to a 512-byte block.
 * `head` holds at least what has been read so far; returns undefined when it needs more bytes,
 * else the regions and how many bytes of the entry the map takes (a multiple of 512).
 */
export function parseSparseMap1(head: Buffer): {regions: SparseRegion[]; mapBytes: number} | undefined {
  const numbers: number[] = []
  let pos = 0
  let count = -1
  while (count < 0 || numbers.length < 2 * count) {
    const nl = head.indexOf(0x0a, pos)
    if (nl < 0) {
      if (head.length - pos > 20) throw new BadArchiveError('malformed GNU sparse map: a number is too long')
      return undefined
    }
    const text = head.toString('latin1', pos, nl)
    if (!/^[0-9]{1,20}$/.test(text)) throw new BadArchiveError('malformed GNU sparse map')
    const n = Number(text)
    if (!Number.isSafeInteger(n)) throw new BadArchiveError('malformed GNU sparse map: a number is too large')
    pos = nl + 1
    if (count < 0) {
      if (n > MAX_SPARSE_REGIONS) throw new BadArchiveError(`GNU sparse map lists ${n} regions (at most ${MAX_SPARSE_REGIONS})`)
      count = n
    } else {
      numbers.push(n)
    }
  }
  const mapBytes = Math.ceil(pos / 512) * 512
  const regions: SparseRegion[] = []
  for (let i = 0; i < numbers.length; i += 2) regions.push({offset: numbers[i]!, length: numbers[i + 1]!})
  return {regions, mapBytes}
}

/** The sparse map of GNU sparse 1.0, as text padded to whole blocks (export writes it before the data). */
export function encodeSparseMap1(regions: readonly SparseRegion[]): Buffer {
  const text = [String(regions.length), ...regions.flatMap((r) => [String(r.offset), String(r.length)])].join('\n') + '\n'
  const out = Buffer.alloc(Math.ceil(text.length / 512) * 512)
  out.write(text, 'latin1')
  return out
}
