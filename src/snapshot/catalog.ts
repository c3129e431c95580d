// The list of snapshots: loading manifests, and resolving what the user typed (full id, unique
// prefix, or "latest") to one snapshot.
import {mapLimit} from '../core/concurrency.js'
import {IntegrityError, NotFoundError} from '../core/errors.js'
import type {Repository} from '../repo/repository.js'
import {decodeManifest, type Manifest} from './manifest.js'

export interface SnapshotRecord {
  id: string
  manifest: Manifest
}

export interface CatalogLoad {
  snapshots: SnapshotRecord[]
  /** Manifests that could not be read or parsed (verify reports them; other commands skip them). */
  damaged: {id: string; error: IntegrityError}[]
}

/** Every snapshot, oldest first (by time, then id). */
export async function loadCatalog(repo: Repository): Promise<CatalogLoad> {
  const names = await repo.listSnapshotNames()
  const damaged: CatalogLoad['damaged'] = []
  const loaded = await mapLimit(names, 16, async (id) => {
    try {
      return {id, manifest: decodeManifest(await repo.readSnapshotBytes(id), id)}
    } catch (err) {
      if (err instanceof IntegrityError) {
        damaged.push({id, error: err})
        return undefined
      }
      if (err instanceof NotFoundError) return undefined // forgotten while we listed
      throw err
    }
  })
  const snapshots = loaded.filter((s): s is SnapshotRecord => s !== undefined)
  snapshots.sort(bySnapshotTime)
  return {snapshots, damaged}
}

export function bySnapshotTime(a: SnapshotRecord, b: SnapshotRecord): number {
  const ta = Date.parse(a.manifest.time)
  const tb = Date.parse(b.manifest.time)
  return ta !== tb ? ta - tb : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

export const PRE_RESTORE_TAG = 'pre-restore'

/**
 * The one definition of a safety snapshot: the undo point restore takes of what it replaces.
 * It is not a checkpoint, so `latest` skips it, retention keeps it by its own rule (never
 * counting it as a checkpoint) and `ckpt snapshots` marks it.
 */
export function isSafetySnapshot(tags: readonly string[]): boolean {
  return tags.includes(PRE_RESTORE_TAG)
}

/** Resolve "latest", a full id or a unique prefix of at least 4 hex digits. */
export function resolveSnapshot(snapshots: readonly SnapshotRecord[], ref: string, filter?: (s: SnapshotRecord) => boolean, damaged: CatalogLoad['damaged'] = []): SnapshotRecord {
  const pool = filter ? snapshots.filter(filter) : snapshots
  if (ref === 'latest') {
    const checkpoints = pool.filter((s) => !isSafetySnapshot(s.manifest.tags))
    const last = (checkpoints.length ? checkpoints : pool)[(checkpoints.length ? checkpoints : pool).length - 1]
    if (!last) throw new NotFoundError('the repository has no snapshots yet')
    return last
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) throw new NotFoundError(`"${ref}" is not a snapshot id (give "latest", a full id, or a prefix of at least 4 hex digits)`)
  const matches = pool.filter((s) => s.id.startsWith(ref))
  if (matches.length === 1) return matches[0]!
  if (matches.length === 0) {
    // A manifest that exists but cannot be read is damage, not absence.
    const broken = damaged.find((d) => d.id.startsWith(ref))
    if (broken) throw broken.error
    throw new NotFoundError(`no snapshot matches ${ref}`)
  }
  throw new NotFoundError(`snapshot prefix ${ref} is ambiguous: it matches ${matches.map((s) => s.id.slice(0, 12)).join(', ')}`)
}

/** The shortest prefix (at least 8) that tells each id apart from all the others. */
export function shortIds(ids: readonly string[]): Map<string, string> {
  const sorted = [...ids].sort()
  const out = new Map<string, string>()
  sorted.forEach((id, i) => {
    let n = 8
    for (const other of [sorted[i - 1], sorted[i + 1]]) {
      if (!other) continue
      let common = 0
      while (common < id.length && id[common] === other[common]) common++
      n = Math.max(n, common + 1)
    }
    out.set(id, id.slice(0, n))
  })
  return out
}
