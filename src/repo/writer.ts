// Writes new blobs into packs. Blobs are compressed on the thread pool and streamed into the open
// pack's temp object with positional writes (offsets are assigned in order, the writes may finish
// in any order); a pack is sealed (tail written, fsynced, renamed) once it reaches the configured
// size, and index files follow the packs they describe. Nothing becomes visible to other processes
// until a snapshot manifest names it, so a crash mid-write leaves only unreferenced packs (or temp
// files) for prune; a write that fails gives its temp objects back at once (abort). Memory does not grow with the pack size: only blobs being written are held,
// and frames are compressed into a few reused buffers, not a new one per blob.
import {randomBytes} from 'node:crypto'

import {Compression, type CompressionValue, compressInto, encodeBlob, worthCompressing} from '../core/codec.js'
import {IdMap} from '../core/idmap.js'
import {toHex} from '../core/ids.js'
import {ReadPool, type ReadBuffer} from '../core/readpool.js'
import {BlobType, encodePackTail, type PackEntry, type BlobTypeValue} from './pack.js'
import {faultPoint} from '../core/faultpoint.js'
import type {IndexedPack} from './indexfile.js'
import type {Repository} from './repository.js'
import type {ObjectWriter} from '../store/backend.js'
import {StoredCheck} from './storedcheck.js'

export interface WriterStats {
  /** Blobs stored by this writer. */
  blobs: number
  /** Their plain size. */
  rawBytes: number
  /** Their stored (compressed) size. */
  storedBytes: number
  packs: number
  indexFiles: number
}

export interface WriterOptions {
  /**
   * Check the stored copy of every blob deduplicated against the repository (snapshot --force):
   * a damaged copy fails the write instead of being referenced again (src/repo/storedcheck.ts).
   */
  verifyReused?: boolean
}

export interface AddOptions {
  /** Skip the compression attempt (the caller knows the data does not compress). */
  raw?: boolean
}

interface OpenPack {
  name: string
  packNo: number
  object: Promise<ObjectWriter>
  used: number
  entries: PackEntry[]
  writes: Promise<void>[]
  /** Blobs are gathered here and written together: one write per STAGE_SIZE, not per blob. */
  stage?: {start: number; buf: Buffer; used: number}
}

/**
 * Blobs are gathered into stages of this size and written with one call each: one write per
 * 128 KiB chunk costs a thread-pool round trip apiece. Larger blobs are written where they lie.
 */
const STAGE_SIZE = 1024 * 1024

/** Packs sealed but not yet described by an index file are flushed in groups of this many. */
const PACKS_PER_INDEX = 64
/** Sealed packs being stored at once. */
const MAX_PUTS_IN_FLIGHT = 2
/** Blobs being compressed at once: one frame buffer each (libuv's pool has four threads). */
const FRAME_BUFFERS = 4

export class BlobWriter {
  readonly stats: WriterStats = {blobs: 0, rawBytes: 0, storedBytes: 0, packs: 0, indexFiles: 0}
  /** Ids being compressed right now, so a second add of the same id is not stored twice. */
  private readonly pending = new IdMap(0, 256)
  private open: OpenPack | undefined
  private readonly puts: Promise<void>[] = []
  private readonly spareStages: Buffer[] = []
  private unindexed: IndexedPack[] = []
  private failure: unknown
  /** Where frames are compressed to; a blob larger than these (a big tree) gets a buffer of its own. */
  private readonly frames: ReadPool

  private readonly check: StoredCheck | undefined

  constructor(private readonly repo: Repository, opts: WriterOptions = {}) {
    this.frames = new ReadPool(FRAME_BUFFERS, repo.config.chunker.maxSize)
    if (opts.verifyReused) this.check = new StoredCheck(repo, (err) => (this.failure ??= err))
  }

  /** True when the repository has the blob or this writer is storing it. */
  has(id: Uint8Array): boolean {
    return this.repo.has(id) || this.pending.has(id)
  }

