// A small tmpfs the test mounts itself: a real full disk, of a size the test chooses. Needs
// root (or CAP_SYS_ADMIN); where mounting is refused the caller skips with the reason.
import {spawnSync} from 'node:child_process'

export function mountTmpfs(dir: string, bytes: number): {ok: true} | {ok: false; reason: string} {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir], {encoding: 'utf8'})
  if (r.error) return {ok: false, reason: `mount: ${r.error.message}`}
  if (r.status !== 0) return {ok: false, reason: `mount -t tmpfs refused (exit ${r.status}): ${r.stderr.trim()}`}
  return {ok: true}
}

export function unmount(dir: string): void {
  spawnSync('umount', [dir], {stdio: 'ignore'})
}

/** Bytes used and available on the file system holding `dir` (statfs). */
export function usage(dir: string): {used: number; avail: number} {
  const r = spawnSync('df', ['-B1', '--output=used,avail', dir], {encoding: 'utf8'})
  const [used, avail] = r.stdout.trim().split('\n').pop()!.trim().split(/\s+/).map(Number)
  return {used: used!, avail: avail!}
}
