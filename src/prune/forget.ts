// `ckpt forget ID...`: drop the named snapshots' manifests. Their data stays until the next
// prune collects it, so forgetting is quick and never races with a snapshot being written.
import {UsageError} from '../core/errors.js'
import type {Repository} from '../repo/repository.js'
import {loadCatalog, resolveSnapshot} from '../snapshot/catalog.js'
import {withLock} from '../store/lock.js'
import {listPins} from './pins.js'

export interface ForgottenSnapshot {
  id: string
  /** Absent for a damaged manifest (forgotten by its full id). */
  time?: string
  host?: string
  source?: string
  tags?: string[]
  pinned: boolean
}

export interface ForgetResult {
  forgotten: ForgottenSnapshot[]
  dryRun: boolean
}

export interface ForgetOptions {
  /** Forget pinned snapshots too (and remove their pins). */
  force?: boolean
  dryRun?: boolean
  retryMs?: number
}

/**
 * Every ref is resolved before anything is deleted, so a typo or a pinned snapshot leaves the
 * repository untouched. A damaged manifest can be forgotten by its full id (verify names it).
 */
export async function forgetSnapshots(repo: Repository, refs: readonly string[], opts: ForgetOptions = {}): Promise<ForgetResult> {
  if (refs.length === 0) throw new UsageError('give at least one snapshot to forget')
  return withLock(repo.backend, {exclusive: false, command: 'forget', retryMs: opts.retryMs ?? 0}, async () => {
    const {snapshots, damaged} = await loadCatalog(repo)
    const pins = await listPins(repo)
    const chosen = new Map<string, ForgottenSnapshot>()
    for (const ref of refs) {
      const broken = damaged.find((d) => d.id === ref)
      if (broken) {
        chosen.set(broken.id, {id: broken.id, pinned: pins.has(broken.id)})
        continue
      }
      const s = resolveSnapshot(snapshots, ref)
      const m = s.manifest
      chosen.set(s.id, {id: s.id, time: m.time, host: m.host, source: m.source, tags: m.tags, pinned: pins.has(s.id)})
    }
    const pinned = [...chosen.values()].filter((s) => s.pinned)
    if (pinned.length > 0 && !opts.force) {
      throw new UsageError(`refusing to forget pinned snapshot${pinned.length > 1 ? 's' : ''} ${pinned.map((s) => s.id.slice(0, 12)).join(', ')}: unpin first, or use --force`, {pinned: pinned.map((s) => s.id)})
    }
    const forgotten = [...chosen.values()]
    if (!opts.dryRun) {
      for (const s of forgotten) {
        await repo.deleteSnapshot(s.id)
        // After the manifest: a crash in between leaves a pin of nothing, which prune removes.
        if (s.pinned) await repo.backend.delete('pins', s.id)
      }
    }
    return {forgotten, dryRun: opts.dryRun ?? false}
  })
}
