// Hostile repository content (test/helpers/hostilerepo.ts) read by the commands that look inside
// snapshots without restoring them: ls -R (text and --json), find, export, diff. No stack trace,
// no hang, a documented exit code, peak RSS under 300 MB. (The bombs are left to the restore
// suite: printing every path of a tree 10,000 levels deep is itself hundreds of MB;
// test/inspect/trees.test.ts walks such trees.)
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {removeTree} from '../../src/restore/deeptree.js'
import {ckpt} from '../helpers/cli.js'
import {Crafter, HOSTILE_CASES, hostileLayout, probe, RSS_LIMIT_MB} from '../helpers/hostilerepo.js'
import {tempDir} from '../helpers/tree.js'
import {BOMBS} from './hostile.cases.js'

/** Exit codes these commands document (README: "Looking inside snapshots", export). */
const DOCUMENTED = [0, 3, 4, 5, 12]

let root: string
let template: string
beforeAll(async () => {
  root = await tempDir('ckpt-hostile-inspect-')
  template = path.join(root, 'template')
  await ckpt(['init', '-q', '--repo', template])
})
afterAll(() => {
  if (root) removeTree(root)
})

const cases = HOSTILE_CASES.filter((c) => !c.soakOnly && !BOMBS.test(c.name))

test.for(cases.map((c, i) => ({...c, i})))('$name', {timeout: 300_000}, async (c) => {
  const layout = await hostileLayout(root, template, `case-${c.i}`)
  const id = await c.build(new Crafter(layout.repo), layout.outside)
  const repo = ['--repo', layout.repo]
  const runs = [
    ['ls', id, '-R', '-l', ...repo],
    ['ls', id, '-R', '--json', ...repo],
    ['find', '*', ...repo],
    ['export', id, '-o', path.join(layout.sentinel, 'out.tar'), ...repo],
    ['diff', id, id, ...repo],
  ]
  const problems: string[] = []
  for (const args of runs) {
    const p = await probe(args, 60_000)
    const what = `ckpt ${args[0]}`
    if (p.hung) problems.push(`${what} hung`)
    else if (p.code === null || !DOCUMENTED.includes(p.code)) problems.push(`${what} exited ${p.code ?? p.signal}: ${p.stderr.slice(0, 300)}`)
    if (/\n\s+at .+:\d+:\d+\)?/.test(p.stderr)) problems.push(`${what} printed a stack trace: ${p.stderr.slice(0, 500)}`)
    if (!(p.peakRssMb < RSS_LIMIT_MB)) problems.push(`${what} peaked at ${p.peakRssMb.toFixed(0)} MB RSS`)
  }
  expect(problems).toEqual([])
})
