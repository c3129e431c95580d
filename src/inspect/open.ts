// Reading a repository for inspection: under a shared lock (a prune deleting packs meanwhile would
// turn a listing into "missing blob" errors), which a read-only repository does without, with the
// index and the catalog loaded.
import type {Repository} from '../repo/repository.js'
import {type CatalogLoad, loadCatalog} from '../snapshot/catalog.js'
import {withLock} from '../store/lock.js'

export interface ReadOptions {
  command: string
  retryMs?: number
  /** Whether blobs will be read (the index is loaded only then). */
  blobs?: boolean
}

export async function reading<T>(repo: Repository, opts: ReadOptions, fn: (catalog: CatalogLoad) => Promise<T>): Promise<T> {
  return withLock(repo.backend, {exclusive: false, readOnly: true, command: opts.command, retryMs: opts.retryMs ?? 0}, async () => {
    if (opts.blobs !== false) await repo.loadIndex()
    return fn(await loadCatalog(repo))
  })
}
