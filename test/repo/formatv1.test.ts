// A repository written by format version 1 (test/fixtures/repo-v1, made by the ckpt of that
// version) stays readable, and the first snapshot into it raises it to version 2, which the
// version-1 reader refuses (it accepted exactly version 1: exit 13).
import {execFileSync} from 'node:child_process'
import {cpSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {ROOT, runCli} from '../helpers/cli.js'

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'repo-v1')
const SNAPSHOT = '5e70c79d46ce'
const B_BIN_BLAKE3 = '5690354c4775bb03e5dd9c0e6d0307ff0de4898bfc2a5ec0d80ad8281975ad2e'

let tmp: string
let repo: string

beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ckpt-v1-'))
  repo = path.join(tmp, 'repo')
  cpSync(FIXTURE, repo, {recursive: true})
  // git keeps no empty directories: give back the ones the fixture had.
  for (const d of ['locks', 'pins', 'index', 'snapshots']) mkdirSync(path.join(repo, d), {recursive: true})
  for (let i = 0; i < 256; i++) mkdirSync(path.join(repo, 'data', i.toString(16).padStart(2, '0')), {recursive: true})
})
afterEach(() => rmSync(tmp, {recursive: true, force: true}))

const configVersion = () => (JSON.parse(readFileSync(path.join(repo, 'config'), 'utf8')) as {version: number}).version

describe('a version-1 repository', () => {
  test('restores exactly and verifies, and reading it does not raise its version', async () => {
    expect(configVersion()).toBe(1)
    const out = path.join(tmp, 'out')
    const r = await runCli(['restore', SNAPSHOT, '--target', out, '-r', repo])
    expect(r.code).toBe(0)
    expect(readFileSync(path.join(out, 'a.txt'), 'utf8')).toBe('hello v1\n')
    const a = lstatSync(path.join(out, 'a.txt'), {bigint: true})
    expect(a.mode & 0o7777n).toBe(0o640n)
    expect(a.mtimeNs).toBe(1577934245_123456789n)
    expect(execFileSync('b3sum', ['--no-names', path.join(out, 'sub', 'b.bin')]).toString().trim()).toBe(B_BIN_BLAKE3)
    expect(readlinkSync(path.join(out, 'link'))).toBe('a.txt')
    expect(readFileSync(Buffer.from(path.join(out, 'sub', 'deep') + '/n\xffame', 'latin1')).toString()).toBe('x')
    expect(lstatSync(path.join(out, 'empty')).isDirectory()).toBe(true)
    const v = await runCli(['verify', '--read-data', '-r', repo])
    expect(v.code).toBe(0)
    expect(configVersion()).toBe(1)
  })

  test('a snapshot into it raises it to version 2; both snapshots restore', async () => {
    const src = path.join(tmp, 'src')
    mkdirSync(src)
    writeFileSync(path.join(src, 'new.txt'), 'written by version 2\n')
    const s = await runCli(['snapshot', src, '-r', repo, '--json'])
    expect(s.code).toBe(0)
    expect(configVersion()).toBe(2)
    const id = (JSON.parse(s.stdout) as {id: string}).id
    for (const [snap, file, text] of [[SNAPSHOT, 'a.txt', 'hello v1\n'], [id, 'new.txt', 'written by version 2\n']] as const) {
      const out = path.join(tmp, `out-${snap.slice(0, 6)}`)
      const r = await runCli(['restore', snap, '--target', out, '-r', repo])
      expect(r.code).toBe(0)
      expect(readFileSync(path.join(out, file), 'utf8')).toBe(text)
    }
    expect((await runCli(['verify', '--read-data', '-r', repo])).code).toBe(0)
  })

  test('a format this build does not know is refused with exit 13, nothing touched', async () => {
    const config = JSON.parse(readFileSync(path.join(repo, 'config'), 'utf8')) as Record<string, unknown>
    writeFileSync(path.join(repo, 'config'), JSON.stringify({...config, version: 3}))
    const r = await runCli(['restore', SNAPSHOT, '--target', path.join(tmp, 'out'), '-r', repo])
    expect(r.code).toBe(13)
    expect(r.stderr).toContain('repository format version 3 is not supported')
    expect(() => lstatSync(path.join(tmp, 'out'))).toThrow()
  })
})
