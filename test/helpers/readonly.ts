// Make a directory read-only the ways a user meets it: a read-only bind mount of it onto itself
// (EROFS, like read-only media), else `chattr +i` (EPERM). Returns the way used and how to undo
// it, or undefined when the machine refuses both (the caller skips with a message).
import {execFileSync} from 'node:child_process'

export interface ReadOnly {
  how: 'ro-bind-mount' | 'chattr +i'
  undo: () => void
}

function run(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}

export function makeReadOnly(dir: string, prefer: ReadOnly['how'] = 'ro-bind-mount'): ReadOnly | undefined {
  const mount = (): ReadOnly | undefined => {
    if (!run('mount', ['--bind', dir, dir])) return undefined
    if (!run('mount', ['-o', 'remount,bind,ro', dir])) {
      run('umount', [dir])
      return undefined
    }
    return {how: 'ro-bind-mount', undo: () => void run('umount', [dir])}
  }
  const chattr = (): ReadOnly | undefined =>
    run('chattr', ['+i', dir]) ? {how: 'chattr +i', undo: () => void run('chattr', ['-i', dir])} : undefined
  return prefer === 'ro-bind-mount' ? mount() ?? chattr() : chattr() ?? mount()
}
