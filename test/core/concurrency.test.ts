import {describe, expect, it} from 'vitest'

import {Inflight, Limiter, mapLimit} from '../../src/core/concurrency.js'

const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms))

describe('Limiter', () => {
  it.each([1, 2, 3])('runs at most %i tasks at once, started in the order asked', async (limit) => {
    const l = new Limiter(limit)
    let running = 0
    let peak = 0
    const started: number[] = []
    await Promise.all(Array.from({length: 10}, (_, i) => l.run(async () => {
      started.push(i)
      peak = Math.max(peak, ++running)
      await tick(1 + (i % 3))
      running--
      return i
    })))
    expect(peak).toBe(limit)
    expect(started).toEqual([...Array(10).keys()])
  })

  it('frees the slot of a task that fails, and passes the failure to its caller only', async () => {
    const l = new Limiter(1)
    const failing = l.run(async () => {
      await tick()
      throw new Error('boom')
    })
    const next = l.run(async () => 'after')
    await expect(failing).rejects.toThrow('boom')
    await expect(next).resolves.toBe('after')
  })
})

describe('mapLimit and Inflight', () => {
  it('mapLimit keeps order and limit, and waits for running items before rejecting', async () => {
    let running = 0
    let peak = 0
    let settledAfterFailure = 0
    const p = mapLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
      peak = Math.max(peak, ++running)
      await tick(n === 2 ? 1 : 5)
      running--
      if (n === 2) throw new Error('two')
      settledAfterFailure++
      return n * 10
    })
    await expect(p).rejects.toThrow('two')
    expect(peak).toBe(2)
    expect(running).toBe(0)
    expect(settledAfterFailure).toBe(1) // item 1 finished; nothing new started after the failure
    expect(await mapLimit([3, 1, 2], 2, async (n) => n * 2)).toEqual([6, 2, 4])
  })

  it('Inflight bounds running promises and reports the first failure to the next add and to drain', async () => {
    const f = new Inflight(2)
    await f.add(tick(5)) // one running: returns at once
    // The second fills the limit: add waits for one to settle, sees the failure, and throws it.
    await expect(f.add(Promise.reject(new Error('first')))).rejects.toThrow('first')
    await expect(f.drain()).rejects.toThrow('first')
    const ok = new Inflight(3)
    let done = 0
    for (let i = 0; i < 5; i++) await ok.add(tick(2).then(() => done++))
    await ok.drain()
    expect(done).toBe(5)
  })
})
