// `ckpt verify`: prove the repository is whole, or list everything that is not.
//
// Levels (docs/VERIFY.md):
// - structure (always): config; every manifest; every index file; every tree the snapshots
//   reach is read, hash-checked and decoded; every chunk they reference is in the index; every
//   indexed pack exists with the indexed size; each pack's trailer and header (one ranged get
//   of its tail) agree with the index.
// - --read-data / --read-data-subset: every blob of the chosen packs is read, inflated and
//   checked against its BLAKE3 id, a batch at a time on the thread pool (src/verify/packcheck.ts).
// - --source DIR: the snapshot compared with a directory (src/verify/source.ts).
//
// Every problem is a finding naming the damaged object and the snapshots that use it; nothing
// stops at the first. Findings about a pack (missing, truncated, damaged header) name every
// snapshot that uses a blob stored in it; findings about one blob name the snapshots reaching
// that blob. To attribute, the snapshots' trees are walked once with each tree's result
// memoised (shared subtrees are read once), and walked again only if reading the packs found
// something new.
import {mapLimit} from '../core/concurrency.js'
import {ReadPool} from '../core/readpool.js'
import {type ChunkerParams} from '../core/chunker.js'
import {IntegrityError, NoRepositoryError, NotFoundError, ObjectMissingError, UnsupportedFormatError} from '../core/errors.js'
import {blake3} from '../core/hash.js'
import {IdMap} from '../core/idmap.js'
import {isHexId, toHex} from '../core/ids.js'
import {decodeConfig, type RepoConfig} from '../repo/config.js'
import {BlobType, type BlobTypeValue} from '../repo/pack.js'
import {readPackHeader} from '../repo/packheader.js'
import {checkBlob} from '../repo/repository.js'
import {bySnapshotTime, resolveSnapshot, type SnapshotRecord} from '../snapshot/catalog.js'
import {decodeManifest} from '../snapshot/manifest.js'
import {dataLength, decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'
import type {Backend} from '../store/backend.js'
import {withLock, type LockInfo} from '../store/lock.js'
import {hostTag, tempState} from '../store/temp.js'
import {loadVerifyIndex, type Location, type VerifyIndex} from './blobindex.js'
import {chunkLengthProblem, fileSizeProblem} from './bounds.js'
import {type Finding, Findings} from './findings.js'
import {BATCH_RAW_BYTES, checkPackContents, checkPackPresence, type PackCheckContext, type PackStatus, SEGMENT_BYTES} from './packcheck.js'
import {compareWithDirectory, type Difference} from './source.js'
import {type DataSelection, selectPacks} from './subset.js'

/** Packs checked at once: reading data, a few (memory: about this many segments); headers only, more. */
const PACKS_IN_FLIGHT_DATA = 2
const PACKS_IN_FLIGHT_HEADERS = 16

export interface VerifyOptions {
  /** Snapshot ids, unique prefixes or "latest": check only what they reach. Default: everything. */
  snapshots?: readonly string[]
  /** Which packs to read and re-hash in full (default none: structure only). */
  readData?: DataSelection
  /** Compare the one snapshot given with this directory. */
  source?: string
  /** Directories inside --source that snapshots skip (the repository): not reported as extra. */
  sourceSkipDirs?: readonly {dev: bigint; ino: bigint}[]
  /** Compare owners with --source (default: when running as root, as only root's restore sets them). */
  compareOwners?: boolean
  lockRetryMs?: number
  onStaleLockRemoved?: (info: LockInfo | undefined, name: string) => void
  /** For --read-data-subset N%. */
  random?: () => number
  onProgress?: (p: VerifyProgress) => void
}

export interface VerifyProgress {
  phase: 'snapshots' | 'index' | 'trees' | 'packs' | 'source'
  trees: number
  packsDone: number
  packsTotal: number
  /** Bytes read from the repository (and, with --source, from the directory). */
  bytesRead: number
}

export interface VerifyCounts {
  /** Snapshots checked (damaged manifests included). */
  snapshots: number
  indexFiles: number
  /** Indexed packs whose size and header were checked. */
  packs: number
  /** Packs whose blobs were read and re-hashed. */
  packsRead: number
  /** Distinct trees read and decoded. */
  trees: number
  /** Distinct file chunks the snapshots reference (each looked up in the index). */
  chunks: number
  /** Blobs inflated and checked against their id (--read-data). */
  blobsRead: number
  /** Bytes read from the repository. */
  bytesRead: number
  /** Plain bytes hashed while checking blobs. */
  bytesHashed: number
}

export interface SourceComparison {
  snapshot: string
  directory: string
  entries: number
  bytesRead: number
  differences: Difference[]
}

export interface VerifyReport {
  /** No error findings and no differences. */
  ok: boolean
  /** 0 clean, 12 damage or differences, 13 unknown format version. */
  exitCode: 0 | 12 | 13
  readData: 'none' | 'all' | 'subset'
  /** "n/t" or "N%" with --read-data-subset. */
  subset?: string
  /** Snapshots checked, full ids. */
  snapshots: string[]
  counts: VerifyCounts
  findings: Finding[]
  errors: number
  infos: number
  /** Names of the packs whose blobs were read (sorted). */
  packsRead: string[]
  source?: SourceComparison
  durationMs: number
}


export async function verifyRepository(backend: Backend, opts: VerifyOptions = {}): Promise<VerifyReport> {
  return new Verifier(backend, opts).run()
}

interface Scope {
  snapshots: SnapshotRecord[]
  damaged: {id: string; message: string}[]
  /** True when the user named snapshots: check only what they reach. */
  explicit: boolean
}

type TreeRead = {nodes: TreeNode[]} | {problem: number} | undefined

const NONE: readonly number[] = Object.freeze([])

class Verifier {
  private readonly findings = new Findings()
  private readonly counts: VerifyCounts = {snapshots: 0, indexFiles: 0, packs: 0, packsRead: 0, trees: 0, chunks: 0, blobsRead: 0, bytesRead: 0, bytesHashed: 0}
  private readonly started = process.hrtime.bigint()
  private config: RepoConfig | undefined
  /** Findings that affect every snapshot (config). */
  private readonly global: number[] = []
  private index!: VerifyIndex
  /** Objects in data/, with their sizes. */
  private readonly present = new Map<string, number>()
  private readonly presenceChecked: boolean[] = []
  /** Blobs found damaged -> the findings naming them (slot into badLists). */
  private readonly bad = new IdMap(1, 16)
  private readonly badLists: number[][] = []
  /** Chunks the walked snapshots reference that the index lacks (the ones it has are marked in it). */
  private readonly reachedMissing = new IdMap(0, 16)
  private counting = true
  private memo = new IdMap(1)
  private sets: (readonly number[])[] = [NONE]
  private unindexed: Promise<Map<string, string>> | undefined
  private packsRead: string[] = []
  private packsDone = 0
  private packsTotal = 0
  private phase: VerifyProgress['phase'] = 'snapshots'
  private source: SourceComparison | undefined
  private sourceBytes = 0
  private readonly buffers = new ReadPool(PACKS_IN_FLIGHT_DATA, SEGMENT_BYTES)
  private readonly inflated = new ReadPool(PACKS_IN_FLIGHT_DATA, BATCH_RAW_BYTES)
  /** Every snapshot in the repository, damaged or not (a parent outside the scope may exist). */
  private allIds = new Set<string>()

  constructor(private readonly backend: Backend, private readonly opts: VerifyOptions) {}

  async run(): Promise<VerifyReport> {
    if (!(await this.readConfig())) return this.report([])
    return withLock(this.backend, {exclusive: false, readOnly: true, command: 'verify', retryMs: this.opts.lockRetryMs ?? 0, onStaleRemoved: this.opts.onStaleLockRemoved}, () => this.checkAll())
  }

  // ---- config ----

  /** False when nothing more can be checked (a format version this build does not know). */
  private async readConfig(): Promise<boolean> {
    let bytes: Buffer | undefined
    try {
      bytes = await this.backend.get('config', 'config')
      this.read(bytes.length)
    } catch (err) {
      if (err instanceof ObjectMissingError) {
        if (!(await this.hasObjects())) throw new NoRepositoryError(`no ckpt repository at ${this.backend.location}`, {location: this.backend.location})
        this.global.push(this.findings.add({kind: 'config-missing', object: 'config', id: 'config', message: `the repository has no config, but has snapshots, index files or packs: every command will refuse it`}))
        return true
      }
      if (!(err instanceof IntegrityError)) throw err
      this.global.push(this.findings.add({kind: 'config-damaged', object: 'config', id: 'config', message: `cannot read the config: ${err.message}`}))
      return true
    }
    try {
      this.config = decodeConfig(bytes)
    } catch (err) {
      if (err instanceof UnsupportedFormatError) {
        this.findings.add({kind: 'unknown-format-version', object: 'config', id: 'config', message: `${err.message}: nothing else can be checked`})
        return false
      }
      if (!(err instanceof IntegrityError)) throw err
      this.global.push(this.findings.add({kind: 'config-damaged', object: 'config', id: 'config', message: err.message}))
    }
    return true
  }

  private async hasObjects(): Promise<boolean> {
    for (const kind of ['snapshots', 'index', 'data'] as const) {
      for await (const _ of this.backend.list(kind)) return true
    }
    return false
  }

  // ---- the whole run, under a shared lock ----

  private async checkAll(): Promise<VerifyReport> {
    // Manifests before index files: a snapshot writes its packs, then its index files, then its
    // manifest, so every manifest listed here has its index files in the listing that follows
    // (a snapshot running beside us is simply not seen).
    const scope = this.resolveScope(await this.loadManifests())
    this.phase = 'index'
    this.index = await loadVerifyIndex(this.backend, this.findings, (n) => this.read(n))
    this.counts.indexFiles = this.index.indexFiles.length
    for await (const obj of this.backend.list('data')) this.present.set(obj.name, obj.size)

    this.phase = 'trees'
    await this.walk(scope.snapshots)

    const before = this.findings.size
    await this.checkPacks(scope)
    if (this.findings.size > before) {
      // Reading the packs found damage: walk again to name the snapshots it affects.
      this.counting = false
      await this.walk(scope.snapshots)
    }

    if (!scope.explicit) this.reportUnindexedPacks()
    if (!scope.explicit) await this.reportTemporaries()
    this.checkParents(scope)
    for (const n of this.global) {
      for (const s of scope.snapshots) this.findings.affect(n, s.id)
      for (const d of scope.damaged) this.findings.affect(n, d.id)
    }
    if (this.opts.source !== undefined) await this.compareSource(scope)
    return this.report(scope.snapshots.map((s) => s.id).concat(scope.damaged.map((d) => d.id)).sort())
  }

  // ---- snapshots ----

  private async loadManifests(): Promise<{snapshots: SnapshotRecord[]; damaged: {id: string; message: string}[]}> {
    const names: string[] = []
    for await (const obj of this.backend.list('snapshots')) if (isHexId(obj.name)) names.push(obj.name)
    this.allIds = new Set(names)
    const damaged: {id: string; message: string}[] = []
    const loaded = await mapLimit(names.sort(), 16, async (id): Promise<SnapshotRecord | undefined> => {
      try {
        const bytes = await this.backend.get('snapshots', id)
        this.read(bytes.length)
        if (toHex(blake3(bytes)) !== id) throw new IntegrityError(`snapshot ${id}: the manifest does not match its hash (damaged or truncated)`)
        return {id, manifest: decodeManifest(bytes, id)}
      } catch (err) {
        if (err instanceof ObjectMissingError) return undefined // forgotten while we listed
        if (!(err instanceof IntegrityError)) throw err
        damaged.push({id, message: err.message})
        return undefined
      }
    })
    const snapshots = loaded.filter((s): s is SnapshotRecord => s !== undefined).sort(bySnapshotTime)
    return {snapshots, damaged: damaged.sort((a, b) => (a.id < b.id ? -1 : 1))}
  }

  private resolveScope(all: {snapshots: SnapshotRecord[]; damaged: {id: string; message: string}[]}): Scope {
    const refs = this.opts.snapshots ?? []
    let scope: Scope
    if (refs.length === 0) {
      scope = {snapshots: all.snapshots, damaged: all.damaged, explicit: false}
    } else {
      const snapshots = new Map<string, SnapshotRecord>()
      const damaged = new Map<string, {id: string; message: string}>()
      for (const ref of refs) {
        try {
          const s = resolveSnapshot(all.snapshots, ref)
          snapshots.set(s.id, s)
        } catch (err) {
          // A damaged manifest is not in the catalog, but naming it must report the damage, not "not found".
          const damagedOnly = err instanceof NotFoundError && /^[0-9a-f]{4,64}$/.test(ref) && !all.snapshots.some((s) => s.id.startsWith(ref))
          const matches = damagedOnly ? all.damaged.filter((d) => d.id.startsWith(ref)) : []
          if (matches.length !== 1) throw err
          damaged.set(matches[0]!.id, matches[0]!)
        }
      }
      scope = {snapshots: [...snapshots.values()].sort(bySnapshotTime), damaged: [...damaged.values()], explicit: true}
    }
    for (const d of scope.damaged) this.findings.affect(this.findings.add({kind: 'manifest-damaged', object: 'snapshot', id: d.id, message: d.message}), d.id)
    this.counts.snapshots = scope.snapshots.length + scope.damaged.length
    return scope
  }

  private checkParents(scope: Scope): void {
    for (const s of scope.snapshots) {
      const parent = s.manifest.parent
      if (!parent || this.allIds.has(parent)) continue
      const n = this.findings.add({kind: 'parent-missing', object: 'snapshot', id: parent, message: `parent snapshot ${parent} is not in the repository (forgotten); the snapshots naming it are complete without it`})
      this.findings.affect(n, s.id)
    }
  }

  // ---- trees ----

  private async walk(snapshots: readonly SnapshotRecord[]): Promise<void> {
    this.memo = new IdMap(4)
    this.sets = [NONE]
    for (const s of snapshots) {
      const root = Buffer.from(s.manifest.tree, 'hex')
      for (const n of await this.treeProblems(root)) this.findings.affect(n, s.id)
      // What restore checks as it writes: the files hold no more than the manifest declares (a
      // subtree referenced many times must not turn a few stored bytes into a full disk). A path
      // longer than PATH_MAX is fine: restore reaches it through open directories.
      const declared = s.manifest.summary.bytes
      const holds = this.treeBytes(root)
      if (!Number.isSafeInteger(declared) || declared < 0 || (holds !== undefined && holds > declared)) {
        const n = this.findings.add({kind: 'snapshot-size-mismatch', object: 'snapshot', id: s.id, message: `snapshot ${s.id}: its files hold ${holds ?? 'an unknown number of'} bytes, but its manifest declares ${String(declared)} (restore refuses it)`})
        this.findings.affect(n, s.id)
      }
    }
  }

  /** Note a chunk as reached; true the first time. */
  private reach(chunk: Uint8Array): boolean {
    const mark = this.index.mark(chunk)
    return mark === 'new' || (mark === 'missing' && this.reachedMissing.set(chunk, []))
  }

  /** The bytes of every file under a walked tree, counting a shared subtree each time it is referenced. */
  private treeBytes(id: Buffer): number | undefined {
    const memo = this.memo.get(id)
    if (!memo || memo[1] === 0xffff_ffff) return undefined
    return memo[2]! * 0x1_0000_0000 + memo[1]!
  }

  /** The findings under tree `id` (its own included), memoised per tree. */
  private async treeProblems(id: Buffer): Promise<readonly number[]> {
    const memo = this.memo.get(id)
    if (memo) return this.sets[memo[0]!]!
    if (this.counting) this.index.mark(id)
    const problems = new Set<number>(this.blobProblems(id, BlobType.tree) ?? (await this.missingBlob(id, BlobType.tree)))
    const read = await this.readTree(id)
    // File bytes under this tree (undefined once unknown or past what a number holds exactly).
    let total: number | undefined = read && !('problem' in read) ? 0 : undefined
    // The longest path below this tree, relative to it (capped at what a word holds).
    let deepest = 0
    const count = (n: number | undefined) => {
      total = total === undefined || n === undefined || total + n > Number.MAX_SAFE_INTEGER ? undefined : total + n
    }
    if (read && 'problem' in read) {
      problems.add(read.problem)
    } else if (read) {
      for (const node of read.nodes) {
        if (node.type === 'file') {
          // What restore checks before it writes a file: its chunks add up to its size (its data extents' for a sparse file).
          let bytes: number | undefined = 0
          for (const chunk of node.chunks ?? []) {
            if (this.counting && this.reach(chunk)) this.counts.chunks++
            for (const n of this.blobProblems(chunk, BlobType.data) ?? (await this.missingBlob(chunk, BlobType.data))) problems.add(n)
            const raw = this.index.rawLength(chunk)
            bytes = raw === undefined || bytes === undefined ? undefined : bytes + raw
          }
          count(node.size)
          deepest = Math.max(deepest, node.name.length)
          const mismatch = bytes === undefined ? undefined : fileSizeProblem(displayName(node.name), dataLength(node), bytes)
          if (mismatch) problems.add(this.findings.add({kind: 'file-size-mismatch', object: 'tree', id: toHex(id), message: `tree ${toHex(id)}: ${mismatch}`}))
        } else if (node.type === 'dir') {
          for (const n of await this.treeProblems(node.subtree!)) problems.add(n)
          count(this.treeBytes(node.subtree!))
          deepest = Math.max(deepest, Math.min(0xffff_ffff, node.name.length + 1 + (this.memo.get(node.subtree!)?.[3] ?? 0)))
        } else {
          deepest = Math.max(deepest, node.name.length)
        }
      }
    }
    let slot = 0
    if (problems.size > 0) slot = this.sets.push([...problems].sort((a, b) => a - b)) - 1
    // Up to 2^52 - 1 in two words; all ones in the low word stands for unknown.
    const t = total as number | undefined
    this.memo.set(id, t === undefined || t >= 0xffff_ffff * 0x1_0000_0000 ? [slot, 0xffff_ffff, 0, deepest] : [slot, t % 0x1_0000_0000, Math.floor(t / 0x1_0000_0000), deepest])
    return this.sets[slot]!
  }

  /**
   * Findings that make an indexed blob unusable as a `type`: wrong type, in a damaged pack,
   * corrupt. Undefined when the blob is not in the index (missingBlob says why). Synchronous:
   * it runs once per chunk reference.
   */
  private blobProblems(id: Buffer, type: BlobTypeValue): readonly number[] | undefined {
    const loc = this.index.locations(id)[0]
    if (!loc) return undefined
    let out: number[] | undefined
    const add = (n: number) => (out ??= []).push(n)
    if (loc.type !== type) {
      const hex = toHex(id)
      add(this.findings.add({kind: 'blob-wrong-type', object: 'blob', id: hex, pack: this.index.packs[loc.packNo]!.name, message: `blob ${hex} is used as a ${type === BlobType.tree ? 'tree' : 'chunk'} but indexed as a ${loc.type === BlobType.tree ? 'tree' : 'chunk'}`}))
    }
    const tooLarge = this.config && chunkLengthProblem(loc.type, loc.rawLength, this.config.chunker.maxSize)
    if (tooLarge) {
      const hex = toHex(id)
      add(this.findings.add({kind: 'chunk-too-large', object: 'chunk', id: hex, pack: this.index.packs[loc.packNo]!.name, message: `chunk ${hex} ${tooLarge}`}))
    }
    for (const n of this.packProblems(loc.packNo)) add(n)
    const bad = this.bad.get(id)
    if (bad) for (const n of this.badLists[bad[0]!]!) add(n)
    return out ?? NONE
  }

  private async missingBlob(id: Buffer, type: BlobTypeValue): Promise<readonly number[]> {
    const hex = toHex(id)
    // If an index file was lost, its packs are still there: say which pack holds the blob.
    const pack = (await this.unindexedBlobs()).get(hex)
    const out = [...this.index.damaged]
    if (pack) {
      out.push(this.findings.add({kind: 'pack-unindexed', object: 'pack', id: pack, message: `pack ${pack} holds blobs that snapshots use, but no index file lists it (an index file is missing or damaged)`}))
    } else if (type === BlobType.tree) {
      out.push(this.findings.add({kind: 'tree-missing', object: 'tree', id: hex, message: `dangling tree reference: tree ${hex} is not in the index`}))
    } else {
      out.push(this.findings.add({kind: 'chunk-missing', object: 'chunk', id: hex, message: `chunk ${hex} is not in the index`}))
    }
    return out
  }

  /** Read, check and decode a tree; undefined when a finding about its pack or index entry covers it already. */
  private async readTree(id: Buffer): Promise<TreeRead> {
    const loc = this.index.locations(id)[0]
    if (!loc || loc.type !== BlobType.tree || this.bad.has(id)) return undefined
    const pack = this.index.packs[loc.packNo]!.name
    const actual = this.present.get(pack)
    if (actual === undefined || loc.offset + loc.storedLength > actual) return undefined
    const hex = toHex(id)
    let plain: Buffer
    try {
      plain = await this.readBlobAt(id, pack, loc)
    } catch (err) {
      if (!(err instanceof IntegrityError || err instanceof ObjectMissingError)) throw err
      const n = this.findings.add({kind: 'tree-corrupt', object: 'tree', id: hex, pack, message: err.message})
      this.markBad(id, n)
      return {problem: n}
    }
    try {
      const nodes = decodeTree(plain, hex)
      if (this.counting) this.counts.trees++
      return {nodes}
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      return {problem: this.findings.add({kind: 'tree-invalid', object: 'tree', id: hex, pack, message: err.message})}
    }
  }

  private async readBlobAt(id: Buffer, pack: string, loc: Location): Promise<Buffer> {
    const stored = await this.backend.get('data', pack, {offset: loc.offset, length: loc.storedLength})
    this.read(stored.length)
    return checkBlob(id, {pack, offset: loc.offset, storedLength: loc.storedLength, rawLength: loc.rawLength, type: loc.type, compression: loc.compression}, stored)
  }

  /** For --source: a tree's nodes, or undefined when it cannot be read (the walk reported why). */
  private async treeNodes(id: Buffer): Promise<TreeNode[] | undefined> {
    const read = await this.readTree(id)
    return read && 'nodes' in read ? read.nodes : undefined
  }

  // ---- packs ----

  private packContext(): PackCheckContext {
    return {
      backend: this.backend,
      index: this.index,
      findings: this.findings,
      markBad: (id, n) => this.markBad(id, n),
      onRead: (bytes) => this.read(bytes),
      onBlob: (raw) => {
        this.counts.blobsRead++
        this.counts.bytesHashed += raw
      },
      buffers: this.buffers,
      inflated: this.inflated,
      maxChunkSize: this.config?.chunker.maxSize,
    }
  }

  private status(packNo: number): PackStatus {
    const pack = this.index.packs[packNo]!
    return {pack, packNo, actualSize: this.present.get(pack.name)}
  }

  /** Findings about the pack itself; its presence and size are checked on first use. */
  private packProblems(packNo: number): readonly number[] {
    if (!this.presenceChecked[packNo]) {
      this.presenceChecked[packNo] = true
      checkPackPresence(this.packContext(), this.status(packNo))
    }
    return this.index.packs[packNo]!.problems
  }

  private async checkPacks(scope: Scope): Promise<void> {
    let packNos: number[]
    if (scope.explicit) {
      const reached = new Set<number>()
      this.index.forEach((id, e) => {
        if (!e.marked) return
        reached.add(e.packNo)
        for (const l of this.index.copiesOf(id)) reached.add(l.packNo)
      })
      packNos = [...reached]
    } else {
      packNos = this.index.packs.map((_, i) => i)
    }
    const selection = this.opts.readData ?? {kind: 'none'}
    const toRead = new Set(selectPacks(packNos.map((n) => this.index.packs[n]!.name), selection, this.opts.random))
    // Packs to read go first, in name order, so progress shows the long part from the start.
    packNos.sort((a, b) => {
      const pa = this.index.packs[a]!.name
      const pb = this.index.packs[b]!.name
      return Number(toRead.has(pb)) - Number(toRead.has(pa)) || (pa < pb ? -1 : pa > pb ? 1 : 0)
    })
    this.phase = 'packs'
    this.packsTotal = packNos.length
    this.counts.packs = packNos.length
    const ctx = this.packContext()
    await mapLimit(packNos, toRead.size > 0 ? PACKS_IN_FLIGHT_DATA : PACKS_IN_FLIGHT_HEADERS, async (packNo) => {
      this.packProblems(packNo)
      const s = this.status(packNo)
      const readData = toRead.has(s.pack.name) && s.actualSize !== undefined
      await checkPackContents(ctx, s, readData)
      if (readData) this.packsRead.push(s.pack.name)
      this.packsDone++
    })
    this.packsRead.sort()
    this.counts.packsRead = this.packsRead.length
  }

  private markBad(id: Uint8Array, n: number): void {
    const slot = this.bad.get(id)
    if (slot) {
      const list = this.badLists[slot[0]!]!
      if (!list.includes(n)) list.push(n)
      return
    }
    this.bad.set(id, [this.badLists.push([n]) - 1])
  }

  /** Packs in data/ that no index file lists: blob id -> pack name, read from their headers (once, on demand). */
  private unindexedBlobs(): Promise<Map<string, string>> {
    this.unindexed ??= (async () => {
      const out = new Map<string, string>()
      const names = [...this.present.keys()].filter((name) => this.index.packNo(name) === undefined)
      await mapLimit(names, 8, async (name) => {
        const size = this.present.get(name)!
        try {
          const header = await readPackHeader(this.backend, name, size)
          this.read(header.bytesRead)
          for (const e of header.entries) out.set(toHex(e.id), name)
        } catch (err) {
          if (!(err instanceof IntegrityError || err instanceof ObjectMissingError) && !(err instanceof RangeError)) throw err
          // An unreadable unindexed pack cannot help; it is listed as unindexed below.
        }
      })
      return out
    })()
    return this.unindexed
  }

  private reportUnindexedPacks(): void {
    for (const name of [...this.present.keys()].sort()) {
      if (this.index.packNo(name) !== undefined) continue
      this.findings.add({
        kind: 'pack-unindexed', severity: 'info', object: 'pack', id: name,
        message: `pack ${name} is not indexed and no snapshot uses it (left by an interrupted or running snapshot; prune removes it)`,
      })
    }
  }

  /** Temp objects no running writer owns: information (they hold space, never data a snapshot uses). */
  private async reportTemporaries(): Promise<void> {
    const host = hostTag()
    for await (const t of this.backend.temporaries()) {
      const state = tempState(t.owner, host)
      if (state === 'live') continue // a write in flight beside us
      const who = state === 'dead' ? `its writer (pid ${t.owner!.pid} on this host) is gone; the next snapshot or prune removes it` : 'written on another host or by an older build; the next snapshot or prune removes it once a day old'
      this.findings.add({kind: 'temp-leftover', severity: 'info', object: 'temp', id: t.id, message: `temporary object ${t.id} (${t.size} bytes) left by a write that did not finish: ${who}`})
    }
  }

  // ---- --source ----

  private async compareSource(scope: Scope): Promise<void> {
    const snap = scope.snapshots[0]
    const directory = this.opts.source!
    if (!snap || !this.config) return // a damaged manifest or config is a finding already: nothing to compare against
    this.phase = 'source'
    const chunker: ChunkerParams = this.config.chunker
    const result = await compareWithDirectory(directory, Buffer.from(snap.manifest.tree, 'hex'), snap.manifest.root, {
      chunker,
      readTree: (id) => this.treeNodes(id),
      compareOwners: this.opts.compareOwners ?? process.getuid?.() === 0,
      excludeNodump: snap.manifest.excludeNodump === true,
      excludes: snap.manifest.excludes,
      paths: snap.manifest.paths,
      skipDirs: this.opts.sourceSkipDirs,
      onBytes: (n) => {
        this.sourceBytes += n
        this.progress()
      },
    })
    this.source = {snapshot: snap.id, directory, ...result}
  }

  // ---- report ----

  private read(bytes: number): void {
    this.counts.bytesRead += bytes
    this.progress()
  }

  private progress(): void {
    this.opts.onProgress?.({phase: this.phase, trees: this.counts.trees, packsDone: this.packsDone, packsTotal: this.packsTotal, bytesRead: this.counts.bytesRead + this.sourceBytes})
  }

  private report(snapshots: string[]): VerifyReport {
    const findings = this.findings.list()
    const errors = findings.filter((f) => f.severity === 'error').length
    const differences = this.source?.differences.length ?? 0
    const exitCode = this.findings.has('unknown-format-version') ? 13 : errors > 0 || differences > 0 ? 12 : 0
    const selection = this.opts.readData ?? {kind: 'none'}
    return {
      ok: exitCode === 0,
      exitCode,
      readData: selection.kind === 'none' ? 'none' : selection.kind === 'all' ? 'all' : 'subset',
      ...(selection.kind === 'slice' ? {subset: `${selection.n}/${selection.of}`} : selection.kind === 'percent' ? {subset: `${selection.percent}%`} : selection.kind === 'packs' ? {subset: `${selection.names.length} named packs`} : {}),
      snapshots,
      counts: {...this.counts},
      findings,
      errors,
      infos: findings.length - errors,
      packsRead: this.packsRead,
      ...(this.source ? {source: this.source} : {}),
      durationMs: Number((process.hrtime.bigint() - this.started) / 1_000_000n),
    }
  }
}
