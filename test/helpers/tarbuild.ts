// Tar archives built byte by byte, so a test can write exactly the malformed or hostile header
// it needs (a size field no tar writer would emit, a lying pax record, a bad checksum).
import {encodePaxRecords} from '../../src/snapshot/tarformat.js'

export interface RawEntry {
  name: string | Buffer
  /** Typeflag character: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, 'x' pax, 'g' global pax... */
  type?: string
  data?: Buffer
  /** Size field value when not data's length (a lie). */
  size?: number
  /** The 12 bytes of the size field as given (base-256 and other oddities). */
  sizeField?: Buffer
  mode?: number
  uid?: number
  gid?: number
  mtime?: number
  linkname?: string | Buffer
  devmajor?: number
  devminor?: number
  /** Pax records written in an 'x' header before this entry. */
  pax?: readonly (readonly [string | Buffer, string | Buffer])[]
  /** Spoil the checksum. */
  badChecksum?: boolean
}

function octal(n: number, width: number): Buffer {
  return Buffer.from(n.toString(8).padStart(width - 1, '0') + '\0', 'latin1')
}

export function tarHeader(e: RawEntry): Buffer {
  const h = Buffer.alloc(512)
  const name = typeof e.name === 'string' ? Buffer.from(e.name, 'utf8') : e.name
  name.copy(h, 0, 0, Math.min(100, name.length))
  octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8).copy(h, 100)
  octal(e.uid ?? 0, 8).copy(h, 108)
  octal(e.gid ?? 0, 8).copy(h, 116)
  if (e.sizeField) e.sizeField.copy(h, 124)
  else octal(e.size ?? e.data?.length ?? 0, 12).copy(h, 124)
  octal(e.mtime ?? 1_700_000_000, 12).copy(h, 136)
  h.write(e.type ?? '0', 156, 'latin1')
  if (e.linkname !== undefined) (typeof e.linkname === 'string' ? Buffer.from(e.linkname, 'utf8') : e.linkname).copy(h, 157, 0, 100)
  h.write('ustar\x0000', 257, 'latin1')
  octal(e.devmajor ?? 0, 8).copy(h, 329)
  octal(e.devminor ?? 0, 8).copy(h, 337)
  h.fill(0x20, 148, 156)
  let sum = 0
  for (const b of h) sum += b
  if (e.badChecksum) sum += 1
  Buffer.from(sum.toString(8).padStart(6, '0') + '\0 ', 'latin1').copy(h, 148)
  return h
}

function padded(data: Buffer): Buffer {
  const rest = data.length % 512
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rest)])
}

/** The archive: each entry's pax header (if any), header and padded data; the two zero blocks unless `end: false`. */
export function tarOf(entries: readonly RawEntry[], opts: {end?: boolean} = {}): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    if (e.pax) {
      const body = encodePaxRecords(e.pax)
      parts.push(tarHeader({name: 'PaxHeader', type: 'x', data: body}), padded(body))
    }
    parts.push(tarHeader(e))
    if (e.data) parts.push(padded(e.data))
  }
  if (opts.end !== false) parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}
