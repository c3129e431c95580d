import {randomBytes} from 'node:crypto'

import {describe, expect, it} from 'vitest'

import {packBucket, parseSubset, selectPacks} from '../../src/verify/subset.js'

const names = Array.from({length: 200}, () => randomBytes(32).toString('hex'))

describe('parseSubset', () => {
  it.each([
    ['1/3', {kind: 'slice', n: 1, of: 3}],
    ['7/7', {kind: 'slice', n: 7, of: 7}],
    [' 2/5 ', {kind: 'slice', n: 2, of: 5}],
    ['5%', {kind: 'percent', percent: 5}],
    ['0.5%', {kind: 'percent', percent: 0.5}],
    ['100%', {kind: 'percent', percent: 100}],
  ])('%s', (text, want) => {
    expect(parseSubset(text)).toEqual(want)
  })

  it.each(['0/3', '4/3', '1/0', '3', '1/3/5', '0%', '101%', '-5%', 'a/b', ''])('refuses %j', (text) => {
    expect(() => parseSubset(text)).toThrow(expect.objectContaining({code: 'USAGE'}))
  })
})

describe('selectPacks', () => {
  it('n/t slices partition the packs, for any t', () => {
    for (const t of [1, 2, 3, 7, 31, 256, 1000]) {
      const slices = Array.from({length: t}, (_, i) => selectPacks(names, {kind: 'slice', n: i + 1, of: t}))
      expect(slices.flat().sort()).toEqual([...names].sort())
    }
  })

  it('a pack stays in its slice when other packs come and go', () => {
    const before = selectPacks(names.slice(0, 150), {kind: 'slice', n: 2, of: 5})
    const after = selectPacks(names.slice(50), {kind: 'slice', n: 2, of: 5})
    expect(before.filter((n) => names.slice(50).includes(n))).toEqual(after.filter((n) => names.slice(0, 150).includes(n)))
  })

  it('slices are even for random names', () => {
    const sizes = Array.from({length: 4}, (_, i) => selectPacks(names, {kind: 'slice', n: i + 1, of: 4}).length)
    for (const s of sizes) expect(s).toBeGreaterThan(25)
    expect(packBucket('00000005' + '0'.repeat(56), 4)).toBe(1)
  })

  it('N% picks ceil(N% of the packs), at least one, without repeats', () => {
    let seed = 7
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647)
    expect(selectPacks(names, {kind: 'percent', percent: 10}, random)).toHaveLength(20)
    expect(new Set(selectPacks(names, {kind: 'percent', percent: 55}, random)).size).toBe(110)
    expect(selectPacks(names.slice(0, 3), {kind: 'percent', percent: 1}, random)).toHaveLength(1)
    expect(selectPacks([], {kind: 'percent', percent: 50}, random)).toEqual([])
    expect(selectPacks(names, {kind: 'percent', percent: 100}, random)).toEqual([...names].sort())
  })

  it('all and none', () => {
    expect(selectPacks(names, {kind: 'all'})).toEqual([...names].sort())
    expect(selectPacks(names, {kind: 'none'})).toEqual([])
  })
})
