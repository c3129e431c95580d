// `ckpt repair`: drop what is damaged from the index, keep everything that still checks out.
//
// A damaged blob stays in the index until something removes it, and while it is there every
// snapshot believes it is stored: `snapshot --force` of a source that still has the data stores
// nothing, and its new snapshot is as broken as the old ones. Repair finds the damage the way
// `verify --read-data` does (it runs verify), then, for every pack with damage, copies the blobs
// that pass their check into new packs (prune's BlobCopier: checked, copied as stored), writes
// index files without the damaged pack, and deletes it. The next snapshot of a source that has
// the data stores the dropped blobs again; since ids are content hashes, that heals every
// snapshot that needs them.
//
//   shared lock:    verify (--read-data, or the packs an earlier verify named); plan;   (--dry-run ends here)
//                   copy the good blobs of damaged packs into new packs, with their index file;
//                   write the affected index files again without the damaged packs (additive)
//   exclusive lock: check nothing changed underneath; supersede index files written meanwhile
//                   that list a damaged pack; delete the old index files; then the damaged packs
//   shared lock:    verify the structure again: the snapshots that still miss blobs are named
//
// Crash safety is prune's order: new packs durable → their index durable → rewritten index files
// durable → old index files deleted → damaged packs deleted. A crash leaves duplicates, or (after
// the index deletes) a damaged pack no index lists, which verify reports and the next repair
// finishes; the damaged pack must not outlive repair, or prune would read its header and index
// its blobs again.
import {mapLimit} from '../core/concurrency.js'
import {IntegrityError, LockedError, ObjectMissingError} from '../core/errors.js'
import {isHexId, toHex} from '../core/ids.js'
import type {IndexedPack} from '../repo/indexfile.js'
import {BlobType, type PackEntry} from '../repo/pack.js'
import {readPackHeader} from '../repo/packheader.js'
import type {Repository} from '../repo/repository.js'
import {type LockInfo, withLock} from '../store/lock.js'
import {chunkLengthProblem} from '../verify/bounds.js'
import type {Finding, FindingKind} from '../verify/findings.js'
import type {DataSelection} from '../verify/subset.js'
import {verifyRepository, type VerifyReport} from '../verify/verify.js'
import {BlobCopier, INDEX_ENTRIES_PER_FILE, repoWithEmptyIndex} from './execute.js'

const DELETES_IN_FLIGHT = 16

/** Findings about a whole pack: it is rewritten from whatever of it still checks out. */
const PACK_DAMAGE: readonly FindingKind[] = ['pack-missing', 'pack-truncated', 'pack-size-mismatch', 'pack-header-damaged', 'pack-header-mismatch', 'index-conflict']
/** Findings about one blob: its pack is rewritten without it. */
const BLOB_DAMAGE: readonly FindingKind[] = ['chunk-corrupt', 'tree-corrupt', 'chunk-too-large']

export interface RepairOptions {
  dryRun: boolean
  /** Read and check only these packs (those an earlier verify reported); default: every pack. */
  packs?: readonly string[]
  /** Wait for the shared lock; default 0. */
  retryMs?: number
  /** Wait for the exclusive lock; default 10 minutes (as prune). */
  exclusiveRetryMs?: number
  onProgress?: (text: string) => void
  onStaleLock?: (info: LockInfo | undefined, name: string) => void
}

export interface RepairedPack {
  name: string
  /** The finding kinds that put it here. */
  reasons: string[]
  /** Whether the pack was in the repository (a missing one only loses its index entries). */
  present: boolean
  /** Blobs copied into new packs (null with --dry-run). */
  blobsKept: number | null
  /** Blobs left behind: damaged, past the end of the pack, or in a missing pack (null with --dry-run). */
  blobsDropped: number | null
}

export interface DroppedBlob {
  id: string
  type: 'tree' | 'chunk'
  pack: string
  reason: string
}

export interface RepairReport {
  dryRun: boolean
  /**
   * 0: the repository is whole (nothing was damaged, or all damage was repaired without a
   * snapshot losing a blob); 12: snapshots remain broken (brokenSnapshots), or damage repair
   * cannot mend (a damaged manifest, a tree that does not decode); with --dry-run, 12 when
   * anything is damaged.
   */
  exitCode: 0 | 12
  /** What verify found before repairing. */
  found: {errors: number; packsRead: number; findings: Finding[]}
  packs: RepairedPack[]
  droppedBlobs: DroppedBlob[]
  /** Damaged index files deleted (their packs are indexed again where they are in use). */
  damagedIndexFiles: string[]
  /** Packs no index lists whose header cannot be read: nothing in them can be located, so they are deleted. */
  unreadablePacks: string[]
  result: {packsWritten: number; blobsCopied: number; bytesWritten: number; packsDeleted: number; bytesDeleted: number; indexFilesWritten: number; indexFilesDeleted: number} | null
  /**
   * Snapshots that still cannot be restored, sorted: after the repair, those verify's structure
   * check names; with --dry-run, every snapshot the damage affects (an upper bound).
   */
  brokenSnapshots: string[]
  /** Error findings left after the repair (empty with --dry-run). */
  remaining: Finding[]
  durationMs: number
}

