// What /proc/self/mountinfo says about the mounts this process sees.
import {lstatSync, promises as fsp, readFileSync, realpathSync} from 'node:fs'
import path from 'node:path'

export interface Mount {
  /** Where it is mounted, as this process sees it (octal escapes undone). */
  mountPoint: string
  fstype: string
  /** Superblock options. */
  options: string[]
}

/** Every mount in /proc/self/mountinfo (empty where there is none). */
export function mounts(): Mount[] {
  let text: string
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  const out: Mount[] = []
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const mountPoint = line.slice(0, sep).split(' ')[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    const [fstype = '', , options = ''] = line.slice(sep + 3).split(' ')
    out.push({mountPoint, fstype, options: options.split(',')})
  }
  return out
}

/**
 * True when the directory `dir` is a mount point: another filesystem than its parent's, or a bind
 * mount of part of the same one (mountinfo lists it). rename(2) refuses to move either (EBUSY).
 */
export function isMountPoint(dir: string): boolean {
  const real = realpathSync(dir)
  if (real === '/') return true
  if (lstatSync(real).dev !== lstatSync(path.dirname(real)).dev) return true
  return mounts().some((m) => m.mountPoint === real)
}

/** Mount points strictly below the directory `dir`, relative to it. */
export function mountsBelow(dir: string): string[] {
  const real = realpathSync(dir)
  const prefix = real === '/' ? '/' : real + '/'
  return mounts().filter((m) => m.mountPoint.startsWith(prefix)).map((m) => m.mountPoint.slice(prefix.length))
}

/**
 * True when `entries` (the names in directory `dir`) are only an empty lost+found: the root of a
 * fresh ext2/3/4 filesystem (mkfs makes it for fsck), which counts as an empty directory.
 */
export async function onlyLostFound(dir: string, entries: readonly string[]): Promise<boolean> {
  if (entries.length !== 1 || entries[0] !== 'lost+found') return false
  return (await fsp.readdir(path.join(dir, 'lost+found')).catch(() => ['?'])).length === 0
}
