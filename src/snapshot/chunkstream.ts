// File content that arrives as a stream (a tar member) into the repository: cut with FastCDC,
// hashed, deduplicated and stored through the BlobWriter exactly as the archiver stores a file
// read from disk, so an imported file and the same file snapshotted share every chunk.
// Memory is bounded: bytes are copied into pooled buffers (a few MiB in all) that go back to
// the pool once the chunks cut from them are written, and at most MAX_INFLIGHT chunks wait.
import {Inflight} from '../core/concurrency.js'
import {Chunker} from '../core/chunker.js'
import {blake3} from '../core/hash.js'
import {HashPool} from '../core/hashpool.js'
import {type ReadBuffer, ReadPool} from '../core/readpool.js'
import {StreamScanner} from '../core/scan.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import type {BlobWriter} from '../repo/writer.js'
import {CompressionGuess} from './archiver.js'

/** Sequential bytes: read() fills up to `want` bytes and returns fewer only at the end. */
export interface ByteSource {
  read(dst: Buffer, offset: number, want: number): Promise<number>
}

/** Bytes moved per buffer of a large file. */
const STEP = 1024 * 1024
/** Files up to this size are read whole and cut on this thread; larger ones stream through the scanner. */
const SMALL = 1024 * 1024
const SMALL_BUFFERS = 4
const LARGE_BUFFERS = 3
const MAX_INFLIGHT = 24

export class ContentStore {
  private readonly inflight = new Inflight(MAX_INFLIGHT)
  private readonly small = new ReadPool(SMALL_BUFFERS, SMALL)
  private readonly large: ReadPool
  private pool_: HashPool | undefined

  constructor(private readonly repo: Repository, private readonly writer: BlobWriter) {
    this.large = new ReadPool(LARGE_BUFFERS, repo.config.chunker.maxSize + STEP)
  }

  /** Store `size` bytes read from `src`; returns the chunk ids in order. */
  async store(src: ByteSource, size: number): Promise<Buffer[]> {
    if (size === 0) return []
    return size <= SMALL ? this.storeSmall(src, size) : this.storeLarge(src, size)
  }

  /** Wait until every chunk handed to the writer is written (the first failure is thrown). */
  async drain(): Promise<void> {
    await this.inflight.drain()
  }

  async close(): Promise<void> {
    await this.inflight.drain().catch(() => undefined)
    await this.pool_?.close()
    this.pool_ = undefined
  }

  private async storeSmall(src: ByteSource, size: number): Promise<Buffer[]> {
    const rb = await this.small.acquire()
    try {
      const data = rb.buf.subarray(0, size)
      await readFully(src, data, size)
      const chunks: Buffer[] = []
      const guess = new CompressionGuess()
      const params = this.repo.config.chunker
      if (size <= params.minSize) {
        await this.emit(chunks, blake3(data), data, rb, guess)
      } else {
        const chunker = new Chunker(params)
        let start = 0
        for (let cut = chunker.next(data, 0); cut >= 0; cut = chunker.next(data, cut)) {
          await this.emit(chunks, blake3(data.subarray(start, cut)), data.subarray(start, cut), rb, guess)
          start = cut
        }
        if (start < size) await this.emit(chunks, blake3(data.subarray(start)), data.subarray(start), rb, guess)
      }
      return chunks
    } finally {
      rb.retire()
    }
  }

  /**
   * Cut the stream buffer by buffer (the scanner carries its state across buffers, so the cuts
   * are those of the whole file); each buffer keeps `maxSize` bytes in front of its data, where
   * the previous buffer's unfinished chunk is copied.
   */
  private async storeLarge(src: ByteSource, size: number): Promise<Buffer[]> {
    const scanner = new StreamScanner(this.repo.config.chunker, () => (this.pool_ ??= new HashPool()))
    scanner.reset()
    const front = this.repo.config.chunker.maxSize
    const guess = new CompressionGuess()
    const chunks: Buffer[] = []
    let carry: Buffer = Buffer.alloc(0)
    let previous: ReadBuffer | undefined
    let done = 0
    try {
      while (done < size) {
        const rb = await this.large.acquire()
        const want = Math.min(STEP, size - done)
        try {
          await readFully(src, rb.buf.subarray(front, front + want), want)
        } catch (err) {
          rb.retire()
          throw err
        }
        done += want
        carry.copy(rb.buf, front - carry.length)
        previous?.retire()
        previous = rb
        const data = rb.buf.subarray(front - carry.length, front + want)
        const scanned = await scanner.scan(data, carry.length, done === size)
        const ids = await scanned.ids
        for (let i = 0; i < ids.length; i++) await this.emit(chunks, ids[i]!, scanned.chunks[i]!, rb, guess)
        carry = data.subarray(scanned.rest)
      }
      return chunks
    } finally {
      previous?.retire()
    }
  }

  /** List a chunk and hand it to the writer unless stored already; `rb` is held until written. */
  private async emit(chunks: Buffer[], id: Buffer, chunk: Buffer, rb: ReadBuffer, guess: CompressionGuess): Promise<void> {
    chunks.push(id)
    if (this.writer.reuse(id)) return
    rb.hold()
    const added = this.writer.add(BlobType.data, id, chunk, {raw: !guess.shouldTry()}).then(
      (compressed) => {
        rb.drop()
        if (compressed !== undefined) guess.record(compressed)
      },
      (err: unknown) => {
        rb.drop()
        throw err
      },
    )
    await this.inflight.add(added)
  }
}

async function readFully(src: ByteSource, dst: Buffer, want: number): Promise<void> {
  const got = await src.read(dst, 0, want)
  if (got !== want) throw new Error(`content ended after ${got} of ${want} bytes`)
}
