// The memory governor's pacing: forced collections take at most about 1/25 of the time.
import {expect, test} from 'vitest'

import {nextCollection} from '../../src/cli/memory.js'

test('a cheap collection may repeat after 250 ms; a costly one only after 25 times its cost', () => {
  expect(nextCollection(1000, 2)).toBe(1250)
  expect(nextCollection(1000, 10)).toBe(1250)
  expect(nextCollection(1000, 40)).toBe(2000)
  expect(nextCollection(5000, 200)).toBe(10_000)
  // The share of time spent collecting stays under 4 % whatever a collection costs.
  for (const took of [1, 5, 20, 100, 1000]) expect(took / (nextCollection(0, took) - 0)).toBeLessThanOrEqual(0.04)
})
