// What verify found. A finding names one damaged (or noteworthy) object, says what is wrong
// with it in one line, and lists the snapshots that depend on it. The kinds are part of the
// JSON output that CI jobs parse: add kinds, never rename them (docs/VERIFY.md).

export type Severity = 'error' | 'info'

/** Every kind, with its severity. */
export const FINDING_KINDS = {
  /** No config, but the repository has other objects. */
  'config-missing': 'error',
  /** The config is not valid JSON or has invalid settings. */
  'config-damaged': 'error',
  /** The config names a format version this build does not know (exit code 13). */
  'unknown-format-version': 'error',
  /** An index file cannot be read, fails its hash, or does not decode. */
  'index-damaged': 'error',
  /** Two index files describe one pack with different sizes. */
  'index-conflict': 'error',
  /** A snapshot manifest cannot be read, fails its hash, or does not parse. */
  'manifest-damaged': 'error',
  /** A snapshot's parent is not in the repository (it was forgotten): information only. */
  'parent-missing': 'info',
  /** An indexed pack is not in the repository. */
  'pack-missing': 'error',
  /** An indexed pack is shorter than the index says. */
  'pack-truncated': 'error',
  /** An indexed pack is longer than the index says. */
  'pack-size-mismatch': 'error',
  /** A pack's trailer or header is damaged (no magic, unknown version, header hash mismatch). */
  'pack-header-damaged': 'error',
  /** A pack's header and the index disagree about the pack's blobs. */
  'pack-header-mismatch': 'error',
  /** A pack no index file lists: information when no snapshot needs it (an interrupted snapshot left it), an error when one does. */
  'pack-unindexed': 'error',
  /** A tree a snapshot references is not in the index (a dangling tree reference). */
  'tree-missing': 'error',
  /** A tree cannot be read, or fails its BLAKE3 check. */
  'tree-corrupt': 'error',
  /** A tree passes its hash but does not decode (unknown version, unsafe names, bad fields). */
  'tree-invalid': 'error',
  /** A file chunk a snapshot references is not in the index. */
  'chunk-missing': 'error',
  /** A chunk does not decompress, or fails its BLAKE3 check. */
  'chunk-corrupt': 'error',
  /** A blob is indexed with another type than the reference needs (a tree used as a chunk or the reverse). */
  'blob-wrong-type': 'error',
  /** A chunk's raw length is above the repository's maximum chunk size (the chunker never cuts one so long). */
  'chunk-too-large': 'error',
  /** A file's recorded size is not the sum of its chunks' raw lengths (restore refuses the file). */
  'file-size-mismatch': 'error',
  /** A snapshot's files hold more bytes than its manifest declares (restore refuses it). */
  'snapshot-size-mismatch': 'error',
  /** A path in a snapshot is longer than PATH_MAX relative to its root: no filesystem can take it back. */
  'path-too-long': 'error',
  /** A temporary object whose writer is gone or cannot be told (a failed or killed write): information, with its size. */
  'temp-leftover': 'info',
} as const satisfies Record<string, Severity>

export type FindingKind = keyof typeof FINDING_KINDS

export type ObjectType = 'config' | 'index' | 'snapshot' | 'pack' | 'tree' | 'chunk' | 'blob' | 'temp'

export interface Finding {
  kind: FindingKind
  severity: Severity
  /** The damaged object: its type and name (the config's name is "config"). */
  object: ObjectType
  id: string
  /** For trees and chunks: the pack that holds them, when known. */
  pack?: string
  message: string
  /** Snapshots that depend on the object, sorted. */
  snapshots: string[]
}

export type NewFinding = Omit<Finding, 'snapshots' | 'severity'> & {severity?: Severity}

/**
 * Collects findings. Adding the same kind for the same object twice returns the first one,
 * so every check can report what it sees without knowing whether another check saw it too.
 */
export class Findings {
  private readonly items: {finding: Omit<Finding, 'snapshots'>; snapshots: Set<string>}[] = []
  private readonly byKey = new Map<string, number>()

  /** Record a finding (or find the one recorded already); returns its number. */
  add(f: NewFinding): number {
    const key = `${f.kind}\0${f.id}`
    const known = this.byKey.get(key)
    if (known !== undefined) return known
    const n = this.items.length
    // Keys in the documented order, so the JSON reads the same for every kind.
    const finding = {kind: f.kind, severity: f.severity ?? FINDING_KINDS[f.kind], object: f.object, id: f.id, ...(f.pack !== undefined ? {pack: f.pack} : {}), message: f.message}
    this.items.push({finding, snapshots: new Set()})
    this.byKey.set(key, n)
    return n
  }

  find(kind: FindingKind, id: string): number | undefined {
    return this.byKey.get(`${kind}\0${id}`)
  }

  /** Record that `snapshot` depends on finding `n`'s object. */
  affect(n: number, snapshot: string): void {
    this.items[n]!.snapshots.add(snapshot)
  }

  get size(): number {
    return this.items.length
  }

  has(kind: FindingKind): boolean {
    return this.items.some((i) => i.finding.kind === kind)
  }

  /** Findings in a stable order: errors first, then by kind and object. */
  list(): Finding[] {
    const out = this.items.map(({finding, snapshots}) => ({...finding, snapshots: [...snapshots].sort()}))
    const kinds = Object.keys(FINDING_KINDS)
    return out.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) || kinds.indexOf(a.kind) - kinds.indexOf(b.kind) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }
}

/** One line for a terminal or a CI log. */
export function describeFinding(f: Finding, shortId: (id: string) => string = (id) => id.slice(0, 12)): string {
  const shown = f.snapshots.slice(0, 10).map(shortId).join(', ') + (f.snapshots.length > 10 ? `, and ${f.snapshots.length - 10} more` : '')
  const affects = f.snapshots.length === 0 ? '' : ` (affects ${f.snapshots.length === 1 ? 'snapshot' : `${f.snapshots.length} snapshots:`} ${shown})`
  return `${f.severity} ${f.kind}: ${f.message}${affects}`
}