  /**
   * As has(), for a blob about to be referenced instead of stored: with verifyReused, a copy
   * stored before this writer is queued for a check.
   */
  reuse(id: Uint8Array): boolean {
    if (this.pending.has(id)) return true
    if (!this.repo.has(id)) return false
    this.check?.add(id)
    return true
  }

  /**
   * Store a blob unless it is stored already. Resolves once the blob is written to an open pack
   * (durable only after flush()); `plain` may be reused by the caller from then on. Returns
   * whether the blob was compressed (undefined for a duplicate).
   */
  async add(type: BlobTypeValue, id: Buffer, plain: Uint8Array, opts: AddOptions = {}): Promise<boolean | undefined> {
    if (this.reuse(id)) return undefined
    // The next snapshot reads this tree as its parent's: keep it where reading it costs nothing.
    if (type === BlobType.tree) this.repo.cache?.put('trees', toHex(id), plain)
    this.pending.set(id, [])
    const level = opts.raw ? 0 : this.repo.config.compression.level
    const {compression, data, frame} = await this.encode(plain, level)
    try {
      this.throwIfFailed()
      await this.place(type, id, plain.length, compression, data)
    } finally {
      frame?.retire()
    }
    return compression !== Compression.none
  }

  /**
   * Store a blob already encoded (prune's repack: a frame is copied, not inflated and compressed
   * again). As add; `stored` may be reused once this resolves.
   */
  async addStored(type: BlobTypeValue, id: Buffer, stored: Uint8Array, compression: CompressionValue, rawLength: number): Promise<void> {
    if (this.has(id)) return
    this.pending.set(id, [])
    this.throwIfFailed()
    await this.place(type, id, rawLength, compression, stored)
  }

  /** The bytes to store for a blob: a frame in a pooled buffer (held until written), or the blob as it is. */
  private async encode(plain: Uint8Array, level: number): Promise<{compression: CompressionValue; data: Uint8Array; frame?: ReadBuffer}> {
    const none = {compression: Compression.none, data: plain}
    if (!worthCompressing(plain.length, level)) return none
    if (plain.length > this.frames.size) return encodeBlob(plain, level)
    const frame = await this.frames.acquire()
    let n = 0
    try {
      n = await compressInto(plain, level, frame.buf)
    } finally {
      if (n === 0) frame.retire()
    }
    return n > 0 ? {compression: Compression.zstd, data: frame.buf.subarray(0, n), frame} : none
  }

  /** Give the stored bytes their place in the open pack, index them, and write them (staged when small). */
  private async place(type: BlobTypeValue, id: Buffer, rawLength: number, compression: CompressionValue, data: Uint8Array): Promise<void> {
    const size = data.length
    const pack = (this.open ??= this.newPack())
    const entry: PackEntry = {id, type, compression, offset: pack.used, storedLength: size, rawLength}
    pack.used += size
    pack.entries.push(entry)
    let write: Promise<void> | undefined
    if (size <= STAGE_SIZE / 4) {
      let stage = pack.stage
      if (!stage || stage.used + size > stage.buf.length) {
        // The blob that fills a stage waits for its write: staged bytes in flight stay bounded.
        write = this.flushStage(pack)
        stage = pack.stage = {start: entry.offset, buf: this.spareStages.pop() ?? Buffer.allocUnsafeSlow(STAGE_SIZE), used: 0}
      }
      stage.buf.set(data, stage.used)
      stage.used += size
    } else {
      this.flushStage(pack)
      write = pack.object.then((o) => o.write(data, entry.offset))
      pack.writes.push(write)
    }
    this.repo.index.set(id, pack.packNo, entry.offset, entry.storedLength, entry.rawLength, type, entry.compression)
    this.stats.blobs++
    this.stats.rawBytes += rawLength
    this.stats.storedBytes += size
    const sealing = pack.used >= this.repo.config.packSize ? this.seal() : undefined
    // Awaited below; when the write fails first, its error is the one reported and the seal's
    // must not surface as an unhandled rejection.
    sealing?.catch(() => undefined)
    if (write) await write
    await sealing
  }

