// Temp objects name their writer; the next writer removes those whose writer is provably dead
// (the locks' liveness rule) and, of the rest, only those older than a day.
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {processStart} from '../../src/store/lock.js'
import {LocalBackend} from '../../src/store/local.js'
import {hostTag, parseTempName, sweepTemporaries, TEMP_MAX_AGE_MS, tempName, tempState} from '../../src/store/temp.js'
import {tempDir} from '../helpers/tree.js'

let root: string
let backend: LocalBackend
beforeEach(async () => {
  root = await tempDir('ckpt-temp-')
  backend = new LocalBackend(path.join(root, 'repo'))
  await backend.initLayout()
})
afterEach(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

/** The pid of a process that has exited (reaped: nobody has it now, short of reuse within the test). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], {encoding: 'utf8'})
  return Number(r.stdout.trim())
}

describe('temp names', () => {
  test('carry host, pid and start time, and parse back', () => {
    const owner = {host: hostTag(), pid: process.pid, pidStart: processStart(process.pid)}
    const name = tempName(owner)
    expect(name).toMatch(/^\.tmp-[0-9a-f]{12}-\d+-(\d+|u)-[0-9a-f]{16}$/)
    expect(parseTempName(name)).toEqual(owner)
    expect(parseTempName(tempName({...owner, pidStart: null}))).toEqual({...owner, pidStart: null})
    expect(tempName()).not.toBe(tempName())
    for (const bad of ['.tmp-0123456789abcdef', '.tmp-xyz-1-2-0123456789abcdef', '.tmp-a1b2c3d4e5f6-0-2-0123456789abcdef', '.tmp-a1b2c3d4e5f6-1-2-0123']) {
      expect(parseTempName(bad)).toBeUndefined()
    }
  })

  test('state: our own process is live, an exited one or a reused pid is dead, another host is unknown', () => {
    const host = hostTag()
    expect(tempState({host, pid: process.pid, pidStart: processStart(process.pid)})).toBe('live')
    expect(tempState({host, pid: process.pid, pidStart: null})).toBe('live')
    expect(tempState({host, pid: deadPid(), pidStart: 1})).toBe('dead')
    expect(tempState({host, pid: process.pid, pidStart: processStart(process.pid)! + 1})).toBe('dead')
    expect(tempState({host: 'ffffffffffff', pid: deadPid(), pidStart: 1})).toBe('unknown')
    expect(tempState(undefined)).toBe('unknown')
  })
})

describe('sweepTemporaries', () => {
  test('removes dead writers\' temp files at once, keeps live and unprovable ones until a day old', async () => {
    const host = hostTag()
    const put = async (rel: string, bytes: number, ageMs = 0) => {
      const f = path.join(backend.root, rel)
      await fsp.writeFile(f, Buffer.alloc(bytes))
      const t = (Date.now() - ageMs) / 1000
      await fsp.utimes(f, t, t)
      return f
    }
    const dead = await put(`data/ab/${tempName({host, pid: deadPid(), pidStart: 5})}`, 1000)
    const reused = await put(`index/${tempName({host, pid: process.pid, pidStart: processStart(process.pid)! + 1})}`, 200)
    const live = await put(`data/cd/${tempName()}`, 300, 2 * TEMP_MAX_AGE_MS)
    const otherHost = await put(`data/ef/${tempName({host: 'ffffffffffff', pid: 12345, pidStart: 6})}`, 400)
    const otherHostOld = await put(`snapshots/${tempName({host: 'ffffffffffff', pid: 12345, pidStart: 6})}`, 50, TEMP_MAX_AGE_MS + 60_000)
    const legacy = await put('.tmp-0123456789abcdef', 60)
    const legacyOld = await put('index/.tmp-fedcba9876543210', 70, TEMP_MAX_AGE_MS + 60_000)

    expect(await sweepTemporaries(backend, Date.now())).toEqual({removed: 4, bytes: 1000 + 200 + 50 + 70})
    for (const f of [dead, reused, otherHostOld, legacyOld]) await expect(fsp.access(f)).rejects.toThrow()
    for (const f of [live, otherHost, legacy]) await fsp.access(f)
    expect(await sweepTemporaries(backend, Date.now())).toEqual({removed: 0, bytes: 0})
  })
})
