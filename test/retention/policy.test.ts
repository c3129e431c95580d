import {describe, expect, test} from 'vitest'
import {UsageError} from '../../src/core/errors.js'
import {parseDuration} from '../../src/retention/duration.js'
import {
  applyPolicy,
  DEFAULT_GROUP_BY,
  type GroupBy,
  isEmptyPolicy,
  parseGroupBy,
  POLICY_HELP,
  type PolicyResult,
  type RetentionPolicy,
  type SnapshotRef,
} from '../../src/retention/policy.js'

const at = (iso: string): number => {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) throw new Error(`bad test timestamp ${iso}`)
  return t
}

type Spec = [id: string, iso: string, extra?: Partial<Omit<SnapshotRef, 'id' | 'time'>>]

const snap = ([id, iso, extra = {}]: Spec): SnapshotRef => ({
  id, time: at(iso), host: 'h1', source: '/data', tags: [], pinned: false, ...extra,
})

/** One line per decision, in output order: 'id: reason, reason' for a kept snapshot, 'id: remove' otherwise. */
function lines(result: PolicyResult): string[] {
  return result.groups.flatMap((g) => g.decisions.map((d) => `${d.snapshot.id}: ${d.keep ? d.reasons.join(', ') : 'remove'}`))
}

interface Case {
  name: string
  now?: string
  zone?: string
  groupBy?: GroupBy
  policy: RetentionPolicy
  snapshots: Spec[]
  expected: string[]
}

const NOW = '2026-12-31T12:00:00Z'

function run(c: Pick<Case, 'now' | 'zone' | 'groupBy' | 'policy' | 'snapshots'>): PolicyResult {
  return applyPolicy(c.snapshots.map(snap), c.policy, {now: at(c.now ?? NOW), timeZone: c.zone ?? 'UTC', groupBy: c.groupBy ?? []})
}

