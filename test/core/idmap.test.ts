import {describe, expect, test} from 'vitest'
import {IdMap} from '../../src/core/idmap.js'
import {seededBytes} from '../helpers/tree.js'

function ids(count: number, seed: number): Buffer[] {
  const bytes = seededBytes(count * 32, seed)
  return Array.from({length: count}, (_, i) => bytes.subarray(i * 32, (i + 1) * 32))
}

function idWithPrefix(prefix: number, tail: number): Buffer {
  const id = Buffer.alloc(32)
  id.writeUInt32LE(prefix, 0)
  id.writeUInt32LE(tail, 28)
  return id
}

describe('IdMap', () => {
  test('agrees with a Map on 200k random ids (insert, overwrite, lookup, misses, order)', () => {
    // Plain comparisons in the loops, one expect per check: 200k expect() calls take seconds.
    const all = ids(200_000, 77)
    const ref = new Map<string, number[]>()
    const order: string[] = []
    const m = new IdMap(3, 16)
    const initialBytes = m.byteSize
    const wrongSetResult: number[] = []
    for (let i = 0; i < all.length; i++) {
      const key = all[i]!.toString('hex')
      const values = [i, i * 7 + 1, 0xffffffff - i]
      if (m.set(all[i]!, values) !== !ref.has(key)) wrongSetResult.push(i)
      if (!ref.has(key)) order.push(key)
      ref.set(key, values)
      // Overwrite every fifth id that was inserted a while ago.
      if (i % 5 === 0 && i > 1000) {
        const old = all[i - 1000]!
        const v = [i, 0, 1]
        if (m.set(old, v) !== false) wrongSetResult.push(-i)
        ref.set(old.toString('hex'), v)
      }
    }
    expect(wrongSetResult).toEqual([])
    expect(m.size).toBe(ref.size)
    expect(m.size).toBe(200_000)
    expect(m.byteSize).toBeGreaterThan(initialBytes)
    const wrongValues: string[] = []
    for (const id of all) {
      const key = id.toString('hex')
      const got = m.get(id)
      const want = ref.get(key)!
      if (!got || !m.has(id) || got.length !== 3 || got.some((v, j) => v !== want[j])) wrongValues.push(key)
    }
    expect(wrongValues).toEqual([])
    let falseHits = 0
    for (const miss of ids(20_000, 78)) {
      if (ref.has(miss.toString('hex'))) continue
      if (m.has(miss) || m.get(miss) !== undefined) falseHits++
    }
    expect(falseHits).toBe(0)
    const seen: string[] = []
    const wrongInForEach: string[] = []
    m.forEach((id, values) => {
      const key = Buffer.from(id).toString('hex')
      seen.push(key)
      const want = ref.get(key)
      if (!want || values.some((v, j) => v !== want[j])) wrongInForEach.push(key)
    })
    expect(wrongInForEach).toEqual([])
    expect(seen.length).toBe(order.length)
    expect(seen.every((k, i) => k === order[i])).toBe(true)
  })

  test('growth keeps every entry reachable; ids colliding in the first four bytes are told apart', () => {
    const m = new IdMap(1, 1)
    const before = m.byteSize
    // The same slot hash for every id: worst case for linear probing.
    const colliding = Array.from({length: 500}, (_, i) => idWithPrefix(0xdeadbeef, i))
    colliding.forEach((id, i) => expect(m.set(id, [i])).toBe(true))
    expect(m.size).toBe(500)
    expect(m.byteSize).toBeGreaterThan(before)
    colliding.forEach((id, i) => expect(m.get(id)![0]).toBe(i))
    expect(m.has(idWithPrefix(0xdeadbeef, 500))).toBe(false)
    expect(m.has(idWithPrefix(0xdeadbeee, 0))).toBe(false)
  })

  test('byteSize: capacity grows by doubling', () => {
    const m = new IdMap(2, 16)
    // 32 slots (16 * 0.7 < 16 -> 32), ceil(32 * 0.7) = 23 entries of 32 + 8 bytes, 32 slots of 4 bytes.
    expect(m.byteSize).toBe(23 * 32 + 23 * 8 + 32 * 4)
    for (let i = 0; i < 22; i++) m.set(idWithPrefix(i, 0), [i, i])
    expect(m.byteSize).toBe(23 * 32 + 23 * 8 + 32 * 4)
    m.set(idWithPrefix(22, 0), [22, 22])
    expect(m.byteSize).toBe(45 * 32 + 45 * 8 + 64 * 4)
    for (let i = 0; i < 23; i++) expect(Array.from(m.get(idWithPrefix(i, 0))!)).toEqual([i, i])
  })

  test('get/set/has/overwrite on a small map', () => {
    const m = new IdMap(2)
    const a = idWithPrefix(1, 1)
    const b = idWithPrefix(2, 2)
    expect(m.size).toBe(0)
    expect(m.has(a)).toBe(false)
    expect(m.get(a)).toBeUndefined()
    expect(m.set(a, [10, 20])).toBe(true)
    expect(m.set(b, [30])).toBe(true)
    expect(Array.from(m.get(a)!)).toEqual([10, 20])
    // Missing values are stored as 0.
    expect(Array.from(m.get(b)!)).toEqual([30, 0])
    expect(m.set(a, [11, 21])).toBe(false)
    expect(Array.from(m.get(a)!)).toEqual([11, 21])
    expect(m.size).toBe(2)
    // Values are u32: wrapped, not clamped.
    m.set(b, [-1, 2 ** 32 + 5])
    expect(Array.from(m.get(b)!)).toEqual([0xffffffff, 5])
  })

  test('keys are copied: mutating the caller\'s id afterwards changes nothing', () => {
    const m = new IdMap(1)
    const id = idWithPrefix(5, 5)
    m.set(id, [1])
    const copy = Buffer.from(id)
    id[31] = 0xaa
    expect(m.has(id)).toBe(false)
    expect(m.get(copy)![0]).toBe(1)
  })

  test('forEach visits in insertion order, overwrites keep their place', () => {
    const m = new IdMap(1)
    const keys = [9, 3, 7, 1, 5].map((n) => idWithPrefix(n * 0x01010101, n))
    keys.forEach((k, i) => m.set(k, [i]))
    m.set(keys[1]!, [100])
    const visited: [string, number][] = []
    m.forEach((id, v) => visited.push([Buffer.from(id).toString('hex'), v[0]!]))
    expect(visited).toEqual([
      [keys[0]!.toString('hex'), 0],
      [keys[1]!.toString('hex'), 100],
      [keys[2]!.toString('hex'), 2],
      [keys[3]!.toString('hex'), 3],
      [keys[4]!.toString('hex'), 4],
    ])
  })

  test('width 0 is a set', () => {
    const m = new IdMap(0, 4)
    const a = idWithPrefix(1, 0)
    expect(m.set(a, [])).toBe(true)
    expect(m.set(a, [])).toBe(false)
    expect(m.has(a)).toBe(true)
    expect(m.get(a)!.length).toBe(0)
    expect(m.size).toBe(1)
  })

  test('forEachAt sees what forEach sees, in the same order, after growing', () => {
    const m = new IdMap(3, 1)
    for (const [i, id] of ids(5000, 9).entries()) m.set(id, [i, i * 2, 0xffff_ffff - i])
    const viaViews: string[] = []
    m.forEach((id, v) => viaViews.push(`${Buffer.from(id).toString('hex')} ${[...v].join(' ')}`))
    const viaOffsets: string[] = []
    m.forEachAt((keys, k, values, at) => viaOffsets.push(`${Buffer.from(keys.subarray(k, k + 32)).toString('hex')} ${[...values.subarray(at, at + 3)].join(' ')}`))
    expect(viaOffsets).toEqual(viaViews)
    expect(viaOffsets.length).toBe(5000)
  })

  test('ids must be 32 bytes', () => {
    const m = new IdMap(1)
    expect(() => m.set(Buffer.alloc(31), [1])).toThrow(RangeError)
    expect(() => m.set(Buffer.alloc(33), [1])).toThrow('id must be 32 bytes')
    expect(m.size).toBe(0)
  })
})

