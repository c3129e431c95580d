// The retention policy behind `ckpt prune`: which snapshots to keep, and why. A pure function of
// the snapshot list, the policy, `now` and a time zone, so `--dry-run` and the tests see exactly
// what prune will do. docs/RETENTION.md states the semantics with worked examples.
import {UsageError} from '../core/errors.js'
import {isSafetySnapshot} from '../snapshot/catalog.js'
import {checkDuration, checkTimeZone, type Duration, formatDuration, subtractDuration, wallClock, type WallClock} from './duration.js'

export interface SnapshotRef {
  id: string
  /** ms since the epoch */
  time: number
  host: string
  source: string
  tags: readonly string[]
  pinned: boolean
  /**
   * Whether the snapshot is a consistent image of one instant (the manifest's capture record);
   * undefined when not recorded (manifests from before ckpt recorded it): unknown, so never preferred.
   */
  consistent?: boolean
}

export interface RetentionPolicy {
  last?: number
  hourly?: number
  daily?: number
  weekly?: number
  monthly?: number
  yearly?: number
  within?: Duration
  tags?: readonly string[]
  /**
   * How many safety snapshots (isSafetySnapshot: restore's pre-restore undo points) to keep per
   * group, newest first; default DEFAULT_KEEP_PRE_RESTORE. The rules above never look at them.
   */
  preRestore?: number
  /**
   * The bucket rules (hourly ... yearly) keep the newest *consistent* snapshot of a period when the
   * period has one, instead of the newest of any kind. last, within, tags and the newest of the
   * group are unchanged: the newest snapshot is still always kept.
   */
  preferConsistent?: boolean
}

/** Safety snapshots kept per group when the policy does not say: the undo points of the last three restores. */
export const DEFAULT_KEEP_PRE_RESTORE = 3

export type GroupField = 'host' | 'source' | 'tags'
/** The fields that split snapshots into groups decided alone; [] means one group for all. */
export type GroupBy = readonly GroupField[]

export interface Decision {
  snapshot: SnapshotRef
  keep: boolean
  /** Why it is kept, e.g. 'last 1/3', 'daily 2026-11-20', 'within 7d', 'tag prod', 'pinned'; [] if removed. */
  reasons: string[]
}

export interface PolicyGroup {
  key: Record<string, string>
  decisions: Decision[]
}

export interface PolicyResult {
  groups: PolicyGroup[]
  keep: Decision[]
  remove: Decision[]
}

export interface PolicyOptions {
  now: number
  timeZone: string
  groupBy: GroupBy
}

export const DEFAULT_GROUP_BY: GroupBy = ['host', 'source']

/** The policy in a few lines, for the --help of `ckpt prune`. docs/RETENTION.md has the long form. */
export const POLICY_HELP = [
  'Snapshots are split into groups (by default by host and source) and each group is decided alone.',
  'A snapshot is kept if any rule keeps it:',
  '  last N       the N newest snapshots',
  '  hourly N, daily N, weekly N, monthly N, yearly N',
  '               the newest snapshot of each of the N most recent hours, days, ISO weeks (from Monday),',
  "               months or years that have one, by the time zone's calendar",
  '  within D     every snapshot taken at or after now minus D (D like 36h, 7d, 2w, 1y6m, 30min; m is months)',
  '  tags T,...   every snapshot that carries any of the tags',
  'With prefer-consistent, the hourly ... yearly rules keep the newest consistent snapshot of each period',
  '(a consistent image of one instant, as ckpt snapshots shows) when the period has one, else the newest.',
  'Pinned snapshots, snapshots dated in the future and the newest snapshot of each group are always kept.',
  'A count of 0 is no rule, and a policy with no rule at all is refused.',
  `Safety snapshots (tag pre-restore: what a restore replaced) are not checkpoints: the rules above neither`,
  `keep nor count them. They have their own rule, pre-restore N: the N newest of each group (default ${DEFAULT_KEEP_PRE_RESTORE}).`,
].join('\n')

const COUNT_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const
type CountRule = (typeof COUNT_RULES)[number]
type BucketRule = Exclude<CountRule, 'last'>
const BUCKET_RULES: readonly BucketRule[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly']

const GROUP_FIELDS: readonly GroupField[] = ['host', 'source', 'tags']

/** True if the policy has no rule at all: counts absent or 0, no `within`, no tags. */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return COUNT_RULES.every((rule) => p[rule] === undefined || p[rule] === 0) && p.within === undefined && (p.tags ?? []).length === 0
}

