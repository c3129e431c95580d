// A memory governor for the CLI process. V8 lets short-lived garbage (stat results, promises,
// buffers of small files) pile up in its heap long before it collects, which can push the
// process's resident size well past what it needs: a snapshot of 100,000 small files used
// ~225 MB of RSS for ~60 MB of live data. When RSS passes the budget, ask V8 for a full collection,
// at most every MIN_SPACING_MS. The library itself never relies on this; it is process policy.
const CHECK_EVERY_MS = 50
const MIN_SPACING_MS = 250

let started = false

/** Start watching (idempotent). `budgetMb` defaults to $CKPT_MEMORY_MB or 150. */
export function startMemoryGovernor(budgetMb = Number(process.env.CKPT_MEMORY_MB) || 150): void {
  if (started) return
  started = true
  const budget = budgetMb * 1024 * 1024
  let last = 0
  let collector: Promise<(() => void) | undefined> | undefined
  setInterval(() => {
    const now = Date.now()
    if (now - last < MIN_SPACING_MS || process.memoryUsage.rss() < budget) return
    last = now
    collector ??= loadCollector().catch(() => undefined)
    void collector.then((collect) => collect?.())
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
