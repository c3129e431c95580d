// Writes new blobs into packs. Blobs are compressed on the thread pool, appended to the open
// pack, and a pack is sealed and stored once it reaches the configured size; index files follow
// the packs they describe. Nothing becomes visible to other processes until a snapshot
// manifest names it, so a crash mid-write leaves only unreferenced packs for prune.
import {randomBytes} from 'node:crypto'

import {encodeBlob} from '../core/codec.js'
import {IdMap} from '../core/idmap.js'
import {encodePackTail, type PackEntry, type BlobTypeValue} from './pack.js'
import type {IndexedPack} from './indexfile.js'
import type {Repository} from './repository.js'

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

interface OpenPack {
  name: string
  packNo: number
  parts: Buffer[]
  entries: PackEntry[]
  size: number
}

/** Packs sealed but not yet described by an index file are flushed in groups of this many. */
const PACKS_PER_INDEX = 64
/** Sealed packs being stored at once: bounds memory to about (this + 1) x packSize. */
const MAX_PUTS_IN_FLIGHT = 2

export class BlobWriter {
  readonly stats: WriterStats = {blobs: 0, rawBytes: 0, storedBytes: 0, packs: 0, indexFiles: 0}
  /** Ids being compressed right now, so a second add of the same id is not stored twice. */
  private readonly pending = new IdMap(0, 256)
  private open: OpenPack | undefined
  private readonly puts: Promise<void>[] = []
  private unindexed: IndexedPack[] = []
  private failure: unknown

  constructor(private readonly repo: Repository) {}

  /** True when the repository has the blob or this writer is storing it. */
  has(id: Uint8Array): boolean {
    return this.repo.has(id) || this.pending.has(id)
  }

  /**
   * Store a blob unless it is stored already. Resolves once the blob is in an open pack (not
   * yet durable: that is flush()'s job). Returns false for a duplicate.
   */
  async add(type: BlobTypeValue, id: Buffer, plain: Uint8Array): Promise<boolean> {
    if (this.has(id)) return false
    this.pending.set(id, [])
    const encoded = await encodeBlob(plain, this.repo.config.compression.level)
    this.throwIfFailed()
    const pack = this.open ?? (this.open = this.newPack())
    const entry: PackEntry = {id, type, compression: encoded.compression, offset: pack.size, storedLength: encoded.data.length, rawLength: plain.length}
    pack.parts.push(encoded.data)
    pack.entries.push(entry)
    pack.size += encoded.data.length
    this.repo.index.set(id, [pack.packNo, entry.offset, entry.storedLength, entry.rawLength, type | (entry.compression << 8)])
    this.stats.blobs++
    this.stats.rawBytes += plain.length
    this.stats.storedBytes += encoded.data.length
    if (pack.size >= this.repo.config.packSize) await this.seal()
    return true
  }

  /** Store the open pack and write index files for every stored pack. After this, all added blobs are durable. */
  async flush(): Promise<WriterStats> {
    await this.seal()
    await Promise.all(this.puts.splice(0))
    this.throwIfFailed()
    if (this.unindexed.length > 0) await this.writeIndex()
    return this.stats
  }

  private newPack(): OpenPack {
    const name = randomBytes(32).toString('hex')
    return {name, packNo: this.repo.packNumber(name, 0), parts: [], entries: [], size: 0}
  }

  private async seal(): Promise<void> {
    const pack = this.open
    if (!pack || pack.entries.length === 0) return
    this.open = undefined
    const tail = encodePackTail(pack.entries)
    const size = pack.size + tail.length
    this.repo.packNumber(pack.name, size)
    const put = this.repo.backend.put('data', pack.name, [...pack.parts, tail]).then(
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
    await this.repo.writeIndex(packs)
    this.stats.indexFiles++
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure
  }
}
