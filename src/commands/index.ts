// The command table oclif loads (the "explicit" strategy: one import instead of a directory scan).
import Init from './init.js'
import Restore from './restore.js'
import Snapshot from './snapshot.js'
import Snapshots from './snapshots.js'

export const COMMANDS = {
  init: Init,
  restore: Restore,
  snapshot: Snapshot,
  snapshots: Snapshots,
}
