// Pins: a pinned snapshot is never removed by a retention policy, and `forget` refuses it
// without --force. A pin is an empty object in the `pins` kind named by the snapshot id, so
// pinning is one atomic put and needs no read-modify-write of a shared list.
import {NotFoundError} from '../core/errors.js'
import {isHexId} from '../core/ids.js'
import type {Repository} from '../repo/repository.js'
import {loadCatalog, resolveSnapshot} from '../snapshot/catalog.js'
import {withLock} from '../store/lock.js'

export async function listPins(repo: Repository): Promise<Set<string>> {
  const pins = new Set<string>()
  for await (const obj of repo.backend.list('pins')) if (isHexId(obj.name)) pins.add(obj.name)
  return pins
}

export interface PinResult {
  id: string
  /** False when the snapshot was pinned (or unpinned) already. */
  changed: boolean
}

/**
 * Pin a snapshot. Under a shared lock, so it cannot slip between prune's last look at the pins
 * and its deleting the manifest: either prune saw the pin, or the snapshot is gone and this fails.
 */
export async function pinSnapshot(repo: Repository, ref: string, opts: {retryMs?: number} = {}): Promise<PinResult> {
  return withLock(repo.backend, {exclusive: false, command: 'pin', retryMs: opts.retryMs ?? 0}, async () => {
    const {snapshots} = await loadCatalog(repo)
    const snap = resolveSnapshot(snapshots, ref)
    const pins = await listPins(repo)
    if (pins.has(snap.id)) return {id: snap.id, changed: false}
    await repo.backend.put('pins', snap.id, new Uint8Array(0))
    return {id: snap.id, changed: true}
  })
}

/** Unpin. `ref` is matched against the pins first, so a pin whose snapshot is gone can be removed too. */
export async function unpinSnapshot(repo: Repository, ref: string, opts: {retryMs?: number} = {}): Promise<PinResult> {
  return withLock(repo.backend, {exclusive: false, command: 'unpin', retryMs: opts.retryMs ?? 0}, async () => {
    const pins = await listPins(repo)
    const matches = /^[0-9a-f]{4,64}$/.test(ref) ? [...pins].filter((id) => id.startsWith(ref)) : []
    if (matches.length > 1) throw new NotFoundError(`pin prefix ${ref} is ambiguous: it matches ${matches.map((id) => id.slice(0, 12)).join(', ')}`)
    const id = matches[0] ?? resolveSnapshot((await loadCatalog(repo)).snapshots, ref).id
    if (!pins.has(id)) return {id, changed: false}
    await repo.backend.delete('pins', id)
    return {id, changed: true}
  })
}
