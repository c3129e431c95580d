#!/usr/bin/env node
// Writes the man pages (man/ckpt.1 and man/ckpt-<command>.1) from the command classes, so the
// pages say exactly what --help says. Run after `npm run build`: `npm run man`.
// `--check` compares instead of writing and exits 1 when a page is out of date (the test suite runs it).
import {readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const {COMMANDS} = await import(path.join(root, 'dist/commands/index.js'))
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const check = process.argv.includes('--check')

const esc = (text) => String(text ?? '').replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1').replace(/-/g, '\\-')
const expand = (text) => String(text ?? '').replace(/<%= config\.bin %>/g, 'ckpt')
const header = (name, section, title) => `.TH ${name.toUpperCase()} ${section} "" "ckpt ${pkg.version}" "${title}"\n`

function flagLines(flags) {
  const out = []
  for (const [name, f] of Object.entries(flags ?? {})) {
    if (f.hidden) continue
    const short = f.char ? `\\fB\\-${f.char}\\fR, ` : ''
    const value = f.type === 'option' ? ` \\fI${name === 'repo' ? 'PATH' : f.options ? f.options.join('|') : 'VALUE'}\\fR` : ''
    out.push(`.TP\n${short}\\fB\\-\\-${esc(name)}\\fR${value}`)
    const text = [f.summary, f.description].filter(Boolean).map(expand).join(' ')
    out.push(esc(text) + (f.multiple && !/repeatable/i.test(text) ? ' Repeatable.' : '') + (f.default !== undefined && typeof f.default !== 'function' && f.default !== false ? ` Default: ${esc(String(f.default))}.` : ''))
  }
  return out.join('\n')
}

function paragraphs(text) {
  return expand(text).split(/\n\s*\n/).map((p) => esc(p.trim())).join('\n.PP\n')
}

const pages = new Map()
const names = Object.keys(COMMANDS).sort()
const base = Object.values(COMMANDS)[0].baseFlags

for (const name of names) {
  const cmd = COMMANDS[name]
  const args = Object.entries(cmd.args ?? {}).map(([a, spec]) => (spec.required ? `\\fI${a.toUpperCase()}\\fR` : `[\\fI${a.toUpperCase()}\\fR]`) + (spec.multiple ? '...' : '')).join(' ')
  let page = header(`ckpt-${name}`, 1, 'ckpt manual')
  page += `.SH NAME\nckpt\\-${name} \\- ${esc(cmd.summary)}\n`
  page += `.SH SYNOPSIS\n\\fBckpt ${name}\\fR ${args} [\\fIOPTIONS\\fR]\n`
  if (cmd.description) page += `.SH DESCRIPTION\n${paragraphs(cmd.description)}\n`
  for (const [a, spec] of Object.entries(cmd.args ?? {})) page += `.SH ARGUMENTS\n.TP\n\\fI${a.toUpperCase()}\\fR\n${esc(spec.description)}\n`
  if (Object.keys(cmd.flags ?? {}).length) page += `.SH OPTIONS\n${flagLines(cmd.flags)}\n`
  page += `.SH GLOBAL OPTIONS\n${flagLines(base)}\n.TP\n\\fB\\-\\-json\\fR\nPrint one JSON document on stdout (errors as {"error": {...}}).\n`
  if (cmd.examples?.length) page += `.SH EXAMPLES\n${cmd.examples.map((e) => `.nf\n${esc(expand(typeof e === 'string' ? e : e.command))}\n.fi`).join('\n')}\n`
  page += `.SH SEE ALSO\n\\fBckpt\\fR(1)\n`
  pages.set(`ckpt-${name}.1`, page)
}

const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
const exitTable = readme.split('## Exit codes')[1].split('\n## ')[0]
const exits = [...exitTable.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map(([, code, text]) => `.TP\n\\fB${code}\\fR\n${esc(text.replace(/`/g, ''))}`).join('\n')
let main = header('ckpt', 1, 'ckpt manual')
main += `.SH NAME\nckpt \\- ${esc(pkg.description)}\n.SH SYNOPSIS\n\\fBckpt\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]\n`
main += `.SH DESCRIPTION\nckpt checkpoints and restores process state directories into a content\\-addressed repository: files are split into content\\-defined chunks (FastCDC), each chunk is named by its BLAKE3 hash and stored once, zstd\\-compressed, in pack files; a manifest records the tree and its parent snapshot.\n`
main += `.SH COMMANDS\n${names.map((n) => `.TP\n\\fBckpt ${n}\\fR\n${esc(COMMANDS[n].summary)} See \\fBckpt\\-${n}\\fR(1).`).join('\n')}\n`
main += `.SH REPOSITORY\nThe repository is \\fB\\-\\-repo\\fR \\fIPATH\\fR, else \\fB$CKPT_REPO\\fR, else \\fB.ckpt\\fR in the current directory: without either, the first \\fBckpt snapshot\\fR creates \\fB./.ckpt\\fR wherever it runs (for a cron job, cron's working directory) and prints its absolute path on stderr, even with \\fB\\-\\-quiet\\fR.\n`
main += `.SH EXIT STATUS\n${exits}\n`
main += `.SH ENVIRONMENT\n.TP\n\\fBCKPT_REPO\\fR\nRepository (a path or s3://BUCKET/PREFIX) when \\fB\\-\\-repo\\fR is not given.\n.TP\n\\fBAWS_ENDPOINT_URL_S3\\fR, \\fBAWS_REGION\\fR, \\fBAWS_ACCESS_KEY_ID\\fR, \\fBAWS_PROFILE\\fR, ...\nFor s3:// repositories, as the AWS SDK reads them (README.md, "Repositories in object storage").\n.TP\n\\fBCKPT_DEBUG\\fR\nPrint stack traces of unexpected errors.\n.TP\n\\fBCKPT_PROGRESS_INTERVAL_MS\\fR\nUnder \\fB\\-\\-json\\fR, the interval of the NDJSON progress events on stderr, in ms (default 1000; 0: every update).\n`
main += `.SH SEE ALSO\n${names.map((n) => `\\fBckpt\\-${n}\\fR(1)`).join(', ')}\n`
pages.set('ckpt.1', main)

let stale = 0
for (const [file, text] of pages) {
  const target = path.join(root, 'man', file)
  let current = ''
  try {
    current = readFileSync(target, 'utf8')
  } catch {
    // a new page
  }
  if (current === text) continue
  if (check) {
    process.stderr.write(`man/${file} is out of date: run npm run man\n`)
    stale++
  } else {
    writeFileSync(target, text)
  }
}
for (const file of readdirSync(path.join(root, 'man'))) {
  if (!file.endsWith('.1') || pages.has(file)) continue
  if (check) {
    process.stderr.write(`man/${file} belongs to no command: run npm run man\n`)
    stale++
  } else {
    rmSync(path.join(root, 'man', file))
  }
}
process.exit(stale ? 1 : 0)
