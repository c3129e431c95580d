// Verify's own view of the index. Unlike Repository.loadIndex it never stops at a bad index
// file (that is a finding, and the other files still load), and it keeps every location a blob
// has (the same blob may sit in two packs when two snapshots stored it at once), so each pack's
// header can be compared with exactly what the index files say about that pack.
import {IntegrityError} from '../core/errors.js'
import {ID_BYTES} from '../core/hash.js'
import {IdMap} from '../core/idmap.js'
import {toHex} from '../core/ids.js'
import {forEachIndexEntry, indexedBlobCount} from '../repo/indexfile.js'
import type {BlobTypeValue, PackEntry} from '../repo/pack.js'
import {INDEX_SLOT, readIndexFiles} from '../repo/repository.js'
import type {Backend} from '../store/backend.js'
import type {Findings} from './findings.js'

export interface Location {
  packNo: number
  offset: number
  storedLength: number
  rawLength: number
  type: BlobTypeValue
  compression: number
}

export interface IndexedPackInfo {
  name: string
  /** Size the index files give. */
  size: number
  /** Distinct blob locations the index files give for this pack. */
  claims: number
  /** Findings about the pack itself (missing, truncated, header...): every snapshot using one of its blobs is affected. */
  problems: number[]
}

// IdMap value slots.
const {pack: PACK, offset: OFFSET, stored: STORED, raw: RAW, flags: FLAGS} = INDEX_SLOT

export class VerifyIndex {
  readonly packs: IndexedPackInfo[] = []
  readonly indexFiles: string[] = []
  /** Findings about index files that did not load. */
  readonly damaged: number[] = []
  private readonly packNos = new Map<string, number>()
  private readonly first = new IdMap(5)
  /** Further locations of blobs stored more than once, by hex id (rare). */
  private readonly more = new Map<string, Location[]>()

  get blobCount(): number {
    return this.first.size
  }

  packNo(name: string): number | undefined {
    return this.packNos.get(name)
  }

  /** Add an index file (checked already), decoded straight into the map: no object per blob. */
  addFile(indexFile: string, bytes: Uint8Array, findings: Findings): void {
    forEachIndexEntry(
      bytes,
      indexFile,
      (name, size) => this.addPack(indexFile, name, size, findings),
      (b, at, f) => {
        // The common case, a blob not seen before: stored as it comes (f is laid out as INDEX_SLOT).
        if (this.first.setIfAbsent(b, f, at)) {
          this.packs[f[PACK]!]!.claims++
          return
        }
        // Seen before (rare): a further location, unless it is the same pack listed by two index files.
        const id = b.subarray(at, at + ID_BYTES)
        const loc: Location = {packNo: f[PACK]!, offset: f[OFFSET]!, storedLength: f[STORED]!, rawLength: f[RAW]!, type: (f[FLAGS]! & 0xff) as BlobTypeValue, compression: f[FLAGS]! >> 8}
        if (this.locations(id).some((k) => sameLocation(k, loc))) return
        this.packs[loc.packNo]!.claims++
        const hex = toHex(id)
        this.more.set(hex, [...(this.more.get(hex) ?? []), loc])
      },
    )
  }

  /** Make room for this many distinct blobs at once (the map then never grows while loading). */
  reserve(blobs: number): void {
    this.first.reserve(blobs)
  }

  private addPack(indexFile: string, name: string, size: number, findings: Findings): number {
    let packNo = this.packNos.get(name)
    if (packNo === undefined) {
      packNo = this.packs.length
      this.packs.push({name, size, claims: 0, problems: []})
      this.packNos.set(name, packNo)
    } else if (this.packs[packNo]!.size !== size) {
      const pack = this.packs[packNo]!
      const n = findings.add({kind: 'index-conflict', object: 'pack', id: name, message: `index files disagree about the size of pack ${name}: ${pack.size} bytes, and ${size} bytes in index ${indexFile}`})
      if (!pack.problems.includes(n)) pack.problems.push(n)
    }
    return packNo
  }

  /** Every location of a blob; the first is the one restore reads. */
  locations(id: Uint8Array): Location[] {
    const v = this.first.get(id)
    if (!v) return []
    const first: Location = {packNo: v[PACK]!, offset: v[OFFSET]!, storedLength: v[STORED]!, rawLength: v[RAW]!, type: (v[FLAGS]! & 0xff) as BlobTypeValue, compression: v[FLAGS]! >> 8}
    if (this.more.size === 0) return [first]
    return [first, ...(this.more.get(toHex(id)) ?? [])]
  }

  /** The raw length of the copy restore reads, or undefined when the blob is not indexed (no allocation: once per chunk reference). */
  rawLength(id: Uint8Array): number | undefined {
    return this.first.get(id)?.[RAW]
  }

  /** The location the index gives for `id` in pack `packNo`, if any. */
  locationIn(id: Uint8Array, packNo: number): Location | undefined {
    return this.locations(id).find((l) => l.packNo === packNo)
  }

  /** What the index says a pack holds, by offset (one pass over the index: for damaged packs only). */
  entriesOf(packNo: number): PackEntry[] {
    const out: PackEntry[] = []
    const push = (id: Uint8Array, l: Location) => {
      if (l.packNo === packNo) out.push({id: Buffer.from(id), type: l.type, compression: l.compression, offset: l.offset, storedLength: l.storedLength, rawLength: l.rawLength})
    }
    this.first.forEach((id) => {
      for (const l of this.locations(id)) push(id, l)
    })
    return out.sort((a, b) => a.offset - b.offset)
  }
}

function sameLocation(a: Location, b: Location): boolean {
  return a.packNo === b.packNo && a.offset === b.offset && a.storedLength === b.storedLength && a.rawLength === b.rawLength && a.type === b.type && a.compression === b.compression
}

/** Load every index file; one that cannot be read or decoded becomes a finding and the rest still load. */
export async function loadVerifyIndex(backend: Backend, findings: Findings, onBytes: (n: number) => void): Promise<VerifyIndex> {
  const index = new VerifyIndex()
  const files = await readIndexFiles(backend, (name, err) => {
    // One removed while we listed (a prune that replaced it) is no problem.
    if (err instanceof IntegrityError) index.damaged.push(findings.add({kind: 'index-damaged', object: 'index', id: name, message: err.message}))
  }, onBytes)
  // Room for every blob up front: the map is allocated once instead of doubling its way there.
  index.reserve(indexedBlobCount(files.map((file) => file?.packs)))
  files.forEach((file, i) => {
    if (!file) return
    index.indexFiles.push(file.name)
    index.addFile(file.name, file.bytes, findings)
    files[i] = undefined // the bytes are garbage from here on
  })
  return index
}