interface RepairPlan {
  /** Packs to rewrite, by name, with the kinds of the findings about them. */
  packs: Map<string, Set<string>>
  damagedIndexFiles: string[]
  unreadablePacks: {name: string; size: number}[]
}

interface Prepared {
  /** Index files read while preparing (all good ones), and those the repair wrote. */
  known: Set<string>
  written: Set<string>
  /** Good index files that list a damaged pack: rewritten without it. */
  superseded: string[]
  packs: RepairedPack[]
  droppedBlobs: DroppedBlob[]
  packsWritten: number
  blobsCopied: number
  bytesWritten: number
}

export async function runRepair(repo: Repository, opts: RepairOptions): Promise<RepairReport> {
  const started = Date.now()
  const readData: DataSelection = opts.packs ? {kind: 'packs', names: opts.packs} : {kind: 'all'}
  const progress = (what: string) => (p: {packsDone: number; packsTotal: number}) => opts.onProgress?.(`${what}: ${p.packsDone}/${p.packsTotal} packs`)
  const {before, plan, prepared} = await withLock(repo.backend, {exclusive: false, command: 'repair', retryMs: opts.retryMs ?? 0, onStaleRemoved: opts.onStaleLock}, async () => {
    const before = await verifyRepository(repo.backend, {readData, onProgress: progress('checking')})
    const plan = await planRepair(repo, before)
    const empty = plan.packs.size === 0 && plan.damagedIndexFiles.length === 0 && plan.unreadablePacks.length === 0
    if (opts.dryRun || empty) return {before, plan, prepared: undefined}
    return {before, plan, prepared: await prepare(repo, plan, opts.onProgress)}
  })
  const found = {errors: before.errors, packsRead: before.counts.packsRead, findings: before.findings}
  const base = {found, damagedIndexFiles: plan.damagedIndexFiles, unreadablePacks: plan.unreadablePacks.map((p) => p.name)}
  if (!prepared) {
    const affected = new Set(before.findings.filter((f) => f.severity === 'error').flatMap((f) => f.snapshots))
    const packs = [...plan.packs].map(([name, reasons]) => ({name, reasons: [...reasons].sort(), present: !reasons.has('pack-missing'), blobsKept: null, blobsDropped: null}))
    const droppedBlobs = before.findings.filter((f) => BLOB_DAMAGE.includes(f.kind) && f.pack).map((f) => ({id: f.id, type: f.object === 'tree' ? ('tree' as const) : ('chunk' as const), pack: f.pack!, reason: f.message}))
    return {
      dryRun: opts.dryRun, exitCode: before.exitCode === 0 ? 0 : 12, ...base, packs, droppedBlobs, result: null,
      brokenSnapshots: opts.dryRun ? [...affected].sort() : brokenBy(before), remaining: opts.dryRun ? [] : before.findings.filter((f) => f.severity === 'error'),
      durationMs: Date.now() - started,
    }
  }

  opts.onProgress?.('waiting for running snapshots and restores (exclusive lock)')
  let committed: {packsDeleted: number; bytesDeleted: number; indexFilesWritten: number; indexFilesDeleted: number}
  try {
    committed = await withLock(repo.backend, {exclusive: true, command: 'repair', retryMs: opts.exclusiveRetryMs ?? 10 * 60 * 1000, onStaleRemoved: opts.onStaleLock}, () => commit(repo, plan, prepared))
  } catch (err) {
    if (err instanceof LockedError) throw new LockedError(`${err.message}; repair copied what it could but deleted nothing (run it again)`, err.data, {cause: err})
    throw err
  }
  opts.onProgress?.('checking the structure again')
  const after = await verifyRepository(repo.backend, {lockRetryMs: opts.retryMs})
  const remaining = after.findings.filter((f) => f.severity === 'error')
  return {
    dryRun: false, exitCode: after.exitCode === 0 ? 0 : 12, ...base, packs: prepared.packs, droppedBlobs: prepared.droppedBlobs,
    result: {
      packsWritten: prepared.packsWritten, blobsCopied: prepared.blobsCopied, bytesWritten: prepared.bytesWritten,
      packsDeleted: committed.packsDeleted, bytesDeleted: committed.bytesDeleted,
      indexFilesWritten: prepared.written.size + committed.indexFilesWritten, indexFilesDeleted: committed.indexFilesDeleted,
    },
    brokenSnapshots: brokenBy(after), remaining, durationMs: Date.now() - started,
  }
}

