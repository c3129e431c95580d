// ckpt ls: the entries of a snapshot, one at a time (an async generator: a listing of millions of
// entries holds one directory per level), as records for JSON and as `ls -l`-like lines.
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {escapeName, isoNs, jsonBytes, modeString} from './names.js'
import {type Located, mustLocate, rootNode, type Trees, walk} from './trees.js'

export interface LsEntry {
  /** Path from the snapshot root: the exact text when valid UTF-8, else the escaped form (with pathHex). */
  path: string
  pathHex?: string
  type: string
  mode: number
  uid: number
  gid: number
  size: number
  mtime: string
  mtimeNs: string
  target?: string
  targetHex?: string
}

export function lsEntry(at: Located): LsEntry {
  const n = at.node
  const p = jsonBytes(at.path.length ? at.path : Buffer.from('.'))
  const e: LsEntry = {path: p.text, ...(p.hex ? {pathHex: p.hex} : {}), type: n.type, mode: n.mode, uid: n.uid, gid: n.gid, size: n.size, mtime: isoNs(n.mtimeNs), mtimeNs: n.mtimeNs.toString()}
  if (n.target) {
    const t = jsonBytes(n.target)
    e.target = t.text
    if (t.hex) e.targetHex = t.hex
  }
  return e
}

/** One line: the path alone, or with -l: mode, owner, size, mtime, path (-> target). */
export function lsLine(at: Located, long: boolean): string {
  const name = at.path.length ? escapeName(at.path) : '.'
  if (!long) return name
  const n = at.node
  const mtime = isoNs(n.mtimeNs).slice(0, 19).replace('T', ' ')
  const link = n.target ? ` -> ${escapeName(n.target)}` : ''
  return `${modeString(n.type, n.mode)} ${`${n.uid}/${n.gid}`.padEnd(11)} ${String(n.size).padStart(12)} ${mtime} ${name}${link}`
}

export interface LsOptions {
  recursive: boolean
}

/**
 * The entries `paths` name in a snapshot (all of them must exist: NotFoundError otherwise, before
 * anything is listed): a directory lists what it holds (everything below it with `recursive`), a
 * file or link itself. No path: the root.
 */
export async function* listSnapshot(trees: Trees, snap: SnapshotRecord, paths: readonly string[], opts: LsOptions): AsyncGenerator<Located> {
  const root = rootNode(snap.manifest)
  const found: Located[] = []
  for (const p of paths.length ? paths : ['']) {
    found.push(await mustLocate(trees, root, p, snap.id))
  }
  for (const at of found) {
    if (at.node.type === 'dir') yield* walk(trees, at.node, at.path, opts.recursive ? Infinity : 1)
    else yield at
  }
}