describe('IdMap.setIfAbsent', () => {
  test('inserts new ids and leaves present ones alone; agrees with has-then-set on 50k ids with repeats', () => {
    const all = ids(40_000, 91)
    const fast = new IdMap(2, 16)
    const slow = new IdMap(2, 16)
    const wrong: number[] = []
    for (let i = 0; i < 50_000; i++) {
      // Every fifth step takes an earlier id (mostly one inserted already), with other values (which must not win).
      const id = i % 5 === 4 ? all[(i * 7919) % Math.min(i, all.length)]! : all[i - Math.floor(i / 5)]!
      const values = [i, 0xffffffff - i]
      const isNew = !slow.has(id)
      if (isNew) slow.set(id, values)
      if (fast.setIfAbsent(id, values) !== isNew) wrong.push(i)
    }
    expect(wrong).toEqual([])
    expect(fast.size).toBe(slow.size)
    expect(fast.byteSize).toBe(slow.byteSize)
    const a: string[] = []
    const b: string[] = []
    fast.forEach((id, v) => a.push(`${Buffer.from(id).toString('hex')}:${v.join(',')}`))
    slow.forEach((id, v) => b.push(`${Buffer.from(id).toString('hex')}:${v.join(',')}`))
    expect(a).toEqual(b)
  })

  test('reads the id at an offset of a larger buffer, and copies it', () => {
    const m = new IdMap(1)
    const buf = Buffer.concat([Buffer.from([1, 2, 3]), idWithPrefix(7, 7), idWithPrefix(8, 8), Buffer.from([4])])
    expect(m.setIfAbsent(buf, [70], 3)).toBe(true)
    expect(m.setIfAbsent(buf, [80], 35)).toBe(true)
    expect(m.setIfAbsent(buf, [71], 3)).toBe(false)
    expect(m.get(idWithPrefix(7, 7))![0]).toBe(70)
    expect(m.get(idWithPrefix(8, 8))![0]).toBe(80)
    buf.fill(0)
    expect(m.get(idWithPrefix(7, 7))![0]).toBe(70)
    expect(m.size).toBe(2)
    // Values: missing ones are 0, all are stored as u32; a Uint32Array is taken as it is.
    expect(m.setIfAbsent(idWithPrefix(9, 9), [-1])).toBe(true)
    expect(m.get(idWithPrefix(9, 9))![0]).toBe(0xffffffff)
    const w = new IdMap(3)
    w.setIfAbsent(idWithPrefix(1, 1), Uint32Array.of(5, 6, 7, 8))
    w.setIfAbsent(idWithPrefix(2, 2), [5])
    expect(Array.from(w.get(idWithPrefix(1, 1))!)).toEqual([5, 6, 7])
    expect(Array.from(w.get(idWithPrefix(2, 2))!)).toEqual([5, 0, 0])
  })

  test('an id that does not fit at the offset is refused', () => {
    const m = new IdMap(1)
    const buf = Buffer.alloc(40)
    expect(() => m.setIfAbsent(Buffer.alloc(31), [1])).toThrow(RangeError)
    expect(() => m.setIfAbsent(buf, [1], 9)).toThrow('id must be 32 bytes')
    expect(() => m.setIfAbsent(buf, [1], -1)).toThrow(RangeError)
    expect(() => m.setIfAbsent(buf, [1], Number.NaN)).toThrow(RangeError)
    expect(m.setIfAbsent(buf, [1], 8)).toBe(true)
    expect(m.size).toBe(1)
  })

  test('grows like set, also when the table is full of ids colliding in their first four bytes', () => {
    const m = new IdMap(1, 1)
    const colliding = Array.from({length: 300}, (_, i) => idWithPrefix(0xdeadbeef, i))
    colliding.forEach((id, i) => expect(m.setIfAbsent(id, [i])).toBe(true))
    colliding.forEach((id) => expect(m.setIfAbsent(id, [999])).toBe(false))
    colliding.forEach((id, i) => expect(m.get(id)![0]).toBe(i))
    expect(m.size).toBe(300)
    expect(m.byteSize).toBe(new IdMap(1, 300).byteSize)
  })

  test('a present id at the growth threshold does not grow the map', () => {
    const m = new IdMap(2, 16)
    for (let i = 0; i < 22; i++) m.set(idWithPrefix(i, 0), [i, i])
    const full = m.byteSize
    expect(m.setIfAbsent(idWithPrefix(3, 0), [0, 0])).toBe(false)
    expect(m.byteSize).toBe(full)
    expect(m.setIfAbsent(idWithPrefix(22, 0), [22, 22])).toBe(true)
    expect(m.byteSize).toBe(45 * 32 + 45 * 8 + 64 * 4)
  })
})

