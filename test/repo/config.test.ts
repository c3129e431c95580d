import {describe, expect, test} from 'vitest'
import {DEFAULT_CHUNKER} from '../../src/core/chunker.js'
import {IntegrityError, UnsupportedFormatError, UsageError} from '../../src/core/errors.js'
import {decodeConfig, DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL, encodeConfig, FORMAT_VERSION, newConfig, type RepoConfig} from '../../src/repo/config.js'
import {thrownBy, withJsonField} from '../helpers/hostile.js'

const NOW = Date.parse('2024-05-06T07:08:09.123Z')
const MiB = 1024 * 1024

function valid(): RepoConfig {
  return newConfig({now: NOW})
}

/** Encode a config with one field replaced (a path of keys), as a hostile or damaged repository might. */
function withField(path: string[], value: unknown): Buffer {
  return withJsonField(encodeConfig(valid()), path, value)
}

function rejects(bytes: Buffer, Class: typeof IntegrityError | typeof UnsupportedFormatError, message: string): void {
  expect(thrownBy<Error>(() => decodeConfig(bytes), Class).message).toBe(message)
}

describe('newConfig', () => {
  test('defaults', () => {
    const c = valid()
    expect(c).toEqual({
      version: 2,
      id: c.id,
      created: '2024-05-06T07:08:09.123Z',
      chunker: {minSize: 32768, avgSize: 131072, maxSize: 524288, normalization: 2, seed: 0x636b7074},
      compression: {algorithm: 'zstd', level: 3},
      packSize: 16 * MiB,
    })
    expect(FORMAT_VERSION).toBe(2)
    expect(DEFAULT_ZSTD_LEVEL).toBe(3)
    expect(DEFAULT_PACK_SIZE).toBe(16 * MiB)
    expect(c.id).toMatch(/^[0-9a-f]{32}$/)
    expect(newConfig({now: NOW}).id).not.toBe(c.id)
    expect(c.chunker).not.toBe(DEFAULT_CHUNKER)
  })

  test('overrides', () => {
    const c = newConfig({now: NOW, chunker: {avgSize: 1024 * 1024, maxSize: 4 * MiB, seed: 5}, zstdLevel: 0, packSize: MiB})
    expect(c.chunker).toEqual({minSize: 32768, avgSize: MiB, maxSize: 4 * MiB, normalization: 2, seed: 5})
    expect(c.compression).toEqual({algorithm: 'zstd', level: 0})
    expect(c.packSize).toBe(MiB)
    expect(newConfig({now: NOW, zstdLevel: 22, packSize: 1024 * MiB}).compression.level).toBe(22)
  })

  test.each<[string, Parameters<typeof newConfig>[0], string]>([
    ['bad chunker', {now: NOW, chunker: {minSize: 10}}, 'invalid repository settings: chunker: minSize must be an integer >= 64 and below avgSize'],
    ['level 23', {now: NOW, zstdLevel: 23}, 'invalid repository settings: zstd level must be 0 (off) to 22'],
    ['level -1', {now: NOW, zstdLevel: -1}, 'invalid repository settings: zstd level must be 0 (off) to 22'],
    ['level 2.5', {now: NOW, zstdLevel: 2.5}, 'invalid repository settings: zstd level must be 0 (off) to 22'],
    ['pack under 1 MiB', {now: NOW, packSize: MiB - 1}, 'invalid repository settings: pack size must be 1 MiB to 1 GiB'],
    ['pack over 1 GiB', {now: NOW, packSize: 1024 * MiB + 1}, 'invalid repository settings: pack size must be 1 MiB to 1 GiB'],
  ])('refuses %s with a UsageError', (_what, opts, message) => {
    expect(() => newConfig(opts)).toThrow(UsageError)
    expect(() => newConfig(opts)).toThrow(message)
  })
})

describe('encodeConfig / decodeConfig', () => {
  test('round trip', () => {
    const c = newConfig({now: NOW, chunker: {seed: 99}, zstdLevel: 19, packSize: 64 * MiB})
    const bytes = encodeConfig(c)
    expect(bytes.toString('utf8').endsWith('}\n')).toBe(true)
    expect(decodeConfig(bytes)).toEqual(c)
    expect(encodeConfig(decodeConfig(bytes)).equals(bytes)).toBe(true)
  })

  test('a newer format version is UnsupportedFormatError with the version in its data', () => {
    let caught: unknown
    try {
      decodeConfig(withField(['version'], 3))
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(UnsupportedFormatError)
    expect((caught as UnsupportedFormatError).message).toBe('repository format version 3 is not supported by this ckpt (it knows versions 1 and 2)')
    expect((caught as UnsupportedFormatError).data).toEqual({version: 3})
    rejects(withField(['version'], 0), UnsupportedFormatError, 'repository format version 0 is not supported by this ckpt (it knows versions 1 and 2)')
  })

  test.each<[string, Buffer, string]>([
    ['not JSON', Buffer.from('{"version": 1,'), 'repository config is not valid JSON'],
    ['empty', Buffer.alloc(0), 'repository config is not valid JSON'],
    ['null', Buffer.from('null'), 'repository config is not an object'],
    ['a number', Buffer.from('1'), 'repository config is not an object'],
    ['an array', Buffer.from('[]'), 'repository config has no format version'],
    ['no version', withField(['version'], undefined), 'repository config has no format version'],
    ['version as a string', withField(['version'], '1'), 'repository config has no format version'],
    ['no id', withField(['id'], undefined), 'repository config is missing fields'],
    ['numeric id', withField(['id'], 5), 'repository config is missing fields'],
    ['no chunker', withField(['chunker'], undefined), 'repository config is missing fields'],
    ['no compression', withField(['compression'], undefined), 'repository config is missing fields'],
    ['chunker avg not a power of two', withField(['chunker', 'avgSize'], 100_000), 'repository config is invalid: chunker: avgSize must be a power of two between 256 B and 64 MiB'],
    ['chunker min missing', withField(['chunker', 'minSize'], undefined), 'repository config is invalid: chunker: minSize must be an integer >= 64 and below avgSize'],
    ['chunker seed as a string', withField(['chunker', 'seed'], '1'), 'repository config is invalid: chunker: seed must be a 32-bit unsigned integer'],
    ['chunker not an object', withField(['chunker'], 7), 'repository config is invalid: chunker: avgSize must be a power of two between 256 B and 64 MiB'],
    ['another algorithm', withField(['compression', 'algorithm'], 'lz4'), 'repository config is invalid: compression algorithm lz4 is not known'],
    ['compression as a string', withField(['compression'], 'zstd'), 'repository config is invalid: compression algorithm undefined is not known'],
    ['level 23', withField(['compression', 'level'], 23), 'repository config is invalid: zstd level must be 0 (off) to 22'],
    ['level missing', withField(['compression', 'level'], undefined), 'repository config is invalid: zstd level must be 0 (off) to 22'],
    ['pack size as a string', withField(['packSize'], '16777216'), 'repository config is invalid: pack size must be 1 MiB to 1 GiB'],
    ['pack size 0', withField(['packSize'], 0), 'repository config is invalid: pack size must be 1 MiB to 1 GiB'],
  ])('refuses %s', (_what, bytes, message) => {
    rejects(bytes, IntegrityError, message)
  })
})
