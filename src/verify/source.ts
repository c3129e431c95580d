// `verify ID --source DIR`: compare a snapshot with a directory, entry by entry: type, content,
// mode, mtime (ns), symlink target, owner (when run as root, as only root's restore sets owners),
// and entries missing from or extra in the directory. For bitrot checks against the live
// source and for "did the restore match".
//
// File content is never compared by reading the repository: the file is streamed through the
// repository's chunker and each chunk's BLAKE3 is compared with the snapshot's chunk ids, so
// memory stays at one read buffer and the first differing chunk ends the read.
import {constants as fsc, promises as fsp, type BigIntStats} from 'node:fs'

import {Chunker, type ChunkerParams} from '../core/chunker.js'
import {errnoCode} from '../core/errors.js'
import {blake3} from '../core/hash.js'
import type {RootMeta} from '../snapshot/manifest.js'
import {childPath, displayName, type NodeType, type TreeNode} from '../snapshot/tree.js'

export type DifferenceKind = 'missing' | 'extra' | 'type' | 'content' | 'mode' | 'mtime' | 'owner' | 'target' | 'unreadable'

export interface Difference {
  /** Path relative to the directory ("." for the directory itself), display form. */
  path: string
  kind: DifferenceKind
  /** What the snapshot has, and what the directory has (absent when not applicable). */
  snapshot?: string
  directory?: string
  message: string
}

export interface CompareOptions {
  chunker: ChunkerParams
  /** The nodes of a tree, or undefined when it cannot be read (verify reports why). */
  readTree: (id: Buffer) => Promise<TreeNode[] | undefined>
  compareOwners: boolean
  /** Called with the bytes of each file read. */
  onBytes?: (n: number) => void
}

export interface CompareResult {
  /** Entries compared (files, directories, symlinks, the root included). */
  entries: number
  /** File bytes read from the directory. */
  bytesRead: number
  differences: Difference[]
}

const READ_SIZE = 4 * 1024 * 1024

type EntryType = NodeType | 'other'

export async function compareWithDirectory(dir: string, rootTree: Buffer, root: RootMeta, opts: CompareOptions): Promise<CompareResult> {
  const c = new Comparer(opts)
  const abs = Buffer.from(dir)
  let st: BigIntStats
  try {
    st = await fsp.lstat(abs, {bigint: true})
  } catch (err) {
    c.diff('.', 'unreadable', `cannot read the directory: ${errnoCode(err) ?? (err as Error).message}`)
    return c.result()
  }
  await c.dir(rootTree, abs, '')
  c.entries++
  c.meta('.', {type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs)}, st)
  return c.result()
}

function typeOf(st: BigIntStats): EntryType {
  return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other'
}

const octal = (mode: number) => mode.toString(8).padStart(4, '0')

class Comparer {
  entries = 0
  bytesRead = 0
  private readonly differences: Difference[] = []
  private readonly chunker: Chunker

  constructor(private readonly opts: CompareOptions) {
    this.chunker = new Chunker(opts.chunker)
  }

  result(): CompareResult {
    return {entries: this.entries, bytesRead: this.bytesRead, differences: this.differences}
  }

  diff(path: string, kind: DifferenceKind, message: string, snapshot?: string, directory?: string): void {
    this.differences.push({path, kind, ...(snapshot !== undefined ? {snapshot} : {}), ...(directory !== undefined ? {directory} : {}), message})
  }

  async dir(treeId: Buffer, abs: Buffer, rel: string): Promise<void> {
    const shown = rel || '.'
    const nodes = await this.opts.readTree(treeId)
    if (!nodes) {
      this.diff(shown, 'unreadable', `cannot compare ${shown}: the snapshot's tree ${treeId.toString('hex')} cannot be read (see the findings)`)
      return
    }
    let names: Buffer[]
    try {
      names = await fsp.readdir(abs, {encoding: 'buffer'})
    } catch (err) {
      this.diff(shown, 'unreadable', `cannot list ${shown}: ${errnoCode(err) ?? (err as Error).message}`)
      return
    }
    names.sort(Buffer.compare)
    let i = 0
    let j = 0
    while (i < nodes.length || j < names.length) {
      const node = nodes[i]
      const name = names[j]
      const order = !node ? 1 : !name ? -1 : Buffer.compare(node.name, name)
      const childName = order <= 0 ? node!.name : name!
      const childRel = rel ? `${rel}/${displayName(childName)}` : displayName(childName)
      const childAbs = childPath(abs, childName)
      if (order < 0) {
        this.diff(childRel, 'missing', `${childRel}: in the snapshot (${node!.type}), not in the directory`, node!.type)
        i++
      } else if (order > 0) {
        const st = await fsp.lstat(childAbs, {bigint: true}).catch(() => undefined)
        const type = st ? typeOf(st) : 'other'
        this.diff(childRel, 'extra', `${childRel}: in the directory (${type}), not in the snapshot`, undefined, type)
        j++
      } else {
        await this.entry(node!, childAbs, childRel)
        i++
        j++
      }
    }
  }

