// Reading a pack's own description of its blobs from storage: the trailer and header at its end.
// Prune reads it for packs no index lists; verify reads it to compare with the index.
import {IntegrityError} from '../core/errors.js'
import type {Backend} from '../store/backend.js'
import {decodePackHeader, decodePackTrailer, PACK_ENTRY_BYTES, PACK_TRAILER_BYTES, type PackEntry} from './pack.js'

export interface PackHeader {
  entries: PackEntry[]
  /** Bytes fetched to learn it. */
  bytesRead: number
}

/**
 * Read and check the header of pack `name` of `size` bytes. `expectedEntries` (what the index
 * says) sizes the first ranged read to take trailer and header at once; a second read follows
 * only when the trailer counts more entries. Damage is an IntegrityError.
 */
export async function readPackHeader(backend: Backend, name: string, size: number, expectedEntries = 0): Promise<PackHeader> {
  if (size < PACK_TRAILER_BYTES) throw new IntegrityError(`pack ${name}: ${size} bytes, too short for a trailer`, {pack: name})
  let tailLength = Math.min(size, expectedEntries * PACK_ENTRY_BYTES + PACK_TRAILER_BYTES)
  let tail = await backend.get('data', name, {offset: size - tailLength, length: tailLength})
  let bytesRead = tail.length
  const {entryCount, headerHash} = decodePackTrailer(tail.subarray(tail.length - PACK_TRAILER_BYTES), size, name)
  const headerLength = entryCount * PACK_ENTRY_BYTES
  if (headerLength + PACK_TRAILER_BYTES > tailLength) {
    tailLength = headerLength + PACK_TRAILER_BYTES
    tail = await backend.get('data', name, {offset: size - tailLength, length: tailLength})
    bytesRead += tail.length
  }
  const header = tail.subarray(tail.length - PACK_TRAILER_BYTES - headerLength, tail.length - PACK_TRAILER_BYTES)
  return {entries: decodePackHeader(Buffer.from(header), Buffer.from(headerHash), size, name), bytesRead}
}
