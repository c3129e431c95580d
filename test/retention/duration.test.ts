import {describe, expect, test} from 'vitest'
import {UsageError} from '../../src/core/errors.js'
import {type Duration, DURATION_SYNTAX, formatDuration, parseDuration, subtractDuration} from '../../src/retention/duration.js'

const zero: Duration = {years: 0, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0}
const dur = (d: Partial<Duration>): Duration => ({...zero, ...d})
const at = (iso: string): number => {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) throw new Error(`bad test timestamp ${iso}`)
  return t
}

describe('parseDuration', () => {
  test.each([
    ['36h', {hours: 36}, '36h'],
    ['7d', {days: 7}, '7d'],
    ['2w', {weeks: 2}, '2w'],
    ['1m', {months: 1}, '1m'],
    ['1y2m', {years: 1, months: 2}, '1y2m'],
    ['1y2m3d4h', {years: 1, months: 2, days: 3, hours: 4}, '1y2m3d4h'],
    ['30min', {minutes: 30}, '30min'],
    ['2h30min', {hours: 2, minutes: 30}, '2h30min'],
    ['30min2h', {hours: 2, minutes: 30}, '2h30min'],
    ['1y2m1w3d4h5min', {years: 1, months: 2, weeks: 1, days: 3, hours: 4, minutes: 5}, '1y2m1w3d4h5min'],
    ['  7d ', {days: 7}, '7d'],
    ['007d', {days: 7}, '7d'],
    ['0y7d', {days: 7}, '7d'],
    ['1000000d', {days: 1_000_000}, '1000000d'],
  ] as const)('%j', (text, fields, canonical) => {
    const d = parseDuration(text)
    expect(d).toEqual(dur(fields))
    expect(formatDuration(d)).toBe(canonical)
    expect(parseDuration(formatDuration(d))).toEqual(d)
  })

  test.each([
    ['', 'it is empty'],
    ['   ', 'it is empty'],
    ['0d', 'it is zero'],
    ['0h0min', 'it is zero'],
    ['-1d', 'a duration cannot be negative'],
    ['7', "missing unit after '7'"],
    ['d', "missing number before 'd'"],
    ['7s', "unknown unit 's'"],
    ['7D', "unknown unit 'D'"],
    ['1mo', "unknown unit 'mo'"],
    ['1mins', "unknown unit 'mins'"],
    ['1d1d', "unit 'd' is repeated"],
    ['1m2d3m', "unit 'm' is repeated"],
    ['1.5h', "unexpected '.5h'"],
    ['7 d', "unexpected ' d'"],
    ['7d!', "unexpected '!'"],
    ['+7d', "unexpected '+7d'"],
    ['1000001d', '1000001d is too large (at most 1000000 per unit)'],
  ])('rejects %j: %s', (text, why) => {
    let caught: unknown
    try {
      parseDuration(text)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(UsageError)
    expect((caught as UsageError).message).toBe(`invalid duration '${text}': ${why}; expected ${DURATION_SYNTAX}`)
    expect((caught as UsageError).message).not.toContain('\n')
  })
})

describe('formatDuration', () => {
  test.each([
    [dur({}), '0d'],
    [dur({minutes: 90}), '90min'],
    [dur({years: 2, minutes: 1}), '2y1min'],
    [dur({weeks: 1, days: 1}), '1w1d'],
  ])('%j -> %s', (d, text) => {
    expect(formatDuration(d)).toBe(text)
  })
})

describe('subtractDuration', () => {
  test.each([
    // Calendar months, clamped to the month's end.
    ['UTC', '2026-03-31T12:00:00.000Z', '1m', '2026-02-28T12:00:00.000Z'],
    ['UTC', '2024-03-31T12:00:00.000Z', '1m', '2024-02-29T12:00:00.000Z'],
    ['UTC', '2024-02-29T08:00:00.000Z', '1y', '2023-02-28T08:00:00.000Z'],
    ['UTC', '2024-02-29T08:00:00.000Z', '4y', '2020-02-29T08:00:00.000Z'],
    ['UTC', '2026-01-15T00:00:00.000Z', '1m', '2025-12-15T00:00:00.000Z'],
    ['UTC', '2026-01-31T00:00:00.000Z', '13m', '2024-12-31T00:00:00.000Z'],
    ['UTC', '2026-05-31T09:15:00.000Z', '1m1d', '2026-04-29T09:15:00.000Z'],
    ['UTC', '2026-03-31T00:00:00.000Z', '1y1m', '2025-02-28T00:00:00.000Z'],
    // Calendar days and weeks.
    ['UTC', '2026-03-01T00:00:00.000Z', '1d', '2026-02-28T00:00:00.000Z'],
    ['UTC', '2024-03-01T00:00:00.000Z', '1d', '2024-02-29T00:00:00.000Z'],
    ['UTC', '2026-11-20T12:00:00.000Z', '2w', '2026-11-06T12:00:00.000Z'],
    ['UTC', '2026-01-01T00:00:00.250Z', '1d', '2025-12-31T00:00:00.250Z'],
    // Hours and minutes are exact.
    ['UTC', '2026-11-20T12:00:00.000Z', '36h', '2026-11-19T00:00:00.000Z'],
    ['UTC', '2026-11-20T12:00:00.000Z', '30min', '2026-11-20T11:30:00.000Z'],
    ['UTC', '2026-11-20T12:00:00.000Z', '1d2h30min', '2026-11-19T09:30:00.000Z'],
    // Europe/Berlin springs forward on 2026-03-29 (02:00 CET -> 03:00 CEST): that day has 23 hours.
    ['Europe/Berlin', '2026-03-29T12:00:00+02:00', '1d', '2026-03-28T12:00:00+01:00'],
    ['Europe/Berlin', '2026-03-29T12:00:00+02:00', '24h', '2026-03-28T11:00:00+01:00'],
    ['Europe/Berlin', '2026-03-29T12:00:00+02:00', '1d1h', '2026-03-28T11:00:00+01:00'],
    ['UTC', '2026-03-29T12:00:00+02:00', '1d', '2026-03-28T12:00:00+02:00'],
    // ... and falls back on 2026-10-25 (03:00 CEST -> 02:00 CET): that day has 25 hours.
    ['Europe/Berlin', '2026-10-25T12:00:00+01:00', '1d', '2026-10-24T12:00:00+02:00'],
    ['Europe/Berlin', '2026-10-25T12:00:00+01:00', '24h', '2026-10-24T13:00:00+02:00'],
    ['Europe/Berlin', '2026-11-25T12:00:00+01:00', '1m', '2026-10-25T12:00:00+01:00'],
    ['Europe/Berlin', '2026-11-01T00:30:00+01:00', '1w', '2026-10-25T00:30:00+02:00'],
    // A wall-clock time the zone skips moves forward by the gap ...
    ['Europe/Berlin', '2026-03-30T02:30:00+02:00', '1d', '2026-03-29T03:30:00+02:00'],
    // ... and one it repeats takes the earlier of the two instants.
    ['Europe/Berlin', '2026-10-26T02:30:00+01:00', '1d', '2026-10-25T02:30:00+02:00'],
    ['America/New_York', '2026-03-31T12:00:00-04:00', '1m', '2026-02-28T12:00:00-05:00'],
    ['Asia/Kolkata', '2026-03-01T03:00:00+05:30', '1d', '2026-02-28T03:00:00+05:30'],
    // Years before 100 are not mapped to the 1900s.
    ['UTC', '0050-03-01T00:00:00.000Z', '1d', '0050-02-28T00:00:00.000Z'],
    ['UTC', '0100-03-31T00:00:00.000Z', '1m', '0100-02-28T00:00:00.000Z'],
  ])('%s: %s - %s = %s', (zone, now, text, expected) => {
    expect(new Date(subtractDuration(at(now), parseDuration(text), zone)).toISOString()).toBe(new Date(at(expected)).toISOString())
  })

  test('a cut-off before the first instant a Date can hold is clamped to it', () => {
    expect(subtractDuration(at('2026-01-01T00:00:00Z'), parseDuration('1000000y'), 'UTC')).toBe(-8.64e15)
    expect(subtractDuration(at('2026-01-01T00:00:00Z'), parseDuration('1000000m'), 'UTC')).toBe(at('-081308-09-01T00:00:00Z'))
  })

  test('an unknown time zone is a usage error', () => {
    expect(() => subtractDuration(0, parseDuration('1d'), 'Mars/Olympus_Mons')).toThrow(UsageError)
    expect(() => subtractDuration(0, parseDuration('1d'), 'Mars/Olympus_Mons')).toThrow(
      "unknown time zone 'Mars/Olympus_Mons': use an IANA name such as Europe/Berlin, or UTC",
    )
  })
})
