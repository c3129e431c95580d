import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import type {ForgetResult} from '../prune/forget.js'

export default class Forget extends CkptCommand {
  static override summary = 'Remove the given snapshots (their data is freed by the next prune).'
  static override description = `Deletes the snapshots' manifests; chunks and trees they alone used stay in the repository until \`ckpt prune\` collects them. Every id is checked before anything is deleted. A pinned snapshot is refused unless --force (which also removes its pin). A damaged manifest can be forgotten by its full id.`
  static override examples = ['<%= config.bin %> forget 3fa9c2d1', '<%= config.bin %> forget 3fa9c2d1 77b0e412 --json', '<%= config.bin %> forget 3fa9c2d1 --force']
  static override strict = false
  static override usage = 'forget ID... [--force] [-n] [--json] [-r <value>] [-q] [--retry-lock <value>]'

  static override flags = {
    force: Flags.boolean({summary: 'Forget pinned snapshots too (removing their pins).'}),
    'dry-run': Flags.boolean({char: 'n', summary: 'Resolve and check the ids; delete nothing.'}),
  }

  async run(): Promise<ForgetResult> {
    const {flags, argv} = await this.parse(Forget)
    const {openRepository} = await import('../cli/repository.js')
    const {forgetSnapshots} = await import('../prune/forget.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const result = await forgetSnapshots(repo, argv as string[], {force: flags.force, dryRun: flags['dry-run'], retryMs: parseWait(flags['retry-lock'])})
    if (!this.jsonEnabled() && !flags.quiet) {
      const ids = result.forgotten.map((s) => s.id.slice(0, 12)).join(', ')
      this.log(`${result.dryRun ? 'would forget' : 'forgot'} ${result.forgotten.length} snapshot${result.forgotten.length === 1 ? '' : 's'}: ${ids}${result.dryRun ? '' : ' (run "ckpt prune" to free their data)'}`)
    }
    return result
  }
}
