// FastCDC and BLAKE3 over a stream of buffers: for each buffer, where its chunks end and their ids.
// With the native addon both run as one job on libuv's thread pool (scanAndHash), so the main
// thread never touches file bytes: while one buffer is cut and hashed there, the main thread hands
// the previous buffer's chunks to the writer. Without it, the JavaScript scan runs here and the
// chunks are hashed on the HashPool's workers. Either way the cuts are Chunker's, so they depend
// only on the bytes, never on how the stream was split into buffers.
import {Chunker, type ChunkerParams} from './chunker.js'
import {digestFromBytes, ID_BYTES} from './hash.js'
import type {HashPool} from './hashpool.js'
import {type NativeAddon, nativeAddon} from './native.js'

export interface Scanned {
  /** The chunks that end in this buffer (views of it), in order. */
  chunks: Buffer[]
  ids: Buffer[]
  /** Where the unfinished last chunk starts (the buffer's length after a final scan). */
  rest: number
}

export class StreamScanner {
  private readonly chunker: Chunker
  private readonly addon: NativeAddon | null
  private ends = new Uint32Array(0)
  private ids = new Uint8Array(0)
  private busy = false

  /**
   * `pool` hashes for the fallback only; it is asked for on first need. `engine: 'js'` runs the
   * fallback even when the addon is built (tests hold the two equal).
   */
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
    try {
      return this.addon ? await this.scanNative(this.addon, data, from, final) : await this.scanHere(data, from, final)
    } finally {
      this.busy = false
    }
  }

  private async scanNative(addon: NativeAddon, data: Buffer, from: number, final: boolean): Promise<Scanned> {
    const capacity = Math.ceil((data.length - from) / this.params.minSize) + 2
    if (this.ends.length < capacity) {
      this.ends = new Uint32Array(capacity)
      this.ids = new Uint8Array(capacity * ID_BYTES)
    }
    const c = this.chunker
    const count = await addon.scanAndHash(data, from, c.gear, c.params, c.state, final, this.ends, this.ids)
    const chunks: Buffer[] = []
    const ids: Buffer[] = []
    let start = 0
    for (let i = 0; i < count; i++) {
      const end = this.ends[i]!
      chunks.push(data.subarray(start, end))
      ids.push(digestFromBytes(this.ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES)))
      start = end
    }
    return {chunks, ids, rest: start}
  }

  private async scanHere(data: Buffer, from: number, final: boolean): Promise<Scanned> {
    const chunks: Buffer[] = []
    let start = 0
    for (let cut = this.chunker.next(data, from); cut >= 0; cut = this.chunker.next(data, cut)) {
      chunks.push(data.subarray(start, cut))
      start = cut
    }
    if (final && start < data.length) {
      chunks.push(data.subarray(start))
      start = data.length
      this.chunker.reset()
    }
    return {chunks, ids: await this.pool().hash(chunks), rest: start}
  }
}
