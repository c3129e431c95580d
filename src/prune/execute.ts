// Carrying out a plan, in two phases.
//
// prepare (shared lock, additive only): copy the live blobs of packs to repack into new packs,
// and write consolidated index files for every pack that stays. Nothing is deleted, so
// snapshots and restores run alongside, and a crash leaves only extra packs and index files
// that the next prune sees as duplicates.
//
// commit (exclusive lock, short): check no other prune changed the index since the plan; look
// again at snapshots and pins, mark what is new (only unmarked trees are read), keep any pack
// that turns out to be needed; then delete forgotten manifests, write a small index for rescued
// packs, delete the superseded index files, and only then the packs. At every step each index
// entry points at a pack that exists and every kept snapshot's blobs are indexed.
import {type CompressionValue, inflateBatches, inflatedSize, openBlobs} from '../core/codec.js'
import {Inflight, mapLimit} from '../core/concurrency.js'
import {IntegrityError, NotFoundError} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {hashBuffer} from '../core/hashpool.js'
import type {IndexedPack} from '../repo/indexfile.js'
import {type PackEntry, readRanges} from '../repo/pack.js'
import {damagedBlob, Repository} from '../repo/repository.js'
import {BlobWriter} from '../repo/writer.js'
import {decodeManifest} from '../snapshot/manifest.js'
import {markTrees, Problems} from './mark.js'
import {listPins} from './pins.js'
import {packEntries, type Plan} from './plan.js'

/** Entries per consolidated index file (46 bytes each: about 3 MiB per file). */
export const INDEX_ENTRIES_PER_FILE = 1 << 16
/** Deletes in flight in the exclusive phase: each one fsyncs its directory, and they overlap well. */
const DELETES_IN_FLIGHT = 16
/**
 * Live blobs of a pack being repacked are read in ranges of up to this many stored bytes, and
 * checked in batches that inflate to at most as many: two reused buffers, whatever the pack size.
 */
const REPACK_READ = 2 * 1024 * 1024

export interface Prepared {
  /** Index files this prune wrote (consolidated and for repacked packs). */
  indexFiles: string[]
  packsWritten: number
  bytesWritten: number
  blobsCopied: number
}

export async function prepare(repo: Repository, plan: Plan, onProgress?: (text: string) => void): Promise<Prepared> {
  const prepared: Prepared = {indexFiles: [], packsWritten: 0, bytesWritten: 0, blobsCopied: 0}
  if (!plan.rewriteIndex) return prepared
  const {state, actions} = plan
  const {table} = state
  // A repository object of its own, with an empty index, so the writer stores every blob it is
  // given instead of finding it already present (in the very pack being emptied).
  const target = await repoWithEmptyIndex(repo)
  const copier = new BlobCopier(repo, target)
  let batch: IndexedPack[] = []
  let batchEntries = 0
  const flushBatch = async () => {
    if (batch.length === 0) return
    prepared.indexFiles.push(await repo.writeIndex(batch))
    batch = []
    batchEntries = 0
  }
  const repackTotal = actions.filter((a) => a === 'repack').length
  let repacked = 0

  const handle = async (p: IndexedPack, packNo: number) => {
    const action = actions[packNo]
    if (action === 'keep') {
      batch.push(p)
      batchEntries += p.entries.length
      if (batchEntries >= INDEX_ENTRIES_PER_FILE) await flushBatch()
    } else if (action === 'repack') {
      onProgress?.(`repacking: ${++repacked}/${repackTotal} packs`)
      const live = p.entries.filter((e) => table.isChosenCopy(e.id, packNo, e.offset) && table.isMarked(e.id))
      prepared.blobsCopied += await copier.copy(p.name, live)
    }
  }

  // One pass over the plan's index files (each decoded alone, so memory stays bounded), then
  // the packs that only their own headers describe.
  const done = new Uint8Array(table.packs.length)
  const damaged = new Set(state.damagedIndexFiles.map((d) => d.name))
  for (const name of state.indexFiles) {
    if (damaged.has(name)) continue
    for (const p of await repo.readIndexFile(name)) {
      const packNo = table.packNo(p.name)!
      if (done[packNo]) continue
      done[packNo] = 1
      await handle(p, packNo)
    }
  }
  for (const [packNo, entries] of state.headerEntries) {
    if (done[packNo]) continue
    done[packNo] = 1
    const p = table.packs[packNo]!
    await handle({name: p.name, size: p.size, entries}, packNo)
  }
  const written = await copier.finish()
  await flushBatch()
  prepared.indexFiles.push(...written.indexFiles)
  prepared.packsWritten = written.packs
  prepared.bytesWritten = written.bytes
  faultPoint('prune.prepared')
  return prepared
}

