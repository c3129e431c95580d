// A Backend wrapper that injects faults on chosen operations: an OS error (EIO, ENOSPC), a
// short write (part of the bytes reach the object, then ENOSPC, as a filling disk does), or a
// crash (this and every later change fail: the process "died" and nothing after it happens).
// Changes are counted (put, pack commit, delete; locks excepted, they coordinate live processes
// and are not part of what a crash can leave), so a test can first count a command's changes
// and then fault each in turn.
import type {Backend, BackendCapabilities, ByteRange, ObjectInfo, ObjectKind, ObjectWriter, TempObject} from '../../src/store/backend.js'

export class Crash extends Error {}

const CHANGES: readonly FaultOp[] = ['put', 'commit', 'delete']

export type FaultKind = 'EIO' | 'ENOSPC' | 'short' | 'crash'
/** Where a change happens: a whole-object put, a write into a pack being streamed, a pack's commit, a delete. */
export type FaultOp = 'put' | 'write' | 'commit' | 'delete'

export interface FaultRule {
  fault: FaultKind
  /** Fault the nth matching operation (1-based); a crash also fails every change after it. */
  nth: number
  /** Only these operations (default: the changes, put, commit and delete; a pack's writes only when named). */
  ops?: readonly FaultOp[]
  /** Only objects of this kind. */
  kind?: ObjectKind
}

/** An Error shaped like the one Node's fs throws, so the code under test classifies it as it would a real one. */
export function osError(code: 'EIO' | 'ENOSPC', syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${syscall}`)
  err.code = code
  err.errno = code === 'EIO' ? -5 : -28
  err.syscall = syscall
  return err
}

export class FaultyBackend implements Backend {
  /** Changes seen (matching or not), locks excepted. */
  changes = 0
  /** Operations that matched the rule so far. */
  matched = 0
  /** Faults actually injected. */
  injected = 0
  private dead = false

  constructor(readonly inner: Backend, private readonly rule?: FaultRule) {}

  get location(): string {
    return this.inner.location
  }

  get capabilities(): BackendCapabilities {
    return this.inner.capabilities
  }

  isEmpty(): Promise<boolean> {
    return this.inner.isEmpty()
  }

  initLayout(): Promise<void> {
    return this.inner.initLayout()
  }

  /** Counts the change; throws for a fault that fails it outright; returns 'short' for a short write. */
  private change(op: FaultOp, kind: ObjectKind): 'short' | undefined {
    if (kind === 'locks') return undefined
    if (op !== 'write') this.changes++
    if (this.dead) throw new Crash(`crashed earlier; ${op} of ${kind} after it`)
    const r = this.rule
    if (!r || !(r.ops ?? CHANGES).includes(op) || (r.kind && r.kind !== kind)) return undefined
    if (++this.matched !== r.nth) return undefined
    this.injected++
    switch (r.fault) {
      case 'crash':
        this.dead = true
        throw new Crash(`crashed at ${op} of ${kind} (change ${this.changes})`)
      case 'short':
        return 'short'
      default:
        throw osError(r.fault, op === 'delete' ? 'unlink' : op === 'commit' ? 'fsync' : 'write')
    }
  }

  async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.change('put', kind) === 'short') {
      // The object never appears (put is atomic); what a short write can do is leave its temp file.
      throw osError('ENOSPC', 'write')
    }
    return this.inner.put(kind, name, data)
  }

  async create(kind: ObjectKind, name: string): Promise<ObjectWriter> {
    const w = await this.inner.create(kind, name)
    return {
      write: async (data, position) => {
        if (this.change('write', kind) === 'short') {
          await w.write(data.subarray(0, data.byteLength >> 1), position)
          throw osError('ENOSPC', 'write')
        }
        return w.write(data, position)
      },
      commit: async () => {
        if (this.change('commit', kind) === 'short') throw osError('ENOSPC', 'fsync')
        return w.commit()
      },
      abort: () => w.abort(),
    }
  }

  get(kind: ObjectKind, name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    return this.inner.get(kind, name, range, into)
  }

  stat(kind: ObjectKind, name: string): Promise<ObjectInfo> {
    return this.inner.stat(kind, name)
  }

  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    return this.inner.list(kind)
  }

  async delete(kind: ObjectKind, name: string): Promise<void> {
    if (this.change('delete', kind) === 'short') throw osError('EIO', 'unlink')
    return this.inner.delete(kind, name)
  }

  async deleteMany(kind: ObjectKind, names: readonly string[]): Promise<void> {
    // One change per object, in order, so a crash can fall between any two.
    for (const name of names) await this.delete(kind, name)
  }

  temporaries(): AsyncIterable<TempObject> {
    return this.inner.temporaries()
  }

  removeTemporary(id: string): Promise<void> {
    return this.inner.removeTemporary(id)
  }
}