const cases: Case[] = [
  // ---- last
  {
    name: 'last N keeps the N newest',
    policy: {last: 3},
    snapshots: [['e', '2026-11-01T00:00:00Z'], ['a', '2026-11-05T00:00:00Z'], ['c', '2026-11-03T00:00:00Z'], ['b', '2026-11-04T00:00:00Z'], ['d', '2026-11-02T00:00:00Z']],
    expected: ['a: newest of group, last 1/3', 'b: last 2/3', 'c: last 3/3', 'd: remove', 'e: remove'],
  },
  {
    name: 'last N larger than the group keeps all',
    policy: {last: 5},
    snapshots: [['a', '2026-11-05T00:00:00Z'], ['b', '2026-11-04T00:00:00Z']],
    expected: ['a: newest of group, last 1/5', 'b: last 2/5'],
  },
  {
    name: 'equal times are ordered by id, whatever the input order',
    policy: {last: 2},
    snapshots: [['c', '2026-11-05T00:00:00Z'], ['b', '2026-11-05T00:00:00Z'], ['a', '2026-11-05T00:00:00Z']],
    expected: ['a: newest of group, last 1/2', 'b: last 2/2', 'c: remove'],
  },
  // ---- hourly
  {
    name: 'hourly: the newest snapshot of each hour, hour edges exact',
    policy: {hourly: 3},
    snapshots: [
      ['a', '2026-11-20T14:00:00Z'],
      ['b', '2026-11-20T13:59:59.999Z'],
      ['c', '2026-11-20T13:00:00Z'],
      ['d', '2026-11-20T11:30:00Z'],
      ['e', '2026-11-20T10:59:00Z'],
    ],
    expected: [
      'a: newest of group, hourly 2026-11-20 14:00+00:00',
      'b: hourly 2026-11-20 13:00+00:00',
      'c: remove',
      'd: hourly 2026-11-20 11:00+00:00',
      'e: remove',
    ],
  },
  {
    name: 'hourly in Europe/Berlin: the hour repeated when clocks fall back is two buckets',
    zone: 'Europe/Berlin',
    policy: {hourly: 3},
    snapshots: [
      ['a', '2026-10-25T02:40:00+01:00'],
      ['b', '2026-10-25T02:10:00+01:00'],
      ['c', '2026-10-25T02:50:00+02:00'],
      ['d', '2026-10-25T02:05:00+02:00'],
      ['e', '2026-10-25T01:59:00+02:00'],
      ['f', '2026-10-25T01:00:00+02:00'],
    ],
    expected: [
      'a: newest of group, hourly 2026-10-25 02:00+01:00',
      'b: remove',
      'c: hourly 2026-10-25 02:00+02:00',
      'd: remove',
      'e: hourly 2026-10-25 01:00+02:00',
      'f: remove',
    ],
  },
  {
    name: 'hourly in Asia/Kolkata: hours start at :00 local, which is :30 UTC',
    zone: 'Asia/Kolkata',
    policy: {hourly: 2},
    snapshots: [['a', '2026-11-20T08:45:00Z'], ['b', '2026-11-20T08:31:00Z'], ['c', '2026-11-20T08:29:00Z']],
    expected: ['a: newest of group, hourly 2026-11-20 14:00+05:30', 'b: remove', 'c: hourly 2026-11-20 13:00+05:30'],
  },
  // ---- daily
  {
    name: 'daily in UTC: midnight starts a new day',
    policy: {daily: 3},
    snapshots: [
      ['a', '2026-11-21T12:00:00Z'],
      ['b', '2026-11-21T00:00:00Z'],
      ['c', '2026-11-20T23:59:59.999Z'],
      ['d', '2026-11-20T08:00:00Z'],
      ['e', '2026-11-18T10:00:00Z'],
      ['f', '2026-11-17T10:00:00Z'],
    ],
    expected: ['a: newest of group, daily 2026-11-21', 'b: remove', 'c: daily 2026-11-20', 'd: remove', 'e: daily 2026-11-18', 'f: remove'],
  },
  {
    name: 'daily in Europe/Berlin: the same instants fall on other local days',
    zone: 'Europe/Berlin',
    policy: {daily: 3},
    snapshots: [
      ['a', '2026-11-21T12:00:00Z'],
      ['b', '2026-11-21T00:00:00Z'],
      ['c', '2026-11-20T23:59:59.999Z'],
      ['d', '2026-11-20T08:00:00Z'],
      ['e', '2026-11-18T10:00:00Z'],
      ['f', '2026-11-17T10:00:00Z'],
    ],
    expected: ['a: newest of group, daily 2026-11-21', 'b: remove', 'c: remove', 'd: daily 2026-11-20', 'e: daily 2026-11-18', 'f: remove'],
  },
  {
    name: 'daily across spring forward in Europe/Berlin: a 23-hour day is one bucket',
    zone: 'Europe/Berlin',
    policy: {daily: 2},
    snapshots: [['a', '2026-03-29T23:30:00+02:00'], ['b', '2026-03-29T00:30:00+01:00'], ['c', '2026-03-28T23:30:00+01:00']],
    expected: ['a: newest of group, daily 2026-03-29', 'b: remove', 'c: daily 2026-03-28'],
  },
  {
    name: 'daily across spring forward in UTC: the same instants are three days',
    policy: {daily: 2},
    snapshots: [['a', '2026-03-29T23:30:00+02:00'], ['b', '2026-03-29T00:30:00+01:00'], ['c', '2026-03-28T23:30:00+01:00']],
    expected: ['a: newest of group, daily 2026-03-29', 'b: daily 2026-03-28', 'c: remove'],
  },
  {
    name: 'daily: several rules share no count, and a gap of days is skipped, not counted',
    policy: {daily: 2},
    snapshots: [['a', '2026-11-30T10:00:00Z'], ['b', '2026-11-01T10:00:00Z'], ['c', '2026-10-01T10:00:00Z']],
    expected: ['a: newest of group, daily 2026-11-30', 'b: daily 2026-11-01', 'c: remove'],
  },
  // ---- weekly (ISO weeks, Monday start, ISO week-year)
  {
    name: 'weekly: ISO week 53 of 2026 runs from Monday 2026-12-28 to Sunday 2027-01-03',
    now: '2027-01-10T00:00:00Z',
    policy: {weekly: 4},
    snapshots: [
      ['a', '2027-01-04T00:00:00Z'],
      ['b', '2027-01-03T23:59:59Z'],
      ['c', '2026-12-28T00:00:00Z'],
      ['d', '2026-12-27T23:59:59Z'],
      ['e', '2026-12-21T00:00:00Z'],
      ['f', '2026-12-20T12:00:00Z'],
    ],
    expected: ['a: newest of group, weekly 2027-W01', 'b: weekly 2026-W53', 'c: remove', 'd: weekly 2026-W52', 'e: remove', 'f: weekly 2026-W51'],
  },
  {
    name: 'weekly: days at the start of January can belong to the previous week-year, and late December to the next',
    policy: {weekly: 5},
    snapshots: [
      ['a', '2025-12-29T09:00:00Z'],
      ['b', '2024-12-30T09:00:00Z'],
      ['c', '2024-12-29T09:00:00Z'],
      ['d', '2021-01-03T09:00:00Z'],
      ['e', '2021-01-04T09:00:00Z'],
    ],
    expected: ['a: newest of group, weekly 2026-W01', 'b: weekly 2025-W01', 'c: weekly 2024-W52', 'e: weekly 2021-W01', 'd: weekly 2020-W53'],
  },
  {
    name: 'weekly in Europe/Berlin: Sunday 23:30 UTC is already Monday in Berlin',
    zone: 'Europe/Berlin',
    policy: {weekly: 2},
    snapshots: [['a', '2026-11-22T23:30:00Z'], ['b', '2026-11-22T22:30:00Z'], ['c', '2026-11-15T10:00:00Z']],
    expected: ['a: newest of group, weekly 2026-W48', 'b: weekly 2026-W47', 'c: remove'],
  },
  {
    name: 'weekly in UTC: the same instants are one week',
    policy: {weekly: 2},
    snapshots: [['a', '2026-11-22T23:30:00Z'], ['b', '2026-11-22T22:30:00Z'], ['c', '2026-11-15T10:00:00Z']],
    expected: ['a: newest of group, weekly 2026-W47', 'b: remove', 'c: weekly 2026-W46'],
  },
  // ---- monthly
  {
    name: 'monthly: month end to month start, leap February',
    policy: {monthly: 3},
    snapshots: [
      ['a', '2024-03-01T00:00:00Z'],
      ['b', '2024-02-29T23:59:59Z'],
      ['c', '2024-02-01T00:00:00Z'],
      ['d', '2024-01-31T23:59:59Z'],
      ['e', '2023-12-31T00:00:00Z'],
    ],
    expected: ['a: newest of group, monthly 2024-03', 'b: monthly 2024-02', 'c: remove', 'd: monthly 2024-01', 'e: remove'],
  },
  {
    name: 'monthly in Europe/Berlin: the last evening of January UTC is February',
    zone: 'Europe/Berlin',
    policy: {monthly: 2},
    snapshots: [['a', '2026-01-31T23:30:00Z'], ['b', '2026-01-31T22:30:00Z'], ['c', '2026-01-01T00:00:00Z']],
    expected: ['a: newest of group, monthly 2026-02', 'b: monthly 2026-01', 'c: remove'],
  },
  // ---- yearly
  {
    name: 'yearly: year end in UTC',
    policy: {yearly: 2},
    snapshots: [['a', '2026-01-01T00:00:00Z'], ['b', '2025-12-31T23:59:59Z'], ['c', '2025-01-01T00:00:00Z'], ['d', '2024-06-01T00:00:00Z']],
    expected: ['a: newest of group, yearly 2026', 'b: yearly 2025', 'c: remove', 'd: remove'],
  },
  {
    name: 'yearly in America/New_York: New Year UTC is still the old year there',
    zone: 'America/New_York',
    policy: {yearly: 2},
    snapshots: [['a', '2026-01-01T03:00:00Z'], ['b', '2025-12-31T12:00:00Z'], ['c', '2025-01-01T00:00:00Z'], ['d', '2024-06-01T00:00:00Z']],
    expected: ['a: newest of group, yearly 2025', 'b: remove', 'c: yearly 2024', 'd: remove'],
  },
  // ---- within
  {
    name: 'within: the cut-off instant itself is kept, a millisecond older is not',
    now: '2026-11-20T12:00:00Z',
    policy: {within: parseDuration('7d')},
    snapshots: [['a', '2026-11-20T11:00:00Z'], ['b', '2026-11-13T12:00:00Z'], ['c', '2026-11-13T11:59:59.999Z']],
    expected: ['a: newest of group, within 7d', 'b: within 7d', 'c: remove'],
  },
  {
    name: 'within 1d in Europe/Berlin across spring forward is 23 hours',
    now: '2026-03-29T12:00:00+02:00',
    zone: 'Europe/Berlin',
    policy: {within: parseDuration('1d')},
    snapshots: [['a', '2026-03-29T10:00:00Z'], ['b', '2026-03-28T11:00:00Z'], ['c', '2026-03-28T10:30:00Z']],
    expected: ['a: newest of group, within 1d', 'b: within 1d', 'c: remove'],
  },
  {
    name: 'within 1d in UTC for the same instants is 24 hours',
    now: '2026-03-29T12:00:00+02:00',
    policy: {within: parseDuration('1d')},
    snapshots: [['a', '2026-03-29T10:00:00Z'], ['b', '2026-03-28T11:00:00Z'], ['c', '2026-03-28T10:30:00Z']],
    expected: ['a: newest of group, within 1d', 'b: within 1d', 'c: within 1d'],
  },
  {
    name: 'within 1m from March 31 reaches back to February 28',
    now: '2026-03-31T12:00:00Z',
    policy: {within: parseDuration('1m')},
    snapshots: [['a', '2026-03-01T00:00:00Z'], ['b', '2026-02-28T12:00:00Z'], ['c', '2026-02-28T11:59:00Z']],
    expected: ['a: newest of group, within 1m', 'b: within 1m', 'c: remove'],
  },
  {
    name: 'within 36h is exact hours',
    now: '2026-11-20T12:00:00Z',
    policy: {within: parseDuration('36h')},
    snapshots: [['a', '2026-11-19T00:00:00Z'], ['b', '2026-11-18T23:59:59Z']],
    expected: ['a: newest of group, within 36h', 'b: remove'],
  },
  // ---- tags
  {
    name: 'tags: any listed tag keeps the snapshot, each matching tag is a reason',
    policy: {tags: ['prod', 'monthly']},
    snapshots: [
      ['a', '2026-11-05T00:00:00Z'],
      ['b', '2026-11-04T00:00:00Z', {tags: ['monthly', 'prod']}],
      ['c', '2026-11-03T00:00:00Z', {tags: ['test']}],
      ['d', '2026-11-02T00:00:00Z', {tags: ['prod']}],
      ['e', '2026-11-01T00:00:00Z', {tags: ['production']}],
    ],
    expected: ['a: newest of group', 'b: tag prod, tag monthly', 'c: remove', 'd: tag prod', 'e: remove'],
  },
  // ---- pins, newest of group, future
  {
    name: 'pinned snapshots are always kept',
    policy: {last: 1},
    snapshots: [['a', '2026-11-05T00:00:00Z'], ['b', '2026-11-04T00:00:00Z'], ['c', '2020-01-01T00:00:00Z', {pinned: true}]],
    expected: ['a: newest of group, last 1/1', 'b: remove', 'c: pinned'],
  },
  {
    name: 'the newest snapshot of the group is kept even if no rule keeps it',
    policy: {within: parseDuration('1d')},
    snapshots: [['a', '2026-11-05T00:00:00Z'], ['b', '2026-11-04T00:00:00Z']],
    expected: ['a: newest of group', 'b: remove'],
  },
  {
    name: 'future snapshots are kept and not counted by last, the buckets, within or newest of group',
    now: '2026-11-20T12:00:00Z',
    policy: {last: 1, daily: 1, within: parseDuration('1h')},
    snapshots: [
      ['f2', '2027-01-01T00:00:00Z', {pinned: true}],
      ['f1', '2026-11-20T12:00:00.001Z'],
      ['a', '2026-11-20T12:00:00Z'],
      ['b', '2026-11-20T11:30:00Z'],
      ['c', '2026-11-19T10:00:00Z'],
    ],
    expected: ['f2: future, pinned', 'f1: future', 'a: newest of group, last 1/1, daily 2026-11-20, within 1h', 'b: within 1h', 'c: remove'],
  },
  {
    name: 'a group with only future snapshots keeps them all',
    now: '2026-11-20T12:00:00Z',
    policy: {last: 1},
    snapshots: [['a', '2026-11-21T00:00:00Z'], ['b', '2026-11-20T13:00:00Z']],
    expected: ['a: future', 'b: future'],
  },
  // ---- combinations
  {
    name: 'rules are independent: each sees every snapshot and lists itself on the ones it keeps',
    now: '2026-11-30T12:00:00Z',
    policy: {last: 2, daily: 3, weekly: 2, monthly: 2, yearly: 2, within: parseDuration('1d'), tags: ['keep']},
    snapshots: [
      ['a', '2026-11-30T10:00:00Z'],
      ['b', '2026-11-30T08:00:00Z'],
      ['c', '2026-11-29T20:00:00Z'],
      ['d', '2026-11-28T09:00:00Z'],
      ['e', '2026-11-20T09:00:00Z', {tags: ['keep']}],
      ['f', '2026-10-31T09:00:00Z'],
      ['g', '2026-10-30T09:00:00Z'],
      ['h', '2025-12-31T09:00:00Z'],
      ['i', '2024-12-31T09:00:00Z'],
    ],
    expected: [
      'a: newest of group, last 1/2, daily 2026-11-30, weekly 2026-W49, monthly 2026-11, yearly 2026, within 1d',
      'b: last 2/2, within 1d',
      'c: daily 2026-11-29, weekly 2026-W48, within 1d',
      'd: daily 2026-11-28',
      'e: tag keep',
      'f: monthly 2026-10',
      'g: remove',
      'h: yearly 2025',
      'i: remove',
    ],
  },
  {
    name: 'hourly and daily with ties in one bucket: the id decides which one is the newest',
    policy: {hourly: 1, daily: 2},
    snapshots: [['y', '2026-11-20T10:00:00Z'], ['x', '2026-11-20T10:00:00Z'], ['w', '2026-11-19T10:00:00Z'], ['v', '2026-11-19T10:00:00Z']],
    expected: ['x: newest of group, hourly 2026-11-20 10:00+00:00, daily 2026-11-20', 'y: remove', 'v: daily 2026-11-19', 'w: remove'],
  },
  // ---- groups
  {
    name: 'grouped by host: each host is decided alone, groups sorted by key',
    groupBy: ['host'],
    policy: {last: 1},
    snapshots: [
      ['a', '2026-11-05T00:00:00Z', {host: 'zeta'}],
      ['b', '2026-11-04T00:00:00Z', {host: 'alpha'}],
      ['c', '2026-11-03T00:00:00Z', {host: 'zeta'}],
      ['d', '2026-11-02T00:00:00Z', {host: 'alpha'}],
    ],
    expected: ['b: newest of group, last 1/1', 'd: remove', 'a: newest of group, last 1/1', 'c: remove'],
  },
  {
    name: 'grouped by source',
    groupBy: ['source'],
    policy: {last: 1},
    snapshots: [
      ['a', '2026-11-05T00:00:00Z', {source: '/b'}],
      ['b', '2026-11-04T00:00:00Z', {source: '/a', host: 'other'}],
      ['c', '2026-11-03T00:00:00Z', {source: '/a'}],
    ],
    expected: ['b: newest of group, last 1/1', 'c: remove', 'a: newest of group, last 1/1'],
  },
  {
    name: 'grouped by tags: the sorted tag set, so tag order and repeats do not matter',
    groupBy: ['tags'],
    policy: {last: 1},
    snapshots: [
      ['a', '2026-11-05T00:00:00Z', {tags: ['x', 'a']}],
      ['b', '2026-11-04T00:00:00Z', {tags: ['a', 'x', 'a']}],
      ['c', '2026-11-03T00:00:00Z'],
      ['d', '2026-11-02T00:00:00Z', {tags: ['a']}],
    ],
    expected: ['c: newest of group, last 1/1', 'd: newest of group, last 1/1', 'a: newest of group, last 1/1', 'b: remove'],
  },
  {
    name: 'no grouping: one group for all hosts and sources',
    groupBy: [],
    policy: {last: 1},
    snapshots: [['a', '2026-11-05T00:00:00Z', {host: 'zeta'}], ['b', '2026-11-04T00:00:00Z', {host: 'alpha', source: '/x'}]],
    expected: ['a: newest of group, last 1/1', 'b: remove'],
  },
  {
    name: 'grouped by host and source',
    groupBy: ['host', 'source'],
    policy: {last: 1},
    snapshots: [
      ['a', '2026-11-05T00:00:00Z', {host: 'h2', source: '/a'}],
      ['b', '2026-11-04T00:00:00Z', {host: 'h1', source: '/b'}],
      ['c', '2026-11-03T00:00:00Z', {host: 'h1', source: '/a'}],
      ['d', '2026-11-02T00:00:00Z', {host: 'h1', source: '/a'}],
    ],
    expected: ['c: newest of group, last 1/1', 'd: remove', 'b: newest of group, last 1/1', 'a: newest of group, last 1/1'],
  },
  {
    name: 'a rule with count 0 is no rule',
    policy: {last: 0, daily: 0, within: parseDuration('1d')},
    now: '2026-11-05T12:00:00Z',
    snapshots: [['a', '2026-11-05T00:00:00Z'], ['b', '2026-11-03T00:00:00Z']],
    expected: ['a: newest of group, within 1d', 'b: remove'],
  },
  // ---- safety snapshots (tag pre-restore): their own rule, never counted as checkpoints
  {
    name: 'last 1 with one checkpoint and two newer safety snapshots keeps the checkpoint',
    policy: {last: 1},
    snapshots: [['c', '2026-11-01T00:00:00Z'], ['p1', '2026-11-02T00:00:00Z', {tags: ['pre-restore']}], ['p2', '2026-11-03T00:00:00Z', {tags: ['pre-restore']}]],
    expected: ['p2: pre-restore 1/3', 'p1: pre-restore 2/3', 'c: newest of group, last 1/1'],
  },
  {
    name: 'by default the 3 newest safety snapshots of a group are kept',
    policy: {last: 1},
    snapshots: [
      ['c', '2026-11-06T00:00:00Z'],
      ['p1', '2026-11-01T00:00:00Z', {tags: ['pre-restore']}],
      ['p2', '2026-11-02T00:00:00Z', {tags: ['pre-restore']}],
      ['p3', '2026-11-03T00:00:00Z', {tags: ['pre-restore']}],
      ['p4', '2026-11-04T00:00:00Z', {tags: ['pre-restore']}],
    ],
    expected: ['c: newest of group, last 1/1', 'p4: pre-restore 1/3', 'p3: pre-restore 2/3', 'p2: pre-restore 3/3', 'p1: remove'],
  },
  {
    name: 'preRestore N sets the count; 0 removes every safety snapshot not pinned',
    policy: {last: 5, preRestore: 0},
    snapshots: [['c', '2026-11-01T00:00:00Z'], ['p1', '2026-11-02T00:00:00Z', {tags: ['pre-restore']}], ['p2', '2026-11-03T00:00:00Z', {tags: ['pre-restore'], pinned: true}]],
    expected: ['p2: pinned', 'p1: remove', 'c: newest of group, last 1/5'],
  },
  {
    name: 'within, buckets and tags neither keep nor count safety snapshots',
    policy: {within: parseDuration('30d'), daily: 2, tags: ['pre-restore', 'nightly'], preRestore: 1},
    now: '2026-11-05T12:00:00Z',
    snapshots: [
      ['a', '2026-11-04T10:00:00Z', {tags: ['nightly']}],
      ['p1', '2026-11-05T09:00:00Z', {tags: ['pre-restore', 'nightly']}],
      ['p2', '2026-11-05T10:00:00Z', {tags: ['pre-restore']}],
      ['b', '2026-11-03T10:00:00Z'],
    ],
    expected: ['p2: pre-restore 1/1', 'p1: remove', 'a: newest of group, daily 2026-11-04, within 30d, tag nightly', 'b: daily 2026-11-03, within 30d'],
  },
  {
    name: 'a safety snapshot dated in the future is kept and not counted',
    policy: {last: 1, preRestore: 1},
    now: '2026-11-05T12:00:00Z',
    snapshots: [['c', '2026-11-01T00:00:00Z'], ['p1', '2026-11-02T00:00:00Z', {tags: ['pre-restore']}], ['pf', '2027-01-01T00:00:00Z', {tags: ['pre-restore']}]],
    expected: ['pf: future', 'p1: pre-restore 1/1', 'c: newest of group, last 1/1'],
  },
  {
    name: 'grouped by tags, the safety snapshots form a group with no newest-of-group',
    groupBy: ['tags'],
    policy: {last: 1, preRestore: 1},
    snapshots: [['c', '2026-11-01T00:00:00Z'], ['p1', '2026-11-02T00:00:00Z', {tags: ['pre-restore']}], ['p2', '2026-11-03T00:00:00Z', {tags: ['pre-restore']}]],
    expected: ['c: newest of group, last 1/1', 'p2: pre-restore 1/1', 'p1: remove'],
  },
  // ---- prefer consistent
  {
    name: 'prefer-consistent: a period keeps its newest consistent snapshot, not its newest',
    policy: {daily: 2, preferConsistent: true},
    snapshots: [
      ['a', '2026-11-21T18:00:00Z', {consistent: false}],
      ['b', '2026-11-21T12:00:00Z', {consistent: true}],
      ['c', '2026-11-21T09:00:00Z', {consistent: true}],
      ['d', '2026-11-20T12:00:00Z', {consistent: false}],
      ['e', '2026-11-20T08:00:00Z', {consistent: true}],
    ],
    expected: ['a: newest of group', 'b: daily 2026-11-21 (consistent)', 'c: remove', 'd: remove', 'e: daily 2026-11-20 (consistent)'],
  },
  {
    name: 'prefer-consistent: a period without a consistent snapshot keeps its newest; unknown (no record) is not consistent',
    policy: {daily: 3, preferConsistent: true},
    snapshots: [
      ['a', '2026-11-21T18:00:00Z', {consistent: false}],
      ['b', '2026-11-21T09:00:00Z', {consistent: false}],
      ['c', '2026-11-20T18:00:00Z'],
      ['d', '2026-11-20T09:00:00Z', {consistent: true}],
      ['e', '2026-11-19T18:00:00Z'],
      ['f', '2026-11-19T09:00:00Z'],
    ],
    expected: ['a: newest of group, daily 2026-11-21', 'b: remove', 'c: remove', 'd: daily 2026-11-20 (consistent)', 'e: daily 2026-11-19', 'f: remove'],
  },
  {
    name: 'prefer-consistent: each bucket rule chooses alone; last and within are unchanged',
    policy: {hourly: 2, weekly: 1, last: 1, preferConsistent: true},
    snapshots: [
      ['a', '2026-11-20T14:30:00Z', {consistent: false}],
      ['b', '2026-11-20T14:10:00Z', {consistent: true}],
      ['c', '2026-11-20T13:50:00Z', {consistent: false}],
      ['d', '2026-11-19T10:00:00Z', {consistent: false}],
    ],
    expected: ['a: newest of group, last 1/1', 'b: hourly 2026-11-20 14:00+00:00 (consistent), weekly 2026-W47 (consistent)', 'c: hourly 2026-11-20 13:00+00:00', 'd: remove'],
  },
  {
    name: 'without prefer-consistent the consistency of snapshots changes nothing',
    policy: {daily: 1},
    snapshots: [['a', '2026-11-21T18:00:00Z', {consistent: false}], ['b', '2026-11-21T12:00:00Z', {consistent: true}]],
    expected: ['a: newest of group, daily 2026-11-21', 'b: remove'],
  },
]

