// mkdir -p without Node's recursive mkdir, which retries forever (100% CPU) when a directory's
// parent exists but the directory cannot be made with ENOENT, as under /proc
// (`mkdir('/proc/x/y', {recursive: true})` never returns in Node 20). Here each missing
// component is made once, top down, and the first refusal is the error.
import {mkdirSync, promises as fsp, statSync} from 'node:fs'
import path from 'node:path'

import {errnoCode} from './errors.js'

/** The directories to make for `dir`, outermost first (none when it exists). */
function missingDirs(dir: string, stat: (p: string) => {isDirectory(): boolean} | undefined): string[] {
  const missing: string[] = []
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const st = stat(at)
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${at}'`), {code: 'ENOTDIR', path: at})
      break
    }
    missing.push(at)
    if (path.dirname(at) === at) break
  }
  return missing.reverse()
}

function statOrUndefined(p: string): {isDirectory(): boolean} | undefined {
  try {
    return statSync(p)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined
    throw err
  }
}

/** Make `dir` and its missing parents. */
export async function makeDirs(dir: string): Promise<void> {
  for (const d of missingDirs(dir, statOrUndefined)) {
    try {
      await fsp.mkdir(d)
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err
    }
  }
}

/** makeDirs, synchronously. */
export function makeDirsSync(dir: string): void {
  for (const d of missingDirs(dir, statOrUndefined)) {
    try {
      mkdirSync(d)
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err
    }
  }
}
