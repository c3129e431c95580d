// Small concurrency tools shared by snapshot, restore, verify and prune.

/**
 * Run `fn` over `items` with at most `limit` in flight. After the first error no new item starts,
 * and the promise rejects with that error only once the running ones have settled: a caller
 * never returns while work it started is still changing the repository.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  let failed = false
  let failure: unknown
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++
      try {
        results[i] = await fn(items[i]!, i)
      } catch (err) {
        if (!failed) failure = err
        failed = true
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker))
  if (failed) throw failure
  return results
}

/**
 * Keeps at most `limit` promises running, remembers the first failure, and lets the caller wait
 * for all. Used to overlap compression of many chunks without unbounded memory.
 */
export class Inflight {
  private readonly running = new Set<Promise<unknown>>()
  private failure: unknown

  constructor(private readonly limit: number) {}

  async add(p: Promise<unknown>): Promise<void> {
    const tracked = p.then(
      () => undefined,
      (err: unknown) => {
        this.failure ??= err
      },
    )
    this.running.add(tracked)
    void tracked.finally(() => this.running.delete(tracked))
    while (this.running.size >= this.limit) await Promise.race(this.running)
    this.check()
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running)
    this.check()
  }

  private check(): void {
    if (this.failure) throw this.failure
  }
}

/** Runs at most `limit` tasks at once, starting them in the order given, whatever their callers do meanwhile. */
export class Limiter {
  private running = 0
  private readonly waiting: (() => void)[] = []

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.running++
    try {
      return await task()
    } finally {
      // Hand the slot straight to the next in line, or free it.
      const next = this.waiting.shift()
      if (next) next()
      else this.running--
    }
  }
}
