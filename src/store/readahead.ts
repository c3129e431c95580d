// Read-ahead for an object store's ranged reads. Over S3 every request costs a round trip and the
// server's own work per request (on the loopback Swift about 8 ms, as long as moving 0.5 MiB; more
// requests in flight do not shorten it: docs/BENCHMARKS.md), while a restore walks a pack in
// pieces: a batch's stretch, a large file's runs, two large files whose chunks were written
// interleaved into one pack and are read back by two lanes. So a read that starts near where an
// earlier read of the same object ended fetches a window of `window` bytes from its start, and
// later reads inside a window are served from it. A read with no neighbour (the first of an object,
// a partial restore's or a cat's) fetches exactly what it asks for.
//
// Memory: at most budget / window buffers of `window` bytes, allocated on first need and reused. A
// window is dropped least recently used first, and its buffer reused once the reads copying out of
// it are done; when every buffer is busy, a read fetches exactly what it asks for.

/** Fetch bytes [offset, offset + length) of `name` (into `into` when given); fewer when the object ends sooner. */
export type FetchRange = (name: string, offset: number, length: number, into?: Buffer) => Promise<Buffer>

interface Window {
  name: string
  offset: number
  /** Bytes asked for (the object may end sooner). */
  length: number
  buf: Buffer
  data: Promise<Buffer>
  settled: boolean
  /** Reads copying out of it (its buffer is not reused before they are done). */
  readers: number
  dropped: boolean
  /** Bytes copied out of it. */
  served: number
}

/** Objects whose last read end is remembered (a restore reads a handful of packs at a time). */
const MAX_TRACKED = 1024

export class ReadAhead {
  /** Least recently used first. */
  private windows: Window[] = []
  private readonly free: Buffer[] = []
  private allocated = 0
  private readonly maxBuffers: number
  /** Where the last read of each object ended. */
  private readonly ends = new Map<string, number>()
  /** Windows fetched (tests, benchmarks). */
  windowsFetched = 0
  private counts = {windowBytes: 0, exactFetches: 0, exactBytes: 0, served: 0, crossing: 0, busy: 0, droppedUnread: 0}

  /** What was fetched and served (benchmarks: CKPT_S3_STATS). */
  stats(): Record<string, number> {
    return {windowsFetched: this.windowsFetched, ...this.counts}
  }

  constructor(private readonly window: number, budget: number, private readonly fetch: FetchRange) {
    this.maxBuffers = Math.floor(budget / window)
    if (this.maxBuffers < 1) throw new RangeError(`read-ahead budget ${budget} is below its window ${window}`)
  }

  /**
   * Bytes [offset, offset + length) of `name`, into `into` when given. Fewer bytes come back only
   * when the object ends sooner (the caller decides what that means).
   */
  async read(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const end = offset + length
    const previous = this.ends.get(name)
    if (this.ends.size >= MAX_TRACKED) this.ends.clear()
    this.ends.set(name, end)
    let hit = this.find(name, offset, end)
    if (!hit && this.windows.some((w) => w.name === name && offset < w.offset + w.length && end > w.offset)) this.counts.crossing++
    if (!hit && length < this.window && previous !== undefined && Math.abs(offset - previous) <= this.window) {
      hit = this.open(name, offset)
      if (!hit) this.counts.busy++
    }
    if (!hit) {
      this.counts.exactFetches++
      const got = await this.fetch(name, offset, length, into)
      this.counts.exactBytes += got.length
      return got
    }
    hit.readers++
    try {
      const data = await hit.data
      const from = Math.min(data.length, offset - hit.offset)
      const to = Math.min(data.length, end - hit.offset)
      const out = into ? into.subarray(0, to - from) : Buffer.allocUnsafe(to - from)
      data.copy(out, 0, from, to)
      hit.served += to - from
      this.counts.served += to - from
      return out
    } finally {
      hit.readers--
      this.reclaim(hit)
    }
  }

  private find(name: string, offset: number, end: number): Window | undefined {
    for (let i = this.windows.length - 1; i >= 0; i--) {
      const w = this.windows[i]!
      if (w.name !== name || offset < w.offset || end > w.offset + w.length) continue
      this.windows.splice(i, 1)
      this.windows.push(w)
      return w
    }
    return undefined
  }

  /** A new window from `offset`, or undefined when every buffer is in use. */
  private open(name: string, offset: number): Window | undefined {
    let buf = this.free.pop()
    if (!buf && this.allocated < this.maxBuffers) {
      buf = Buffer.allocUnsafe(this.window)
      this.allocated++
    }
    if (!buf) {
      // Drop the least recently used window nobody is reading: its buffer is free at once.
      const idle = this.windows.find((w) => w.settled && w.readers === 0)
      if (!idle) return undefined
      this.drop(idle)
      buf = this.free.pop()!
    }
    const w: Window = {name, offset, length: this.window, buf, data: this.fetch(name, offset, this.window, buf), settled: false, readers: 0, dropped: false, served: 0}
    this.windows.push(w)
    this.windowsFetched++
    w.data.then(
      (data) => {
        w.settled = true
        this.counts.windowBytes += data.length
      },
      () => {
        // A failed window is forgotten (its readers get the error; the next read fetches again).
        w.settled = true
        this.drop(w)
      },
    )
    return w
  }

  private drop(w: Window): void {
    const i = this.windows.indexOf(w)
    if (i >= 0) this.windows.splice(i, 1)
    w.dropped = true
    if (w.settled) this.counts.droppedUnread += Math.max(0, w.length - w.served)
    this.reclaim(w)
  }

  private reclaim(w: Window): void {
    if (!w.dropped || w.readers > 0 || !w.settled || this.free.includes(w.buf)) return
    this.free.push(w.buf)
  }
}