/**
 * Copies blobs out of packs into new packs, as they are stored (a frame is not inflated and
 * compressed again), each checked against its id first. Prune's repack and repair share it:
 * prune stops at a damaged blob before anything is deleted; repair passes `onDamaged`, keeps
 * the good blobs and leaves the damaged ones behind. Packs are read in ranges of up to
 * REPACK_READ into one reused buffer and checked in batches that inflate into another.
 */
export class BlobCopier {
  private readonly inflight = new Inflight(8)
  private readonly readBuffer = hashBuffer(REPACK_READ)
  private readonly checkBuffer = hashBuffer(REPACK_READ)

  private readonly writer: BlobWriter

  /** `target` is where the copies go: a repository object with an empty index (repoWithEmptyIndex), so that every blob given is stored. */
  constructor(private readonly repo: Repository, private readonly target: Repository) {
    this.writer = new BlobWriter(target)
  }

  /** Copy `blobs` of `pack`; returns how many were copied. */
  async copy(pack: string, blobs: readonly PackEntry[], onDamaged?: (e: PackEntry, err: IntegrityError) => void): Promise<number> {
    let copied = 0
    const sorted = [...blobs].sort((a, b) => a.offset - b.offset)
    for (const {start, end, blobs: range} of readRanges(sorted, REPACK_READ)) {
      // A blob larger than the read buffer is read alone, into a buffer of its own.
      const into = end - start <= REPACK_READ ? this.readBuffer.subarray(0, end - start) : undefined
      const bytes = await this.repo.backend.get('data', pack, {offset: start, length: end - start}, into)
      const good = await this.check(pack, range, bytes, start, onDamaged)
      // check has refused any compression this build does not know.
      for (let i = 0; i < range.length; i++) {
        const e = range[i]!
        if (!good[i]) continue
        await this.inflight.add(this.writer.addStored(e.type, e.id, bytes.subarray(e.offset - start, e.offset - start + e.storedLength), e.compression as CompressionValue, e.rawLength))
        copied++
      }
      // The writer has copied or written every blob of the range once these settle.
      await this.inflight.drain()
    }
    return copied
  }

  /** Make every copied blob durable, with its index file. */
  async finish(): Promise<{indexFiles: string[]; packs: number; bytes: number}> {
    await this.inflight.drain()
    await this.writer.flush()
    return {indexFiles: [...this.target.indexFiles], packs: this.writer.stats.packs, bytes: this.target.packs.reduce((n, p) => n + p.size, 0)}
  }

  /**
   * Which blobs of a range pass their check. Without `onDamaged` a damaged one throws. Batches
   * inflate to at most the check buffer's size; a single larger blob gets a buffer of its own.
   */
  private async check(pack: string, range: readonly PackEntry[], bytes: Buffer, start: number, onDamaged?: (e: PackEntry, err: IntegrityError) => void): Promise<boolean[]> {
    const good: boolean[] = []
    const scratch = this.checkBuffer
    for (const batch of inflateBatches(range, scratch.length)) {
      const raw = inflatedSize(batch)
      const opened = await openBlobs(bytes, batch.map((e) => ({...e, offset: e.offset - start})), raw <= scratch.length ? scratch : Buffer.allocUnsafe(raw))
      opened.forEach((o, n) => {
        good.push(o.ok)
        if (o.ok) return
        const err = damagedBlob(batch[n]!.id, pack, o.error)
        if (!onDamaged) throw err
        onDamaged(batch[n]!, err)
      })
    }
    return good
  }
}

