// Restore's read planning: runs of a large file's adjacent chunks, and the few ranged reads that
// cover a batch of small files' blobs in one buffer.
import {describe, expect, it} from 'vitest'

import type {BlobLocation} from '../../src/repo/repository.js'
import {ExtentMap, type Chunk, planRanges, planRuns, planSourcedRuns} from '../../src/restore/plan.js'

const loc = (pack: string, offset: number, storedLength: number, rawLength = storedLength): BlobLocation => ({pack, offset, storedLength, rawLength, type: 0, compression: storedLength === rawLength ? 0 : 1})
const chunk = (l: BlobLocation): Chunk => ({id: Buffer.alloc(32), loc: l})

describe('planRuns', () => {
  it('joins chunks stored back to back in one pack, in file order, up to the run size', () => {
    const runs = planRuns([loc('a', 0, 10), loc('a', 10, 10), loc('a', 20, 10), loc('b', 30, 10), loc('b', 40, 10), loc('a', 30, 5)].map(chunk), 25)
    expect(runs.map((r) => [r.pack, r.offset, r.length, r.chunks.length])).toEqual([
      ['a', 0, 20, 2], // a third chunk would pass 25 bytes
      ['a', 20, 10, 1],
      ['b', 30, 20, 2],
      ['a', 30, 5, 1],
    ])
  })

  it('does not join a gap, a step back, or chunks whose plain size passes the run size', () => {
    const runs = planRuns([loc('a', 0, 10), loc('a', 11, 10), loc('a', 0, 10), loc('a', 10, 5, 30)].map(chunk), 25)
    expect(runs.map((r) => [r.offset, r.length, r.raw])).toEqual([[0, 10, 10], [11, 10, 10], [0, 10, 10], [10, 5, 30]])
  })

  it('gives a chunk larger than the run size a run of its own', () => {
    expect(planRuns([loc('a', 0, 10), loc('a', 10, 100), loc('a', 110, 10)].map(chunk), 25).map((r) => r.length)).toEqual([10, 100, 10])
  })
})

describe('planSourcedRuns', () => {
  it('takes stretches of local chunks out as local runs (up to the run size, plain), the rest planned as before, in file order', () => {
    const local = new Set([1, 2, 3, 5])
    const chunks = [loc('a', 0, 10), loc('a', 10, 10), loc('a', 20, 10), loc('a', 30, 10), loc('a', 40, 10), loc('a', 50, 10), loc('a', 60, 10)].map(chunk)
    const runs = planSourcedRuns(chunks, 25, (c) => local.has(chunks.indexOf(c)))
    expect(runs.map((r) => [r.local ?? false, r.chunks.map((c) => chunks.indexOf(c))])).toEqual([
      [false, [0]],
      [true, [1, 2]], // a third would pass 25 plain bytes
      [true, [3]],
      [false, [4]],
      [true, [5]],
      [false, [6]],
    ])
  })

  it('takes a stretch of 200,000 scattered remote chunks (a large file rewritten over many snapshots) without overflowing the stack', () => {
    const chunks = Array.from({length: 200_001}, (_, i) => chunk(loc('a', (200_001 - i) * 10, 10)))
    const runs = planSourcedRuns(chunks, 25, (c) => c === chunks[200_000])
    expect(runs.length).toBe(200_001)
    expect(runs[200_000]!.local).toBe(true)
  })

  it('is planRuns when nothing is local', () => {
    const chunks = [loc('a', 0, 10), loc('a', 10, 10), loc('b', 0, 10)].map(chunk)
    expect(planSourcedRuns(chunks, 25, () => false)).toEqual(planRuns(chunks, 25))
  })
})

describe('planRanges', () => {
  it('reads blobs of one pack that lie close together in one range, in pack and offset order', () => {
    const blobs = [loc('b', 0, 100), loc('a', 300, 50), loc('a', 0, 100), loc('a', 120, 80)]
    const plan = planRanges(blobs, 32, 1000)
    expect(plan.ranges).toEqual([
      {pack: 'a', offset: 0, length: 200, at: 0}, // the 20-byte gap is read through
      {pack: 'a', offset: 300, length: 50, at: 200}, // a 100-byte gap is not
      {pack: 'b', offset: 0, length: 100, at: 250},
    ])
    expect(plan.at).toEqual([250, 200, 0, 120])
    expect(plan.bytes).toBe(350)
  })

  it('reads through a gap only while every blob still fits the buffer', () => {
    // 10 + 10 + 10 stored bytes fit 35; reading the first 10-byte gap too would leave no room for the last blob.
    const plan = planRanges([loc('a', 0, 10), loc('a', 20, 10), loc('b', 0, 10)], 16, 35)
    expect(plan.ranges.map((r) => [r.pack, r.offset, r.length, r.at])).toEqual([['a', 0, 10, 0], ['a', 20, 10, 10], ['b', 0, 10, 20]])
    const roomy = planRanges([loc('a', 0, 10), loc('a', 20, 10), loc('b', 0, 10)], 16, 40)
    expect(roomy.ranges.map((r) => [r.pack, r.offset, r.length, r.at])).toEqual([['a', 0, 30, 0], ['b', 0, 10, 30]])
    expect(roomy.at).toEqual([0, 20, 30])
  })

  it('places overlapping blobs (a damaged index) inside one range without overrunning the buffer', () => {
    const plan = planRanges([loc('a', 0, 100), loc('a', 50, 100)], 0, 200)
    expect(plan.ranges).toEqual([{pack: 'a', offset: 0, length: 150, at: 0}])
    expect(plan.at).toEqual([0, 50])
  })

  it('refuses blobs that cannot fit the buffer, and plans nothing for no blobs', () => {
    expect(() => planRanges([loc('a', 0, 100), loc('b', 0, 100)], 0, 150)).toThrow(RangeError)
    expect(planRanges([], 0, 10)).toEqual({ranges: [], at: [], bytes: 0})
  })
})

describe('ExtentMap', () => {
  const bytes = (n: number, fill: number) => Buffer.alloc(n, fill)
  const shape = (pieces: {offset: number; parts: Uint8Array[]}[]) => pieces.map((p) => [p.offset, p.parts.map((x) => x.length)])

  it('places a file without extents at its running offset, one piece per run', () => {
    const m = new ExtentMap(undefined)
    expect(shape(m.next([bytes(10, 1), bytes(5, 2)]))).toEqual([[0, [10, 5]]])
    expect(shape(m.next([bytes(7, 3)]))).toEqual([[15, [7]]])
  })

  it('splits runs at extent boundaries, parts across extents included', () => {
    const m = new ExtentMap([{offset: 100, length: 8}, {offset: 1000, length: 4}, {offset: 5000, length: 6}])
    expect(shape(m.next([bytes(6, 1), bytes(4, 2)]))).toEqual([[100, [6, 2]], [1000, [2]]])
    expect(shape(m.next([bytes(8, 3)]))).toEqual([[1002, [2]], [5000, [6]]])
    expect(() => m.next([bytes(1, 4)])).toThrow('more data than')
  })

  it('hands out the bytes themselves, in order', () => {
    const m = new ExtentMap([{offset: 0, length: 3}, {offset: 10, length: 3}])
    const pieces = m.next([Buffer.from('abcdef')])
    expect(pieces.map((p) => [p.offset, Buffer.concat(p.parts).toString()])).toEqual([[0, 'abc'], [10, 'def']])
  })
})
