// Which part of a snapshot a restore writes, decided over the snapshot's trees before anything is
// written: every --include must name something in the snapshot (else "not found", exit code 4,
// with nothing written), and a dry run counts what would be written, reading trees only.
//
// The reader (reader.ts) applies the same two filters as it goes: --include as path
// parts, --exclude as the snapshot's own pattern syntax (snapshot/exclude.ts), through `selects`.
import {NotFoundError, UsageError} from '../core/errors.js'
import {toHex} from '../core/ids.js'
import {findNamed} from '../inspect/names.js'
import type {ExcludeMatcher} from '../snapshot/exclude.js'
import {childPath, dataLength, displayName, type TreeNode} from '../snapshot/tree.js'

export type ReadTree = (id: Buffer) => Promise<TreeNode[]>

/** An --include as path parts ("db//CURRENT" and "./db/CURRENT" are db, CURRENT); ".." is refused. */
export function splitInclude(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.')
  if (parts.length === 0 || parts.includes('..')) throw new UsageError(`--include ${JSON.stringify(p)} must be a path inside the snapshot`)
  return parts
}

/**
 * Whether an entry is written, and which includes apply below it: `take` false skips it;
 * `below` undefined means everything below (no include, or one that names it or an ancestor).
 */
export function selects(includes: readonly string[][] | undefined, exclude: ExcludeMatcher, rel: string, shown: string, rawName?: Buffer, rawParent?: Buffer): {take: boolean; below?: string[][]} {
  if (exclude(rel, shown, rawName, rawParent)) return {take: false}
  if (!includes) return {take: true}
  const matching = includes.filter((parts) => parts[0] === shown)
  if (matching.length === 0) return {take: false}
  if (matching.some((parts) => parts.length === 1)) return {take: true}
  return {take: true, below: matching.map((parts) => parts.slice(1))}
}

/**
 * Refuse, before anything is written, an include that names nothing in the snapshot (or names
 * something below a file). All of them are checked, and the error lists every one missing.
 * Returns the includes as the reader compares names (`shown`), whichever form they were typed in.
 */
export async function checkIncludes(readTree: ReadTree, root: Buffer, includes: readonly string[][]): Promise<string[][]> {
  const missing: string[] = []
  const found: string[][] = []
  const trees = new Map<string, Promise<TreeNode[]>>()
  const read = (id: Buffer) => {
    const key = toHex(id)
    let t = trees.get(key)
    if (!t) trees.set(key, (t = readTree(id)))
    return t
  }
  for (const parts of includes) {
    let tree: Buffer | undefined = root
    const shown: string[] = []
    for (const part of parts) {
      const node: TreeNode | undefined = tree ? findNamed(await read(tree), part) : undefined
      tree = node?.type === 'dir' ? node.subtree : undefined
      if (!node) {
        missing.push(parts.join('/'))
        break
      }
      if (node.type !== 'dir' && part !== parts.at(-1)) {
        missing.push(parts.join('/'))
        break
      }
      shown.push(displayName(node.name))
    }
    if (shown.length === parts.length) found.push(shown)
  }
  if (missing.length > 0) {
    const list = missing.map((p) => JSON.stringify(p)).join(', ')
    throw new NotFoundError(`--include ${list}: not in the snapshot (nothing was restored)`, {paths: missing})
  }
  return found
}

/** What a restore writes, by kind: counted over the trees by a dry run, as written by a restore. */
export interface RestoreCounts {
  /** Regular files, every name of a hard-linked one included. */
  files: number
  /** Of those, names made as links to a file restored before them. */
  hardLinks: number
  dirs: number
  symlinks: number
  fifos: number
  devices: number
  /** FIFOs and device nodes not made (see the warnings). */
  skippedSpecials: number
  /** Data bytes (holes of sparse files and further names of a hard-linked file take none). */
  bytes: number
}

export interface RestorePlan extends RestoreCounts {
  warnings: []
}

/** What a restore with these filters would write: counted over the trees, no content read. */
export async function planRestore(readTree: ReadTree, root: Buffer, includes: readonly string[][] | undefined, exclude: ExcludeMatcher): Promise<RestorePlan> {
  const plan: RestorePlan = {files: 0, hardLinks: 0, dirs: 0, symlinks: 0, fifos: 0, devices: 0, skippedSpecials: 0, bytes: 0, warnings: []}
  const inodes = new Set<string>()
  const walk = async (id: Buffer, rel: string, inc: readonly string[][] | undefined, raw: Buffer | undefined): Promise<void> => {
    for (const node of await readTree(id)) {
      const shown = displayName(node.name)
      const childRel = rel ? `${rel}/${shown}` : shown
      const {take, below} = selects(inc, exclude, childRel, shown, node.name, raw)
      if (!take) continue
      if (node.type === 'dir') {
        plan.dirs++
        if (node.subtree) await walk(node.subtree, childRel, below, raw ? childPath(raw, node.name) : node.name)
      } else if (below) {
        continue // an include naming something below a non-directory
      } else if (node.type === 'symlink') {
        plan.symlinks++
      } else if (node.type === 'file') {
        plan.files++
        // As the reader does: a later name of a recorded inode is a link, not more data.
        const inode = node.nlink !== undefined && node.nlink > 1 && node.dev !== undefined ? `${node.dev}:${node.ino}` : undefined
        if (inode !== undefined && inodes.has(inode)) plan.hardLinks++
        else plan.bytes += dataLength(node)
        if (inode !== undefined) inodes.add(inode)
      } else if (node.type === 'fifo') {
        plan.fifos++
      } else {
        plan.devices++
      }
    }
  }
  await walk(root, '', includes, undefined)
  return plan
}
