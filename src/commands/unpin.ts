import * as Args from '@oclif/core/args'

import {CkptCommand, parseWait} from '../cli/base.js'
import type {PinResult} from '../prune/pins.js'

export default class Unpin extends CkptCommand {
  static override summary = 'Unpin a snapshot: retention policies apply to it again.'
  static override examples = ['<%= config.bin %> unpin 3fa9c2d1']

  static override args = {
    snapshot: Args.string({description: 'Snapshot id or unique prefix (of a pin), or "latest".', required: true}),
  }

  async run(): Promise<PinResult> {
    const {args, flags} = await this.parse(Unpin)
    const {openRepository} = await import('../cli/repository.js')
    const {unpinSnapshot} = await import('../prune/pins.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const result = await unpinSnapshot(repo, args.snapshot, {retryMs: parseWait(flags['retry-lock'])})
    this.note(flags, result.changed ? `unpinned snapshot ${result.id.slice(0, 12)}` : `snapshot ${result.id.slice(0, 12)} was not pinned`)
    return result
  }
}