describe('applyPolicy', () => {
  test.each(cases)('$name', (c) => {
    expect(lines(run(c))).toEqual(c.expected)
  })

  test('group keys, and keep/remove in group order, newest first', () => {
    const result = run({
      groupBy: ['host', 'source', 'tags'],
      policy: {last: 1},
      snapshots: [
        ['a', '2026-11-05T00:00:00Z', {host: 'h2', tags: ['b', 'a']}],
        ['b', '2026-11-04T00:00:00Z', {host: 'h1'}],
        ['c', '2026-11-03T00:00:00Z', {host: 'h2', tags: ['a', 'b']}],
        ['d', '2026-11-02T00:00:00Z', {host: 'h1'}],
      ],
    })
    expect(result.groups.map((g) => g.key)).toEqual([
      {host: 'h1', source: '/data', tags: ''},
      {host: 'h2', source: '/data', tags: 'a,b'},
    ])
    expect(result.keep.map((d) => d.snapshot.id)).toEqual(['b', 'a'])
    expect(result.remove.map((d) => d.snapshot.id)).toEqual(['d', 'c'])
    expect(result.remove.every((d) => !d.keep && d.reasons.length === 0)).toBe(true)
  })

  test('tags containing a comma do not merge groups that display alike', () => {
    const result = run({
      groupBy: ['tags'],
      policy: {last: 1},
      snapshots: [['a', '2026-11-05T00:00:00Z', {tags: ['x,y']}], ['b', '2026-11-04T00:00:00Z', {tags: ['x', 'y']}]],
    })
    expect(result.groups.map((g) => [g.key, g.decisions.map((d) => d.snapshot.id)])).toEqual([
      [{tags: 'x,y'}, ['b']],
      [{tags: 'x,y'}, ['a']],
    ])
  })

  test('the group key holds only the grouping fields; none gives an empty key', () => {
    const snapshots: Spec[] = [['a', '2026-11-05T00:00:00Z']]
    expect(run({groupBy: [], policy: {last: 1}, snapshots}).groups.map((g) => g.key)).toEqual([{}])
    expect(run({groupBy: ['source', 'host'], policy: {last: 1}, snapshots}).groups.map((g) => g.key)).toEqual([{host: 'h1', source: '/data'}])
  })

  test('no snapshots: nothing to decide', () => {
    expect(run({policy: {last: 1}, snapshots: []})).toEqual({groups: [], keep: [], remove: []})
  })

  test('the result does not depend on the input order, and the input is not changed', () => {
    const specs: Spec[] = [
      ['a', '2026-11-05T00:00:00Z', {host: 'x'}],
      ['b', '2026-11-05T00:00:00Z', {host: 'y'}],
      ['c', '2026-11-04T00:00:00Z', {host: 'x'}],
      ['d', '2026-11-01T00:00:00Z', {host: 'y'}],
    ]
    const forward = specs.map(snap)
    const backward = [...forward].reverse()
    const opts = {now: at(NOW), timeZone: 'UTC', groupBy: ['host'] as const}
    expect(applyPolicy(backward, {daily: 1}, opts)).toEqual(applyPolicy(forward, {daily: 1}, opts))
    expect(backward.map((s) => s.id)).toEqual(['d', 'c', 'b', 'a'])
  })

  test.each<[string, RetentionPolicy, string]>([
    ['no rule at all', {}, 'refusing to prune with an empty retention policy'],
    ['only zero counts and no tags', {last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0, tags: []}, 'refusing to prune with an empty retention policy'],
    ['a negative count', {last: -1}, 'invalid retention policy: last must be a whole number >= 0 (got -1)'],
    ['a fractional count', {daily: 1.5}, 'invalid retention policy: daily must be a whole number >= 0 (got 1.5)'],
    ['a NaN count', {weekly: Number.NaN}, 'invalid retention policy: weekly must be a whole number >= 0 (got NaN)'],
    ['a negative count beside a good rule', {monthly: 1, yearly: -2}, 'invalid retention policy: yearly must be a whole number >= 0 (got -2)'],
    ['a zero within', {within: {years: 0, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0}}, 'invalid retention policy: within: the duration is zero'],
    ['a negative within', {within: {years: 0, months: 0, weeks: 0, days: -1, hours: 0, minutes: 0}}, 'invalid retention policy: within: days must be a whole number from 0 to 1000000 (got -1)'],
    ['an empty tag', {tags: ['prod', '']}, 'invalid retention policy: a tag to keep cannot be empty'],
  ])('refuses %s', (_name, policy, message) => {
    const snapshots = [snap(['a', '2026-11-05T00:00:00Z'])]
    const call = (): PolicyResult => applyPolicy(snapshots, policy, {now: at(NOW), timeZone: 'UTC', groupBy: []})
    expect(call).toThrow(UsageError)
    expect(call).toThrow(message)
  })

  test('the empty-policy refusal happens even with no snapshots', () => {
    expect(() => applyPolicy([], {}, {now: 0, timeZone: 'UTC', groupBy: []})).toThrow(UsageError)
  })

  test('an unknown time zone is refused even when no rule needs the calendar', () => {
    expect(() => applyPolicy([], {last: 1}, {now: 0, timeZone: 'Nowhere/Land', groupBy: []})).toThrow(
      "unknown time zone 'Nowhere/Land': use an IANA name such as Europe/Berlin, or UTC",
    )
  })
})

