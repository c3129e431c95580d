// What a restore could not give back on this system, though the snapshot holds it: xattrs of a
// namespace the target filesystem refuses, inode flags on a filesystem without them, device nodes
// without root. Each is a property of the target (or of who restores), not of one file, so it is
// reported once per kind with a count and the first path, never once per file and never as a
// failure: the data and everything else are restored.

export interface RestoreWarning {
  /** Stable key of what was not restored and why ("xattr:user:ENOTSUP", "flags:EPERM", "device:not-root"...). */
  kind: string
  message: string
  /** Entries it applies to. */
  count: number
  /** The first of them, relative to the restored root. */
  path: string
}

export class RestoreWarnings {
  private readonly byKind = new Map<string, RestoreWarning>()

  /** Go on from warnings already listed (their objects are counted on). */
  constructor(from: readonly RestoreWarning[] = []) {
    for (const w of from) this.byKind.set(w.kind, w)
  }

  /** `rel` lacks what `kind` names; the first of a kind keeps its message and path. */
  add(kind: string, rel: string, message: string): void {
    const w = this.byKind.get(kind)
    if (w) w.count++
    else this.byKind.set(kind, {kind, message, count: 1, path: rel})
  }

  list(): RestoreWarning[] {
    return [...this.byKind.values()]
  }
}