/** A repository object of its own, with an empty index, for a BlobWriter that must store every blob it is given. */
export async function repoWithEmptyIndex(repo: Repository): Promise<Repository> {
  return Repository.open(repo.backend)
}

export interface Committed {
  snapshotsRemoved: string[]
  packsDeleted: number
  bytesDeleted: number
  indexFilesDeleted: number
  indexFilesWritten: number
  rescuedPacks: string[]
  pinsRemoved: number
  /** Snapshots written since the plan, marked under the exclusive lock. */
  newSnapshots: number
}

/**
 * The exclusive phase. Returns 'replan' when another prune changed the index after this plan
 * (its index files are gone): the plan is then stale and is made again.
 */
export async function commit(repo: Repository, plan: Plan, prepared: Prepared, onProgress?: (text: string) => void): Promise<Committed | 'replan'> {
  const {state} = plan
  const {table} = state
  const current = new Set<string>()
  for await (const obj of repo.backend.list('index')) current.add(obj.name)
  if ([...state.indexFiles, ...prepared.indexFiles].some((n) => !current.has(n))) return 'replan'

  const problems = new Problems()
  const names = new Set(await repo.listSnapshotNames())
  const pins = await listPins(repo)
  const remove = plan.remove.filter((id) => names.has(id) && !pins.has(id))
  const removeSet = new Set(remove)

  // Index files written since the plan: by snapshots (new packs), or by another prune still
  // planning (which may list packs this one deletes).
  const known = new Set([...state.indexFiles, ...prepared.indexFiles])
  const newFiles = [...current].filter((n) => !known.has(n)).sort()
  const newFilePacks = new Map<string, number[]>()
  for (const name of newFiles) {
    let packs: IndexedPack[]
    try {
      packs = await repo.readIndexFile(name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      problems.add({kind: 'damaged-index', message: `index file ${name}, written while prune planned, is damaged: ${err.message}`})
      continue
    }
    const fileNo = state.indexFiles.length + newFilePacks.size
    const packNos: number[] = []
    for (const p of packs) {
      const {packNo, isNew} = table.addPackFrom(p.name, p.size, fileNo)
      if (isNew) for (const e of p.entries) table.addEntry(packNo, e)
      packNos.push(packNo)
    }
    newFilePacks.set(name, packNos)
  }
  const fileNames = [...state.indexFiles, ...newFilePacks.keys()]

  const doomed = (packNo: number): boolean => {
    const a = plan.actions[packNo]
    return a === 'delete' || a === 'repack' || a === 'missing'
  }

  // Snapshots to mark now: written since the plan, or pinned since the plan decided to remove them.
  const toMark = [...names].filter((id) => !removeSet.has(id) && !plan.marked.has(id)).sort()
  const roots = []
  for (const id of toMark) {
    try {
      const m = decodeManifest(await repo.readSnapshotBytes(id), id)
      roots.push({snapshot: id, tree: Buffer.from(m.tree, 'hex')})
    } catch (err) {
      if (err instanceof NotFoundError) continue
      if (!(err instanceof IntegrityError)) throw err
      problems.add({kind: 'damaged-manifest', snapshot: id, message: `snapshot ${id.slice(0, 12)}: ${err.message}`})
    }
  }
  const resurrected: Buffer[] = []
  if (roots.length > 0) {
    onProgress?.(`marking ${roots.length} new snapshots`)
    await markTrees(repo, table, roots, problems, {
      onNew: (id) => {
        if (doomed(table.packOf(id)!)) resurrected.push(Buffer.from(id))
      },
    })
  }
  if (problems.count > 0) throw problems.toError()

  // A blob the plan thought dead, used again by a snapshot written meanwhile: take another copy
  // if one survives, else keep its pack.
  const rescued = new Set<number>()
  if (resurrected.length > 0) {
    for (const id of resurrected) {
      const alternative = table.copiesOf(id).find((d) => !doomed(d.packNo) && table.packs[d.packNo]!.exists)
      if (alternative) table.choose(id, alternative)
      else rescued.add(table.packOf(id)!)
    }
  }
  const deleting = (packNo: number) => doomed(packNo) && !rescued.has(packNo)
  const superseded = [...newFilePacks].filter(([, packNos]) => packNos.some(deleting)).map(([name]) => name)

  // 1. Forgotten manifests (their blobs are still all there).
  onProgress?.('deleting snapshots, index files and packs')
  faultPoint('prune.commit-start')
  await mapLimit(remove, DELETES_IN_FLIGHT, (id) => repo.deleteSnapshot(id))
  faultPoint('prune.snapshots-deleted')

  // 2. An index for what would otherwise lose its index: rescued packs, and the surviving packs
  //    of index files superseded below. Durable before anything it replaces is deleted.
  const carry = new Map<string, IndexedPack>()
  for (const packNo of rescued) {
    const p = await packEntries(repo, {...state, indexFiles: fileNames}, packNo)
    carry.set(p.name, p)
  }
  for (const name of superseded) {
    for (const p of await repo.readIndexFile(name)) {
      const packNo = table.packNo(p.name)!
      if (!deleting(packNo) && !carry.has(p.name)) carry.set(p.name, p)
    }
  }
  const written = new Set(prepared.indexFiles)
  let indexFilesWritten = 0
  for (let packs = [...carry.values()]; packs.length > 0; ) {
    let n = 0
    let entries = 0
    while (n < packs.length && (n === 0 || entries + packs[n]!.entries.length <= INDEX_ENTRIES_PER_FILE)) entries += packs[n++]!.entries.length
    written.add(await repo.writeIndex(packs.slice(0, n)))
    indexFilesWritten++
    packs = packs.slice(n)
  }
  faultPoint('prune.index-written')

  // 3. Superseded index files: every file of the plan (consolidated already), and new ones
  //    that list packs being deleted. Index files are named by their content, so one just
  //    written may carry the name of one it replaces (same packs, same entries): that one stays.
  const oldIndex = [...(plan.rewriteIndex ? state.indexFiles : []), ...superseded].filter((name) => !written.has(name))
  await repo.backend.deleteMany('index', oldIndex)
  faultPoint('prune.index-deleted')

  // 4. Packs, last: nothing indexes them any more.
  let packsDeleted = 0
  let bytesDeleted = 0
  const packNames: {name: string; size: number}[] = []
  table.packs.forEach((p, packNo) => {
    if (packNo < plan.actions.length && deleting(packNo) && p.exists) packNames.push({name: p.name, size: p.size})
  })
  packNames.push(...state.unreadablePacks)
  await repo.backend.deleteMany('data', packNames.map((p) => p.name))
  for (const p of packNames) {
    packsDeleted++
    bytesDeleted += p.size
  }
  faultPoint('prune.packs-deleted')

  // 5. Pins of snapshots that are gone (a forget --force that crashed between its two deletes).
  const after = new Set([...names].filter((id) => !removeSet.has(id)))
  let pinsRemoved = 0
  await mapLimit([...pins].filter((id) => !after.has(id)), DELETES_IN_FLIGHT, async (id) => {
    await repo.backend.delete('pins', id)
    pinsRemoved++
  })
  return {
    snapshotsRemoved: remove, packsDeleted, bytesDeleted, indexFilesDeleted: oldIndex.length, indexFilesWritten,
    rescuedPacks: [...rescued].map((n) => table.packs[n]!.name), pinsRemoved, newSnapshots: roots.length,
  }
}
