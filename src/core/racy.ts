// Whether a file's timestamp proves it unchanged since a moment: a write moves ctime and mtime,
// but to the time of a coarse clock (a jiffy behind at most: 10 ms at HZ=100), and filesystems
// that store whole seconds move them only to the second. So a timestamp is only trusted when it is
// older than the moment by more than that granularity: a write after the moment then shows.

/** The window for clear timestamps (any nanosecond part): several jiffies. */
export const RACY_WINDOW_NS = 50_000_000n
/** The window for whole-second timestamps (a filesystem that stores seconds): two seconds. */
export const RACY_WINDOW_COARSE_NS = 2_000_000_000n

/**
 * True when a timestamp `ns` is old enough, before `momentNs`, that any write after the moment
 * would have moved it. A whole-second timestamp is taken to come from a filesystem that stores
 * seconds; `windowNs` is the window for the others.
 */
export function changedBefore(ns: bigint, momentNs: bigint, windowNs = RACY_WINDOW_NS): boolean {
  return ns < momentNs - (ns % 1_000_000_000n === 0n ? RACY_WINDOW_COARSE_NS : windowNs)
}