describe('isEmptyPolicy', () => {
  test.each<[RetentionPolicy, boolean]>([
    [{}, true],
    [{last: 0}, true],
    [{tags: []}, true],
    [{last: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0, hourly: 0, tags: []}, true],
    [{last: 1}, false],
    [{hourly: 2}, false],
    [{yearly: 1}, false],
    [{tags: ['prod']}, false],
    [{within: parseDuration('7d')}, false],
    [{last: -1}, false],
  ])('%j -> %s', (policy, empty) => {
    expect(isEmptyPolicy(policy)).toBe(empty)
  })
})

describe('parseGroupBy', () => {
  test.each<[string, GroupBy]>([
    ['none', []],
    ['host', ['host']],
    ['source', ['source']],
    ['tags', ['tags']],
    ['host,source', ['host', 'source']],
    ['source,host', ['host', 'source']],
    [' tags , host ', ['host', 'tags']],
    ['tags,source,host', ['host', 'source', 'tags']],
  ])('%j -> %j', (text, groupBy) => {
    expect(parseGroupBy(text)).toEqual(groupBy)
  })

  test.each([
    ['', 'empty item'],
    ['host,', 'empty item'],
    ['paths', "unknown field 'paths'"],
    ['Host', "unknown field 'Host'"],
    ['host,host', "'host' is repeated"],
    ['none,host', "'none' cannot be combined with other fields"],
  ])('rejects %j', (text, why) => {
    expect(() => parseGroupBy(text)).toThrow(UsageError)
    expect(() => parseGroupBy(text)).toThrow(`invalid group-by '${text}': ${why}; expected 'none' or a comma list of host, source, tags`)
  })
})

describe('POLICY_HELP and DEFAULT_GROUP_BY', () => {
  test.each(['last N', 'hourly N', 'daily N', 'weekly N', 'monthly N', 'yearly N', 'within D', 'tags T', 'Pinned', 'newest snapshot of each group', 'refused'])(
    'the help names %j',
    (words) => {
      expect(POLICY_HELP).toContain(words)
    },
  )

  test('the default grouping is host and source', () => {
    expect(DEFAULT_GROUP_BY).toEqual(parseGroupBy('host,source'))
  })
})
