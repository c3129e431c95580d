// ckpt ls: the entries of a snapshot, one at a time (an async generator: a listing of millions of
// entries holds one directory per level), as records for JSON and as `ls -l`-like lines.
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {dataLength} from '../snapshot/tree.js'
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
  /** Files with more than one name: the link count, and the (dev, ino) pair that names the inode. */
  nlink?: number
  inode?: string
  /** Devices: the device number. */
  rdev?: {major: number; minor: number}
  /** Sparse files: the bytes of their data extents (the rest are holes). */
  dataBytes?: number
  /** Extended attributes: name and value, each as text when UTF-8, else escaped with the hex beside it. */
  xattrs?: {name: string; nameHex?: string; value: string; valueHex?: string}[]
  /** Inode flags (chattr: immutable 0x10, append 0x20, nodump 0x40...). */
  flags?: number
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
  if (n.nlink !== undefined && n.nlink > 1) {
    e.nlink = n.nlink
    e.inode = `${n.dev ?? 0n}:${n.ino}`
  }
  if (n.rdev) e.rdev = {major: n.rdev.major, minor: n.rdev.minor}
  if (n.extents) e.dataBytes = dataLength(n)
  if (n.xattrs?.length) {
    e.xattrs = n.xattrs.map((x) => {
      const name = jsonBytes(x.name)
      const value = jsonBytes(x.value)
      return {name: name.text, ...(name.hex ? {nameHex: name.hex} : {}), value: value.text, ...(value.hex ? {valueHex: value.hex} : {})}
    })
  }
  if (n.flags) e.flags = n.flags
  return e
}

/**
 * One line: the path alone, or with -l as ls -l has it: mode ("+" after it when the entry has
 * extended attributes), link count, uid/gid, size (a device's major, minor), mtime, path (-> target).
 */
export function lsLine(at: Located, long: boolean): string {
  const name = at.path.length ? escapeName(at.path) : '.'
  if (!long) return name
  const n = at.node
  const mtime = isoNs(n.mtimeNs).slice(0, 19).replace('T', ' ')
  const link = n.target ? ` -> ${escapeName(n.target)}` : ''
  const size = n.rdev ? `${n.rdev.major}, ${n.rdev.minor}` : String(n.size)
  const mode = modeString(n.type, n.mode) + (n.xattrs?.length ? '+' : ' ')
  return `${mode} ${String(n.nlink ?? 1).padStart(2)} ${`${n.uid}/${n.gid}`.padEnd(11)} ${size.padStart(12)} ${mtime} ${name}${link}`
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
