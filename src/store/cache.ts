// A local cache of immutable, self-verifying repository objects (index files, manifests, trees)
// for repositories that are not on this machine, so an unchanged snapshot into S3 does not
// download them again. Under $XDG_CACHE_HOME/ckpt/<repository id> (~/.cache/ckpt/...), bounded
// (CKPT_CACHE_MB, default 512; the oldest entries go first), and safe to delete at any time:
// everything read from it is checked against its hash by the caller, and a miss or a mismatch
// reads the repository instead. Writes are atomic (temp, rename) and never fail a command.
import {randomBytes} from 'node:crypto'
import {readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {makeDirsSync} from '../core/mkdirs.js'

const SECTIONS = ['index', 'snapshots', 'trees'] as const
export type CacheSection = (typeof SECTIONS)[number]

const KEY = /^[0-9a-f]{64}$/

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CKPT_CACHE_DIR) return env.CKPT_CACHE_DIR
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'ckpt')
}

export class ObjectCache {
  private readonly bound: number
  hits = 0
  misses = 0

  constructor(readonly dir: string, boundMb = Number(process.env.CKPT_CACHE_MB) || 512) {
    this.bound = boundMb * 1024 * 1024
  }

  /** The cached bytes, or undefined. The caller checks them against their hash. */
  get(section: CacheSection, key: string): Buffer | undefined {
    if (!KEY.test(key)) return undefined
    try {
      const bytes = readFileSync(path.join(this.dir, section, key))
      this.hits++
      return bytes
    } catch {
      this.misses++
      return undefined
    }
  }

  /** Best effort: a full disk or a read-only home directory only means no cache. */
  put(section: CacheSection, key: string, bytes: Uint8Array): void {
    if (!KEY.test(key)) return
    const dir = path.join(this.dir, section)
    const temp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`)
    try {
      makeDirsSync(dir)
      writeFileSync(temp, bytes)
      renameSync(temp, path.join(dir, key))
    } catch {
      rmSync(temp, {force: true})
    }
  }

  /** Drop a damaged entry (its hash did not match). */
  drop(section: CacheSection, key: string): void {
    if (KEY.test(key)) rmSync(path.join(this.dir, section, key), {force: true})
  }

  /** Keep the cache under its bound: the oldest entries go until it is at 80 % of it. */
  trim(): void {
    const entries: {file: string; size: number; mtimeMs: number}[] = []
    let total = 0
    for (const section of SECTIONS) {
      let names: string[]
      try {
        names = readdirSync(path.join(this.dir, section))
      } catch {
        continue
      }
      for (const name of names) {
        try {
          const file = path.join(this.dir, section, name)
          const st = statSync(file)
          entries.push({file, size: st.size, mtimeMs: st.mtimeMs})
          total += st.size
        } catch {
          // removed meanwhile by another process
        }
      }
    }
    if (total <= this.bound) return
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs)
    for (const e of entries) {
      if (total <= this.bound * 0.8) break
      rmSync(e.file, {force: true})
      total -= e.size
    }
  }
}
