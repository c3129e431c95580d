// A fixed pool of I/O buffers (snapshot reads files into them, restore reads runs of chunks). Each
// chunk cut from a buffer holds a reference until it has been used, and the buffer goes back to
// the pool when its reader is done with it and no chunk refers to it. Memory stays at count x size,
// and no buffer is allocated (or left to the garbage collector) per read. Buffers come from
// hashBuffer, so the hash pool reads chunks in place.
import {hashBuffer} from './hashpool.js'

export class ReadBuffer {
  refs = 0
  /** The reader has moved past this buffer. */
  retired = false

  constructor(readonly buf: Buffer, private readonly pool: ReadPool) {}

  hold(): void {
    this.refs++
  }

  drop(): void {
    this.refs--
    this.maybeFree()
  }

  retire(): void {
    this.retired = true
    this.maybeFree()
  }

  private maybeFree(): void {
    if (this.retired && this.refs === 0) {
      this.retired = false
      this.pool.release(this)
    }
  }
}

export class ReadPool {
  private readonly free: ReadBuffer[] = []
  private readonly waiters: ((b: ReadBuffer) => void)[] = []
  private allocated = 0

  /** Buffers are allocated on first need, up to `count`. */
  constructor(private readonly count: number, readonly size: number) {}

  acquire(): Promise<ReadBuffer> {
    const b = this.free.pop()
    if (b) return Promise.resolve(b)
    if (this.allocated < this.count) {
      this.allocated++
      return Promise.resolve(new ReadBuffer(hashBuffer(this.size), this))
    }
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  release(b: ReadBuffer): void {
    const waiter = this.waiters.shift()
    if (waiter) waiter(b)
    else this.free.push(b)
  }
}
