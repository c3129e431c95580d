// Object ids are 32-byte BLAKE3 digests: bytes in memory, lowercase hex on disk and on screen.
import {ID_BYTES} from './hash.js'

const HEX_ID = /^[0-9a-f]{64}$/

export function toHex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex')
}

export function isHexId(text: string): boolean {
  return HEX_ID.test(text)
}

/** Parse a full hex id; returns undefined for anything that is not exactly 64 lowercase hex digits. */
export function parseHexId(text: string): Buffer | undefined {
  if (!isHexId(text)) return undefined
  const id = Buffer.from(text, 'hex')
  return id.length === ID_BYTES ? id : undefined
}

export function idEquals(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}
