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

  test('ids must be 32 bytes', () => {
    const m = new IdMap(1)
    expect(() => m.set(Buffer.alloc(31), [1])).toThrow(RangeError)
    expect(() => m.set(Buffer.alloc(33), [1])).toThrow('id must be 32 bytes')
    expect(m.size).toBe(0)
  })
})
