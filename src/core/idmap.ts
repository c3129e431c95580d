// A compact hash map from 32-byte ids to a fixed number of u32 values, for the index and for
// garbage collection's mark set. Keys live in one byte slab and values in one Uint32Array:
// about 32 + 4*width bytes per entry plus load-factor slack, where a Map<string, object>
// costs several hundred bytes per entry. Ids are BLAKE3 digests, so their first four bytes
// are already a uniform hash.
import {ID_BYTES} from './hash.js'

const EMPTY = 0xffffffff
/** Maximum load factor of the slot table. */
const LOAD = 0.7

/** The smallest slot table (a power of two, at least 16) that holds `entries` at most LOAD full. */
function slotsFor(entries: number): number {
  let slots = 16
  while (slots * LOAD < entries) slots *= 2
  return slots
}

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
    const slots = slotsFor(initialCapacity)
    this.slots = new Uint32Array(slots).fill(EMPTY)
    const entries = Math.ceil(slots * LOAD)
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
    const s = this.probe(id, 0)
    let entry = this.slots[s]!
    const isNew = entry === EMPTY
    if (isNew) entry = this.insert(id, 0, s)
    this.store(entry, values)
    return isNew
  }

  /**
   * Insert unless the id is present already (its values are then left alone): one probe where
   * `has` then `set` take two. The id is the 32 bytes of `id` at `idOffset`, so a caller
   * decoding ids out of a larger buffer needs no view per id. Returns true when the id was new.
   */
  setIfAbsent(id: Uint8Array, values: ArrayLike<number>, idOffset = 0): boolean {
    if (!(idOffset >= 0 && idOffset + ID_BYTES <= id.length)) throw new RangeError('id must be 32 bytes')
    const s = this.probe(id, idOffset)
    if (this.slots[s] !== EMPTY) return false
    this.store(this.insert(id, idOffset, s), values)
    return true
  }

  /**
   * Make room for `entries` ids in all without growing again, so a caller that knows how many
   * are coming (the index loader) allocates once instead of doubling its way there. Never shrinks.
   */
  reserve(entries: number): void {
    const slots = slotsFor(entries)
    if (slots > this.slots.length) this.resize(slots)
  }

  /** Visit every entry in insertion order. The views are only valid during the call. */
  forEach(fn: (id: Uint8Array, values: Uint32Array) => void): void {
    for (let e = 0; e < this.count; e++) {
      fn(this.keys.subarray(e * ID_BYTES, (e + 1) * ID_BYTES), this.values.subarray(e * this.width, (e + 1) * this.width))
    }
  }

  /**
   * Visit every entry in insertion order with no view made per entry: `fn` gets the backing
   * arrays and where the entry starts in each (the id is keys[keyAt .. keyAt + 32], the values
   * values[valueAt .. valueAt + width]). Valid during the call only; do not insert meanwhile.
   */
  forEachAt(fn: (keys: Uint8Array, keyAt: number, values: Uint32Array, valueAt: number) => void): void {
    const {keys, values, width} = this
    for (let e = 0; e < this.count; e++) fn(keys, e * ID_BYTES, values, e * width)
  }

  private slotOf(id: Uint8Array, at: number): number {
    return ((id[at]! | (id[at + 1]! << 8) | (id[at + 2]! << 16) | (id[at + 3]! << 24)) >>> 0) & (this.slots.length - 1)
  }

  private find(id: Uint8Array): number {
    return this.slots[this.probe(id, 0)]!
  }

  /** The slot holding the id at `id[at..at+32]`, or the free slot where it would go. */
  private probe(id: Uint8Array, at: number): number {
    const mask = this.slots.length - 1
    const slots = this.slots
    for (let s = this.slotOf(id, at); ; s = (s + 1) & mask) {
      const entry = slots[s]!
      if (entry === EMPTY || this.keyEquals(entry, id, at)) return s
    }
  }

  private keyEquals(entry: number, id: Uint8Array, at: number): boolean {
    const base = entry * ID_BYTES
    const keys = this.keys
    for (let i = 0; i < ID_BYTES; i++) if (keys[base + i] !== id[at + i]) return false
    return true
  }

  /** Append the id as a new entry in free slot `s` (found by probe); returns the entry number. */
  private insert(id: Uint8Array, at: number, s: number): number {
    if ((this.count + 1) > this.slots.length * LOAD) {
      this.resize(this.slots.length * 2)
      s = this.probe(id, at)
    }
    const entry = this.count++
    const keys = this.keys
    const base = entry * ID_BYTES
    for (let i = 0; i < ID_BYTES; i++) keys[base + i] = id[at + i]!
    this.slots[s] = entry
    return entry
  }

  private store(entry: number, values: ArrayLike<number>): void {
    const base = entry * this.width
    for (let i = 0; i < this.width; i++) this.values[base + i] = (values[i] ?? 0) >>> 0
  }

  /** Put an existing entry into the slot table (after a resize). */
  private place(entry: number): void {
    const mask = this.slots.length - 1
    const slots = this.slots
    let s = this.slotOf(this.keys, entry * ID_BYTES)
    while (slots[s] !== EMPTY) s = (s + 1) & mask
    slots[s] = entry
  }

  private resize(slots: number): void {
    const entries = Math.ceil(slots * LOAD)
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
