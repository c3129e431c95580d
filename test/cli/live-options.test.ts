// The capture options as a user gives them: hooks around the snapshot and its window, --config for
// cron lines, --pause-cgroup through the CLI, and a pause that runs past --max-pause.
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync, promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {cgroupMounts} from '../../src/live/pause.js'
import {ckpt, runCli} from '../helpers/cli.js'
import {startStateWriter, stateDigest} from '../helpers/statewriter.js'
import {buildTree, tempDir} from '../helpers/tree.js'

let root: string
let repo: string
beforeAll(async () => {
  root = await tempDir()
  repo = path.join(root, 'repo')
  await ckpt(['init', '--repo', repo])
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

interface Doc {id: string; capture: {mode: string; consistent: boolean; pause?: {timedOut: boolean; pauseMs: number}; hooks?: {phase: string; exitCode: number | null}[]}}

test('hooks run in order with their variables, their output prefixed on stderr, and are recorded', async () => {
  const src = path.join(root, 'hooked')
  await fsp.mkdir(src)
  await buildTree(src, {a: 'alpha\n'})
  const log = path.join(root, 'hooks.log')
  const hook = (phase: string) => `echo "${phase} $CKPT_PHASE $CKPT_SOURCE \${CKPT_SNAPSHOT_ID:-} \${CKPT_OUTCOME:-}" >> ${log}; echo said-${phase}`
  const r = await runCli(['snapshot', src, '--repo', repo, '--json', '--pre', hook('pre'), '--freeze', hook('freeze'), '--thaw', hook('thaw'), '--post', hook('post')])
  expect(r.code, r.stderr).toBe(0)
  const doc = JSON.parse(r.stdout) as Doc
  expect(doc.capture.mode).toBe('hooks')
  expect(doc.capture.hooks!.map((h) => [h.phase, h.exitCode])).toEqual([['pre', 0], ['freeze', 0], ['thaw', 0]])
  const lines = readFileSync(log, 'utf8').trim().split('\n')
  expect(lines).toEqual([`pre pre ${src}  `, `freeze freeze ${src}  `, `thaw thaw ${src}  `, `post post ${src} ${doc.id} ok`])
  for (const phase of ['pre', 'freeze', 'thaw', 'post']) expect(r.stderr).toContain(`[${phase}] said-${phase}`)
})

test('a failing --freeze aborts: no snapshot, but --thaw and --post still run (post told "aborted")', async () => {
  const src = path.join(root, 'aborted')
  await fsp.mkdir(src)
  await buildTree(src, {a: 'alpha\n'})
  const log = path.join(root, 'abort.log')
  const before = (await runCli(['snapshots', '--repo', repo, '--json'])).stdout
  const r = await runCli(['snapshot', src, '--repo', repo, '--freeze', 'exit 7', '--thaw', `echo thaw >> ${log}`, '--post', `echo "post $CKPT_OUTCOME" >> ${log}`])
  expect(r.code).not.toBe(0)
  expect(r.stderr).toMatch(/--freeze hook failed \(exit code 7\)/)
  expect(readFileSync(log, 'utf8')).toBe('thaw\npost aborted\n')
  expect((await runCli(['snapshots', '--repo', repo, '--json'])).stdout).toBe(before)
})

test('--config carries the pause options; flags win over it', async () => {
  const src = path.join(root, 'configured')
  await fsp.mkdir(src)
  const writer = await startStateWriter(src, path.join(root, 'configured.log'), {seed: 31, burst: 10, idleMs: 10})
  try {
    const config = path.join(root, 'capture.json')
    writeFileSync(config, JSON.stringify({'pause-pid': [writer.proc.pid], 'max-pause': '5s', tag: ['from-config']}))
    const r = await runCli(['snapshot', src, '--repo', repo, '--json', '--config', config, '--tag', 'from-flag'])
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as Doc & {tags: string[]}
    expect(doc.capture).toMatchObject({mode: 'paused', consistent: true})
    expect(doc.tags).toEqual(['from-flag'])
    writeFileSync(config, JSON.stringify({'pause-pids': [1]}))
    const bad = await runCli(['snapshot', src, '--repo', repo, '--config', config])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/unknown key "pause-pids"/)
  } finally {
    await writer.stop()
  }
})

test('a pause past --max-pause: the program is resumed, the snapshot recorded as not consistent (exit 3)', async () => {
  const src = path.join(root, 'overtime')
  await fsp.mkdir(src)
  const writer = await startStateWriter(src, path.join(root, 'overtime.log'), {seed: 32, burst: 10, idleMs: 10})
  try {
    const r = await runCli(['snapshot', src, '--repo', repo, '--json', '--pause-pid', String(writer.proc.pid), '--max-pause', '1ms'])
    expect(r.code, r.stderr + r.stdout).toBe(3)
    expect(JSON.parse(r.stdout).capture).toMatchObject({mode: 'paused', consistent: false, pause: {timedOut: true}})
    expect(r.stderr).toMatch(/ran past --max-pause/)
  } finally {
    await writer.stop()
  }
})

test('a paused capture records xattrs and inode flags as they were in the pause, not as the program left them after it', async () => {
  const src = path.join(root, 'paused-meta')
  await fsp.mkdir(src)
  await buildTree(src, {f: 'data\n', sub: {dir: {}}})
  const flags = spawnSync('chattr', ['+d', path.join(src, 'f')]).status === 0 && spawnSync('chattr', ['-d', path.join(src, 'f')]).status === 0
  const program = spawn('sleep', ['600'], {stdio: 'ignore'})
  try {
    const f = path.join(src, 'f')
    const sub = path.join(src, 'sub')
    // After the pre-copy, before the pause: the file and the directory change (so the final pass
    // cannot take them from the pre-copy); after the resume, before the final pass: they change again.
    const freeze = `echo more >> ${f} && setfattr -n user.v -v paused ${f} && touch ${sub}/new && setfattr -n user.d -v paused ${sub}${flags ? ` && chattr +d ${f}` : ''}`
    const thaw = `setfattr -n user.v -v resumed ${f} && setfattr -n user.d -v resumed ${sub}${flags ? ` && chattr -d ${f}` : ''}`
    const r = await runCli(['snapshot', src, '--repo', repo, '--json', '--pause-pid', String(program.pid), '--freeze', freeze, '--thaw', thaw])
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as Doc
    expect(doc.capture).toMatchObject({mode: 'paused', consistent: true})
    const ls = await runCli(['ls', doc.id, '--repo', repo, '--json', '-R'])
    const nodes = new Map(ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as {path: string; xattrs?: {name: string; value: string}[]; flags?: number}).map((n) => [n.path, n]))
    expect(nodes.get('f')!.xattrs).toEqual([{name: 'user.v', value: 'paused'}])
    expect(nodes.get('sub')!.xattrs).toEqual([{name: 'user.d', value: 'paused'}])
    if (flags) expect(nodes.get('f')!.flags).toBe(0x40)
    expect(spawnSync('getfattr', ['--only-values', '-n', 'user.v', f], {encoding: 'utf8'}).stdout).toBe('resumed')
  } finally {
    program.kill('SIGKILL')
  }
})