/** 'none', or a comma list of host, source, tags; returned in that canonical order. */
export function parseGroupBy(text: string): GroupBy {
  const fail = (why: string): UsageError =>
    new UsageError(`invalid group-by '${text}': ${why}; expected 'none' or a comma list of host, source, tags`, {groupBy: text})
  const items = text.split(',').map((item) => item.trim())
  if (items.length === 1 && items[0] === 'none') return []
  const seen = new Set<GroupField>()
  for (const item of items) {
    if (item === '') throw fail('empty item')
    if (item === 'none') throw fail("'none' cannot be combined with other fields")
    if (!(GROUP_FIELDS as readonly string[]).includes(item)) throw fail(`unknown field '${item}'`)
    const field = item as GroupField
    if (seen.has(field)) throw fail(`'${field}' is repeated`)
    seen.add(field)
  }
  return GROUP_FIELDS.filter((field) => seen.has(field))
}

function checkPolicy(p: RetentionPolicy): void {
  for (const rule of [...COUNT_RULES, 'preRestore'] as const) {
    const n = p[rule]
    if (n !== undefined && !(Number.isSafeInteger(n) && n >= 0)) {
      throw new UsageError(`invalid retention policy: ${rule} must be a whole number >= 0 (got ${n})`, {rule, value: n})
    }
  }
  if (p.within !== undefined) checkDuration(p.within, 'retention policy: within')
  for (const tag of p.tags ?? []) {
    if (tag === '') throw new UsageError('invalid retention policy: a tag to keep cannot be empty')
  }
  if (isEmptyPolicy(p)) {
    throw new UsageError(
      'refusing to prune with an empty retention policy (it would remove all but the newest snapshot of each group): ' +
        'give at least one of last, hourly, daily, weekly, monthly, yearly (a count above 0), within or tags',
    )
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0')

const BUCKETS: Record<BucketRule, (w: WallClock) => string> = {
  // The offset is part of the hour, so the hour repeated when clocks fall back is two buckets.
  hourly: (w) => `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:00${formatOffset(w.offset)}`,
  daily: (w) => `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`,
  weekly: (w) => isoWeek(w.year, w.month, w.day),
  monthly: (w) => `${pad(w.year, 4)}-${pad(w.month)}`,
  yearly: (w) => pad(w.year, 4),
}

function formatOffset(offset: number): string {
  const sign = offset < 0 ? '-' : '+'
  const seconds = Math.abs(offset) / 1000
  const hm = `${sign}${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}`
  return seconds % 60 === 0 ? hm : `${hm}:${pad(seconds % 60)}`
}

/** ISO 8601 week: weeks start on Monday; week 1 holds the year's first Thursday, whose year names the week. */
function isoWeek(year: number, month: number, day: number): string {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  const weekday = (date.getUTCDay() + 6) % 7 // Monday 0 .. Sunday 6
  date.setUTCDate(date.getUTCDate() - weekday + 3) // the Thursday of this week
  const weekYear = date.getUTCFullYear()
  const jan1 = new Date(0)
  jan1.setUTCFullYear(weekYear, 0, 1)
  const week = Math.floor((date.getTime() - jan1.getTime()) / 86_400_000 / 7) + 1
  return `${pad(weekYear, 4)}-W${pad(week)}`
}

/** Newest first; equal times by id ascending, so the order never depends on the input order. */
function newestFirst(a: SnapshotRef, b: SnapshotRef): number {
  if (a.time !== b.time) return b.time - a.time
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

export function applyPolicy(snapshots: readonly SnapshotRef[], policy: RetentionPolicy, opts: PolicyOptions): PolicyResult {
  checkPolicy(policy)
  checkTimeZone(opts.timeZone)
  const fields = GROUP_FIELDS.filter((field) => opts.groupBy.includes(field))
  const cutoff = policy.within === undefined ? undefined : subtractDuration(opts.now, policy.within, opts.timeZone)
  const keepTags = [...new Set(policy.tags ?? [])]

  // Grouped by identity (the JSON of the field values, tags as a sorted array), so tags that
  // contain a comma cannot merge two groups whose displayed keys look alike.
  const byIdentity = new Map<string, {identity: string[]; key: Record<string, string>; members: SnapshotRef[]}>()
  for (const snapshot of snapshots) {
    const key: Record<string, string> = {}
    const identity: string[] = []
    for (const field of fields) {
      if (field === 'tags') {
        const tags = [...new Set(snapshot.tags)].sort(compareText)
        key.tags = tags.join(',')
        identity.push(JSON.stringify(tags))
      } else {
        key[field] = snapshot[field]
        identity.push(snapshot[field])
      }
    }
    const id = JSON.stringify(identity)
    let group = byIdentity.get(id)
    if (group === undefined) {
      group = {identity, key, members: []}
      byIdentity.set(id, group)
    }
    group.members.push(snapshot)
  }

  const groups = [...byIdentity.values()]
    .sort((a, b) => {
      for (let i = 0; i < fields.length; i++) {
        const field = fields[i] as GroupField
        const c = compareText(a.key[field] ?? '', b.key[field] ?? '') || compareText(a.identity[i] ?? '', b.identity[i] ?? '')
        if (c !== 0) return c
      }
      return 0
    })
    .map(({key, members}) => ({key, decisions: decideGroup(members, policy, opts, cutoff, keepTags)}))

  const all = groups.flatMap((group) => group.decisions)
  return {groups, keep: all.filter((d) => d.keep), remove: all.filter((d) => !d.keep)}
}

function decideGroup(
  members: readonly SnapshotRef[],
  policy: RetentionPolicy,
  opts: PolicyOptions,
  cutoff: number | undefined,
  keepTags: readonly string[],
): Decision[] {
  const rows = [...members].sort(newestFirst).map((snapshot): Decision => ({snapshot, keep: false, reasons: []}))
  for (const row of rows) {
    if (row.snapshot.time > opts.now) row.reasons.push('future')
    if (row.snapshot.pinned) row.reasons.push('pinned')
  }
  // Safety snapshots are kept by their own count only: counted as checkpoints, two restores
  // would push the real checkpoint out of `last 1` (and `latest` skips them anyway).
  const safety = rows.filter((row) => isSafetySnapshot(row.snapshot.tags))
  const keepSafety = policy.preRestore ?? DEFAULT_KEEP_PRE_RESTORE
  safety.filter((row) => row.snapshot.time <= opts.now).slice(0, keepSafety).forEach((row, rank) => row.reasons.push(`pre-restore ${rank + 1}/${keepSafety}`))
  const checkpoints = rows.filter((row) => !isSafetySnapshot(row.snapshot.tags))
  // Snapshots dated after `now` (a skewed clock) are kept but not counted: they must not push
  // real snapshots out of `last` or the buckets, nor stand in as the newest of the group.
  const present = checkpoints.filter((row) => row.snapshot.time <= opts.now)
  present[0]?.reasons.push('newest of group')

  const last = policy.last ?? 0
  present.slice(0, last).forEach((row, rank) => row.reasons.push(`last ${rank + 1}/${last}`))

  const walls = new Map<Decision, WallClock>()
  const wallOf = (row: Decision): WallClock => {
    let w = walls.get(row)
    if (w === undefined) {
      w = wallClock(row.snapshot.time, opts.timeZone)
      walls.set(row, w)
    }
    return w
  }
  for (const rule of BUCKET_RULES) {
    const count = policy[rule] ?? 0
    if (count === 0) continue
    // The `count` most recent periods that have a snapshot, each with its members newest first.
    // A period is one interval of time, so its members are adjacent in `present`.
    const periods = new Map<string, Decision[]>()
    for (const row of present) {
      const bucket = BUCKETS[rule](wallOf(row))
      let members = periods.get(bucket)
      if (members === undefined) {
        if (periods.size >= count) break
        members = []
        periods.set(bucket, members)
      }
      members.push(row)
    }
    for (const [bucket, members] of periods) {
      const consistent = policy.preferConsistent ? members.find((row) => row.snapshot.consistent === true) : undefined
      const pick = consistent ?? members[0]!
      // Said when the preference is why this one, not the period's newest, is kept.
      pick.reasons.push(`${rule} ${bucket}${pick === members[0] ? '' : ' (consistent)'}`)
    }
  }

  if (cutoff !== undefined && policy.within !== undefined) {
    const label = `within ${formatDuration(policy.within)}`
    for (const row of present) {
      if (row.snapshot.time >= cutoff) row.reasons.push(label)
    }
  }

  for (const row of checkpoints) {
    for (const tag of keepTags) {
      if (row.snapshot.tags.includes(tag)) row.reasons.push(`tag ${tag}`)
    }
  }
  for (const row of rows) row.keep = row.reasons.length > 0
  return rows
}
