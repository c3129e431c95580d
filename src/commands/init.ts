import * as Flags from '@oclif/core/flags'

import {CkptCommand} from '../cli/base.js'

export default class Init extends CkptCommand {
  static override summary = 'Create a new repository.'
  static override description = 'Creates the repository directory (default: .ckpt in the current directory) with its config; an existing directory must be empty (only an empty lost+found, as on a fresh filesystem, is allowed: a new backup disk can be the repository). `ckpt snapshot` creates the default repository by itself on first use.'
  static override examples = ['<%= config.bin %> init', '<%= config.bin %> init --repo /var/backups/ckpt']

  static override flags = {
    'zstd-level': Flags.integer({summary: 'zstd level for new blobs (0 = no compression).', default: 3, min: 0, max: 22}),
    'avg-chunk-size': Flags.integer({summary: 'Average chunk size in bytes (a power of two); min and max are a quarter and four times it.'}),
  }

  async run(): Promise<{repository: string; id: string}> {
    const {flags} = await this.parse(Init)
    const location = this.repoLocation(flags.repo, {creating: true})
    const {root} = location
    const {initRepositoryAt} = await import('../repo/open.js')
    const repo = await initRepositoryAt(location, {now: Date.now(), zstdLevel: flags['zstd-level'], avgChunkSize: flags['avg-chunk-size']})
    this.note(flags, `created repository ${repo.config.id} at ${root}`)
    return {repository: root, id: repo.config.id}
  }
}
