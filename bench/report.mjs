#!/usr/bin/env node
// Renders a results.json written by bench/run.mjs as Markdown, ready to paste into docs/BENCHMARKS.md.
//
//   node bench/report.mjs bench/out/results.json > report.md
import {readFileSync} from 'node:fs'
import {pathToFileURL} from 'node:url'

const MiB = 2 ** 20
const PEERS = ['restic', 'borg', 'casync']

const num = (x, digits) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits))
const secs = (x) => (x === null || x === undefined ? '–' : num(x, x < 0.1 ? 3 : 2))
const mib = (b) => (b === null || b === undefined ? '–' :
  num(b / MiB, Math.abs(b) < 0.1 * MiB ? 3 : Math.abs(b) < 10 * MiB ? 2 : 1))
const rate = (bytes, wall) => (bytes && wall > 0 ? num(bytes / MiB / wall, 0) : '–')

function table(header, rows) {
  const line = (cells) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|').replace(/\n/g, ' ')).join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

function status(run, work) {
  if (!run.ok) return `**failed**: ${substitute(run.error ?? '', work)}`
  const parts = ['ok']
  if (run.compare) {
    const c = run.compare
    if (c.equal) parts.push('identical')
    else parts.push(`**differs** (${c.examples?.slice(0, 3).join('; ')})`)
    const meta = []
    if (c.mode) meta.push(`${c.mode} modes`)
    if (c.mtime) meta.push(`${c.mtime} mtimes`)
    if (meta.length) parts.push(`metadata differs: ${meta.join(', ')}`)
  }
  if (run.warnings) parts.push(run.warnings.join(', '))
  return parts.join(', ')
}

const METRICS = [
  {key: 'wall', label: 'wall'},
  {key: 'cpu', label: 'CPU'},
  {key: 'maxRssKiB', label: 'RSS'},
  {key: 'repoBytes', label: 'repo'},
  {key: 'addedBytes', label: 'added'},
  {key: 'repoFiles', label: 'files'},
]

/** ckpt's figure over the best (lowest) successful peer's, per metric; '–' when either side is missing. */
function ratios(runs) {
  const ckpt = runs.find((r) => r.tool === 'ckpt' && !r.variant)
  // A variant counts only where it is the phase's figure (`ranked`), and only when it succeeded.
  const peers = runs.filter((r) => PEERS.includes(r.tool) && (!r.variant || r.ranked) && r.ok)
  const out = {}
  for (const {key} of METRICS) {
    const values = peers.filter((r) => Number.isFinite(r[key]))
    if (!ckpt?.ok || !Number.isFinite(ckpt[key]) || values.length === 0) {
      out[key] = '–'
      continue
    }
    const best = values.reduce((a, b) => (b[key] < a[key] ? b : a))
    out[key] = best[key] > 0 ? `${num(ckpt[key] / best[key], 2)}× (${best.variant ?? best.tool})` : '–'
  }
  return out
}

const substitute = (text, work) => (work ? text.split(work).join('$WORK') : text)
const shellQuote = (s) => (/^[\w@%+=:,./$-]+$/.test(s) ? s : `'${String(s).replace(/'/g, `'\\''`)}'`)

/** Collapses a run of corpus file arguments into one placeholder, so a command fits in a table cell. */
function abbreviate(command) {
  const out = []
  for (const word of command.split(' ')) {
    const file = word.startsWith('$WORK/corpus/')
    if (file && out.at(-1)?.files) out.at(-1).files++
    else out.push(file ? {word, files: 1} : {word})
  }
  return out.map((w) => (w.files > 1 ? `${w.word.replace(/[^/]*$/, '')}…(${w.files} files)` : w.word)).join(' ')
}

function commandLine(c, work) {
  const env = Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)} `).join('')
  const cd = c.cwd ? `(cd ${shellQuote(c.cwd)} && ` : ''
  const line = `${cd}${env}${c.argv.map(shellQuote).join(' ')}${c.cwd ? ')' : ''}`
  return substitute(line, work)
}

