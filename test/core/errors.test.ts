import {describe, expect, test} from 'vitest'
import {
  BadPathError,
  BusyError,
  CkptError,
  classifyOsError,
  errnoCode,
  ExitCode,
  IntegrityError,
  InterruptedError,
  LockedError,
  NoRepositoryError,
  NoSpaceError,
  NotFoundError,
  ObjectMissingError,
  ReadOnlyRepositoryError,
  UnsupportedFormatError,
  UsageError,
} from '../../src/core/errors.js'

type ErrorClass = new (message: string, data?: Record<string, unknown>, options?: {cause?: unknown}) => CkptError

// The exit code table is documented in README.md and man/ckpt.1: a change here is a change there.
const CLASSES: [ErrorClass, string, string, number][] = [
  [UsageError, 'UsageError', 'USAGE', 2],
  [NotFoundError, 'NotFoundError', 'NOT_FOUND', 4],
  [BadPathError, 'BadPathError', 'BAD_PATH', 5],
  [NoSpaceError, 'NoSpaceError', 'NO_SPACE', 7],
  [NoRepositoryError, 'NoRepositoryError', 'NO_REPOSITORY', 10],
  [LockedError, 'LockedError', 'LOCKED', 11],
  [IntegrityError, 'IntegrityError', 'INTEGRITY', 12],
  [ObjectMissingError, 'ObjectMissingError', 'OBJECT_MISSING', 12],
  [UnsupportedFormatError, 'UnsupportedFormatError', 'UNSUPPORTED_FORMAT', 13],
  [ReadOnlyRepositoryError, 'ReadOnlyRepositoryError', 'READ_ONLY', 14],
  [BusyError, 'BusyError', 'BUSY', 15],
  [InterruptedError, 'InterruptedError', 'INTERRUPTED', 130],
]

describe('ExitCode', () => {
  test('the documented table', () => {
    expect(ExitCode).toEqual({
      ok: 0, failure: 1, usage: 2, warnings: 3, notFound: 4, badPath: 5, noSpace: 7,
      noRepository: 10, locked: 11, integrity: 12, unsupportedFormat: 13, readOnly: 14, busy: 15, badArchive: 16, storage: 17, interrupted: 130, terminated: 143,
    })
  })
})

describe('CkptError classes', () => {
  test.each(CLASSES)('%o', (Class, name, code, exitCode) => {
    const cause = new Error('root cause')
    const err = new Class('something happened', {what: 'x', n: 3}, {cause})
    expect(err).toBeInstanceOf(Error)
    expect(err).toBeInstanceOf(CkptError)
    expect(err).toBeInstanceOf(Class)
    expect(err.name).toBe(name)
    expect(err.code).toBe(code)
    expect(err.exitCode).toBe(exitCode)
    expect(err.message).toBe('something happened')
    expect(err.data).toEqual({what: 'x', n: 3})
    expect(err.cause).toBe(cause)
    expect(err.toJSON()).toEqual({code, message: 'something happened', exitCode, data: {what: 'x', n: 3}})
    expect(JSON.parse(JSON.stringify(err))).toEqual({code, message: 'something happened', exitCode, data: {what: 'x', n: 3}})
    expect(String(err)).toBe(`${name}: something happened`)
    expect(err.stack).toContain('something happened')
  })

  test('data defaults to an empty object, cause to none', () => {
    const err = new UsageError('bad flag')
    expect(err.data).toEqual({})
    expect(err.cause).toBeUndefined()
    expect('cause' in err).toBe(false)
  })

  test('codes are unique', () => {
    const codes = CLASSES.map(([Class]) => new Class('m').code)
    expect(new Set(codes).size).toBe(codes.length)
  })
})

describe('errnoCode', () => {
  test.each<[unknown, string | undefined]>([
    [Object.assign(new Error('x'), {code: 'ENOENT'}), 'ENOENT'],
    [{code: 'EACCES'}, 'EACCES'],
    [{code: 5}, undefined],
    [new Error('plain'), undefined],
    [null, undefined],
    [undefined, undefined],
    ['ENOENT', undefined],
    [42, undefined],
  ])('%o -> %s', (err, expected) => {
    expect(errnoCode(err)).toBe(expected)
  })

  test('a CkptError\'s code is reported too (it is a string code)', () => {
    expect(errnoCode(new LockedError('held'))).toBe('LOCKED')
  })
})

describe('classifyOsError', () => {
  test.each(['ENOSPC', 'EDQUOT'])('%s becomes NoSpaceError', (code) => {
    const os = Object.assign(new Error(`${code}: no space`), {code})
    const err = classifyOsError(os, '/repo/data/ab/abc')
    expect(err).toBeInstanceOf(NoSpaceError)
    expect((err as NoSpaceError).message).toBe('no space left on device while writing /repo/data/ab/abc')
    expect((err as NoSpaceError).data).toEqual({what: '/repo/data/ab/abc'})
    expect((err as NoSpaceError).cause).toBe(os)
    expect((err as NoSpaceError).exitCode).toBe(7)
  })

  test('other errors pass through unchanged', () => {
    const eacces = Object.assign(new Error('denied'), {code: 'EACCES'})
    expect(classifyOsError(eacces, 'x')).toBe(eacces)
    const plain = new Error('plain')
    expect(classifyOsError(plain, 'x')).toBe(plain)
    expect(classifyOsError('a string', 'x')).toBe('a string')
  })

  test('a CkptError passes through even with an ENOSPC-looking code field', () => {
    const integrity = new IntegrityError('bad')
    expect(classifyOsError(integrity, 'x')).toBe(integrity)
  })
})
