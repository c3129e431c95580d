// FastCDC content-defined chunking (Xia et al., "FastCDC", USENIX ATC 2016) with normalized
// chunking: between min and the average size a cut needs more zero bits (maskHard), past the
// average fewer (maskEasy), which pulls chunk sizes toward the average. Bytes before `min` are
// not hashed at all (cut-point skipping). Pure: no I/O, no allocation per byte.
//
// The push API keeps all state between calls, so cut points depend only on the bytes, never on
// how the caller split them into buffers (test/core/chunker.test.ts proves it).
//
// The scan runs in the native addon when it is built (src/native/content.c, the same loop in C,
// about 3x faster); the loop below is the reference and the fallback, and tests hold the two
// equal cut for cut.
import {type NativeAddon, nativeAddon} from './native.js'

export interface ChunkerParams {
  minSize: number
  avgSize: number
  maxSize: number
  /** Normalization level: the hard mask has log2(avg)+level bits, the easy one log2(avg)-level. */
  normalization: number
  /** Seed of the gear table. Part of the repository config: another seed gives other cut points. */
  seed: number
}

export const DEFAULT_CHUNKER: Readonly<ChunkerParams> = Object.freeze({
  minSize: 32 * 1024,
  avgSize: 128 * 1024,
  maxSize: 512 * 1024,
  normalization: 2,
  seed: 0x636b7074, // "ckpt"
})

/** Checks the parameters a repository config carries; returns a message for the first problem. */
export function checkChunkerParams(p: ChunkerParams): string | undefined {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0
  if (!pow2(p.avgSize) || p.avgSize < 256 || p.avgSize > 64 * 1024 * 1024) return 'avgSize must be a power of two between 256 B and 64 MiB'
  if (!Number.isInteger(p.minSize) || p.minSize < 64 || p.minSize >= p.avgSize) return 'minSize must be an integer >= 64 and below avgSize'
  if (!Number.isInteger(p.maxSize) || p.maxSize <= p.avgSize || p.maxSize > 256 * 1024 * 1024) return 'maxSize must be above avgSize and at most 256 MiB'
  const bits = Math.log2(p.avgSize)
  if (!Number.isInteger(p.normalization) || p.normalization < 0 || p.normalization > 4 || bits - p.normalization < 1 || bits + p.normalization > 31) {
    return 'normalization must be an integer from 0 to 4 that keeps both masks within 1..31 bits'
  }
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) return 'seed must be a 32-bit unsigned integer'
  return undefined
}

/**
 * The 256-entry gear table: splitmix32 over `seed` (documented in docs/FORMAT.md so another
 * implementation can reproduce it).
 */
export function gearTable(seed: number): Int32Array {
  const cached = gearTables.get(seed)
  if (cached) return cached
  const table = new Int32Array(256)
  let state = seed >>> 0
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    z ^= z >>> 16
    table[i] = z | 0
  }
  gearTables.set(seed, table)
  return table
}

// Tables are read-only once built; chunkers with the same seed share one.
const gearTables = new Map<number, Int32Array>()

/** A mask of the `bits` most significant bits: in a gear hash the high bits depend on the most bytes. */
function topBits(bits: number): number {
  return bits >= 32 ? -1 : (~0 << (32 - bits)) | 0
}

// Indexes into Chunker.params and Chunker.state, shared with the native scan.
const MIN = 0
const NORMAL = 1
const MAX = 2
const MASK_HARD = 3
const MASK_EASY = 4
const LENGTH = 0
const HASH = 1

export class Chunker {
  // gear, params and state are what the native scan reads (src/native/content.c, scan.ts).
  readonly gear: Int32Array
  private readonly addon: NativeAddon | null
  /** min, normal (the average), max, hard mask, easy mask. */
  readonly params = new Uint32Array(5)
  /** Bytes of the current chunk seen so far across calls, and the rolling hash. */
  readonly state = new Uint32Array(2)

  /** `scan: 'js'` runs the reference loop even when the native scan is available (tests). */
  constructor(params: ChunkerParams, scan: 'native' | 'js' = 'native') {
    const problem = checkChunkerParams(params)
    if (problem) throw new RangeError(`chunker: ${problem}`)
    this.gear = gearTable(params.seed)
    this.addon = scan === 'native' ? nativeAddon() : null
    const bits = Math.log2(params.avgSize)
    this.params[MIN] = params.minSize
    this.params[NORMAL] = params.avgSize
    this.params[MAX] = params.maxSize
    this.params[MASK_HARD] = topBits(bits + params.normalization)
    this.params[MASK_EASY] = topBits(bits - params.normalization)
  }

  /**
   * Scan `buf` from `from`. Returns the offset in `buf` just past the next cut point, or -1 when
   * `buf` ends first (the state is kept and the next call continues with the next buffer). After
   * a cut the state is reset: call again from the returned offset.
   */
  next(buf: Uint8Array, from: number): number {
    if (this.addon) return this.addon.gearNext(buf, from, this.gear, this.params, this.state)
    return this.scan(buf, from)
  }

  /** Forget the current partial chunk (the caller emits it as the last chunk of a stream). */
  reset(): void {
    this.state.fill(0)
  }

  private scan(buf: Uint8Array, from: number): number {
    const p = this.params
    const end = buf.length
    let i = from
    let length = this.state[LENGTH]!
    if (length < p[MIN]!) {
      const skip = Math.min(p[MIN]! - length, end - i)
      i += skip
      length += skip
      if (length < p[MIN]!) {
        this.state[LENGTH] = length
        return -1
      }
    }
    const gear = this.gear
    let h = this.state[HASH]! | 0
    if (length < p[NORMAL]!) {
      const stop = Math.min(end, i + (p[NORMAL]! - length))
      const mask = p[MASK_HARD]! | 0
      const start = i
      for (; i < stop; i++) {
        h = ((h << 1) + gear[buf[i]!]!) | 0
        if ((h & mask) === 0) return this.cut(i + 1)
      }
      length += i - start
    }
    if (i < end) {
      const stop = Math.min(end, i + (p[MAX]! - length))
      const mask = p[MASK_EASY]! | 0
      const start = i
      for (; i < stop; i++) {
        h = ((h << 1) + gear[buf[i]!]!) | 0
        if ((h & mask) === 0) return this.cut(i + 1)
      }
      length += i - start
      if (length >= p[MAX]!) return this.cut(i)
    }
    this.state[LENGTH] = length
    this.state[HASH] = h
    return -1
  }

  private cut(at: number): number {
    this.state.fill(0)
    return at
  }
}
