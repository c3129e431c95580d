import * as Flags from '@oclif/core/flags'

import {CkptCommand} from '../cli/base.js'
import type {LockEntry, LockInfo} from '../store/lock.js'

export interface UnlockEntry {
  name: string
  /** null: the object was not a lock ckpt wrote (unparsable). */
  holder: LockInfo | null
  stale: boolean
}

export interface UnlockResult {
  removed: UnlockEntry[]
  remaining: UnlockEntry[]
}

export default class Unlock extends CkptCommand {
  static override summary = 'Remove stale locks; with --remove-all, every lock.'
  static override description = `A lock is stale when its holder on this host is gone (pid not running, or reused), when a lock that records no process start time or comes from another host has not been refreshed for 30 minutes (a refresh time in the future is judged by when the lock was stored), or when it is not a lock ckpt wrote. Every command removes stale locks it meets by itself; unlock removes them without doing anything else, and lists the locks it leaves.

--remove-all removes every lock, live or not. Use it only when you know no ckpt process uses the repository on any host (a crashed host, a clock far off): a prune whose lock is removed could delete data a running snapshot needs.

Exit codes: 0 done (also when live locks are left: they are listed), 10 no repository, 14 the repository is read-only.`
  static override examples = ['<%= config.bin %> unlock', '<%= config.bin %> unlock --remove-all --repo /backups/ckpt']

  static override flags = {
    'remove-all': Flags.boolean({summary: 'Remove every lock, also those of processes that may still run.'}),
  }

  async run(): Promise<UnlockResult> {
    const {flags} = await this.parse(Unlock)
    const {openRepository} = await import('../cli/repository.js')
    const {describeHolder, removeLocks} = await import('../store/lock.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const {removed, remaining} = await removeLocks(repo.backend, {all: flags['remove-all'], now: Date.now()})
    const entry = (e: LockEntry): UnlockEntry => ({name: e.name, holder: e.info ?? null, stale: e.stale})
    const describe = (e: LockEntry) => `${e.name}: ${e.info ? describeHolder(e.info) : 'unparsable'}${e.stale ? ', stale' : ''}`
    for (const e of removed) this.note(flags, `removed lock ${describe(e)}`)
    for (const e of remaining) this.note(flags, `left lock ${describe(e)} (live; --remove-all removes it)`)
    this.note(flags, `unlock: removed ${removed.length} lock${removed.length === 1 ? '' : 's'}, ${remaining.length} live left`)
    return {removed: removed.map(entry), remaining: remaining.map(entry)}
  }
}
