// Copying bytes aside inside the pause: the files the capture plan names are copied, while the
// program is stopped, to where the store can read them after it runs again. Each copy goes the
// cheapest way that works (measured on ext4, docs/LIVE.md):
//   - a small file (under 256 KiB) into memory, while the copies held there stay under a bound:
//     ~0.1 ms a file, where creating a staged copy costs ~0.8 ms;
//   - a reflink (FICLONE, through copyFile's COPYFILE_FICLONE_FORCE) into the staging directory,
//     when it is on the same reflink-capable filesystem (XFS, Btrfs): no bytes are copied at all;
//   - else a copy into the staging directory by the kernel (copy_file_range): 1-1.8 GB/s against
//     0.3-0.7 GB/s read into memory by node, for files of 1 MiB and more.
// Synchronous on purpose, like the pause: nothing else of ckpt's runs in between.
import {constants as fsc, copyFileSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync} from 'node:fs'
import path from 'node:path'

import {errnoCode} from '../core/errors.js'

export type AsideKind = 'reflink' | 'memory' | 'staged' | 'symlink' | 'gone'

export interface AsideCopy {
  /** The path as the capture plan named it (relative to the source). */
  path: string
  kind: AsideKind
  /** Bytes of the copy (of the link target, for a symlink). */
  size: number
  /** The bytes, for 'memory' and 'symlink' (its target). */
  data?: Buffer
  /** The copy's file, for 'reflink' and 'staged'. */
  file?: string
}

export interface AsideOptions {
  /** A directory where staged copies and reflinks are made (a fresh subdirectory is used). */
  stagingDir: string
  /** Copies held in memory stay under this many bytes in all (default 64 MiB). */
  memoryBytes?: number
  /** Try reflinks (default true); after the first that fails, none is tried again. */
  reflink?: boolean
}

/** Files below this size are held in memory (while the bound allows). */
const SMALL = 256 * 1024

// Errors by which copyFile says "no reflink here": another filesystem, or one without them.
const NO_REFLINK = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ETXTBSY'])

export class Aside {
  readonly copies: AsideCopy[] = []
  private readonly dir: string
  private readonly memoryBytes: number
  private reflink: boolean
  private inMemory = 0
  private seq = 0

  constructor(opts: AsideOptions) {
    this.dir = mkdtempSync(path.join(opts.stagingDir, 'ckpt-aside-'))
    this.memoryBytes = opts.memoryBytes ?? 64 * 1024 * 1024
    this.reflink = opts.reflink ?? true
  }

  /** Bytes copied so far, by kind (what the pause cost). */
  totals(): Record<AsideKind, number> {
    const t: Record<AsideKind, number> = {reflink: 0, memory: 0, staged: 0, symlink: 0, gone: 0}
    for (const c of this.copies) t[c.kind] += c.size
    return t
  }

  /** Copy `abs` (whose name in the snapshot is `rel`) aside, now. A file gone since is recorded as 'gone'. */
  copy(abs: string, rel: string): AsideCopy {
    let c: AsideCopy
    try {
      c = this.copyOne(abs, rel)
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err
      c = {path: rel, kind: 'gone', size: 0}
    }
    this.copies.push(c)
    return c
  }

  private copyOne(abs: string, rel: string): AsideCopy {
    const st = lstatSync(abs)
    if (st.isSymbolicLink()) {
      const data = readlinkSync(abs, {encoding: 'buffer'})
      return {path: rel, kind: 'symlink', size: data.length, data}
    }
    if (st.size < SMALL && this.inMemory + st.size <= this.memoryBytes) {
      const data = readFileSync(abs)
      this.inMemory += data.length
      return {path: rel, kind: 'memory', size: data.length, data}
    }
    if (this.reflink) {
      const file = this.next()
      try {
        copyFileSync(abs, file, fsc.COPYFILE_FICLONE_FORCE)
        return {path: rel, kind: 'reflink', size: lstatSync(file).size, file}
      } catch (err) {
        if (!NO_REFLINK.has(errnoCode(err) ?? '')) throw err
        this.reflink = false
      }
    }
    const file = this.next()
    copyFileSync(abs, file)
    return {path: rel, kind: 'staged', size: lstatSync(file).size, file}
  }

  private next(): string {
    return path.join(this.dir, String(this.seq++))
  }

  /** Remove the staged copies and drop the ones in memory. */
  dispose(): void {
    rmSync(this.dir, {recursive: true, force: true})
    this.copies.length = 0
    this.inMemory = 0
  }
}
