// What restore refuses, as pure checks verify applies too: verify exit 0 must mean every
// snapshot restores, so nothing restore rejects may pass here.
import {BlobType, type BlobTypeValue} from '../repo/pack.js'

/**
 * Why a blob's recorded raw length cannot be right, or undefined. The chunker never cuts a chunk
 * longer than the repository's maxSize, so a data blob that claims more was not written by ckpt
 * (a hostile index could make restore inflate a 30 KiB frame into a gigabyte). Trees are not
 * chunks: a large directory's tree may be longer.
 */
export function chunkLengthProblem(type: BlobTypeValue, rawLength: number, maxChunkSize: number): string | undefined {
  if (type !== BlobType.data || rawLength <= maxChunkSize) return undefined
  return `claims ${rawLength} bytes, above the repository's maximum chunk size of ${maxChunkSize}`
}

/** Why a file's recorded size contradicts its chunks, or undefined (restore refuses such a file). */
export function fileSizeProblem(name: string, size: number, chunkBytes: number): string | undefined {
  if (size === chunkBytes) return undefined
  return `file ${name} is recorded as ${size} bytes, but its chunks add up to ${chunkBytes}`
}
