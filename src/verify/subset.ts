// Which packs --read-data reads. Pure: the random source is passed in.
//
// "n/t" puts every pack in one of t buckets by its name (the first 32 bits of the hex name,
// modulo t) and reads bucket n. Pack names are random, so buckets are even; a pack's bucket
// never changes as other packs come and go, so running 1/t .. t/t on t nights reads every pack
// that existed throughout exactly once. "N%" reads a random N percent (at least one pack).
import {UsageError} from '../core/errors.js'

export type DataSelection =
  | {kind: 'none'}
  | {kind: 'all'}
  | {kind: 'slice'; n: number; of: number}
  | {kind: 'percent'; percent: number}
  /** Packs named by an earlier run (repair --from-verify): those of them that still exist. */
  | {kind: 'packs'; names: readonly string[]}

export function parseSubset(text: string): DataSelection {
  const t = text.trim()
  const slice = /^(\d+)\/(\d+)$/.exec(t)
  if (slice) {
    const n = Number(slice[1])
    const of = Number(slice[2])
    if (of < 1 || n < 1 || n > of || of > 0xffffffff) throw new UsageError(`--read-data-subset ${text}: give n/t with 1 <= n <= t (e.g. 2/7)`)
    return {kind: 'slice', n, of}
  }
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(t)
  if (percent) {
    const p = Number(percent[1])
    if (!(p > 0 && p <= 100)) throw new UsageError(`--read-data-subset ${text}: the percentage must be above 0 and at most 100`)
    return {kind: 'percent', percent: p}
  }
  throw new UsageError(`--read-data-subset "${text}": give n/t (e.g. 1/7) or a percentage (e.g. 5%)`)
}

/** The bucket (0..of-1) of a pack for n/of slicing. */
export function packBucket(name: string, of: number): number {
  const head = Number.parseInt(name.slice(0, 8), 16)
  return (Number.isFinite(head) ? head : 0) % of
}

/** The packs to read, sorted by name. */
export function selectPacks(names: readonly string[], selection: DataSelection, random: () => number = Math.random): string[] {
  const sorted = [...names].sort()
  switch (selection.kind) {
    case 'none':
      return []
    case 'all':
      return sorted
    case 'packs': {
      const named = new Set(selection.names)
      return sorted.filter((name) => named.has(name))
    }
    case 'slice':
      return sorted.filter((name) => packBucket(name, selection.of) === selection.n - 1)
    case 'percent': {
      if (sorted.length === 0) return []
      const want = Math.max(1, Math.ceil((sorted.length * selection.percent) / 100))
      // Partial Fisher-Yates: the first `want` places end up a uniform random sample.
      const pool = [...sorted]
      for (let i = 0; i < want; i++) {
        const j = i + Math.floor(random() * (pool.length - i))
        ;[pool[i], pool[j]] = [pool[j]!, pool[i]!]
      }
      return pool.slice(0, want).sort()
    }
  }
}
