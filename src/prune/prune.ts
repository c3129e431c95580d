// `ckpt prune`: retention, then garbage collection, planned first and carried out in two
// phases so that backups are blocked only for the short exclusive one (docs/DESIGN.md,
// "Concurrency: locks and prune").
//
//   shared lock:    load index, load catalog, apply the policy, mark, plan;   (--dry-run ends here)
//                   remove stale temp files; repack and write consolidated index files (additive)
//   exclusive lock: re-check, mark what is new, delete manifests, index files, packs
//
// If another prune changed the index between the two phases, the plan is made again.
import {LockedError} from '../core/errors.js'
import type {Repository} from '../repo/repository.js'
import type {GroupBy, RetentionPolicy} from '../retention/policy.js'
import {formatDuration} from '../retention/duration.js'
import {type LockInfo, withLock} from '../store/lock.js'
import {sweepTemporaries} from '../store/temp.js'
import {commit, type Committed, prepare} from './execute.js'
import {type GcSettings, makePlan, type PackPlan, type Plan} from './plan.js'

export {TEMP_MAX_AGE_MS} from '../store/temp.js'
/** How long the exclusive phase waits for running snapshots and restores, unless --retry-lock says. */
export const DEFAULT_EXCLUSIVE_WAIT_MS = 10 * 60 * 1000
/** Order of the plan's list of changes: the biggest effects first. */
const ACTION_ORDER: readonly PackPlan['action'][] = ['delete', 'repack', 'missing', 'keep']
/** Plans made at most, when other prunes keep changing the index underneath. */
const MAX_ATTEMPTS = 3

export interface PruneOptions extends GcSettings {
  policy: RetentionPolicy
  groupBy: GroupBy
  timeZone: string
  now: number
  dryRun: boolean
  /** Wait for the shared lock (--retry-lock); default 0. */
  retryMs?: number
  /** Wait for the exclusive lock; default DEFAULT_EXCLUSIVE_WAIT_MS. */
  exclusiveRetryMs?: number
  onProgress?: (text: string) => void
  onStaleLock?: (info: LockInfo | undefined, name: string) => void
}

export interface SnapshotDecision {
  id: string
  time: string
  host: string
  source: string
  tags: string[]
  pinned: boolean
  keep: boolean
  /** Why it is kept ([] when removed): 'last 1/3', 'daily 2026-11-20', 'pinned', ... */
  reasons: string[]
}

export interface GcPlanReport {
  blobs: {total: number; live: number; dead: number}
  packs: {total: number; keep: number; repack: number; delete: number; missing: number; unindexed: number; unreadable: number}
  bytes: {
    /** All packs. */
    total: number
    /** Stored bytes of live blobs. */
    live: number
    /** Packs deleted whole. */
    delete: number
    /** Packs repacked (read, then deleted). */
    repack: number
    /** Live bytes copied out of them. */
    copy: number
    /** Expected to be freed: delete + repack - copy (about). */
    free: number
  }
  indexFiles: {total: number; damaged: string[]; rewrite: boolean}
  /** Packs that are not kept as they are, with what happens and why. */
  changes: PackPlan[]
  stalePins: string[]
  treesRead: number
  /** Size of the blob table and mark set, and per distinct blob. */
  memory: {tableBytes: number; bytesPerBlob: number}
}

export interface PruneResult {
  snapshotsRemoved: number
  packsDeleted: number
  packsWritten: number
  bytesDeleted: number
  bytesWritten: number
  /** bytesDeleted - bytesWritten. */
  bytesFreed: number
  blobsCopied: number
  indexFilesDeleted: number
  indexFilesWritten: number
  /** Packs the plan meant to delete, kept because a snapshot written meanwhile uses them. */
  rescuedPacks: string[]
  newSnapshotsMarked: number
  pinsRemoved: number
  tempFilesRemoved: number
  staleLocksRemoved: number
  /** Plans made (more than 1 when another prune changed the index meanwhile). */
  attempts: number
  exclusiveMs: number
}

export interface PruneReport {
  dryRun: boolean
  now: string
  timeZone: string
  groupBy: string[]
  policy: Record<string, unknown>
  snapshots: {total: number; keep: number; remove: number}
  /** Ids removed (or, with --dry-run, to remove). */
  removed: string[]
  groups: {key: Record<string, string>; snapshots: SnapshotDecision[]}[]
  plan: GcPlanReport
  /** null with --dry-run. */
  result: PruneResult | null
  warnings: string[]
  durationMs: number
}

