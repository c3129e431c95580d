// Read-ahead for an object store's ranged reads. Over S3 every request costs a round trip and the
// server's own work per request (on the loopback Swift about 8 ms, as long as moving 0.5 MiB; more
// requests in flight do not shorten it: docs/BENCHMARKS.md), while a restore walks a pack in
// pieces: a batch's stretch, a large file's runs, two large files whose chunks were written
// interleaved into one pack and are read back by two lanes, one ahead of the other. So a read that
// starts near where an earlier read of the same object ended, or that touches a window of it, is
// served from windows: the object is cut into blocks of `window` bytes at fixed offsets, and a window
// is fetched for the block the read needs, whole, so that both lanes find it wherever each one is
// in it. A window also takes `window / 8` bytes past its block (a pack runs a little over its
// target size: its last sliver comes with the window before it, not as one more request), and the
// next window starts where it ends. A read with no neighbour (the first of an object, a partial
// restore's or a cat's) fetches exactly what it asks for.
//
// Each byte is fetched once while it is held: the windows of an object never overlap (a window
// starts no earlier than the end of the one before it and stops where the next one starts), and a
// read is served piece by piece from every window it covers (the tail of one and the head of the
// next), fetching only what none holds. The bytes of a block before the read that opens its window
// come too: in a restore another lane needs them, or the pack's first, exact read had them.
//
// Memory: at most floor(budget / window) buffers of window + window / 8 bytes (36 MiB with the S3
// backend's 4 MiB and 32 MiB), allocated on first need and reused; a window clipped by a neighbour
// still holds a whole buffer. When a buffer is needed and none is free, an idle window (fetched,
// nobody copying out of it) is dropped: first one whose bytes have all been served (its readers have
// moved on), else the least recently used. A buffer is reused only once every read copying out of
// it is done; when every buffer is busy, a read fetches what no window holds exactly.
//
// A read waits for every piece it started, failed or not, before it returns or throws, so no fetch
// still writes into the caller's buffer afterwards; a failed window fails the reads waiting on it
// and is forgotten (the next read fetches again).

/** Fetch bytes [offset, offset + length) of `name` (into `into` when given); fewer when the object ends sooner. */
export type FetchRange = (name: string, offset: number, length: number, into?: Buffer) => Promise<Buffer>

interface Window {
  name: string
  offset: number
  /** Bytes asked for (the object may end sooner). */
  length: number
  buf: Buffer
  data: Promise<Buffer>
  /** Bytes fetched, once settled (undefined before, or when it failed). */
  size: number | undefined
  settled: boolean
  /** Reads copying out of it (its buffer is not reused before they are done). */
  readers: number
  dropped: boolean
  /** Bytes copied out of it. */
  served: number
  /** Bytes of it before the read that opened it (fetched with the block, maybe never read). */
  before: number
}

/** A stretch [from, to) of a read: out of a window, or fetched as is. */
interface Part {
  from: number
  to: number
  window?: Window
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
  private readonly counts = {windowBytes: 0, exactFetches: 0, exactBytes: 0, served: 0, droppedUnread: 0}

  /** What a window takes beyond its block (see the header). */
  private readonly tail: number

  constructor(private readonly window: number, budget: number, private readonly fetch: FetchRange) {
    this.tail = Math.floor(window / 8)
    this.maxBuffers = Math.floor(budget / window)
    if (this.maxBuffers < 1) throw new RangeError(`read-ahead budget ${budget} is below its window ${window}`)
  }

