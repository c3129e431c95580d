// How ckpt ls shows names, modes and times, checked against GNU ls itself where it has an answer.
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'

import {afterAll, describe, expect, it} from 'vitest'

import {escapeName, isoNs, jsonBytes, modeString} from '../../src/inspect/names.js'
import {tempDir} from '../helpers/tree.js'

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await fsp.rm(d, {recursive: true, force: true})
})

describe('escapeName', () => {
  const cases: [string, Buffer, string][] = [
    ['plain ASCII', Buffer.from('db/CURRENT'), 'db/CURRENT'],
    ['UTF-8 letters', Buffer.from('café-日本'), 'café-日本'],
    ['newline and tab', Buffer.from('a\nb\tc'), 'a\\nb\\tc'],
    ['space and backslash', Buffer.from('a b\\c'), 'a\\ b\\\\c'],
    ['escape sequence (ESC)', Buffer.from('\x1b[31mred'), '\\033[31mred'],
    ['DEL', Buffer.from('x\x7f'), 'x\\177'],
    ['a byte that is not UTF-8', Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'caf\\351'],
    ['a truncated sequence', Buffer.from([0x61, 0xe6, 0x97]), 'a\\346\\227'],
    ['an overlong encoding of "/"', Buffer.from([0xc0, 0xaf]), '\\300\\257'],
    ['a UTF-16 surrogate encoded in UTF-8', Buffer.from([0xed, 0xa0, 0x80]), '\\355\\240\\200'],
    ['a C1 control (U+009B, CSI)', Buffer.from('a\u009bb'), 'a\\302\\233b'],
    ['a right-to-left override', Buffer.from('a\u202egnp.exe'), 'a\\342\\200\\256gnp.exe'],
  ]
  it.each(cases)('%s', (_what, name, shown) => {
    expect(escapeName(name)).toBe(shown)
  })

  it('agrees with GNU ls -b on names ls can show (UTF-8 locale)', async () => {
    const dir = await tempDir('ckpt-names-')
    dirs.push(dir)
    const names = [Buffer.from('a b'), Buffer.from('new\nline'), Buffer.from('tab\there'), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from('esc\x1b[0m'), Buffer.from('back\\slash'), Buffer.from('café'), Buffer.from('del\x7f')]
    for (const n of names) await fsp.writeFile(Buffer.concat([Buffer.from(dir + '/'), n]), '')
    const ls = spawnSync('ls', ['-b', '-1', '--sort=none', dir], {env: {...process.env, LC_ALL: 'C.UTF-8'}, encoding: 'buffer'})
    expect(ls.status).toBe(0)
    const shown = new Set(ls.stdout.toString('utf8').split('\n').filter(Boolean))
    for (const n of names) expect(shown).toContain(escapeName(n))
  })
})

describe('jsonBytes', () => {
  it('gives UTF-8 text as is (control characters included: JSON escapes them), other bytes as hex beside the escaped form', () => {
    expect(jsonBytes(Buffer.from('a\nb'))).toEqual({text: 'a\nb'})
    expect(jsonBytes(Buffer.from([0x61, 0xff]))).toEqual({text: 'a\\377', hex: '61ff'})
  })
})

describe('modeString', () => {
  it.each([
    ['file', 0o644, '-rw-r--r--'],
    ['dir', 0o755, 'drwxr-xr-x'],
    ['symlink', 0o777, 'lrwxrwxrwx'],
    ['file', 0o4755, '-rwsr-xr-x'],
    ['file', 0o2644, '-rw-r-Sr--'],
    ['dir', 0o1777, 'drwxrwxrwt'],
    ['dir', 0o1776, 'drwxrwxrwT'],
    ['fifo', 0o600, 'prw-------'],
    ['chardev', 0o666, 'crw-rw-rw-'],
    ['blockdev', 0o660, 'brw-rw----'],
  ])('%s %o', (type, mode, text) => {
    expect(modeString(type, mode)).toBe(text)
  })
})

describe('isoNs', () => {
  it('keeps all nine digits, before and after the epoch', () => {
    expect(isoNs(1_796_582_485_596_878_179n)).toBe('2026-12-06T18:41:25.596878179Z')
    expect(isoNs(0n)).toBe('1970-01-01T00:00:00.000000000Z')
    expect(isoNs(-1n)).toBe('1969-12-31T23:59:59.999999999Z')
  })
})
