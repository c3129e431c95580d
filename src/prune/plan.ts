// Planning, all read-only and under a shared lock: load every index file into the blob table,
// read the header of every pack no index lists, decide which snapshots stay (the retention
// policy), mark what they reach, and decide the fate of every pack. --dry-run stops here.
import {mapLimit} from '../core/concurrency.js'
import {IntegrityError, ObjectMissingError} from '../core/errors.js'
import {isHexId} from '../core/ids.js'
import type {IndexedPack} from '../repo/indexfile.js'
import type {PackEntry} from '../repo/pack.js'
import {readPackHeader} from '../repo/packheader.js'
import {type Repository} from '../repo/repository.js'
import {applyPolicy, type GroupBy, type PolicyResult, type RetentionPolicy} from '../retention/policy.js'
import {loadCatalog, type SnapshotRecord} from '../snapshot/catalog.js'
import {markTrees, Problems} from './mark.js'
import {listPins} from './pins.js'
import {BlobTable, FROM_HEADER} from './table.js'

export type PackAction = 'keep' | 'repack' | 'delete' | 'missing'

export interface PackPlan {
  name: string
  size: number
  blobs: number
  liveBlobs: number
  liveBytes: number
  action: PackAction
  /** Why: 'no live data', '63% dead', 'small', 'unreadable header', 'missing from data/'. */
  reason: string
}

export interface GcSettings {
  /** Repack a pack once at least this fraction of its blob bytes is dead (0..1). */
  repackThreshold: number
  /** Merge packs under a quarter of the configured pack size when there are two or more. */
  mergeSmall: boolean
}

/** Everything the load found, shared by planning and the commit phase. */
export interface RepositoryState {
  table: BlobTable
  /** Index files loaded (good and damaged), sorted; their numbers are positions in this list. */
  indexFiles: string[]
  damagedIndexFiles: {name: string; message: string}[]
  /** Entries of packs read from their own headers (no index lists them). */
  headerEntries: Map<number, PackEntry[]>
  /** Packs no index lists whose header cannot be read. */
  unreadablePacks: {name: string; size: number; message: string}[]
}

export interface Plan {
  state: RepositoryState
  catalog: SnapshotRecord[]
  /** Damaged manifests, by id. */
  damagedSnapshots: string[]
  pins: Set<string>
  policy: PolicyResult
  /** Snapshot ids the policy removes. */
  remove: string[]
  /** Snapshot ids whose trees are marked. */
  marked: Set<string>
  actions: PackAction[]
  packPlans: PackPlan[]
  /** Whether the index is rewritten (old index files replaced by consolidated ones). */
  rewriteIndex: boolean
  /** Pins whose snapshot is gone. */
  stalePins: string[]
  problems: Problems
  trees: number
}

/** Index files above this many are consolidated even when no pack changes (loading them costs every command). */
export const CONSOLIDATE_INDEX_FILES = 16

