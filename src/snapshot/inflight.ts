// Keeps at most `limit` promises running, remembers the first failure, and lets the caller
// wait for all. Used to overlap compression of many chunks without unbounded memory.
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
