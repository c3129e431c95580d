// ckpt stats: sizes and ratios per snapshot and for the repository, and what each snapshot alone
// holds: the blobs no other snapshot reaches, which is what forgetting it (and then prune) frees.
//
// Ownership is one map from blob id to the one snapshot that reaches it, or SHARED. A snapshot's
// walk stops at a tree already SHARED (everything below it is shared too) or already its own, so
// a tree is walked at most twice over the whole repository, not once per snapshot. Only the
// snapshots asked about get a full walk of their own (their distinct blobs, for their ratios).
import {IdMap} from '../core/idmap.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {Trees} from './trees.js'

const SHARED = 0xfffffffe

export type StatsRepository = Pick<Repository, 'readBlob' | 'lookup' | 'index' | 'packs'>

export interface Sizes {
  blobs: number
  /** Plain bytes of the blobs (chunks and trees), and their size as stored (compressed). */
  rawBytes: number
  storedBytes: number
}

export interface SnapshotStats {
  id: string
  time: string
  source: string
  files: number
  /** Bytes of all files as restored. */
  logicalBytes: number
  /** The distinct blobs it reaches. */
  reached: Sizes
  /** Blobs no other snapshot reaches: what forgetting this one would free. */
  unique: Sizes
  /** logicalBytes / plain bytes of its distinct chunks; plain / stored bytes of its blobs. */
  dedupRatio: number | null
  compressionRatio: number | null
}

export interface RepositoryTotals {
  snapshots: number
  packs: number
  packBytes: number
  /** Every blob of the index. */
  indexed: Sizes
  /** Blobs some snapshot reaches; the rest is what prune would free. */
  referenced: Sizes
  unreferenced: Sizes
  /** Blobs a snapshot references that the index does not have (verify says more). */
  missingBlobs: number
  logicalBytes: number
  dedupRatio: number | null
  compressionRatio: number | null
}

export interface StatsReport {
  snapshots: SnapshotStats[]
  totals: RepositoryTotals
  treesRead: number
}

const zero = (): Sizes => ({blobs: 0, rawBytes: 0, storedBytes: 0})
const ratio = (a: number, b: number): number | null => (b > 0 ? a / b : null)

/**
 * Walk the trees below `root` (ids): `enter(tree)` says whether to read and descend into a tree,
 * `chunk(id)` sees every chunk of every file of the trees read.
 */
async function walkBlobs(trees: Trees, root: Buffer, enter: (id: Buffer) => boolean, chunk: (id: Buffer) => void): Promise<void> {
  const stack: Buffer[] = enter(root) ? [root] : []
  while (stack.length) {
    for (const n of await trees.get(stack.pop()!)) {
      if (n.subtree) {
        if (enter(n.subtree)) stack.push(n.subtree)
      } else if (n.chunks) {
        for (const c of n.chunks) chunk(c)
      }
    }
  }
}

export async function repositoryStats(repo: StatsRepository, all: readonly SnapshotRecord[], selected: readonly SnapshotRecord[]): Promise<StatsReport> {
  const trees = new Trees(repo)
  const owners = new IdMap(1)
  /** Make snapshot `i` an owner of `id`; true when that is news (not already its own, or shared). */
  const own = (id: Buffer, i: number): boolean => {
    const v = owners.get(id)
    if (!v) return owners.set(id, [i]), true
    if (v[0] === i || v[0] === SHARED) return false
    v[0] = SHARED
    return true
  }
  const selectedIds = new Set(selected.map((s) => s.id))
  const reached = new Map<string, Sizes>()
  let missing = 0
  const add = (into: Sizes, id: Buffer): void => {
    const loc = repo.lookup(id)
    if (!loc) return
    into.blobs++
    into.rawBytes += loc.rawLength
    into.storedBytes += loc.storedLength
  }
  const dataRaw = new Map<string, number>()

  for (let i = 0; i < all.length; i++) {
    const s = all[i]!
    const root = Buffer.from(s.manifest.tree, 'hex')
    if (!selectedIds.has(s.id)) {
      await walkBlobs(trees, root, (t) => own(t, i), (c) => void own(c, i))
      continue
    }
    // Its own walk: every distinct blob once, marking ownership on the way.
    const seen = new IdMap(1)
    const sizes = zero()
    let plainData = 0
    await walkBlobs(trees, root, (t) => {
      if (!seen.set(t, [0])) return false
      own(t, i)
      add(sizes, t)
      return true
    }, (c) => {
      if (!seen.set(c, [0])) return
      own(c, i)
      add(sizes, c)
      plainData += repo.lookup(c)?.rawLength ?? 0
    })
    reached.set(s.id, sizes)
    dataRaw.set(s.id, plainData)
  }

  const unique = new Map<number, Sizes>()
  const referenced = zero()
  owners.forEach((id, v) => {
    const loc = repo.lookup(id)
    if (!loc) return void missing++
    referenced.blobs++
    referenced.rawBytes += loc.rawLength
    referenced.storedBytes += loc.storedLength
    if (v[0] === SHARED) return
    let u = unique.get(v[0]!)
    if (!u) unique.set(v[0]!, (u = zero()))
    u.blobs++
    u.rawBytes += loc.rawLength
    u.storedBytes += loc.storedLength
  })

  const indexed = zero()
  let referencedDataRaw = 0
  repo.index.forEach((id, e) => {
    indexed.blobs++
    indexed.rawBytes += e.rawLength
    indexed.storedBytes += e.storedLength
    if (e.type === BlobType.data && owners.has(id)) referencedDataRaw += e.rawLength
  })
  const logicalBytes = all.reduce((sum, s) => sum + s.manifest.summary.bytes, 0)

  const snapshots = all.flatMap((s, i): SnapshotStats[] => {
    if (!selectedIds.has(s.id)) return []
    const r = reached.get(s.id)!
    const m = s.manifest
    return [{
      id: s.id, time: m.time, source: m.source, files: m.summary.files, logicalBytes: m.summary.bytes,
      reached: r, unique: unique.get(i) ?? zero(),
      dedupRatio: ratio(m.summary.bytes, dataRaw.get(s.id)!), compressionRatio: ratio(r.rawBytes, r.storedBytes),
    }]
  })
  return {
    snapshots,
    totals: {
      snapshots: all.length, packs: repo.packs.length, packBytes: repo.packs.reduce((sum, p) => sum + p.size, 0),
      indexed, referenced,
      unreferenced: {blobs: indexed.blobs - referenced.blobs, rawBytes: indexed.rawBytes - referenced.rawBytes, storedBytes: indexed.storedBytes - referenced.storedBytes},
      missingBlobs: missing, logicalBytes,
      dedupRatio: ratio(logicalBytes, referencedDataRaw), compressionRatio: ratio(referenced.rawBytes, referenced.storedBytes),
    },
    treesRead: trees.read,
  }
}