describe('IdMap.reserve', () => {
  test('sizes the map once for what is coming: no growth up to there, the same size growth would reach', () => {
    const all = ids(10_000, 5)
    const grown = new IdMap(5)
    for (const id of all) grown.set(id, [1])
    const reserved = new IdMap(5)
    reserved.reserve(all.length)
    const before = reserved.byteSize
    for (const id of all) reserved.setIfAbsent(id, [1])
    expect(reserved.byteSize).toBe(before)
    expect(reserved.byteSize).toBe(grown.byteSize)
    expect(reserved.byteSize).toBe(new IdMap(5, all.length).byteSize)
    // Reserving less than the map holds changes nothing.
    reserved.reserve(0)
    expect(reserved.byteSize).toBe(before)
  })

  test('keeps the entries, their order and their values; never shrinks', () => {
    const m = new IdMap(2, 16)
    const keys = Array.from({length: 20}, (_, i) => idWithPrefix(i * 0x01000193, i))
    keys.forEach((k, i) => m.set(k, [i, i * 2]))
    const small = m.byteSize
    m.reserve(5)
    expect(m.byteSize).toBe(small)
    m.reserve(1000)
    expect(m.byteSize).toBe(new IdMap(2, 1000).byteSize)
    const seen: number[] = []
    m.forEach((id, v) => {
      expect(Buffer.from(id).equals(keys[v[0]!]!)).toBe(true)
      expect(v[1]).toBe(v[0]! * 2)
      seen.push(v[0]!)
    })
    expect(seen).toEqual(keys.map((_, i) => i))
    keys.forEach((k, i) => expect(m.get(k)![0]).toBe(i))
    expect(m.has(idWithPrefix(999, 999))).toBe(false)
  })
})
