// FastCDC and BLAKE3 over a stream of buffers: for each buffer, where its chunks end and their ids.
// With the native addon the cut points of a buffer are found as one job on libuv's thread pool
// (gearScan), so the main thread never walks file bytes; the chunks are then hashed as one more
// job (HashPool). Cutting must go buffer after buffer (each starts from the previous one's state),
// hashing need not: the next buffer is cut on one core while this one is hashed on the other.
// Without the addon, the JavaScript scan runs here and the HashPool hashes on worker threads.
// Either way the cuts are Chunker's, so they depend only on the bytes, never on the buffers.
import {Chunker, type ChunkerParams} from './chunker.js'
import type {HashPool} from './hashpool.js'
import {type NativeAddon, nativeAddon} from './native.js'

export interface Scanned {
  /** The chunks that end in this buffer (views of it), in order. */
  chunks: Buffer[]
  /** Their ids, once hashed. The buffer must stay unchanged until then. */
  ids: Promise<Buffer[]>
  /** Where the unfinished last chunk starts (the buffer's length after a final scan). */
  rest: number
}

export class StreamScanner {
  private readonly chunker: Chunker
  private readonly addon: NativeAddon | null
  private ends = new Uint32Array(0)
  private busy = false

  /** `engine: 'js'` cuts in JavaScript even when the addon is built (tests hold the two equal). */
  constructor(private readonly params: ChunkerParams, private readonly pool: () => HashPool, engine: 'native' | 'js' = 'native') {
    this.addon = engine === 'native' ? nativeAddon() : null
    this.chunker = new Chunker(params, engine)
  }

  /** Start a new stream. */
  reset(): void {
    this.chunker.reset()
  }

  /**
   * Cut `data` from `from` on: the bytes before `from` are the unfinished chunk of the previous
   * buffer, already scanned. With `final` the bytes after the last cut are the stream's last
   * chunk. One scan at a time: the next buffer's start depends on this one's end.
   */
  async scan(data: Buffer, from: number, final: boolean): Promise<Scanned> {
    if (this.busy) throw new Error('StreamScanner: one scan at a time')
    this.busy = true
    let ends: ArrayLike<number>
    let count: number
    try {
      if (this.addon) {
        const capacity = Math.ceil((data.length - from) / this.params.minSize) + 2
        if (this.ends.length < capacity) this.ends = new Uint32Array(capacity)
        const c = this.chunker
        count = await this.addon.gearScan(data, from, c.gear, c.params, c.state, final, this.ends)
        ends = this.ends
      } else {
        const found: number[] = []
        for (let cut = this.chunker.next(data, from); cut >= 0; cut = this.chunker.next(data, cut)) found.push(cut)
        if (final && (found.at(-1) ?? 0) < data.length) {
          found.push(data.length)
          this.chunker.reset()
        }
        ends = found
        count = found.length
      }
    } finally {
      this.busy = false
    }
    const chunks: Buffer[] = []
    let start = 0
    for (let i = 0; i < count; i++) {
      chunks.push(data.subarray(start, ends[i]))
      start = ends[i]!
    }
    const ids = this.pool().hash(chunks)
    ids.catch(() => undefined) // the caller awaits it; a failure must not go unhandled meanwhile
    return {chunks, ids, rest: start}
  }
}
