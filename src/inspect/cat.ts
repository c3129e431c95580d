// ckpt cat: one file's bytes, in order, each chunk checked against its BLAKE3 id as it is read
// (readBlob never returns bytes that fail the check). A few chunks are read ahead, so memory is
// bounded by READ_AHEAD chunks whatever the file's size. A sparse file's holes read as zeros.
import {IntegrityError, UsageError} from '../core/errors.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import type {TreeNode} from '../snapshot/tree.js'
import type {BlobReader, Located} from './trees.js'
import {escapeName} from './names.js'

/** Chunks read ahead of the one being written. */
const READ_AHEAD = 4
/** Holes are written in zero blocks of this size at most. */
const ZERO_BLOCK = 1 << 20

/** Refuse what has no content to print: a directory, a link, a device. */
export function checkCattable(at: Located): void {
  const n = at.node
  const shown = escapeName(at.path)
  if (n.type === 'dir') throw new UsageError(`${shown} is a directory (ckpt ls lists it)`)
  if (n.type === 'symlink') throw new UsageError(`${shown} is a symbolic link to ${escapeName(n.target!)}`)
  if (n.type !== 'file') throw new UsageError(`${shown} is a ${n.type}, which has no content`)
}

/** The chunks of a file, read ahead a few at a time, each verified. */
async function* chunkBytes(repo: BlobReader, chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  const pending: Promise<Buffer>[] = []
  let next = 0
  const fill = () => {
    while (pending.length < READ_AHEAD && next < chunks.length) {
      const p = repo.readBlob(chunks[next++]!, BlobType.data)
      p.catch(() => undefined) // awaited in order below; never an unhandled rejection meanwhile
      pending.push(p)
    }
  }
  fill()
  while (pending.length) {
    const bytes = await pending.shift()!
    fill()
    yield bytes
  }
}

/**
 * The bytes of file `node`, in order. A sparse file's data extents place the chunks' bytes in the
 * file; the rest is zeros. The total must come out at the recorded size: a tree that says
 * otherwise is damaged (IntegrityError), and the stream stops there.
 */
export async function* fileContents(repo: BlobReader, node: TreeNode): AsyncGenerator<Buffer> {
  const chunks = node.chunks ?? []
  const layout = node.extents ?? [{offset: 0, length: node.size}]
  const damaged = (what: string) => new IntegrityError(`file of ${node.size} bytes (chunks ${chunks.slice(0, 1).map(toHex).join('')}...): ${what}`, {size: node.size})
  const data = chunkBytes(repo, chunks)
  let held: Buffer = Buffer.alloc(0)
  let pos = 0
  for (const r of layout) {
    if (r.offset < pos || r.offset + r.length > node.size) throw damaged('data regions overlap or lie outside the file')
    yield* zeros(r.offset - pos)
    let left = r.length
    while (left > 0) {
      if (held.length === 0) {
        const step = await data.next()
        if (step.done) throw damaged(`its chunks hold fewer bytes than its size`)
        held = step.value
        continue
      }
      const take = Math.min(left, held.length)
      yield held.subarray(0, take)
      held = held.subarray(take)
      left -= take
    }
    pos = r.offset + r.length
  }
  if (held.length > 0 || !(await data.next()).done) throw damaged('its chunks hold more bytes than its size')
  yield* zeros(node.size - pos)
}

function* zeros(n: number): Generator<Buffer> {
  if (n <= 0) return
  const block = Buffer.alloc(Math.min(n, ZERO_BLOCK))
  while (n > 0) {
    const k = Math.min(n, block.length)
    yield block.subarray(0, k)
    n -= k
  }
}
