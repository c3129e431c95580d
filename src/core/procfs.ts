// What processes do with a directory, read from /proc: for a capture, which files the paused
// processes may be writing (open for writing, or mapped shared and writable: those are re-read inside
// the pause whatever their stat says, since a write through a mapping need not move mtime); for a
// restore, which processes anywhere on the machine use the directory at all (open files, mappings,
// working directory, executable), so that swapping it under them can be refused by name.
import {readdirSync, readFileSync, readlinkSync, realpathSync} from 'node:fs'

import {errnoCode} from './errors.js'

/** How a process holds a file. */
export type Use = 'write' | 'mmap' | 'read' | 'cwd' | 'root' | 'exe'

export interface FileUse {
  pid: number
  /** Relative to the directory asked about ('' for the directory itself). */
  path: string
  use: Use
}

const O_ACCMODE = 0o3
const O_WRONLY = 0o1
const O_RDWR = 0o2

/** The canonical form of dir, as /proc spells the paths under it. */
function canonical(dir: string): string {
  return realpathSync(dir)
}

/** `file` relative to `root` when it is root or under it, else undefined. */
export function under(root: string, file: string): string | undefined {
  if (file === root) return ''
  const prefix = root.endsWith('/') ? root : `${root}/`
  return file.startsWith(prefix) ? file.slice(prefix.length) : undefined
}

/**
 * Missing, gone, or not ours to look at (another user's process without root): nothing to report.
 * ENAMETOOLONG: a link to a path longer than the kernel will spell (PATH_MAX), which any process
 * on the machine may hold; where it lies cannot be told, so it is passed over, not a failed scan.
 */
function quiet(err: unknown): boolean {
  const code = errnoCode(err)
  return code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR' || code === 'ENAMETOOLONG'
}

function tryRead(file: string): string | undefined {
  try {
    return readFileSync(file, 'latin1')
  } catch (err) {
    if (quiet(err)) return undefined
    throw err
  }
}

function tryLink(link: string): string | undefined {
  try {
    return readlinkSync(link)
  } catch (err) {
    if (quiet(err)) return undefined
    throw err
  }
}

function tryList(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch (err) {
    if (quiet(err)) return []
    throw err
  }
}

/** A link target in /proc for a file since deleted ends in " (deleted)": it is no longer in any directory. */
const deleted = (target: string): boolean => target.endsWith(' (deleted)')

/**
 * Open file descriptors of a process whose target is under `root`: target path and whether it is
 * open for writing (the fdinfo read that tells costs four calls: only for those under root).
 */
function openFiles(pid: number, root: string): {target: string; writing: boolean}[] {
  const out: {target: string; writing: boolean}[] = []
  for (const fd of tryList(`/proc/${pid}/fd`)) {
    const target = tryLink(`/proc/${pid}/fd/${fd}`)
    if (!target || !target.startsWith('/') || deleted(target) || under(root, target) === undefined) continue
    const info = tryRead(`/proc/${pid}/fdinfo/${fd}`)
    const flags = info ? parseInt(/^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? '0', 8) : 0
    const mode = flags & O_ACCMODE
    out.push({target, writing: mode === O_WRONLY || mode === O_RDWR})
  }
  return out
}

/**
 * File mappings of a process, from /proc/PID/maps: `writable` is a shared, writable mapping
 * (`rw-s`), whose writes reach the file with no write() call.
 */
export function parseMaps(text: string): {target: string; writable: boolean}[] {
  const out: {target: string; writable: boolean}[] = []
  for (const line of text.split('\n')) {
    // address perms offset dev inode pathname (the pathname may hold spaces; newlines are \012)
    const m = /^\S+\s+(\S{4})\s+\S+\s+\S+\s+\d+\s+(\/.*)$/.exec(line)
    if (!m || deleted(m[2]!)) continue
    const perms = m[1]!
    out.push({target: m[2]!.replace(/\\012/g, '\n'), writable: perms[1] === 'w' && perms[3] === 's'})
  }
  return out
}