  /** What was fetched and served (benchmarks: CKPT_S3_STATS). */
  stats(): Record<string, number> {
    return {windowsFetched: this.windowsFetched, ...this.counts}
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
    const near = previous !== undefined && Math.abs(offset - previous) <= this.window
    const parts = this.plan(name, offset, end, near)
    if (parts.length === 1 && !parts[0]!.window) return this.exact(this.fetch(name, offset, length, into))
    const out = into ?? Buffer.allocUnsafe(length)
    try {
      // Exact stretches are fetched straight into their place in `out`.
      const settled = await Promise.allSettled(parts.map((p) => p.window?.data ?? this.exact(this.fetch(name, p.from, p.to - p.from, out.subarray(p.from - offset, p.to - offset)))))
      const failed = settled.find((s) => s.status === 'rejected')
      if (failed) throw failed.reason
      let got = 0
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!
        const data = (settled[i] as PromiseFulfilledResult<Buffer>).value
        let n: number
        if (p.window) {
          const from = Math.min(data.length, p.from - p.window.offset)
          n = Math.min(data.length, p.to - p.window.offset) - from
          data.copy(out, p.from - offset, from, from + n)
          p.window.served += n
          this.counts.served += n
        } else {
          n = data.length
        }
        got += n
        // The object ends inside this stretch: nothing lies after it.
        if (n < p.to - p.from) break
      }
      return out.subarray(0, got)
    } finally {
      for (const p of parts) {
        if (!p.window) continue
        p.window.readers--
        this.reclaim(p.window)
      }
    }
  }

  /**
   * The read's stretches in order: those a window holds, the others out of a new window (when the
   * reader is going sequential) or to be fetched as they are. Windows used are held (readers) until
   * the read is done.
   */
  private plan(name: string, offset: number, end: number, near: boolean): Part[] {
    const parts: Part[] = []
    let at = offset
    while (at < end) {
      const covering = this.covering(name, at)
      if (covering) {
        const to = Math.min(end, covering.offset + covering.length)
        this.hold(covering, parts, at, to)
        at = to
        continue
      }
      const next = this.nextStart(name, at)
      const to = Math.min(end, next)
      const ahead = near || parts.length > 0 || next < end
      let opened: Window | undefined
      if (ahead && to - at < this.window) {
        const block = at - (at % this.window)
        const from = Math.max(block, this.prevEnd(name, at))
        opened = this.open(name, from, Math.min(block + this.window + this.tail, next) - from, at - from, offset, end)
      }
      if (opened) this.hold(opened, parts, at, Math.min(to, opened.offset + opened.length))
      else parts.push({from: at, to})
      at = opened ? Math.min(to, opened.offset + opened.length) : to
    }
    return parts
  }

  private hold(w: Window, parts: Part[], from: number, to: number): void {
    w.readers++
    const i = this.windows.indexOf(w)
    if (i >= 0) this.windows.splice(i, 1)
    this.windows.push(w)
    parts.push({from, to, window: w})
  }

  private async exact(fetched: Promise<Buffer>): Promise<Buffer> {
    this.counts.exactFetches++
    const got = await fetched
    this.counts.exactBytes += got.length
    return got
  }

  /** The window of `name` holding byte `at`. */
  private covering(name: string, at: number): Window | undefined {
    return this.windows.find((w) => w.name === name && at >= w.offset && at < w.offset + w.length)
  }

  /** Where the last window of `name` before `at` ends (0: none). */
  private prevEnd(name: string, at: number): number {
    let prev = 0
    for (const w of this.windows) if (w.name === name && w.offset + w.length <= at && w.offset + w.length > prev) prev = w.offset + w.length
    return prev
  }

  /** Where the first window of `name` after `at` starts (Infinity: none). */
  private nextStart(name: string, at: number): number {
    let next = Infinity
    for (const w of this.windows) if (w.name === name && w.offset > at && w.offset < next) next = w.offset
    return next
  }

  /** A new window [offset, offset + length), or undefined when every buffer is in use. The read [keepFrom, keepTo) keeps its windows. */
  private open(name: string, offset: number, length: number, before: number, keepFrom: number, keepTo: number): Window | undefined {
    let buf = this.free.pop()
    if (!buf && this.allocated < this.maxBuffers) {
      buf = Buffer.allocUnsafe(this.window + this.tail)
      this.allocated++
    }
    if (!buf) {
      const idle = this.windows.filter((w) => w.settled && w.readers === 0 && !(w.name === name && w.offset < keepTo && w.offset + w.length > keepFrom))
      const victim = idle.find((w) => w.served + w.before >= w.size!) ?? idle[0]
      if (!victim) return undefined
      this.drop(victim)
      buf = this.free.pop()!
    }
    const w: Window = {name, offset, length, buf, data: this.fetch(name, offset, length, buf.subarray(0, length)), size: undefined, settled: false, readers: 0, dropped: false, served: 0, before}
    this.windows.push(w)
    this.windowsFetched++
    w.data.then(
      (data) => {
        w.settled = true
        w.size = data.length
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
    if (w.size !== undefined) this.counts.droppedUnread += Math.max(0, w.size - w.served)
    this.reclaim(w)
  }

  private reclaim(w: Window): void {
    if (!w.dropped || w.readers > 0 || !w.settled || this.free.includes(w.buf)) return
    this.free.push(w.buf)
  }
}
