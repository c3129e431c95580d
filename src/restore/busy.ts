// An in-place restore swaps a new tree in under a path and deletes the old one. A program still
// using the old tree goes on reading and writing files that no longer exist anywhere (and a program
// with a working directory inside goes on opening relative paths in the deleted tree): its writes
// are silently lost, and the restored state it did not see is overwritten by its next full write.
// So an in-place restore refuses a directory a running process uses, naming it, unless --force.
//
// What counts: any open file (read or write), mapping, executable, root or working directory
// under the directory. What does not: ckpt itself and its ancestors (the shell or script that runs
// the restore is the one asking for it, and waits for it: its working directory inside the
// directory is the common case, and it is told to cd again), and uses of the paths the restore
// carries into the new tree by rename (the repository, excluded paths): those stay valid.
import {readFileSync} from 'node:fs'

import {BusyError} from '../core/errors.js'
import {describeUse, processesUsing, type ProcessUsingDir} from '../core/procfs.js'

/** ckpt's parent, its parent, ... up to (not including) pid 1 / the kernel. */
export function ancestors(pid = process.pid): number[] {
  const out: number[] = []
  for (let p = pid; ;) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'latin1')
    } catch {
      return out
    }
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (!Number.isSafeInteger(ppid) || ppid <= 1 || out.includes(ppid)) return out
    out.push(ppid)
    p = ppid
  }
}

function inside(rel: string, carried: readonly string[]): boolean {
  return carried.some((c) => rel === c || rel.startsWith(`${c}/`))
}

export interface DirectoryUsers {
  /** Processes an in-place restore would leave behind on the old tree. */
  busy: ProcessUsingDir[]
  /** ckpt's ancestors whose working directory is inside (after the swap it is the removed old tree). */
  callerCwd: number[]
}

/**
 * Who uses `dir`, split as the restore needs it. `carried`: paths relative to dir (display
 * form) that move into the new tree, so what is under them stays valid.
 */
export function directoryUsers(dir: string, carried: readonly string[] = []): DirectoryUsers {
  const callers = new Set(ancestors())
  const busy: ProcessUsingDir[] = []
  const callerCwd: number[] = []
  for (const p of processesUsing(dir)) {
    if (callers.has(p.pid)) {
      if (p.uses.some((u) => u.use === 'cwd')) callerCwd.push(p.pid)
      continue
    }
    const uses = p.uses.filter((u) => !inside(u.path, carried))
    if (uses.length > 0) busy.push({...p, uses})
  }
  return {busy, callerCwd}
}

/** Throws BusyError naming the processes (pid, command, what they use). */
export function refuseBusy(dir: string, busy: readonly ProcessUsingDir[]): void {
  if (busy.length === 0) return
  const shown = busy.slice(0, 3).map((p) => describeUse(p, 2))
  if (busy.length > 3) shown.push(`${busy.length - 3} more processes`)
  throw new BusyError(
    `refusing to restore in place: ${dir} is in use by ${shown.join('; ')}. Stop the program first (or restore with --target elsewhere; --force replaces it anyway)`,
    {directory: dir, processes: busy.map((p) => ({pid: p.pid, command: p.command, uses: p.uses}))},
  )
}
