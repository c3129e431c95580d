// Durations for retention (`within 7d`) and the calendar arithmetic behind them. Years, months,
// weeks and days move the wall clock of an IANA time zone; hours and minutes are exact time. Only
// Intl is used: the zone rules come from the ICU data that ships with Node.
import {UsageError} from '../core/errors.js'

export interface Duration {
  readonly years: number
  readonly months: number
  readonly weeks: number
  readonly days: number
  readonly hours: number
  readonly minutes: number
}

type Field = keyof Duration

// Canonical order, and the unit each field is written with. `m` is months (as in restic), so
// minutes take `min`.
const UNITS: readonly (readonly [Field, string])[] = [
  ['years', 'y'],
  ['months', 'm'],
  ['weeks', 'w'],
  ['days', 'd'],
  ['hours', 'h'],
  ['minutes', 'min'],
]
const FIELD_OF_UNIT = new Map(UNITS.map(([field, unit]) => [unit, field]))

/** One number per unit; larger values are refused rather than overflowing the calendar. */
export const MAX_DURATION_COUNT = 1_000_000

export const DURATION_SYNTAX =
  'numbers with units, e.g. 36h, 7d, 2w, 1y6m, 2h30min (y years, m months, w weeks, d days, h hours, min minutes)'

const TOKEN = /(\d*)([A-Za-z]*)/y

export function parseDuration(text: string): Duration {
  const fail = (why: string): UsageError =>
    new UsageError(`invalid duration '${text}': ${why}; expected ${DURATION_SYNTAX}`, {duration: text})
  const s = text.trim()
  if (s === '') throw fail('it is empty')
  if (s.startsWith('-')) throw fail('a duration cannot be negative')
  const d: Record<Field, number> = {years: 0, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0}
  const seen = new Set<string>()
  let pos = 0
  while (pos < s.length) {
    TOKEN.lastIndex = pos
    const [token = '', digits = '', unit = ''] = TOKEN.exec(s) ?? []
    if (token === '') throw fail(`unexpected '${s.slice(pos)}'`)
    if (digits === '') throw fail(`missing number before '${unit}'`)
    if (unit === '') {
      throw fail(pos + token.length === s.length ? `missing unit after '${digits}'` : `unexpected '${s.slice(pos + token.length)}'`)
    }
    const field = FIELD_OF_UNIT.get(unit)
    if (field === undefined) throw fail(`unknown unit '${unit}'`)
    if (seen.has(unit)) throw fail(`unit '${unit}' is repeated`)
    seen.add(unit)
    const count = Number(digits)
    if (count > MAX_DURATION_COUNT) throw fail(`${digits}${unit} is too large (at most ${MAX_DURATION_COUNT} per unit)`)
    d[field] = count
    pos += token.length
  }
  if (UNITS.every(([field]) => d[field] === 0)) throw fail('it is zero')
  return d
}

/** Canonical text: units in the order y m w d h min, zero units left out (`0d` for a zero duration). */
export function formatDuration(d: Duration): string {
  const text = UNITS.filter(([field]) => d[field] !== 0).map(([field, unit]) => `${d[field]}${unit}`).join('')
  return text === '' ? '0d' : text
}

/** Throws UsageError unless every field is a whole number >= 0 and at least one is not zero. */
export function checkDuration(d: Duration, what: string): void {
  for (const [field] of UNITS) {
    const n = d[field]
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_DURATION_COUNT) {
      throw new UsageError(`invalid ${what}: ${field} must be a whole number from 0 to ${MAX_DURATION_COUNT} (got ${n})`, {[field]: n})
    }
  }
  if (UNITS.every(([field]) => d[field] === 0)) throw new UsageError(`invalid ${what}: the duration is zero`)
}

const MINUTE = 60_000
const DAY = 86_400_000
/** The earliest instant a Date can hold; a cut-off further back is clamped to it. */
const MIN_TIME = -8.64e15

/**
 * The instant `d` before `now`, as a person in `timeZone` would count it: years and months step
 * the calendar month and clamp the day to that month's end (Mar 31 - 1m = Feb 28 or 29), weeks
 * and days step calendar days keeping the wall-clock time (23 or 25 hours across a DST change),
 * then hours and minutes are subtracted as exact time. A wall-clock time that the zone skips
 * (spring forward) moves forward by the gap; one it repeats (fall back) takes the earlier instant.
 */
export function subtractDuration(now: number, d: Duration, timeZone: string): number {
  const w = wallClock(now, timeZone)
  const monthIndex = w.year * 12 + (w.month - 1) - (d.years * 12 + d.months)
  const year = Math.floor(monthIndex / 12)
  const month = monthIndex - year * 12 + 1
  const day = Math.min(w.day, daysInMonth(year, month))
  const wall = utc(year, month, day, w.hour, w.minute, w.second, w.millisecond) - (d.weeks * 7 + d.days) * DAY
  // Two days of margin: instantFromWall looks one day either side, and offsets stay under a day.
  if (!(wall - 2 * DAY >= MIN_TIME)) return MIN_TIME
  return Math.max(MIN_TIME, instantFromWall(wall, timeZone) - (d.hours * 60 + d.minutes) * MINUTE)
}

/** Calendar fields of an instant in a time zone; `offset` is local minus UTC, in ms. */
export interface WallClock {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
  readonly millisecond: number
  readonly offset: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone, hourCycle: 'h23', era: 'short',
        year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
      })
    } catch (err) {
      throw new UsageError(`unknown time zone '${timeZone}': use an IANA name such as Europe/Berlin, or UTC`, {timeZone}, {cause: err})
    }
    formatters.set(timeZone, f)
  }
  return f
}

/** Throws UsageError if `timeZone` is not a zone Intl knows. */
export function checkTimeZone(timeZone: string): void {
  formatter(timeZone)
}

export function wallClock(time: number, timeZone: string): WallClock {
  // Intl shows whole seconds; milliseconds never change across a zone offset we can meet.
  const whole = Math.floor(time / 1000) * 1000
  const parts: Record<string, string> = {}
  for (const part of formatter(timeZone).formatToParts(whole)) parts[part.type] = part.value
  const eraYear = Number(parts.year)
  const year = parts.era === 'BC' ? 1 - eraYear : eraYear
  const month = Number(parts.month)
  const day = Number(parts.day)
  const hour = Number(parts.hour)
  const minute = Number(parts.minute)
  const second = Number(parts.second)
  const millisecond = time - whole
  const offset = utc(year, month, day, hour, minute, second, 0) - whole
  return {year, month, day, hour, minute, second, millisecond, offset}
}

/** The instant whose wall clock in `timeZone` reads `wall` (wall-clock fields encoded as if UTC). */
function instantFromWall(wall: number, timeZone: string): number {
  const offsetAt = (t: number): number => wallClock(t, timeZone).offset
  // Zone transitions are far more than two days apart, so the offsets a day either side are the
  // only candidates.
  const before = offsetAt(wall - DAY)
  const after = offsetAt(wall + DAY)
  const fits = [...new Set([before, after])].map((o) => wall - o).filter((t) => offsetAt(t) === wall - t)
  if (fits.length === 0) return wall - before // in a gap: the old offset lands just past it
  return Math.min(...fits)
}

/** Date.UTC without its mapping of years 0-99 to 1900-1999. */
function utc(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, ms)
  return date.getTime()
}

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month + 1, 0, 0, 0, 0, 0)).getUTCDate()
}