function brokenBy(report: VerifyReport): string[] {
  return [...new Set(report.findings.filter((f) => f.severity === 'error').flatMap((f) => f.snapshots))].sort()
}

/** Which packs to rewrite and which index files to drop, from verify's findings. Pure but for the header reads of unindexed packs. */
async function planRepair(repo: Repository, report: VerifyReport): Promise<RepairPlan> {
  const packs = new Map<string, Set<string>>()
  const add = (name: string, kind: string) => {
    if (!isHexId(name)) return
    const s = packs.get(name) ?? new Set<string>()
    s.add(kind)
    packs.set(name, s)
  }
  const damagedIndexFiles: string[] = []
  for (const f of report.findings) {
    if (PACK_DAMAGE.includes(f.kind)) add(f.id, f.kind)
    else if (BLOB_DAMAGE.includes(f.kind) && f.pack) add(f.pack, f.kind)
    // A pack snapshots need that no index lists (its index file was damaged or lost): indexed again.
    else if (f.kind === 'pack-unindexed' && f.severity === 'error') add(f.id, f.kind)
    else if (f.kind === 'index-damaged') damagedIndexFiles.push(f.id)
  }
  // Packs no index lists whose header is unreadable: nothing in them can be located any more.
  const indexed = new Set<string>()
  for (const name of await listIndex(repo)) {
    if (damagedIndexFiles.includes(name)) continue
    try {
      for (const p of await repo.readIndexFile(name)) indexed.add(p.name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
    }
  }
  const unreadablePacks: RepairPlan['unreadablePacks'] = []
  for await (const obj of repo.backend.list('data')) {
    if (!isHexId(obj.name) || indexed.has(obj.name) || packs.has(obj.name)) continue
    try {
      await readPackHeader(repo.backend, obj.name, obj.size)
    } catch (err) {
      if (!(err instanceof IntegrityError || err instanceof ObjectMissingError)) throw err
      unreadablePacks.push({name: obj.name, size: obj.size})
    }
  }
  return {packs, damagedIndexFiles: damagedIndexFiles.sort(), unreadablePacks}
}

async function listIndex(repo: Repository): Promise<string[]> {
  const names: string[] = []
  for await (const obj of repo.backend.list('index')) names.push(obj.name)
  return names.sort()
}

/** The additive part: copies of the good blobs, and index files without the damaged packs. */
async function prepare(repo: Repository, plan: RepairPlan, onProgress?: (text: string) => void): Promise<Prepared> {
  // Every good index file: what it says about the damaged packs, and which ones list them.
  const entries = new Map<string, Map<string, PackEntry>>([...plan.packs.keys()].map((name) => [name, new Map()]))
  const known = new Set<string>()
  const keep = new Map<string, IndexedPack[]>()
  const superseded: string[] = []
  for (const name of await listIndex(repo)) {
    if (plan.damagedIndexFiles.includes(name)) continue
    let packs: IndexedPack[]
    try {
      packs = await repo.readIndexFile(name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      continue // damaged since verify read it: the next repair sees it
    }
    known.add(name)
    if (!packs.some((p) => plan.packs.has(p.name))) continue
    superseded.push(name)
    keep.set(name, packs.filter((p) => !plan.packs.has(p.name)))
    for (const p of packs) for (const e of plan.packs.has(p.name) ? p.entries : []) entries.get(p.name)!.set(entryKey(e), e)
  }

  const present = new Map<string, number>()
  for await (const obj of repo.backend.list('data')) present.set(obj.name, obj.size)
  const copier = new BlobCopier(repo, await repoWithEmptyIndex(repo))
  const maxChunk = repo.config.chunker.maxSize
  const packs: RepairedPack[] = []
  const droppedBlobs: DroppedBlob[] = []
  let blobsCopied = 0
  let done = 0
  for (const [name, reasons] of [...plan.packs].sort(([a], [b]) => (a < b ? -1 : 1))) {
    onProgress?.(`copying what is good: ${++done}/${plan.packs.size} damaged packs`)
    const size = present.get(name)
    const byKey = entries.get(name)!
    // The pack's own header, where it can be read, locates blobs no good index file lists.
    if (size !== undefined) {
      try {
        for (const e of (await readPackHeader(repo.backend, name, size)).entries) if (!byKey.has(entryKey(e))) byKey.set(entryKey(e), e)
      } catch (err) {
        if (!(err instanceof IntegrityError || err instanceof ObjectMissingError)) throw err
      }
    }
    const drop = (e: PackEntry, reason: string) => droppedBlobs.push({id: toHex(e.id), type: e.type === BlobType.tree ? 'tree' : 'chunk', pack: name, reason})
    const copy: PackEntry[] = []
    for (const e of byKey.values()) {
      const tooLarge = chunkLengthProblem(e.type, e.rawLength, maxChunk)
      if (size === undefined) drop(e, `pack ${name} is missing`)
      else if (e.offset + e.storedLength > size) drop(e, `past the end of pack ${name} (${size} bytes)`)
      // Never inflated: that is the memory a hostile index asks for.
      else if (tooLarge) drop(e, `${toHex(e.id)} ${tooLarge}`)
      else copy.push(e)
    }
    const before = droppedBlobs.length
    const kept = copy.length === 0 ? 0 : await copier.copy(name, copy, (e, err) => drop(e, err.message))
    blobsCopied += kept
    packs.push({name, reasons: [...reasons].sort(), present: size !== undefined, blobsKept: kept, blobsDropped: byKey.size - copy.length + (droppedBlobs.length - before)})
  }
  const written = await copier.finish()

  // The index files that listed damaged packs, again without them. Durable before anything they replace is deleted.
  const writtenNames = new Set(written.indexFiles)
  for (const p of batches([...keep.values()].flat())) writtenNames.add(await repo.writeIndex(p))
  return {known, written: writtenNames, superseded, packs, droppedBlobs, packsWritten: written.packs, blobsCopied, bytesWritten: written.bytes}
}

function entryKey(e: PackEntry): string {
  return `${toHex(e.id)}@${e.offset}`
}

/** Packs grouped into index files of at most INDEX_ENTRIES_PER_FILE entries (a pack is never split). */
function batches(packs: IndexedPack[]): IndexedPack[][] {
  const out: IndexedPack[][] = []
  let cur: IndexedPack[] = []
  let n = 0
  for (const p of packs) {
    if (cur.length > 0 && n + p.entries.length > INDEX_ENTRIES_PER_FILE) {
      out.push(cur)
      cur = []
      n = 0
    }
    cur.push(p)
    n += p.entries.length
  }
  if (cur.length > 0) out.push(cur)
  return out
}

/** The exclusive part: old index files, then the damaged packs. */
async function commit(repo: Repository, plan: RepairPlan, prepared: Prepared): Promise<{packsDeleted: number; bytesDeleted: number; indexFilesWritten: number; indexFilesDeleted: number}> {
  const current = new Set(await listIndex(repo))
  // Another prune or repair committed since: what was planned may be stale. Nothing is deleted.
  if ([...prepared.superseded, ...prepared.written].some((n) => !current.has(n))) {
    throw new LockedError('another prune or repair changed the index while repair ran; repair copied what it could but deleted nothing (run it again)')
  }
  // Index files written meanwhile (a prune's consolidated index may list a damaged pack): the
  // same treatment, under this lock.
  const fresh = [...current].filter((n) => !prepared.known.has(n) && !prepared.written.has(n) && !plan.damagedIndexFiles.includes(n))
  const alsoSuperseded: string[] = []
  let indexFilesWritten = 0
  for (const name of fresh) {
    let packs: IndexedPack[]
    try {
      packs = await repo.readIndexFile(name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      continue
    }
    if (!packs.some((p) => plan.packs.has(p.name))) continue
    for (const b of batches(packs.filter((p) => !plan.packs.has(p.name)))) {
      prepared.written.add(await repo.writeIndex(b))
      indexFilesWritten++
    }
    alsoSuperseded.push(name)
  }
  // Index files are named by their content: one just written may carry the name of one it replaces.
  const oldIndex = [...prepared.superseded, ...alsoSuperseded, ...plan.damagedIndexFiles].filter((n) => !prepared.written.has(n))
  await mapLimit(oldIndex, DELETES_IN_FLIGHT, (name) => repo.backend.delete('index', name))

  // Packs last: nothing indexes them any more.
  const sizes = new Map<string, number>()
  for await (const obj of repo.backend.list('data')) sizes.set(obj.name, obj.size)
  const doomed = [...[...plan.packs.keys()].filter((n) => sizes.has(n)).map((name) => ({name, size: sizes.get(name)!})), ...plan.unreadablePacks.filter((p) => sizes.has(p.name))]
  let bytesDeleted = 0
  await mapLimit(doomed, DELETES_IN_FLIGHT, async (p) => {
    await repo.backend.delete('data', p.name)
    bytesDeleted += p.size
  })
  return {packsDeleted: doomed.length, bytesDeleted, indexFilesWritten, indexFilesDeleted: oldIndex.length}
}
