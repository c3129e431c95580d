// The command table oclif loads (the "explicit" strategy: one import instead of a directory scan).
import Export from './export.js'
import Forget from './forget.js'
import Import from './import.js'
import Init from './init.js'
import Pin from './pin.js'
import Prune from './prune.js'
import Repair from './repair.js'
import Restore from './restore.js'
import Snapshot from './snapshot.js'
import Snapshots from './snapshots.js'
import Unlock from './unlock.js'
import Unpin from './unpin.js'
import Verify from './verify.js'

export const COMMANDS = {
  export: Export,
  forget: Forget,
  import: Import,
  init: Init,
  pin: Pin,
  prune: Prune,
  repair: Repair,
  restore: Restore,
  snapshot: Snapshot,
  snapshots: Snapshots,
  unlock: Unlock,
  unpin: Unpin,
  verify: Verify,
}
