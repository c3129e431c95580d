// The pure tar pieces ckpt does itself: pax records byte for byte, pax times, archive paths,
// GNU sparse 1.0 maps.
import {describe, expect, it} from 'vitest'

import {BadArchiveError} from '../../src/core/errors.js'
import {archivePath, checkSparseMap, decodePaxRecords, encodePaxRecords, encodeSparseMap1, formatPaxTime, parsePaxTime, parseSparseMap1} from '../../src/snapshot/tarformat.js'

describe('pax records', () => {
  it('round-trip keys and values as bytes, binary and non-UTF-8 included, lengths counting themselves', () => {
    const value = Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x20])
    const name = Buffer.from('caf\xe9', 'latin1')
    const enc = encodePaxRecords([['path', name], [Buffer.from('SCHILY.xattr.user.b'), value], ['x', 'y'.repeat(95)]])
    const dec = decodePaxRecords(enc)
    expect(Buffer.from(dec.path!, 'latin1')).toEqual(name)
    expect(Buffer.from(dec['SCHILY.xattr.user.b']!, 'latin1')).toEqual(value)
    // 99 bytes without the length, 102 with it: a length whose own digits change it.
    expect(enc.toString('latin1')).toContain(`102 x=${'y'.repeat(95)}\n`)
  })

  it('decode what GNU tar writes, and stop at the NUL padding', () => {
    const raw = Buffer.concat([Buffer.from('30 mtime=1796581937.744878179\n15 path=./caf\xe9\n', 'latin1'), Buffer.alloc(20)])
    expect(decodePaxRecords(raw)).toEqual({mtime: '1796581937.744878179', path: './caf\xe9'})
  })

  it.each([
    ['a length past the end', '99 path=x\n'],
    ['a length too short', '3 path=x\n'],
    ['no key', '9 =value\n'],
    ['not a number', 'ab path=x\n'],
    ['no newline at the end', '10 path=xy!'],
  ])('refuse %s', (_what, text) => {
    expect(() => decodePaxRecords(Buffer.from(text, 'latin1'))).toThrow(BadArchiveError)
  })

  it('an empty value deletes a key', () => {
    expect(decodePaxRecords(Buffer.from('10 uid=12\n7 uid=\n', 'latin1'))).toEqual({})
  })
})

describe('pax times', () => {
  it.each([
    ['1700000000', 1_700_000_000_000_000_000n],
    ['1700000000.5', 1_700_000_000_500_000_000n],
    ['1700000000.123456789123', 1_700_000_000_123_456_789n],
    ['-1.25', -1_250_000_000n],
    ['0', 0n],
  ])('%s is %d ns', (text, ns) => {
    expect(parsePaxTime(text)).toBe(ns)
  })

  it.each(['', 'abc', '1e9', '1.', '--1'])('refuse %j', (text) => {
    expect(parsePaxTime(text)).toBeUndefined()
  })

  it.each([1_700_000_000_123_456_789n, 1_700_000_000_000_000_000n, -1_250_000_000n, 5n])('format %d and read it back', (ns) => {
    expect(parsePaxTime(formatPaxTime(ns))).toBe(ns)
  })
})

describe('archive paths', () => {
  const parts = (p: string) => archivePath(Buffer.from(p)).parts.map((x) => x.toString())
  it.each([
    ['a/b/c', ['a', 'b', 'c']],
    ['./a//b/./c/', ['a', 'b', 'c']],
    ['/etc/passwd', ['etc', 'passwd']],
    ['.', []],
    ['./', []],
    ['a..b/..c', ['a..b', '..c']],
  ])('%j is %j', (p, want) => {
    expect(parts(p)).toEqual(want)
  })

  it('say when a leading "/" was removed', () => {
    expect(archivePath(Buffer.from('//x')).absolute).toBe(true)
    expect(archivePath(Buffer.from('x')).absolute).toBe(false)
  })

  it.each([['..'], ['a/../b'], ['a/..'], ['/..'], ['a\0b'], ['x'.repeat(256)], ['a/'.repeat(2048) + 'b']])('refuse %j', (p) => {
    expect(() => archivePath(Buffer.from(p))).toThrow(BadArchiveError)
  })
})

describe('GNU sparse 1.0 maps', () => {
  it('round-trip, padded to a block, and wait for more bytes when cut', () => {
    const regions = [{offset: 0, length: 5}, {offset: 8_388_608, length: 6}, {offset: 33_554_432, length: 0}]
    const map = encodeSparseMap1(regions)
    expect(map.length).toBe(512)
    expect(parseSparseMap1(map)).toEqual({regions, mapBytes: 512})
    expect(parseSparseMap1(map.subarray(0, 7))).toBeUndefined()
    expect(checkSparseMap(regions, 33_554_432)).toBe(11)
  })

  it('refuse regions out of order, overlapping or past the file', () => {
    expect(() => checkSparseMap([{offset: 10, length: 5}, {offset: 12, length: 1}], 100)).toThrow(BadArchiveError)
    expect(() => checkSparseMap([{offset: 90, length: 20}], 100)).toThrow(BadArchiveError)
    expect(() => parseSparseMap1(Buffer.from('99999999999\n'))).toThrow(BadArchiveError)
    expect(() => parseSparseMap1(Buffer.from('1\nx\n'))).toThrow(BadArchiveError)
  })
})
