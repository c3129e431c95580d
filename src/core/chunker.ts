// FastCDC content-defined chunking (Xia et al., "FastCDC", USENIX ATC 2016) with normalized
// chunking: between min and the average size a cut needs more zero bits (maskHard), past the
// average fewer (maskEasy), which pulls chunk sizes toward the average. Bytes before `min` are
// not hashed at all (cut-point skipping). Pure: no I/O, no allocation per byte.
//
// The push API keeps all state between calls, so cut points depend only on the bytes, never on
// how the caller split them into buffers (test/core/chunker.test.ts proves it).

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

export class Chunker {
  private readonly gear: Int32Array
  private readonly min: number
  private readonly normal: number
  private readonly max: number
  private readonly maskHard: number
  private readonly maskEasy: number
  /** Bytes of the current chunk seen so far, across calls. */
  private length = 0
  private hash = 0

  constructor(params: ChunkerParams) {
    const problem = checkChunkerParams(params)
    if (problem) throw new RangeError(`chunker: ${problem}`)
    this.gear = gearTable(params.seed)
    this.min = params.minSize
    this.normal = params.avgSize
    this.max = params.maxSize
    const bits = Math.log2(params.avgSize)
    this.maskHard = topBits(bits + params.normalization)
    this.maskEasy = topBits(bits - params.normalization)
  }

  /**
   * Scan `buf` from `from`. Returns the offset in `buf` just past the next cut point, or -1 when
   * `buf` ends first (the state is kept and the next call continues with the next buffer). After
   * a cut the state is reset: call again from the returned offset.
   */
  next(buf: Uint8Array, from: number): number {
    const end = buf.length
    let i = from
    let length = this.length
    if (length < this.min) {
      const skip = Math.min(this.min - length, end - i)
      i += skip
      length += skip
      if (length < this.min) {
        this.length = length
        return -1
      }
    }
    const gear = this.gear
    let h = this.hash
    if (length < this.normal) {
      const stop = Math.min(end, i + (this.normal - length))
      const mask = this.maskHard
      const start = i
      for (; i < stop; i++) {
        h = ((h << 1) + gear[buf[i]!]!) | 0
        if ((h & mask) === 0) return this.cut(i + 1)
      }
      length += i - start
    }
    if (i < end) {
      const stop = Math.min(end, i + (this.max - length))
      const mask = this.maskEasy
      const start = i
      for (; i < stop; i++) {
        h = ((h << 1) + gear[buf[i]!]!) | 0
        if ((h & mask) === 0) return this.cut(i + 1)
      }
      length += i - start
      if (length >= this.max) return this.cut(i)
    }
    this.length = length
    this.hash = h
    return -1
  }

  /** Forget the current partial chunk (the caller emits it as the last chunk of a stream). */
  reset(): void {
    this.length = 0
    this.hash = 0
  }

  private cut(at: number): number {
    this.length = 0
    this.hash = 0
    return at
  }
}