export async function runPrune(repo: Repository, opts: PruneOptions): Promise<PruneReport> {
  const started = Date.now()
  let staleLocksRemoved = 0
  const onStaleRemoved = (info: LockInfo | undefined, name: string) => {
    staleLocksRemoved++
    opts.onStaleLock?.(info, name)
  }
  for (let attempt = 1; ; attempt++) {
    const {plan, prepared, tempFilesRemoved} = await withLock(
      repo.backend,
      {exclusive: false, command: 'prune', retryMs: opts.retryMs ?? 0, onStaleRemoved},
      async () => {
        const plan = await makePlan(repo, opts)
        if (plan.problems.count > 0) throw plan.problems.toError()
        if (opts.dryRun) return {plan, prepared: undefined, tempFilesRemoved: 0}
        const tempFilesRemoved = (await sweepTemporaries(repo.backend, Date.now())).removed
        const prepared = await prepare(repo, plan, opts.onProgress)
        return {plan, prepared, tempFilesRemoved}
      },
    )
    if (!prepared) return report(plan, opts, null, started)
    const base: PruneResult = {
      snapshotsRemoved: 0, packsDeleted: 0, packsWritten: prepared.packsWritten, bytesDeleted: 0, bytesWritten: prepared.bytesWritten,
      bytesFreed: 0 - prepared.bytesWritten, blobsCopied: prepared.blobsCopied, indexFilesDeleted: 0, indexFilesWritten: prepared.indexFiles.length,
      rescuedPacks: [], newSnapshotsMarked: 0, pinsRemoved: 0, tempFilesRemoved, staleLocksRemoved, attempts: attempt, exclusiveMs: 0,
    }
    if (plan.remove.length === 0 && !plan.rewriteIndex && plan.stalePins.length === 0) return report(plan, opts, base, started)

    opts.onProgress?.('waiting for running snapshots and restores (exclusive lock)')
    let exclusiveStart = 0
    let committed: Committed | 'replan'
    try {
      committed = await withLock(
        repo.backend,
        {exclusive: true, command: 'prune', retryMs: opts.exclusiveRetryMs ?? DEFAULT_EXCLUSIVE_WAIT_MS, onStaleRemoved},
        async () => {
          exclusiveStart = Date.now()
          return commit(repo, plan, prepared, opts.onProgress)
        },
      )
    } catch (err) {
      if (err instanceof LockedError && exclusiveStart === 0) {
        throw new LockedError(`${err.message}; prune planned its work but deleted nothing (run it again, or give --retry-lock to wait longer)`, err.data, {cause: err})
      }
      throw err
    }
    const exclusiveMs = Date.now() - exclusiveStart
    if (committed === 'replan') {
      if (attempt >= MAX_ATTEMPTS) {
        throw new LockedError(`other prunes changed the repository ${MAX_ATTEMPTS} times while this one planned; nothing was deleted, run prune again`)
      }
      continue
    }
    const result: PruneResult = {
      ...base,
      snapshotsRemoved: committed.snapshotsRemoved.length,
      packsDeleted: committed.packsDeleted,
      bytesDeleted: committed.bytesDeleted,
      bytesFreed: committed.bytesDeleted - prepared.bytesWritten,
      indexFilesDeleted: committed.indexFilesDeleted,
      indexFilesWritten: prepared.indexFiles.length + committed.indexFilesWritten,
      rescuedPacks: committed.rescuedPacks,
      newSnapshotsMarked: committed.newSnapshots,
      pinsRemoved: committed.pinsRemoved,
      staleLocksRemoved,
      exclusiveMs,
    }
    return report(plan, opts, result, started, committed.snapshotsRemoved)
  }
}

function report(plan: Plan, opts: PruneOptions, result: PruneResult | null, started: number, removed = plan.remove): PruneReport {
  const {table} = plan.state
  const counts = table.counts()
  const byAction = (a: PackPlan['action']) => plan.packPlans.filter((p) => p.action === a)
  const sum = (ps: PackPlan[], f: (p: PackPlan) => number) => ps.reduce((n, p) => n + f(p), 0)
  const deleting = byAction('delete')
  const repacking = byAction('repack')
  const copy = sum(repacking, (p) => p.liveBytes)
  const policy: Record<string, unknown> = {...opts.policy}
  if (opts.policy.within) policy.within = formatDuration(opts.policy.within)
  const warnings = plan.state.damagedIndexFiles.map((d) => `index file ${d.name} is damaged (${d.message}): its packs were read from their own headers and the index rebuilt`)
  return {
    dryRun: opts.dryRun === true,
    now: new Date(opts.now).toISOString(),
    timeZone: opts.timeZone,
    groupBy: [...opts.groupBy],
    policy,
    snapshots: {total: plan.catalog.length, keep: plan.policy.keep.length, remove: plan.policy.remove.length},
    removed: [...removed],
    groups: plan.policy.groups.map((g) => ({
      key: g.key,
      snapshots: g.decisions.map((d) => ({
        id: d.snapshot.id, time: new Date(d.snapshot.time).toISOString(), host: d.snapshot.host, source: d.snapshot.source,
        tags: [...d.snapshot.tags], pinned: d.snapshot.pinned, keep: d.keep, reasons: d.reasons,
      })),
    })),
    plan: {
      blobs: {total: counts.blobs, live: counts.live, dead: counts.blobs - counts.live},
      packs: {
        total: plan.packPlans.length, keep: byAction('keep').length, repack: repacking.length, delete: deleting.length, missing: byAction('missing').length,
        unindexed: plan.state.headerEntries.size, unreadable: plan.state.unreadablePacks.length,
      },
      bytes: {
        total: sum(plan.packPlans.filter((p) => p.action !== 'missing'), (p) => p.size), live: counts.liveBytes,
        delete: sum(deleting, (p) => p.size), repack: sum(repacking, (p) => p.size), copy,
        free: sum(deleting, (p) => p.size) + sum(repacking, (p) => p.size) - copy,
      },
      indexFiles: {total: plan.state.indexFiles.length, damaged: plan.state.damagedIndexFiles.map((d) => d.name), rewrite: plan.rewriteIndex},
      changes: plan.packPlans.filter((p) => p.action !== 'keep').sort((a, b) => ACTION_ORDER.indexOf(a.action) - ACTION_ORDER.indexOf(b.action) || b.size - a.size || (a.name < b.name ? -1 : 1)),
      stalePins: plan.stalePins,
      treesRead: plan.trees,
      memory: {tableBytes: table.byteSize, bytesPerBlob: table.size > 0 ? Math.round(table.byteSize / table.size) : 0},
    },
    result,
    warnings,
    durationMs: Date.now() - started,
  }
}
