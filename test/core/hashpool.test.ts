import {afterAll, describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import {HashPool} from '../../src/core/hashpool.js'
import {seededBytes} from '../helpers/tree.js'

const pools = {native: new HashPool(2), workers: new HashPool(2, 'workers')}
afterAll(async () => {
  await Promise.all(Object.values(pools).map((p) => p.close()))
})

describe.each(['native', 'workers'] as const)('HashPool (%s)', (engine) => {
  const pool = pools[engine]

  it('hashes views over shared memory in place, in order, equal to BLAKE3 on this thread', async () => {
    const buf = Buffer.from(new SharedArrayBuffer(3 * 1024 * 1024 + 77))
    seededBytes(buf.length, 5).copy(buf)
    const views = [0, 1, 100, 65536, 1024 * 1024 + 3, 3 * 1024 * 1024 + 77].map((end, i, all) => buf.subarray(i === 0 ? 0 : all[i - 1]!, end))
    const ids = await pool.hash(views)
    expect(ids.map((b) => b.toString('hex'))).toEqual(views.map((v) => blake3(v).toString('hex')))
    // The empty view hashes to BLAKE3("").
    expect(ids[0]!.toString('hex')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')
  })

  it('copies views over ordinary buffers, and keeps batches apart when many run at once', async () => {
    const datas = Array.from({length: 40}, (_, i) => seededBytes(1000 + i * 997, i + 1))
    const batches = await Promise.all(datas.map((d, i) => pool.hash([d, d.subarray(i)])))
    batches.forEach((ids, i) => {
      expect(ids[0]!.equals(blake3(datas[i]!))).toBe(true)
      expect(ids[1]!.equals(blake3(datas[i]!.subarray(i)))).toBe(true)
    })
    expect(await pool.hash([])).toEqual([])
  })

  it('refuses work after close', async () => {
    const p = new HashPool(1, engine)
    await p.close()
    await expect(p.hash([Buffer.from('x')])).rejects.toThrow(/closed/)
  })
})