export async function loadState(repo: Repository, onProgress?: (text: string) => void): Promise<RepositoryState> {
  const table = new BlobTable()
  const indexFiles: string[] = []
  for await (const obj of repo.backend.list('index')) indexFiles.push(obj.name)
  indexFiles.sort()
  const damagedIndexFiles: RepositoryState['damagedIndexFiles'] = []
  let loaded = 0
  await mapLimit(indexFiles, 8, async (name, fileNo) => {
    let packs: IndexedPack[]
    try {
      packs = await repo.readIndexFile(name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      damagedIndexFiles.push({name, message: err.message})
      return
    }
    for (const p of packs) {
      const {packNo, isNew} = table.addPackFrom(p.name, p.size, fileNo)
      if (isNew) for (const e of p.entries) table.addEntry(packNo, e)
    }
    onProgress?.(`loading index: ${++loaded}/${indexFiles.length} files, ${table.size} blobs`)
  })

  const listed = new Map<string, number>()
  for await (const obj of repo.backend.list('data')) if (isHexId(obj.name)) listed.set(obj.name, obj.size)
  for (const p of table.packs) p.exists = listed.has(p.name)

  // Packs no index lists: left by a crashed writer, being written right now, or described by a
  // damaged index file. Their headers say what they hold; the plan treats them like any pack.
  const headerEntries = new Map<number, PackEntry[]>()
  const unreadablePacks: RepositoryState['unreadablePacks'] = []
  const unindexed = [...listed].filter(([name]) => table.packNo(name) === undefined)
  await mapLimit(unindexed, 8, async ([name, size]) => {
    let entries: PackEntry[]
    try {
      entries = (await readPackHeader(repo.backend, name, size)).entries
    } catch (err) {
      if (!(err instanceof IntegrityError) && !(err instanceof ObjectMissingError)) throw err
      unreadablePacks.push({name, size, message: err.message})
      return
    }
    const {packNo} = table.addPackFrom(name, size, FROM_HEADER)
    for (const e of entries) table.addEntry(packNo, e)
    headerEntries.set(packNo, entries)
  })
  table.preferPresentCopies()
  return {table, indexFiles, damagedIndexFiles, headerEntries, unreadablePacks}
}

export interface PlanOptions extends GcSettings {
  policy: RetentionPolicy
  groupBy: GroupBy
  timeZone: string
  now: number
  onProgress?: (text: string) => void
}

export async function makePlan(repo: Repository, opts: PlanOptions): Promise<Plan> {
  const problems = new Problems()
  // Snapshots first, then the index: snapshots may be written alongside (shared lock), and a
  // manifest is written after the index files of its blobs, so every manifest seen here has its
  // index files in the listing that follows. The other order would see a fresh snapshot whose
  // blobs seem unindexed.
  opts.onProgress?.('loading snapshots')
  const {snapshots: catalog, damaged} = await loadCatalog(repo)
  const state = await loadState(repo, opts.onProgress)
  for (const d of damaged) {
    problems.add({kind: 'damaged-manifest', snapshot: d.id, message: `snapshot ${d.id.slice(0, 12)}: ${d.error.message} (what it references is unknown)`})
  }
  const pins = await listPins(repo)
  const policy = applyPolicy(
    catalog.map((s) => ({id: s.id, time: Date.parse(s.manifest.time), host: s.manifest.host, source: s.manifest.source, tags: s.manifest.tags, pinned: pins.has(s.id), consistent: s.manifest.capture?.consistent})),
    opts.policy,
    {now: opts.now, timeZone: opts.timeZone, groupBy: opts.groupBy},
  )
  const remove = policy.remove.map((d) => d.snapshot.id)
  const removeSet = new Set(remove)
  const kept = catalog.filter((s) => !removeSet.has(s.id))
  const known = new Set([...catalog.map((s) => s.id), ...damaged.map((d) => d.id)])
  const stalePins = [...pins].filter((id) => !known.has(id)).sort()

  opts.onProgress?.(`marking ${kept.length} snapshot${kept.length === 1 ? '' : 's'}`)
  const {trees} = await markTrees(repo, state.table, kept.map((s) => ({snapshot: s.id, tree: Buffer.from(s.manifest.tree, 'hex')})), problems, {
    onTree: (n) => opts.onProgress?.(`marking: ${n} tree${n === 1 ? '' : 's'}, ${state.table.size} blob${state.table.size === 1 ? '' : 's'}`),
  })
  state.table.tally()

  const {actions, packPlans} = decidePacks(state, repo.config.packSize, opts)
  const rewriteIndex =
    packPlans.some((p) => p.action !== 'keep') ||
    state.headerEntries.size > 0 ||
    state.unreadablePacks.length > 0 ||
    state.damagedIndexFiles.length > 0 ||
    state.indexFiles.length > CONSOLIDATE_INDEX_FILES
  return {
    state, catalog, damagedSnapshots: damaged.map((d) => d.id), pins, policy, remove, marked: new Set(kept.map((s) => s.id)),
    actions, packPlans, rewriteIndex, stalePins, problems, trees,
  }
}

/** The fate of every pack, from its live bytes (after tally). Pure given the table. */
export function decidePacks(state: RepositoryState, packSize: number, gc: GcSettings): {actions: PackAction[]; packPlans: PackPlan[]} {
  const {table} = state
  const actions: PackAction[] = []
  const plans: PackPlan[] = []
  const small: number[] = []
  table.packs.forEach((p, packNo) => {
    const base = {name: p.name, size: p.size, blobs: p.blobCount, liveBlobs: p.liveCount, liveBytes: p.liveBytes}
    let action: PackAction
    let reason: string
    const dead = p.blobBytes - p.liveBytes
    const deadFraction = p.blobBytes > 0 ? dead / p.blobBytes : 1
    if (!p.exists) {
      action = 'missing'
      reason = 'missing from data/: dropped from the index'
    } else if (p.liveCount === 0) {
      action = 'delete'
      reason = p.sources.includes(FROM_HEADER) ? 'no live data (no index listed it)' : 'no live data'
    } else if (dead > 0 && deadFraction >= gc.repackThreshold) {
      action = 'repack'
      reason = `${Math.round(deadFraction * 100)}% dead`
    } else {
      action = 'keep'
      reason = dead > 0 ? `${Math.round(deadFraction * 100)}% dead` : 'all live'
      if (gc.mergeSmall && p.size < packSize / 4) small.push(packNo)
    }
    actions.push(action)
    plans.push({...base, action, reason})
  })
  // Many small packs (one or more per snapshot of a quiet directory) are merged into few. A lone
  // small pack is left alone, unless packs are being repacked anyway: their last output pack may be
  // small too, and two small packs would make the next prune merge them. Either way a prune leaves
  // at most one small pack, so a prune after a prune does nothing.
  if (small.length >= 2 || (small.length === 1 && actions.includes('repack'))) {
    for (const packNo of small) {
      actions[packNo] = 'repack'
      plans[packNo]!.action = 'repack'
      plans[packNo]!.reason = 'small pack, merged'
    }
  }
  for (const u of state.unreadablePacks) {
    plans.push({name: u.name, size: u.size, blobs: 0, liveBlobs: 0, liveBytes: 0, action: 'delete', reason: `no index lists it and its header is unreadable: ${u.message}`})
  }
  return {actions, packPlans: plans}
}

/** Entries of a pack as some source describes them: an index file of the plan, or its header. */
export async function packEntries(repo: Repository, state: RepositoryState, packNo: number): Promise<IndexedPack> {
  const p = state.table.packs[packNo]!
  const fromHeader = state.headerEntries.get(packNo)
  if (fromHeader) return {name: p.name, size: p.size, entries: fromHeader}
  for (const fileNo of p.sources) {
    const name = state.indexFiles[fileNo]
    if (name === undefined) continue
    const found = (await repo.readIndexFile(name)).find((x) => x.name === p.name)
    if (found) return found
  }
  throw new IntegrityError(`pack ${p.name}: no index file describes it any more`, {pack: p.name})
}