/** File mappings of a process under `root` (a maps file that does not name root is not parsed). */
function mappings(pid: number, root: string): {target: string; writable: boolean}[] {
  const text = tryRead(`/proc/${pid}/maps`)
  return text?.includes(root.replace(/\n/g, '\\012')) ? parseMaps(text) : []
}

/**
 * The files under `dir` the given (paused) processes may be writing: open for writing or read-write,
 * or mapped shared-writable. One entry per process and file and way; paths relative to dir.
 */
export function filesBeingWritten(pids: readonly number[], dir: string): FileUse[] {
  const root = canonical(dir)
  const out: FileUse[] = []
  const seen = new Set<string>()
  const add = (pid: number, target: string, use: Use): void => {
    const rel = under(root, target)
    if (rel === undefined || rel === '') return
    const key = `${pid}\0${use}\0${rel}`
    if (seen.has(key)) return
    seen.add(key)
    out.push({pid, path: rel, use})
  }
  for (const pid of pids) {
    for (const f of openFiles(pid, root)) if (f.writing) add(pid, f.target, 'write')
    for (const m of mappings(pid, root)) if (m.writable) add(pid, m.target, 'mmap')
  }
  return out
}

export interface ProcessUsingDir {
  pid: number
  /** The command name (/proc/PID/comm). */
  command: string
  /** How it uses the directory; paths relative to it. */
  uses: {path: string; use: Use}[]
}

/**
 * Every process on the machine that uses something under `dir`: an open file (for reading or
 * writing), a mapping, its working directory, its root or its executable. ckpt's own process and
 * those in `exclude` are left out.
 */
export function processesUsing(dir: string, exclude: readonly number[] = []): ProcessUsingDir[] {
  const root = canonical(dir)
  const skip = new Set([process.pid, ...exclude])
  const out: ProcessUsingDir[] = []
  for (const name of tryList('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    if (skip.has(pid)) continue
    const uses: {path: string; use: Use}[] = []
    const seen = new Set<string>()
    const add = (target: string | undefined, use: Use): void => {
      if (target === undefined || deleted(target)) return
      const rel = under(root, target)
      if (rel === undefined || seen.has(`${use}\0${rel}`)) return
      seen.add(`${use}\0${rel}`)
      uses.push({path: rel, use})
    }
    add(tryLink(`/proc/${pid}/cwd`), 'cwd')
    add(tryLink(`/proc/${pid}/root`), 'root')
    add(tryLink(`/proc/${pid}/exe`), 'exe')
    for (const f of openFiles(pid, root)) add(f.target, f.writing ? 'write' : 'read')
    for (const m of mappings(pid, root)) add(m.target, 'mmap')
    if (uses.length === 0) continue
    out.push({pid, command: (tryRead(`/proc/${pid}/comm`) ?? '').trim(), uses})
  }
  return out
}

/** "pid 123 (postgres): postmaster.pid open for write, cwd" — for an error message. */
export function describeUse(p: ProcessUsingDir, max = 3): string {
  const parts = p.uses.slice(0, max).map((u) => (u.use === 'cwd' || u.use === 'root' ? `its ${u.use}` : `${u.path || '.'} (${u.use === 'mmap' ? 'mapped' : u.use === 'write' ? 'open for writing' : u.use === 'read' ? 'open' : 'its executable'})`))
  if (p.uses.length > max) parts.push(`${p.uses.length - max} more`)
  return `pid ${p.pid} (${p.command}): ${parts.join(', ')}`
}


/**
 * Files under `dir` that any process on the machine maps shared and writable: the one way a
 * program changes a file without moving its stat (mtime moves only at the first write to a clean
 * page), so a capture that did not pause that program cannot prove those files unchanged.
 */
export function sharedWritableMappings(dir: string): FileUse[] {
  const root = canonical(dir)
  const out: FileUse[] = []
  const seen = new Set<string>()
  for (const name of tryList('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    for (const m of mappings(Number(name), root)) {
      if (!m.writable) continue
      const rel = under(root, m.target)
      if (rel === undefined || rel === '' || seen.has(`${name}\0${rel}`)) continue
      seen.add(`${name}\0${rel}`)
      out.push({pid: Number(name), path: rel, use: 'mmap'})
    }
  }
  return out
}
