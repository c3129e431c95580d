// The fault point spec (CKPT_FAULT): what each item means. The points themselves are exercised
// by the crash tests (crash-*.test.ts), which list them with CKPT_FAULT_LOG and kill at each.
import {expect, test} from 'vitest'

import {parseFaultSpec} from '../../src/core/faultpoint.js'

test('name, name@n, name@n:stop and *@n; malformed items ignored', () => {
  expect([...parseFaultSpec('put.synced, pack.renamed@3,restore.temp-synced@2:stop,*@17,bad item,x@y')]).toEqual([
    ['put.synced', {at: 1, signal: 'SIGKILL'}],
    ['pack.renamed', {at: 3, signal: 'SIGKILL'}],
    ['restore.temp-synced', {at: 2, signal: 'SIGSTOP'}],
    ['*', {at: 17, signal: 'SIGKILL'}],
  ])
  expect(parseFaultSpec(undefined).size).toBe(0)
  expect(parseFaultSpec('').size).toBe(0)
})
