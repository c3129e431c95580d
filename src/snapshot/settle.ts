// Did the directory hold still while it was captured? A plain capture reads files one after the
// other while their program may be writing, so the stored tree can be a mix of moments that the
// directory never was. After the walk, this walks the directory again beside the stored tree and
// reports what moved: entries that appeared, vanished or were replaced (renamed over, recreated),
// files whose size or times changed, and files changed so close to the capture that equal
// timestamps prove nothing (a write in the same clock tick as the read leaves them as they were).
//
// Soundness: any change to an inode sets its ctime from the kernel's clock, which can lag real time
// by at most a tick (the racy window of core/racy.ts). A file whose recorded ctime is older than the capture's
// start minus that window, and whose stat is unchanged at the end, was not written during the
// capture; a directory whose names and inodes are unchanged gained and lost nothing that survived.
// So "consistent" here is never claimed for a tree that mixed moments. (Directory times alone are
// not judged: a file created and removed again during the capture changes them and nothing else.)
import {lstatSync, readdirSync, type BigIntStats} from 'node:fs'

import {errnoCode} from '../core/errors.js'
import {readFlags} from '../core/fsextra.js'
import {LongPaths} from '../core/longpath.js'
import {changedBefore} from '../core/racy.js'
import {compileExcludes, type PathSelection} from './exclude.js'
import {MAX_LISTED_MOVES, type Move, type MoveKind} from './manifest.js'
import {childPath, displayName, FS_FLAG_NODUMP, nodeTypeOf, type TreeNode} from './tree.js'
import type {TreeCache} from './treecache.js'

/** The kernel's file clock is coarse; whole-second filesystems need two seconds. */

export interface SettleReport {
  /** Nothing moved: the stored tree is the directory as it was at one instant (the end of the walk). */
  consistent: boolean
  moves: Move[]
  moveCount: number
}

export interface SettleOptions {
  source: string
  tree: Buffer
  excludes: readonly string[]
  /** --files-from: only what it chose was captured. */
  select?: PathSelection
  skipDirs: readonly {dev: bigint; ino: bigint}[]
  /** The walk left out entries with the nodump flag: such an entry missing from the tree is not new. */
  excludeNodump?: boolean
  /** When the capture began (wall clock, ns). */
  startNs: bigint
}

export async function checkSettled(trees: Pick<TreeCache, 'read'>, opts: SettleOptions): Promise<SettleReport> {
  const exclude = compileExcludes(opts.excludes)
  const report: SettleReport = {consistent: true, moves: [], moveCount: 0}
  const moved = (path: string, change: MoveKind) => {
    report.consistent = false
    report.moveCount++
    if (report.moves.length < MAX_LISTED_MOVES) report.moves.push({path: path || '.', change})
  }
  const paths = new LongPaths()
  const nodump = (abs: Buffer, st: BigIntStats): boolean => {
    if (!opts.excludeNodump || !(st.isFile() || st.isDirectory())) return false
    try {
      const f = readFlags(paths.short(abs), st.isDirectory())
      return typeof f === 'number' && (f & FS_FLAG_NODUMP) !== 0
    } catch {
      return false
    }
  }

  const rootLength = Buffer.byteLength(opts.source)
  const walk = async (abs: Buffer, rel: string, treeId: Buffer): Promise<void> => {
    const stored = new Map<string, TreeNode>()
    for (const n of await trees.read(treeId)) stored.set(n.name.toString('latin1'), n)
    let names: Buffer[]
    try {
      names = readdirSync(paths.short(abs), {encoding: 'buffer'})
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return moved(rel, 'vanished')
      throw err
    }
    const seen = new Set<string>()
    const subdirs: [Buffer, string, Buffer][] = []
    const rawParent = rel ? abs.subarray(rootLength + 1) : undefined
    for (const name of names) {
      const shown = displayName(name)
      const childRel = rel ? `${rel}/${shown}` : shown
      const selected = opts.select?.(childRel) ?? 'all'
      if (selected === 'none' || exclude(childRel, shown, name, rawParent)) continue
      const key = name.toString('latin1')
      const node = stored.get(key)
      let st: BigIntStats
      try {
        st = lstatSync(paths.short(childPath(abs, name)), {bigint: true})
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err
        if (node) moved(childRel, 'vanished')
        continue
      }
      if (st.isDirectory() && opts.skipDirs.some((d) => d.dev === st.dev && d.ino === st.ino)) continue
      if (selected === 'ancestor' && !st.isDirectory()) continue
      const type = nodeTypeOf(st)
      if (!node) {
        // Sockets are never stored, nor entries the walk left out for their nodump flag; anything else is new.
        if (type !== undefined && !nodump(childPath(abs, name), st)) moved(childRel, 'appeared')
        continue
      }
      seen.add(key)
      if (type !== node.type || st.ino !== node.ino) {
        moved(childRel, 'replaced')
        continue
      }
      if (type === 'dir') {
        subdirs.push([childPath(abs, name), childRel, node.subtree!])
        continue
      }
      if ((type === 'file' && Number(st.size) !== node.size) || st.mtimeNs !== node.mtimeNs || st.ctimeNs !== node.ctimeNs) {
        moved(childRel, 'changed')
        continue
      }
      // ctime, not mtime: every change sets ctime from the clock, while mtime is whatever
      // utimes last said (a future mtime says nothing about when the file was written).
      if (!changedBefore(st.ctimeNs, opts.startNs)) moved(childRel, 'written-during')
    }
    for (const [key, node] of stored) {
      if (!seen.has(key)) moved(rel ? `${rel}/${displayName(node.name)}` : displayName(node.name), 'vanished')
    }
    for (const [childAbs, childRel, subtree] of subdirs) await walk(childAbs, childRel, subtree)
  }
  try {
    await walk(Buffer.from(opts.source), '', opts.tree)
  } finally {
    paths.close()
  }
  return report
}

