import * as Args from '@oclif/core/args'

import {CkptCommand, parseWait} from '../cli/base.js'
import {formatTime, table} from '../cli/format.js'
import type {PinResult} from '../prune/pins.js'

export interface PinnedEntry {
  id: string
  /** null for a pin whose snapshot is gone. */
  time: string | null
  source: string | null
}

export default class Pin extends CkptCommand {
  static override summary = 'Pin a snapshot so no retention policy removes it; without an id, list the pinned snapshots.'
  static override description = 'A pinned snapshot is kept by every `ckpt prune` whatever its policy, and `ckpt forget` refuses it without --force. Undo with `ckpt unpin`.'
  static override examples = ['<%= config.bin %> pin 3fa9c2d1', '<%= config.bin %> pin latest', '<%= config.bin %> pin --json']

  static override args = {
    snapshot: Args.string({description: 'Snapshot id, unique prefix, or "latest". Omit to list the pins.'}),
  }

  async run(): Promise<PinResult | PinnedEntry[]> {
    const {args, flags} = await this.parse(Pin)
    const {openRepository} = await import('../cli/repository.js')
    const {listPins, pinSnapshot} = await import('../prune/pins.js')
    const {loadCatalog} = await import('../snapshot/catalog.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    if (args.snapshot === undefined) {
      const pins = await listPins(repo)
      const {snapshots} = await loadCatalog(repo)
      const byId = new Map(snapshots.map((s) => [s.id, s.manifest]))
      const list = [...pins].sort().map((id) => ({id, time: byId.get(id)?.time ?? null, source: byId.get(id)?.source ?? null}))
      if (!this.jsonEnabled()) {
        if (list.length === 0) this.note(flags, 'no pinned snapshots')
        else this.log(table(['ID', 'TIME', 'SOURCE'], list.map((p) => [p.id.slice(0, 12), p.time ? formatTime(p.time) : '-', p.source ?? '(snapshot gone)'])))
      }
      return list
    }
    const result = await pinSnapshot(repo, args.snapshot, {retryMs: parseWait(flags['retry-lock'])})
    this.note(flags, result.changed ? `pinned snapshot ${result.id.slice(0, 12)}` : `snapshot ${result.id.slice(0, 12)} was pinned already`)
    return result
  }
}
