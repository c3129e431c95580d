// File system calls Node's fs lacks, through the native addon (src/native/fsmeta.c, loaded by
// native.ts):
// - file times with nanosecond precision, never following a final symlink. fs.utimes/lutimes
//   take seconds as a double, which at today's epoch rounds to about 2^-22 s, so a restored
//   mtime would differ from the snapshot's; the addon calls utimensat(2) with exact seconds and
//   nanoseconds. Without it we fall back to fs.lutimesSync and say so through nsTimesAvailable().
// - an atomic swap of two paths (renameat2 RENAME_EXCHANGE) and a flush of a whole file system
//   (syncfs). Restore builds a tree beside the target, flushes it once, then swaps it in, so the
//   target is never missing or half written. Without the addon, or where the kernel or file
//   system cannot, these return false and change nothing; the caller falls back (two renames,
//   an fsync per file).
import {lutimesSync} from 'node:fs'
import {getSystemErrorMap} from 'node:util'

import {nativeAddon} from './native.js'

const NS_PER_SEC = 1_000_000_000n
const NS_PER_MS = 1_000_000n

/** True when times are set to the nanosecond; false when the addon is missing and precision is lost. */
export const nsTimesAvailable = (): boolean => nativeAddon() !== null

/**
 * Sets the access and modification times of `path` (nanoseconds since the epoch, negative
 * before 1970). A final symlink is not followed: its own times change. Throws Node-style fs
 * errors (`code` 'ENOENT', 'EPERM', ...).
 */
export function setTimesNs(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): void {
  const addon = nativeAddon()
  if (addon) {
    addon.setTimes(path, atimeNs, mtimeNs)
    return
  }
  lutimesSync(path, fallbackTime(atimeNs), fallbackTime(mtimeNs))
}

// fs.lutimes takes seconds as a number, but turns a negative number into "now", so times
// before 1970 go as a Date (millisecond precision, floored like the kernel's timespec).
/** The time for fs.lutimes (without the addon): seconds as a double, or a Date before 1970. */
export function fallbackTime(ns: bigint): number | Date {
  // libuv truncates the double to whole microseconds, and the double itself is off by up to ~120 ns
  // at today's times: half a microsecond more makes that a rounding, within 1 µs of the time asked.
  if (ns >= 0n) return Number(ns / NS_PER_SEC) + Number((ns % NS_PER_SEC) + 500n) / 1e9
  const ms = ns / NS_PER_MS - (ns % NS_PER_MS === 0n ? 0n : 1n)
  return new Date(Number(ms))
}

// What renameat2 answers when it cannot exchange here, having changed nothing: ENOSYS for a
// kernel before 3.15, a seccomp filter or a system other than Linux; EINVAL (the kernel's
// answer) or ENOTSUP (libuv's name for EOPNOTSUPP) for a file system without RENAME_EXCHANGE.
const EXCHANGE_UNSUPPORTED = new Set(['ENOSYS', 'EINVAL', 'ENOTSUP'])

/**
 * Swaps `a` and `b` in one step: afterwards `a` names what `b` named and the reverse, and no
 * moment shows either missing. Both must exist, on one file system; they may differ in type.
 * Returns true when swapped. Returns false, having changed nothing, when the addon is missing or
 * the kernel or file system cannot exchange; the caller then falls back to renames. EINVAL also
 * means a directory and its own descendant, which the fallback renames then report themselves.
 * Throws Node-style fs errors otherwise (`code` 'ENOENT', 'EXDEV', 'EACCES', ...; `syscall`
 * 'renameat2', `path` a, `dest` b).
 */
export function exchangePaths(a: Buffer | string, b: Buffer | string): boolean {
  const addon = nativeAddon()
  if (!addon) return false
  try {
    addon.exchange(a, b)
    return true
  } catch (error) {
    if (EXCHANGE_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) return false
    throw error
  }
}

/**
 * Flushes the whole file system holding `path` (a file or directory; a final symlink is
 * followed) to stable storage with syncfs(2), and waits for it. Returns true when done; false
 * when the addon is missing or there is no syncfs (not Linux, or a seccomp filter), and the
 * caller must fsync file by file. Throws Node-style fs errors when `path` cannot be opened
 * (ENOENT, EACCES: `syscall` 'open'): a wrong path is the caller's mistake, not a reason to fall
 * back. Throws when the flush fails (EIO, ENOSPC: `syscall` 'syncfs'): from Linux 5.8 on, syncfs
 * reports writeback errors on that file system that no earlier syncfs has reported.
 */
export function syncFilesystem(path: Buffer | string): boolean {
  const addon = nativeAddon()
  if (!addon) return false
  try {
    addon.syncfs(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOSYS') return false
    throw error
  }
}

/**
 * Return memory malloc keeps free in its per-thread arenas to the system (glibc malloc_trim).
 * False when nothing was released or the addon is unavailable.
 */
export function trimMemory(): boolean {
  return nativeAddon()?.trimMemory() ?? false
}

/** A file to create: it must not exist; its contents are `parts` back to back. */
export interface NewFile {
  path: Buffer
  parts: readonly Uint8Array[]
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
}

const WRITE_STEPS = ['', 'open', 'write', 'fchown', 'fchmod', 'close', 'utimensat']

/**
 * Create and fill new files as one job on the thread pool, each opened with O_EXCL and
 * O_NOFOLLOW, written whole, owned (when `owners`: chown clears setuid bits, so before the
 * mode), moded, closed, then given `mtimeNs` as both times. Returns false, having done nothing,
 * when the addon is missing: the caller writes them itself. Throws the first failure as a
 * Node-style fs error (`code`, `errno`, `syscall`, `path`); files after it are not touched.
 * Neither the paths nor the parts may be modified until it settles.
 */
export async function writeNewFiles(files: readonly NewFile[], owners: boolean): Promise<boolean> {
  const addon = nativeAddon()
  if (!addon) return false
  const meta = new Uint32Array(files.length * 3)
  const mtimes = new BigInt64Array(files.length)
  files.forEach((f, i) => {
    meta.set([f.mode, f.uid, f.gid], i * 3)
    mtimes[i] = f.mtimeNs
  })
  const status = new Int32Array(files.length)
  await addon.writeFiles(files.map((f) => f.path), files.map((f) => f.parts), meta, mtimes, owners, status)
  const failed = status.findIndex((s) => s > 0)
  if (failed >= 0) throw writeError(status[failed]!, files[failed]!.path)
  return true
}

function writeError(status: number, path: Buffer): Error {
  const errno = status >> 3
  const syscall = WRITE_STEPS[status & 7] ?? 'write'
  const [code, description] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error']
  const shown = path.toString()
  return Object.assign(new Error(`${code}: ${description}, ${syscall} '${shown}'`), {errno: -errno, code, syscall, path: shown})
}
