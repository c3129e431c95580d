// A memory governor for the CLI process. V8 lets short-lived garbage (stat results, promises,
// buffers of small files) pile up in its heap long before it collects, which can push the
// process's resident size well past what it needs: a snapshot of 100,000 small files used
// ~225 MB of RSS for ~60 MB of live data. When RSS passes the budget, ask V8 for a full collection,
// and spend at most about 1/COST_SHARE of the time doing so: the next one waits MIN_SPACING_MS
// or COST_SHARE times as long as the last one took, whichever is longer. A run whose live data
// is above the budget (a huge index) thus pays a few percent, not a collection every quarter
// second. The library itself never relies on this; it is process policy.
const CHECK_EVERY_MS = 50
const MIN_SPACING_MS = 250
const COST_SHARE = 25
/**
 * The default budget. Node with the CLI loaded is ~50 MB; a first snapshot of the benchmark
 * corpus peaked at 90-92 MB with a budget of 150 MB (never reached) and 85-87 MB with ~70, at the
 * same CPU time (docs/BENCHMARKS.md).
 */
const DEFAULT_BUDGET_MB = 64

let started = false

/** When the next forced collection may run, after one that took `tookMs`, at `now`. */
export function nextCollection(now: number, tookMs: number): number {
  return now + Math.max(MIN_SPACING_MS, COST_SHARE * tookMs)
}

/** Start watching (idempotent). `budgetMb` defaults to $CKPT_MEMORY_MB or DEFAULT_BUDGET_MB. */
export function startMemoryGovernor(budgetMb = Number(process.env.CKPT_MEMORY_MB) || DEFAULT_BUDGET_MB): void {
  if (started) return
  started = true
  const budget = budgetMb * 1024 * 1024
  let next = 0
  let collector: Promise<(() => void) | undefined> | undefined
  setInterval(() => {
    const now = Date.now()
    if (now < next || process.memoryUsage.rss() < budget) return
    next = now + MIN_SPACING_MS
    collector ??= loadCollector().catch(() => undefined)
    void collector.then((collect) => {
      if (!collect) return
      const started = performance.now()
      collect()
      next = Math.max(next, nextCollection(Date.now(), performance.now() - started))
    })
  }, CHECK_EVERY_MS).unref()
}

/**
 * The full collection, set up on first need: most runs stay under the budget, and the new
 * context gc() lives in costs a millisecond and some heap at every start.
 */
async function loadCollector(): Promise<(() => void) | undefined> {
  const [{default: v8}, {default: vm}, {trimMemory}] = await Promise.all([import('node:v8'), import('node:vm'), import('../core/fsmeta.js')])
  // --expose-gc may be set at run time; the gc function then lives in new contexts.
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as (() => void) | undefined
  if (typeof gc !== 'function') return undefined
  return () => {
    gc()
    // Freed buffers stay in malloc's per-thread arenas unless handed back.
    trimMemory()
  }
}