const v2 = cgroupMounts().v2[0]
test.skipIf(!v2)('--pause-cgroup freezes the program\'s cgroup: a consistent image, a state the writer had', async () => {
  const src = path.join(root, 'cgroup')
  await fsp.mkdir(src)
  const cg = path.join(v2!, `ckpt-cli-test-${process.pid}`)
  mkdirSync(cg)
  const writer = await startStateWriter(src, path.join(root, 'cgroup.log'), {seed: 33, burst: 20, idleMs: 5})
  let states = new Set<string>()
  let id = ''
  try {
    writeFileSync(path.join(cg, 'cgroup.procs'), String(writer.proc.pid))
    const r = await runCli(['snapshot', src, '--repo', repo, '--json', '--pause-cgroup', cg])
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as Doc
    expect(doc.capture).toMatchObject({mode: 'frozen', consistent: true})
    id = doc.id
  } finally {
    states = await writer.stop()
    // The cgroup can be removed once the writer has left it (its exit is reaped a moment later).
    for (let i = 0; existsSync(cg) && readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim() !== '' && i < 500; i++) await new Promise((r) => setTimeout(r, 10))
    if (existsSync(cg)) rmdirSync(cg)
  }
  const out = path.join(root, 'cgroup-out')
  await ckpt(['restore', id, '--target', out, '--repo', repo, '-q'])
  expect(states.has(await stateDigest(out))).toBe(true)
})
