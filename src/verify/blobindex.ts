// Verify's view of the index: the repository's BlobIndex, loaded so that it never stops at a bad
// index file (that is a finding, and the other files still load), and keeping every location a
// blob has (the same blob may sit in two packs when two snapshots stored it at once), so each
// pack's header can be compared with exactly what the index files say about that pack.
import {IntegrityError} from '../core/errors.js'
import {BlobIndex} from '../repo/blobindex.js'
import {indexedBlobCount} from '../repo/indexfile.js'
import {readIndexFiles} from '../repo/repository.js'
import type {Backend} from '../store/backend.js'
import type {Findings} from './findings.js'

export type {Location} from '../repo/blobindex.js'

export interface IndexedPackInfo {
  name: string
  /** Size the index files give. */
  size: number
  /** Distinct blob locations the index files give for this pack. */
  claims: number
  /** Findings about the pack itself (missing, truncated, header...): every snapshot using one of its blobs is affected. */
  problems: number[]
}

export class VerifyIndex extends BlobIndex<IndexedPackInfo> {
  readonly indexFiles: string[] = []
  /** Findings about index files that did not load. */
  readonly damaged: number[] = []

  constructor() {
    super({newPack: (name, size) => ({name, size, claims: 0, problems: []}), copies: true})
  }

  /** Add an index file (checked already). */
  addFile(indexFile: string, bytes: Uint8Array, findings: Findings): void {
    this.addIndexFile(
      bytes,
      indexFile,
      (name, size) => this.addPackOf(indexFile, name, size, findings),
      (packNo) => this.packs[packNo]!.claims++,
    )
  }

  private addPackOf(indexFile: string, name: string, size: number, findings: Findings): number {
    const {packNo, isNew} = this.addPack(name, size)
    const pack = this.packs[packNo]!
    if (!isNew && pack.size !== size) {
      const n = findings.add({kind: 'index-conflict', object: 'pack', id: name, message: `index files disagree about the size of pack ${name}: ${pack.size} bytes, and ${size} bytes in index ${indexFile}`})
      if (!pack.problems.includes(n)) pack.problems.push(n)
    }
    return packNo
  }
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
