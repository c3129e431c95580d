// ckpt copy through the built CLI, between local repositories: --from and its defaults, exit
// codes, the JSON document and progress events, a second run that sends nothing, and a restore
// from the destination. (Local to S3: test/cli/s3.test.ts.)
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

interface CopyJson {
  from: string
  to: string
  copied: {id: string; blobs: number; bytesSent: number}[]
  skipped: string[]
  blobs: number
  bytesSent: number
  verify: {ok: boolean; readData: boolean; errors: number} | null
}

let work: string
let src: string
let from: string
const ids: string[] = []

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-copycli-'))
  src = path.join(work, 'src')
  from = path.join(work, 'from')
  await fsp.mkdir(src)
  await buildTree(src, {'a.bin': {file: {random: 2 * 1024 * 1024, seed: 4}}, 'b.txt': 'b\n', 'd': {dir: {'c.txt': 'c\n'}}})
  await ckpt(['init', '--repo', from, '-q'])
  ids.push((await ckptJson<{id: string}>(['snapshot', src, '--repo', from])).id)
  await fsp.writeFile(path.join(src, 'n.bin'), seededBytes(100_000, 5))
  ids.push((await ckptJson<{id: string}>(['snapshot', src, '--repo', from])).id)
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe('ckpt copy', () => {
  it('copies latest, then --all (only the rest), then nothing; --from defaults to CKPT_REPO; the copy restores byte for byte', async () => {
    const to = path.join(work, 'to')
    await ckpt(['init', '--repo', to, '-q'])
    const first = await runCli(['copy', 'latest', '--from', from, '--to', to])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toBe('')
    expect(first.stderr).toMatch(/^copied 1 snapshot to .*: \d+ blobs, .* sent .*; verified\n$/)

    const second = await ckptJson<CopyJson>(['copy', '--all', '--to', to], {env: {CKPT_REPO: from}})
    expect(second.from).toBe(from)
    expect(second.copied.map((c) => c.id)).toEqual([ids[0]])
    expect(second.skipped).toEqual([ids[1]])
    // The older snapshot shares all its data with the newer one, copied before it: only its trees go.
    expect(second.bytesSent).toBeLessThan(10_000)
    expect(second.verify).toMatchObject({ok: true, readData: false, errors: 0})

    const third = await runCli(['copy', '--all', '--repo', from, '--to', to])
    expect(third.code).toBe(0)
    expect(third.stderr).toMatch(/nothing to copy .* \(2 snapshots already there\)/)

    const target = path.join(work, 'restored')
    await ckpt(['restore', ids[1]!, '--target', target, '--repo', to, '-q'])
    expect(diffTrees(await captureTree(src), await captureTree(target), {ignoreRootMtime: true})).toEqual([])
    const verified = await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', to])
    expect(verified.errors).toBe(0)
  })

  it('--dry-run counts what the destination lacks and writes nothing to it; the copy then sends just that', async () => {
    const to = path.join(work, 'to-dry')
    await ckpt(['init', '--repo', to, '-q'])
    const listing = async () => (await fsp.readdir(to, {recursive: true})).sort()
    const before = await listing()
    const dry = await ckptJson<CopyJson & {dryRun: boolean; rawBytes: number}>(['copy', '--all', '--from', from, '--to', to, '--dry-run'])
    expect(dry.dryRun).toBe(true)
    expect(dry.copied.map((c) => c.id).sort()).toEqual([...ids].sort())
    expect(dry.verify).toBeNull()
    expect(await listing()).toEqual(before)
    const text = await runCli(['copy', 'latest', '--from', from, '--to', to, '-n'])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stderr).toMatch(/^would copy 1 snapshot to .*: \d+ blobs, .* to send \(.* plain\); nothing was written\n$/)
    expect(await listing()).toEqual(before)

    const real = await ckptJson<CopyJson & {dryRun: boolean}>(['copy', '--all', '--from', from, '--to', to])
    expect(real.dryRun).toBe(false)
    expect(real.blobs).toBe(dry.blobs)
    expect(real.copied.map((c) => c.blobs)).toEqual(dry.copied.map((c) => c.blobs))
    // Chunks go as stored; trees are counted plain and compressed by the destination.
    expect(real.bytesSent).toBeLessThanOrEqual(dry.bytesSent)
    expect(real.bytesSent).toBeGreaterThan(2 * 1024 * 1024)
    const after = await ckptJson<CopyJson & {dryRun: boolean}>(['copy', '--all', '--from', from, '--to', to, '--dry-run'])
    expect(after).toMatchObject({copied: [], blobs: 0, bytesSent: 0})
    expect(after.skipped.sort()).toEqual([...ids].sort())
  })

  it('--read-data reads the copy back; --json prints progress events on stderr, one document on stdout', async () => {
    const to = path.join(work, 'to-json')
    await ckpt(['init', '--repo', to, '-q'])
    const r = await runCli(['copy', '--all', '--from', from, '--to', to, '--read-data', '--json'], {env: {CKPT_PROGRESS_INTERVAL_MS: '0'}})
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as CopyJson
    expect(doc.copied.map((c) => c.id)).toEqual(ids)
    expect(doc.verify).toMatchObject({ok: true, readData: true})
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events.length).toBeGreaterThan(1)
    expect(events.every((e) => e.type === 'progress' && e.command === 'copy')).toBe(true)
    const last = events[events.length - 1]!
    expect(last).toMatchObject({finished: true, snapshot: 2, snapshots: 2, bytesSent: doc.bytesSent, percent: 100})
  })

  it('on a terminal: a spinner with the bytes sent and the rate; without one (first test): only the summary line', async () => {
    // Big enough for the spinner to draw several frames while the bytes go.
    const bigSrc = path.join(work, 'src-tty')
    const bigFrom = path.join(work, 'from-tty')
    await fsp.mkdir(bigSrc)
    await buildTree(bigSrc, {'big.bin': {file: {random: 16 * 1024 * 1024, seed: 6}}})
    await ckpt(['init', '--repo', bigFrom, '-q'])
    await ckpt(['snapshot', bigSrc, '--repo', bigFrom, '-q'])
    const to = path.join(work, 'to-tty')
    await ckpt(['init', '--repo', to, '-q'])
    // script(1) gives a pseudo-terminal; stty gives it a width, as a real terminal has. CI unset.
    const env: NodeJS.ProcessEnv = {...process.env}
    delete env['CI']
    delete env['CKPT_REPO']
    const command = `stty cols 120 rows 40; '${process.execPath}' '${BIN}' copy --all --from '${bigFrom}' --to '${to}'; echo "exit=$?"`
    const r = spawnSync('script', ['-qec', command, '/dev/null'], {env, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe']})
    expect(r.error).toBeUndefined()
    expect(r.stdout).toMatch(/exit=0/)
    const ESC = String.fromCharCode(27)
    expect(r.stdout).toContain(`${ESC}[?25l`)
    expect(r.stdout).toMatch(/copy 1\/1 [0-9a-f]{12}: [\d.]+ (B|KiB|MiB) sent \([\d.]+ (B|KiB|MiB)\/s\)/)
    expect(r.stdout).toMatch(/copied 1 snapshot to /)
  })

  it('exit codes: an unknown snapshot 4 (as restore), no destination repository 10, nothing named 2, the same repository 2', async () => {
    const to = path.join(work, 'to-codes')
    await ckpt(['init', '--repo', to, '-q'])
    const unknown = await runCli(['copy', 'abcdef12', '--from', from, '--to', to])
    expect(unknown.code).toBe(4) // NotFoundError, selectSnapshot's as for restore
    expect(unknown.stderr).toMatch(/no snapshot matches abcdef12/)
    const missing = await runCli(['copy', 'latest', '--from', from, '--to', path.join(work, 'absent')])
    expect(missing.code).toBe(10)
    await expect(fsp.stat(path.join(work, 'absent'))).rejects.toThrow()
    expect((await runCli(['copy', '--from', from, '--to', to])).code).toBe(2)
    const same = await runCli(['copy', '--all', '--from', from, '--to', from])
    expect(same.code).toBe(2)
    expect(same.stderr).toMatch(/same repository/)
    expect((await runCli(['copy', '--all', '--from', from, '--to', to, '--read-data', '--no-verify'])).code).toBe(2)
    expect(await fsp.readdir(path.join(to, 'snapshots'))).toEqual([])
  })
})
