// Human output of `ckpt prune`: the one summary line cron sees, and the longer report (decisions
// with their reasons, the plan) for --dry-run, --verbose and terminals.
import type {PruneReport} from '../prune/prune.js'
import {count, formatBytes, formatTime, table} from './format.js'

export function pruneSummary(r: PruneReport): string {
  const total = r.snapshots.total
  if (r.result === null) {
    const p = r.plan
    return `prune (dry run): would remove ${r.removed.length} of ${count(total, 'snapshot')} and free about ${formatBytes(Math.max(0, p.bytes.free))} (delete ${count(p.packs.delete, 'pack')}, repack ${p.packs.repack})`
  }
  const x = r.result
  const extra = [
    `${count(x.packsDeleted, 'pack')} deleted`,
    x.packsWritten > 0 ? `${x.packsWritten} written` : '',
    x.rescuedPacks.length > 0 ? `${x.rescuedPacks.length} kept for new snapshots` : '',
    x.staleLocksRemoved > 0 ? `${count(x.staleLocksRemoved, 'stale lock')} removed` : '',
  ].filter(Boolean)
  return `prune: removed ${x.snapshotsRemoved} of ${count(total, 'snapshot')}, freed ${formatBytes(Math.max(0, x.bytesFreed))} (${extra.join(', ')})`
}

export function pruneDecisions(r: PruneReport): string {
  const out: string[] = []
  for (const g of r.groups) {
    const key = Object.entries(g.key).map(([k, v]) => `${k} ${v || '(none)'}`).join(', ') || 'all snapshots'
    out.push(`${key}:`)
    const rows = g.snapshots.map((s) => [s.id.slice(0, 12), formatTime(s.time), s.keep ? 'keep' : 'remove', s.keep ? s.reasons.join(', ') : ''])
    out.push(...table(['ID', 'TIME', 'ACTION', 'REASONS'], rows).split('\n').map((l) => `  ${l}`), '')
  }
  return out.join('\n')
}

export function prunePlan(r: PruneReport, verbose: boolean): string {
  const p = r.plan
  const out = [
    `blobs: ${p.blobs.total} (${p.blobs.live} live, ${p.blobs.dead} dead), ${formatBytes(p.bytes.live)} live of ${formatBytes(p.bytes.total)} in packs`,
    `packs: ${p.packs.total} (${p.packs.keep} kept, ${p.packs.delete} to delete, ${p.packs.repack} to repack copying ${formatBytes(p.bytes.copy)}` +
      `${p.packs.missing ? `, ${p.packs.missing} missing` : ''}${p.packs.unindexed ? `, ${p.packs.unindexed} not indexed` : ''})`,
    `index: ${count(p.indexFiles.total, 'file')}${p.indexFiles.rewrite ? ', rewritten' : ''}${p.indexFiles.damaged.length ? ` (${p.indexFiles.damaged.length} damaged)` : ''}`,
  ]
  const shown = verbose ? p.changes : p.changes.slice(0, 20)
  for (const c of shown) out.push(`  ${c.action.padEnd(7)} ${c.name.slice(0, 16)}  ${formatBytes(c.size).padStart(10)}  ${c.reason}`)
  if (shown.length < p.changes.length) out.push(`  ... and ${p.changes.length - shown.length} more (--verbose or --json lists them all)`)
  if (p.stalePins.length > 0) out.push(`stale pins: ${p.stalePins.map((id) => id.slice(0, 12)).join(', ')}`)
  if (verbose) out.push(`memory: ${formatBytes(p.memory.tableBytes)} for the blob table (${p.memory.bytesPerBlob} bytes per blob), ${count(p.treesRead, 'tree')} read`)
  return out.join('\n')
}

/**
 * POLICY_HELP is laid out with indented columns, which oclif's help wrapper trims away: turn
 * each indented rule (and its continuation lines) into one "- rule: text" line that wraps well.
 */
export function helpForTerminal(text: string): string {
  const out: string[] = []
  let joinWithColon = false
  for (const line of text.split('\n')) {
    const last = out.length - 1
    if (/^ {3,}\S/.test(line) && last >= 0 && out[last]!.startsWith('- ')) {
      out[last] += (joinWithColon ? ': ' : ' ') + line.trim()
      joinWithColon = false
    } else if (/^ {1,2}\S/.test(line)) {
      const [rule, ...rest] = line.trim().split(/\s{2,}/)
      out.push(`- ${rule}${rest.length ? `: ${rest.join(' ')}` : ''}`)
      joinWithColon = rest.length === 0
    } else {
      out.push(line)
      joinWithColon = false
    }
  }
  return out.join('\n')
}