  /** Store the open pack and write index files for every stored pack. After this, all added blobs are durable. */
  async flush(): Promise<WriterStats> {
    // Damage in a reused copy fails the snapshot before anything names the new packs.
    await this.check?.flush()
    this.throwIfFailed()
    await this.seal()
    await Promise.all(this.puts.splice(0))
    this.throwIfFailed()
    if (this.unindexed.length > 0) await this.writeIndex()
    return this.stats
  }

  /**
   * Give back what a failed write took, before the error reaches the user (a full disk must not
   * stay full): the open pack's temp object, the temp objects of packs being sealed (each
   * aborts its own), and sealed packs no index file names yet, which no other process can know.
   * Packs an index file names stay: another snapshot may have loaded that index and reused their
   * blobs; prune collects them if nothing does. The writer takes no more blobs afterwards.
   */
  async abort(): Promise<void> {
    this.failure ??= new Error('blob writer aborted')
    const pack = this.open
    this.open = undefined
    if (pack) {
      await Promise.allSettled(pack.writes)
      const object = await pack.object.catch(() => undefined)
      await object?.abort()
    }
    await Promise.allSettled(this.puts.splice(0))
    const unindexed = this.unindexed
    this.unindexed = []
    await Promise.all(unindexed.map((p) => this.repo.backend.delete('data', p.name).catch(() => undefined)))
  }

  private newPack(): OpenPack {
    const name = randomBytes(32).toString('hex')
    const object = this.repo.backend.create('data', name)
    object.catch(() => undefined) // surfaced through the writes that await it
    return {name, packNo: this.repo.packNumber(name, 0), object, used: 0, entries: [], writes: []}
  }

  private async seal(): Promise<void> {
    const pack = this.open
    if (!pack || pack.entries.length === 0) return
    this.open = undefined
    this.flushStage(pack)
    const tail = encodePackTail(pack.entries)
    const size = pack.used + tail.length
    this.repo.packNumber(pack.name, size)
    const put = (async () => {
      const object = await pack.object
      try {
        await Promise.all([...pack.writes, object.write(tail, pack.used)])
        await object.commit()
        faultPoint('writer.sealed')
      } catch (err) {
        await object.abort()
        throw err
      }
    })().then(
      () => {
        this.stats.packs++
        this.unindexed.push({name: pack.name, size, entries: pack.entries})
      },
      (err: unknown) => {
        this.failure ??= err
      },
    )
    this.puts.push(put)
    while (this.puts.length > MAX_PUTS_IN_FLIGHT) await this.puts.shift()
    this.throwIfFailed()
    if (this.unindexed.length >= PACKS_PER_INDEX) await this.writeIndex()
  }

  private async writeIndex(): Promise<void> {
    const packs = this.unindexed
    this.unindexed = []
    try {
      await this.repo.writeIndex(packs)
    } catch (err) {
      this.unindexed.push(...packs) // still named by no index file: abort() gives them back
      throw err
    }
    faultPoint('writer.indexed')
    this.stats.indexFiles++
  }

  /** Write out the pack's stage; its buffer is reused once written. */
  private flushStage(pack: OpenPack): Promise<void> | undefined {
    const stage = pack.stage
    if (!stage || stage.used === 0) return undefined
    pack.stage = undefined
    const write = pack.object.then((o) => o.write(stage.buf.subarray(0, stage.used), stage.start))
    write.then(() => {
      if (this.spareStages.length < 4) this.spareStages.push(stage.buf)
    }, () => undefined) // failures surface where the write is awaited (here or at seal)
    pack.writes.push(write)
    return write
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure
  }
}