export function renderMarkdown(results) {
  const work = results.options?.work
  const m = results.machine ?? {}
  const out = []
  const push = (...lines) => out.push(...lines)
  push(`# ckpt benchmark: ${results.options?.size} corpus, seed ${results.options?.seed}`, '')
  push(`Run ${results.startedAt} → ${results.finishedAt ?? '(unfinished)'} ` +
    `(${num(results.durationSeconds, 0)} s in all), tools: ${results.options?.tools?.join(', ')}.`, '')

  push('## Machine', '')
  push(`- CPU: ${m.cpu}, ${m.cores} cores`)
  push(`- Memory: ${num((m.memoryBytes ?? 0) / 2 ** 30, 1)} GiB`)
  push(`- Kernel: ${m.uname ?? m.kernel}`)
  push(`- OS: ${m.os || 'unknown'}; Node ${m.node}; running as ${m.user}`)
  push('- Disk (work dir):', '', '```', substitute(m.disk ?? '', work), '```', '')

  push('## Versions', '')
  push(table(['Tool', 'Version'], Object.entries(results.versions ?? {}).map(([k, v]) => [k, v])), '')

  const c = results.corpus ?? {}
  push('## Corpus', '')
  push(`\`node bench/corpus.mjs --size ${c.size} --seed ${c.seed}\`: ${c.initial?.files} files, ` +
    `${c.initial?.dirs} directories, ${c.initial?.symlinks} symlink(s), ${mib(c.initial?.bytes)} MiB ` +
    '(incompressible checkpoint shards, SST-like files of about 2.5x under zstd -3, many small JSON/offset/log ' +
    'files, a symlink, an empty directory; fixed mtimes).', '')
  if (c.initial?.largestFiles?.length) {
    push(`Largest files: ${c.initial.largestFiles.slice(0, 5).map((f) => `\`${f.rel}\` ${mib(f.size)} MiB`)
      .join(', ')}.`, '')
  }
  for (const mu of results.mutations ?? []) push(`- \`mutate --step ${mu.step} --seed ${mu.seed}\`: ${mu.log}`)
  push('')

  push('## Method', '')
  push('- Each phase runs every tool in turn on the identical tree; mutations are applied once, between phases.')
  push('- Warm page cache: the corpus is read once before anything is timed, and caches are never dropped.')
  push('- `sync` runs (untimed) after every command and every mutation step, so one command\'s writeback is not billed to the next.')
  push('- Wall: node\'s monotonic clock around the command. CPU (user+sys) and peak RSS: GNU time ' +
    '(`/usr/bin/time -f \'%e %U %S %M\'`), which includes waited-for children; peak RSS is the largest ' +
    'single process.')
  push('- Repo: `du -sb` of the repository after the phase; added: change since the previous phase; files: ' +
    'regular files in the repository. Client cache: `du -sb` of the tool\'s cache outside the repository.')
  push('- MiB/s: logical corpus bytes over wall time. Ratio rows: ckpt over the best successful peer (lower ' +
    'is better for every column).', '')
  for (const note of results.notes ?? []) push(`- Note: ${note}`)
  if (results.notes?.length) push('')

  push('## Native limits (same machine, same run, warm cache)', '')
  push(table(['Measurement', 'Wall s', 'CPU s', 'MiB/s', 'Output', 'Command'], (results.native ?? []).map((n) => [
    n.title, secs(n.wall), secs((n.user ?? 0) + (n.sys ?? 0)), n.ok ? rate(n.bytes, n.wall) : `failed: ${n.error}`,
    n.compressedBytes ? `${num(n.bytes / n.compressedBytes, 2)}x smaller` : '',
    `\`${abbreviate(substitute(n.command, work))}\``,
  ])), '')

  const phases = results.phases ?? []
  const tools = results.options?.tools ?? []
  push('## Overview: wall seconds per phase', '')
  const rowNames = [...new Set(phases.flatMap((p) => p.runs.map((r) => r.variant ?? r.tool)))]
    .sort((a, b) => tools.indexOf(a.split(' ')[0]) - tools.indexOf(b.split(' ')[0]))
  push(table(['Tool', ...phases.map((p) => p.id)], rowNames.map((name) => [name, ...phases.map((p) => {
    const r = p.runs.find((x) => (x.variant ?? x.tool) === name)
    return r ? (r.ok ? secs(r.wall) : 'failed') : '–'
  })])), '')

  for (const p of phases) {
    push(`## ${p.title}`, '')
    const bytes = p.corpus?.bytes
    const withRate = p.kind === 'snapshot' || p.kind === 'restore' || p.kind === 'verify'
    const rows = p.runs.map((r) => [r.variant ?? r.tool, secs(r.wall), secs(r.cpu), mib((r.maxRssKiB ?? 0) * 1024),
      withRate && r.ok ? rate(bytes, r.wall) : '–', mib(r.repoBytes), mib(r.addedBytes), r.repoFiles ?? '–',
      mib(r.cacheBytes), status(r, work)])
    const ratio = ratios(p.runs)
    if (p.runs.some((r) => r.tool === 'ckpt')) {
      rows.push(['**ckpt / best peer**', ratio.wall, ratio.cpu, ratio.maxRssKiB, '', ratio.repoBytes, ratio.addedBytes,
        ratio.repoFiles, '', ''])
    }
    push(table(['Tool', 'Wall s', 'CPU s', 'Peak RSS MiB', 'MiB/s', 'Repo MiB', 'Added MiB', 'Repo files',
      'Client cache MiB', 'Result'], rows), '')
    const notes = p.runs.filter((x) => x.note).map((r) => `- ${r.tool}: ${r.note}`)
    for (const r of p.runs.filter((x) => x.variant)) {
      notes.push(r.ranked ? `- ${r.variant}: the same command with its encoder cache, counted as casync's figure here.` :
        `- ${r.variant}: the same command with its encoder cache, run after the measured one into a store that ` +
        'already holds its chunks; shown to check the cache, not ranked.')
    }
    if (notes.length) push(...notes, '')
  }

  push('## Settings', '')
  for (const [tool, text] of Object.entries(results.settings ?? {})) push(`- **${tool}**: ${text}`)
  push('')

  push('## Exact commands', '', `\`$WORK\` is \`${work}\`; the corpus is \`$WORK/corpus\`.`, '')
  const byTool = new Map()
  for (const run of [...(results.init ?? []), ...phases.flatMap((p) => p.runs)]) {
    if (!byTool.has(run.tool)) byTool.set(run.tool, [])
    const label = run.variant ? `${run.phase} (${run.variant})` : run.phase
    for (const cmd of run.commands) byTool.get(run.tool).push(`# ${label}\n${commandLine(cmd, work)}`)
  }
  for (const [tool, lines] of byTool) push(`### ${tool}`, '', '```sh', ...lines, '```', '')

  const failures = [...(results.init ?? []), ...phases.flatMap((p) => p.runs)].filter((r) => !r.ok)
  if (failures.length) {
    push('## Failures', '')
    // Identical failures (a missing build fails every ckpt phase alike) are listed once.
    const groups = new Map()
    for (const f of failures) {
      const key = `${f.tool}\0${f.stderrTail ? substitute(f.stderrTail, work) : f.error}`
      if (!groups.has(key)) groups.set(key, {f, phases: []})
      groups.get(key).phases.push(f.phase)
    }
    for (const {f, phases: where} of groups.values()) {
      const error = where.length > 1 ? (f.error ?? '').replace(/^.*…: /, '') : substitute(f.error ?? '', work)
      push(`- ${f.tool} (${where.join(', ')}): ${error}`)
      if (f.stderrTail) push('', '  ```', ...substitute(f.stderrTail, work).trim().split('\n').slice(-6)
        .map((l) => `  ${l.trim()}`), '  ```')
    }
    push('')
  }
  return out.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const path = process.argv[2]
  if (!path) {
    console.error('usage: node bench/report.mjs results.json')
    process.exitCode = 1
  } else {
    process.stdout.write(renderMarkdown(JSON.parse(readFileSync(path, 'utf8'))))
  }
}
