// A compact hash map from 32-byte ids to a fixed number of u32 values, for the index and for
// garbage collection's mark set. Keys live in one byte slab and values in one Uint32Array:
// about 32 + 4*width bytes per entry plus load-factor slack, where a Map<string, object>
// costs several hundred bytes per entry. Ids are BLAKE3 digests, so their first four bytes
// are already a uniform hash.
import {ID_BYTES} from './hash.js'

const EMPTY = 0xffffffff

export class IdMap {
  /** Number of u32 values stored per id. */
  readonly width: number
  private keys: Uint8Array
  private values: Uint32Array
  /** Slot -> entry number, EMPTY where free. Entries are appended, so iteration order is insertion order. */
  private slots: Uint32Array
  private count = 0

  constructor(width: number, initialCapacity = 1024) {
    this.width = width
    let slots = 16
    while (slots * 0.7 < initialCapacity) slots *= 2
    this.slots = new Uint32Array(slots).fill(EMPTY)
    const entries = Math.ceil(slots * 0.7)
    this.keys = new Uint8Array(entries * ID_BYTES)
    this.values = new Uint32Array(entries * width)
  }

  get size(): number {
    return this.count
  }

  /** Bytes held by the map's arrays (reported by prune and the benchmarks). */
  get byteSize(): number {
    return this.keys.byteLength + this.values.byteLength + this.slots.byteLength
  }

  has(id: Uint8Array): boolean {
    return this.find(id) !== EMPTY
  }

  /** The values stored for `id` (a view: copy before the next insert), or undefined. */
  get(id: Uint8Array): Uint32Array | undefined {
    const entry = this.find(id)
    if (entry === EMPTY) return undefined
    return this.values.subarray(entry * this.width, (entry + 1) * this.width)
  }

  /** Insert or overwrite. Returns true when the id was new. */
  set(id: Uint8Array, values: ArrayLike<number>): boolean {
    if (id.length !== ID_BYTES) throw new RangeError('id must be 32 bytes')
    let entry = this.find(id)
    const isNew = entry === EMPTY
    if (isNew) {
      if ((this.count + 1) > this.slots.length * 0.7) this.grow()
      entry = this.count++
      this.keys.set(id, entry * ID_BYTES)
      this.place(entry)
    }
    const base = entry * this.width
    for (let i = 0; i < this.width; i++) this.values[base + i] = (values[i] ?? 0) >>> 0
    return isNew
  }

  /** Visit every entry in insertion order. The views are only valid during the call. */
  forEach(fn: (id: Uint8Array, values: Uint32Array) => void): void {
    for (let e = 0; e < this.count; e++) {
      fn(this.keys.subarray(e * ID_BYTES, (e + 1) * ID_BYTES), this.values.subarray(e * this.width, (e + 1) * this.width))
    }
  }

  private slotOf(id: Uint8Array): number {
    return ((id[0]! | (id[1]! << 8) | (id[2]! << 16) | (id[3]! << 24)) >>> 0) & (this.slots.length - 1)
  }

  private find(id: Uint8Array): number {
    const mask = this.slots.length - 1
    for (let s = this.slotOf(id); ; s = (s + 1) & mask) {
      const entry = this.slots[s]!
      if (entry === EMPTY) return EMPTY
      if (this.keyEquals(entry, id)) return entry
    }
  }

  private keyEquals(entry: number, id: Uint8Array): boolean {
    const base = entry * ID_BYTES
    const keys = this.keys
    for (let i = 0; i < ID_BYTES; i++) if (keys[base + i] !== id[i]) return false
    return true
  }

  private place(entry: number): void {
    const mask = this.slots.length - 1
    const id = this.keys.subarray(entry * ID_BYTES, (entry + 1) * ID_BYTES)
    let s = this.slotOf(id)
    while (this.slots[s] !== EMPTY) s = (s + 1) & mask
    this.slots[s] = entry
  }

  private grow(): void {
    const slots = this.slots.length * 2
    const entries = Math.ceil(slots * 0.7)
    const keys = new Uint8Array(entries * ID_BYTES)
    keys.set(this.keys.subarray(0, this.count * ID_BYTES))
    const values = new Uint32Array(entries * this.width)
    values.set(this.values.subarray(0, this.count * this.width))
    this.keys = keys
    this.values = values
    this.slots = new Uint32Array(slots).fill(EMPTY)
    for (let e = 0; e < this.count; e++) this.place(e)
  }
}
