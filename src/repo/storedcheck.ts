// Checks stored copies of blobs a snapshot reuses (`snapshot --force`): a chunk that was just read
// and hashes to an id the index knows is deduplicated against the stored copy, so if that copy
// is damaged the new snapshot would reference bytes that no longer exist. Reused blobs are
// gathered per pack and checked in runs: one ranged read per run of nearby blobs, inflated and
// hashed in one thread-pool job (openBlobs, the path restore and verify read through), two runs
// at a time, into two pairs of reused buffers. A damaged copy fails the snapshot before its
// manifest is written.
import {inflatedSize, openBlobs, type StoredBlob} from '../core/codec.js'
import {Limiter} from '../core/concurrency.js'
import {ReadPool} from '../core/readpool.js'
import {IntegrityError} from '../core/errors.js'
import {IdMap} from '../core/idmap.js'
import {toHex} from '../core/ids.js'
import {type BlobLocation, damagedBlob, type Repository} from './repository.js'

/** A pack's gathered blobs are checked once their stored bytes reach this. */
const BATCH_BYTES = 2 * 1024 * 1024
/** Blobs further apart than this are read separately (reading the gap would cost more than a second read). */
const MAX_GAP = 256 * 1024
/** Runs read and checked at once. */
const RUNS_IN_FLIGHT = 2
/** A run spans at most this many stored bytes and inflates to at most this many: its buffers are pooled, not made per run. */
const RUN_STORED = 2 * 1024 * 1024
const RUN_RAW = 4 * 1024 * 1024

interface Reused {
  id: Uint8Array
  loc: BlobLocation
}

export class StoredCheck {
  /** Blobs queued or checked already: each is checked once per snapshot. */
  private readonly seen = new IdMap(0, 256)
  private readonly byPack = new Map<string, {blobs: Reused[]; bytes: number}>()
  private readonly limiter = new Limiter(RUNS_IN_FLIGHT)
  private readonly storedBuffers = new ReadPool(RUNS_IN_FLIGHT, RUN_STORED)
  private readonly rawBuffers = new ReadPool(RUNS_IN_FLIGHT, RUN_RAW)
  private readonly running = new Set<Promise<void>>()
  private failure: unknown
  /** Blobs checked and bytes read, for tests and the summary. */
  checked = 0
  bytesRead = 0

  constructor(private readonly repo: Repository, private readonly onFailure: (err: unknown) => void) {}

  /** Queue the stored copy of `id` for checking (once). */
  add(id: Uint8Array): void {
    if (this.seen.has(id)) return
    const loc = this.repo.lookup(id)
    if (!loc) return
    this.seen.set(id, [])
    let group = this.byPack.get(loc.pack)
    if (!group) this.byPack.set(loc.pack, (group = {blobs: [], bytes: 0}))
    group.blobs.push({id: Buffer.from(id), loc})
    group.bytes += loc.storedLength
    if (group.bytes >= BATCH_BYTES) this.dispatch(loc.pack)
  }

  /** Check everything queued; throws the first damage found. */
  async flush(): Promise<void> {
    for (const pack of [...this.byPack.keys()]) this.dispatch(pack)
    while (this.running.size > 0) await Promise.race(this.running)
    if (this.failure) throw this.failure
  }

  private dispatch(pack: string): void {
    const group = this.byPack.get(pack)
    if (!group) return
    this.byPack.delete(pack)
    const blobs = group.blobs.sort((a, b) => a.loc.offset - b.loc.offset)
    let start = 0
    let raw = inflatedSize([blobs[0]!.loc])
    for (let i = 1; i <= blobs.length; i++) {
      const prev = blobs[i - 1]!.loc
      const next = blobs[i]?.loc
      const nextRaw = next ? inflatedSize([next]) : 0
      raw += nextRaw
      const split = !next || next.offset - (prev.offset + prev.storedLength) > MAX_GAP || next.offset + next.storedLength - blobs[start]!.loc.offset > RUN_STORED || raw > RUN_RAW
      if (split) {
        raw = nextRaw
        const run = blobs.slice(start, i) // now: the task may start later, when start has moved on
        this.track(this.limiter.run(() => this.checkRun(pack, run)))
        start = i
      }
    }
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((err: unknown) => {
      if (this.failure === undefined) {
        this.failure = err
        this.onFailure(err)
      }
    })
    this.running.add(tracked)
    void tracked.finally(() => this.running.delete(tracked))
  }

  private async checkRun(pack: string, run: Reused[]): Promise<void> {
    if (this.failure) return
    const first = run[0]!.loc.offset
    const last = run[run.length - 1]!.loc
    const length = last.offset + last.storedLength - first
    const specs: StoredBlob[] = run.map(({id, loc}) => ({offset: loc.offset - first, storedLength: loc.storedLength, compression: loc.compression, rawLength: loc.rawLength, id}))
    const rawLength = inflatedSize(specs)
    // A blob larger than the pooled buffers (a big tree) is a run of its own, in buffers of its own.
    const storedBuf = length <= RUN_STORED ? await this.storedBuffers.acquire() : undefined
    const rawBuf = rawLength <= RUN_RAW ? await this.rawBuffers.acquire() : undefined
    let opened
    try {
      const stored = await this.repo.backend.get('data', pack, {offset: first, length}, storedBuf?.buf)
      this.bytesRead += stored.length
      opened = await openBlobs(stored, specs, rawBuf?.buf ?? Buffer.allocUnsafe(rawLength))
    } finally {
      storedBuf?.retire()
      rawBuf?.retire()
    }
    opened.forEach((o, i) => {
      if (o.ok || this.failure) return
      const blob = toHex(run[i]!.id)
      const damage = damagedBlob(run[i]!.id, pack, o.error)
      throw new IntegrityError(
        `${damage.message}: this snapshot read the same content and would reference the damaged copy, so it was not written; run "ckpt repair" to drop the damaged blob from the index, then snapshot again to store it anew`,
        {blob, pack},
        {cause: damage},
      )
    })
    this.checked += run.length
  }
}
