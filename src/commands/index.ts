// The command table oclif loads (the "explicit" strategy: one import instead of a directory scan).
import Cat from './cat.js'
import Completion from './completion.js'
import Copy from './copy.js'
import Diff from './diff.js'
import Export from './export.js'
import Find from './find.js'
import Forget from './forget.js'
import Import from './import.js'
import Init from './init.js'
import Log from './log.js'
import Ls from './ls.js'
import Pin from './pin.js'
import Prune from './prune.js'
import Repair from './repair.js'
import Restore from './restore.js'
import Snapshot from './snapshot.js'
import Snapshots from './snapshots.js'
import Stats from './stats.js'
import Unlock from './unlock.js'
import Unpin from './unpin.js'
import Verify from './verify.js'

export const COMMANDS = {
  cat: Cat,
  completion: Completion,
  copy: Copy,
  diff: Diff,
  export: Export,
  find: Find,
  forget: Forget,
  import: Import,
  init: Init,
  log: Log,
  ls: Ls,
  pin: Pin,
  prune: Prune,
  repair: Repair,
  restore: Restore,
  snapshot: Snapshot,
  snapshots: Snapshots,
  stats: Stats,
  unlock: Unlock,
  unpin: Unpin,
  verify: Verify,
}
