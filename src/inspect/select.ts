// Which snapshots a command means: filters (--source, --host, --tag, --latest N) and references
// ("latest", an id, a unique prefix). One meaning everywhere: --source narrows "latest" to the
// snapshots of that directory, and an id given with it must be one of them.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {errnoCode, NotFoundError} from '../core/errors.js'
import {type CatalogLoad, resolveSnapshot, type SnapshotRecord} from '../snapshot/catalog.js'

export interface SnapshotFilter {
  /** Absolute, symlink-free source directory (see sourcePath). */
  source?: string
  host?: string
  /** Each entry is a set of tags a snapshot must all carry; a snapshot passes if it matches any entry. */
  tags?: readonly (readonly string[])[]
}

/**
 * The path a source directory was recorded under, whether or not it exists now: manifests record
 * the real path (symlinks resolved) of the directory snapshotted. The longest existing ancestor is
 * resolved and the rest appended, so `restore latest --source DIR` works after DIR was deleted.
 */
export async function sourcePath(dir: string): Promise<string> {
  const abs = path.resolve(dir)
  const missing: string[] = []
  let at = abs
  for (;;) {
    try {
      return path.join(await fsp.realpath(at), ...missing)
    } catch (err) {
      const code = errnoCode(err)
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || at === path.dirname(at)) return abs
      missing.unshift(path.basename(at))
      at = path.dirname(at)
    }
  }
}

/** --tag values: "a,b" wants both tags; repeated --tag wants any of them. */
export function parseTagFilter(values: readonly string[] | undefined): string[][] | undefined {
  if (!values?.length) return undefined
  return values.map((v) => v.split(',').map((t) => t.trim()).filter(Boolean))
}

export function matchesFilter(s: SnapshotRecord, f: SnapshotFilter): boolean {
  const m = s.manifest
  if (f.source !== undefined && m.source !== f.source) return false
  if (f.host !== undefined && m.host !== f.host) return false
  if (f.tags && !f.tags.some((want) => want.every((t) => m.tags.includes(t)))) return false
  return true
}

/** The snapshots that pass the filter, and with `latest` only the newest `latest` of each host and source; oldest first. */
export function filterSnapshots(snapshots: readonly SnapshotRecord[], f: SnapshotFilter, latest?: number): SnapshotRecord[] {
  const passing = snapshots.filter((s) => matchesFilter(s, f))
  if (latest === undefined) return passing
  const seen = new Map<string, number>()
  const kept = new Set<SnapshotRecord>()
  for (let i = passing.length - 1; i >= 0; i--) {
    const s = passing[i]!
    const key = `${s.manifest.host}\0${s.manifest.source}`
    const n = seen.get(key) ?? 0
    if (n >= latest) continue
    seen.set(key, n + 1)
    kept.add(s)
  }
  return passing.filter((s) => kept.has(s))
}

/**
 * Resolve what the user typed: "latest" is the newest checkpoint (safety snapshots skipped) among
 * those the filter passes; an id or unique prefix is looked up among all snapshots (so a prefix
 * is never ambiguous in one command and not in another), and must then pass the filter too: a
 * restore given an id and --source never replaces another directory. Unknown ids, ambiguous
 * prefixes, an id the filter refuses and "latest" with nothing to choose from are NotFoundError
 * (exit code 4).
 */
export function selectSnapshot(catalog: CatalogLoad, ref: string, filter: SnapshotFilter = {}): SnapshotRecord {
  const narrowed = filter.source !== undefined || filter.host !== undefined || filter.tags !== undefined
  if (ref !== 'latest') {
    const s = resolveSnapshot(catalog.snapshots, ref, undefined, catalog.damaged)
    if (narrowed && !matchesFilter(s, filter)) {
      throw new NotFoundError(`snapshot ${s.id.slice(0, 12)} is of ${s.manifest.source} on host ${s.manifest.host}, not a snapshot ${describeFilter(filter)}`, {snapshot: s.id})
    }
    return s
  }
  if (!narrowed) return resolveSnapshot(catalog.snapshots, ref)
  const pool = catalog.snapshots.filter((s) => matchesFilter(s, filter))
  if (pool.length === 0) throw new NotFoundError(`no snapshot ${describeFilter(filter)}`, {...filter})
  return resolveSnapshot(pool, 'latest')
}

/** "of /var/lib/db on host a tagged x,y": for messages. */
export function describeFilter(f: SnapshotFilter): string {
  const parts: string[] = []
  if (f.source !== undefined) parts.push(`of ${f.source}`)
  if (f.host !== undefined) parts.push(`on host ${f.host}`)
  if (f.tags) parts.push(`tagged ${f.tags.map((t) => t.join(',')).join(' or ')}`)
  return parts.join(' ') || 'in the repository'
}