  private async entry(node: TreeNode, abs: Buffer, rel: string): Promise<void> {
    this.entries++
    let st: BigIntStats
    try {
      st = await fsp.lstat(abs, {bigint: true})
    } catch (err) {
      this.diff(rel, 'unreadable', `${rel}: cannot stat: ${errnoCode(err) ?? (err as Error).message}`)
      return
    }
    const type = typeOf(st)
    if (type !== node.type) {
      this.diff(rel, 'type', `${rel}: a ${node.type} in the snapshot, a ${type} in the directory`, node.type, type)
      return
    }
    if (node.type === 'dir') {
      await this.dir(node.subtree!, abs, rel)
    } else if (node.type === 'symlink') {
      const target = await fsp.readlink(abs, {encoding: 'buffer'}).catch(() => undefined)
      if (!target || !target.equals(node.target!)) {
        this.diff(rel, 'target', `${rel}: symlink target differs`, displayName(node.target!), target ? displayName(target) : undefined)
      }
    } else {
      await this.content(node, abs, rel, st)
    }
    this.meta(rel, node, st)
  }

  meta(rel: string, node: Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'>, st: BigIntStats): void {
    const mode = Number(st.mode & 0o7777n)
    if (node.type !== 'symlink' && mode !== node.mode) this.diff(rel, 'mode', `${rel}: mode ${octal(mode)}, the snapshot has ${octal(node.mode)}`, octal(node.mode), octal(mode))
    if (st.mtimeNs !== node.mtimeNs) this.diff(rel, 'mtime', `${rel}: mtime ${st.mtimeNs} ns, the snapshot has ${node.mtimeNs} ns`, String(node.mtimeNs), String(st.mtimeNs))
    if (this.opts.compareOwners && (Number(st.uid) !== node.uid || Number(st.gid) !== node.gid)) {
      this.diff(rel, 'owner', `${rel}: owner ${st.uid}:${st.gid}, the snapshot has ${node.uid}:${node.gid}`, `${node.uid}:${node.gid}`, `${st.uid}:${st.gid}`)
    }
  }

  private async content(node: TreeNode, abs: Buffer, rel: string, st: BigIntStats): Promise<void> {
    if (Number(st.size) !== node.size) {
      this.diff(rel, 'content', `${rel}: ${st.size} bytes, the snapshot has ${node.size}`, `${node.size} bytes`, `${st.size} bytes`)
      return
    }
    let differsAt: number | undefined
    try {
      differsAt = await this.firstDifference(abs, node.chunks ?? [])
    } catch (err) {
      this.diff(rel, 'unreadable', `${rel}: cannot read: ${errnoCode(err) ?? (err as Error).message}`)
      return
    }
    if (differsAt === undefined) return
    const sameStat = st.mtimeNs === node.mtimeNs
    this.diff(rel, 'content', `${rel}: content differs from byte ${differsAt}${sameStat ? ' although size and mtime match (bitrot, or a write that kept the mtime)' : ''}`, undefined, `differs from byte ${differsAt}`)
  }

  /** Stream the file through the chunker; the offset of the first chunk that is not the snapshot's, or undefined if all match. */
  private async firstDifference(abs: Buffer, expected: readonly Buffer[]): Promise<number | undefined> {
    const fh = await fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW)
    const chunker = this.chunker
    chunker.reset()
    try {
      let n = 0
      let offset = 0
      let carry: Buffer | undefined
      const matches = (chunk: Buffer): boolean => {
        const ok = n < expected.length && blake3(chunk).equals(expected[n]!)
        if (ok) {
          n++
          offset += chunk.length
        }
        return ok
      }
      for (;;) {
        const carryLength = carry?.length ?? 0
        const buf = Buffer.allocUnsafeSlow(carryLength + READ_SIZE)
        if (carry) carry.copy(buf, 0)
        const {bytesRead} = await fh.read(buf, carryLength, READ_SIZE, null)
        this.bytesRead += bytesRead
        this.opts.onBytes?.(bytesRead)
        const data = buf.subarray(0, carryLength + bytesRead)
        let start = 0
        for (let cut = chunker.next(data, carryLength); cut >= 0; cut = chunker.next(data, cut)) {
          if (!matches(data.subarray(start, cut))) return offset
          start = cut
        }
        carry = data.subarray(start)
        if (bytesRead === 0) break
      }
      if (carry && carry.length > 0 && !matches(carry)) return offset
      return n === expected.length ? undefined : offset
    } finally {
      chunker.reset()
      await fh.close()
    }
  }
}
