// verify ID --source DIR: a snapshot compared with a directory, entry by entry.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {setTimesNs} from '../../src/core/fsmeta.js'
import {ckpt, runCli} from '../helpers/cli.js'
import {buildTree} from '../helpers/tree.js'
import {removeScratch, scratchDir, verifyJson} from './fixture.js'

let base: string
let repo: string
let src: string
let id: string

beforeAll(async () => {
  base = await scratchDir('ckpt-verify-source-')
  repo = path.join(base, 'repo')
  src = path.join(base, 'src')
  await fsp.mkdir(src)
  await buildTree(src, {
    'big.bin': {file: {random: 700_000, seed: 5}},
    'config.json': '{"a": 1}\n',
    'run.sh': {file: '#!/bin/sh\necho hi\n', mode: 0o755},
    db: {dir: {CURRENT: 'MANIFEST-000001\n', 'MANIFEST-000001': 'manifest\n', old: {dir: {}}}},
    latest: {symlink: 'db/CURRENT'},
  })
  await ckpt(['init', '--repo', repo, '--quiet'])
  id = (await ckpt(['snapshot', src, '--repo', repo, '--quiet'])).stdout.trim()
})

afterAll(async () => {
  await removeScratch()
})

async function restored(): Promise<string> {
  const target = path.join(await scratchDir('ckpt-verify-source-out-'), 'out')
  await ckpt(['restore', id, '--repo', repo, '--target', target, '--quiet'])
  return target
}

describe.concurrent('verify --source', () => {
  it('finds nothing between a snapshot and the directory it was taken from', async () => {
    const {code, report} = await verifyJson(['--repo', repo, id, '--source', src])
    expect(report.source).toMatchObject({snapshot: id, directory: src, differences: []})
    expect(report.source!.entries).toBe(9) // 5 files, 3 directories, 1 symlink (the root counted among the directories)
    expect(code).toBe(0)
  })

  it('finds nothing after an exact restore', async () => {
    const target = await restored()
    const r = await ckpt(['verify', '--repo', repo, id.slice(0, 8), '--source', target])
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/9 entries compared with .*: 0 differ\n$/)
  })

  it('lists a modified file, a mode change, a missing and an extra file, a changed symlink', async () => {
    const t = await restored()
    // Bitrot: same size, same mtime, one byte different.
    const big = path.join(t, 'big.bin')
    const st = await fsp.stat(big, {bigint: true})
    const fh = await fsp.open(big, 'r+')
    await fh.write(Buffer.from([0xff ^ (await fsp.readFile(big))[400_000]!]), 0, 1, 400_000)
    await fh.close()
    setTimesNs(big, st.atimeNs, st.mtimeNs)
    await fsp.chmod(path.join(t, 'run.sh'), 0o700)
    await fsp.rm(path.join(t, 'db', 'MANIFEST-000001'))
    await fsp.writeFile(path.join(t, 'db', 'LOCK'), '')
    await fsp.rm(path.join(t, 'latest'))
    await fsp.symlink('db/elsewhere', path.join(t, 'latest'))
    await fsp.writeFile(path.join(t, 'config.json'), '{"a": 2, "b": 3}\n')

    const {code, report} = await verifyJson(['--repo', repo, id, '--source', t])
    expect(code).toBe(12)
    expect(report.ok).toBe(false)
    expect(report.findings).toEqual([]) // the repository itself is fine
    const diffs = report.source!.differences.map((d) => `${d.kind} ${d.path}`).sort()
    expect(diffs).toEqual([
      'content big.bin',
      'content config.json',
      'extra db/LOCK',
      'missing db/MANIFEST-000001',
      'mode run.sh',
      'mtime .', // so did replacing the symlink at the top
      'mtime config.json',
      'mtime db', // adding and removing entries moved the directory's mtime
      'mtime latest',
      'target latest',
    ])
    const bitrot = report.source!.differences.find((d) => d.path === 'big.bin')!
    expect(bitrot.message).toMatch(/differs from byte \d+ although size and mtime match/)

    const human = await runCli(['verify', '--repo', repo, id, '--source', t])
    expect(human.code).toBe(12)
    expect(human.stdout).toContain('differs mode: run.sh: mode 0700, the snapshot has 0755')
    expect(human.stdout).toContain('differs missing: db/MANIFEST-000001: in the snapshot (file), not in the directory')
  })

  it('a type change is one difference, not a cascade', async () => {
    const t = await restored()
    await fsp.rm(path.join(t, 'db'), {recursive: true})
    await fsp.writeFile(path.join(t, 'db'), 'now a file')
    const {code, report} = await verifyJson(['--repo', repo, id, '--source', t])
    expect(code).toBe(12)
    expect(report.source!.differences.map((d) => `${d.kind} ${d.path}`).sort()).toEqual(['mtime .', 'type db'])
  })

  it('what the snapshot left out on purpose is not extra: its --exclude matches, the paths --files-from did not choose, the repository inside', async () => {
    const dir = path.join(await scratchDir('ckpt-verify-source-left-'), 'state')
    await fsp.mkdir(dir)
    await buildTree(dir, {'a.log': 'log', 'a\nb': 'newline', keep: 'k', sub: {dir: {'b.log': 'log', x: 'x'}}, other: {dir: {y: 'y'}}})
    // The default repository, .ckpt in the directory, as `cd dir && ckpt snapshot .` makes it.
    const excluded = (await ckpt(['snapshot', '.', '--exclude', '*.log', '--exclude', 'a?b', '--quiet'], {cwd: dir})).stdout.trim()
    const r = await verifyJson(['latest', '--source', dir, '--repo', path.join(dir, '.ckpt')])
    expect(r.report.source!.differences).toEqual([])
    expect(r.code).toBe(0)
    await fsp.writeFile(path.join(dir, 'sub', 'new'), 'not excluded')
    const after = await verifyJson([excluded, '--source', dir, '--repo', path.join(dir, '.ckpt')])
    expect(after.report.source!.differences.map((d) => `${d.kind} ${d.path}`).sort()).toEqual(['extra sub/new', 'mtime sub'])
    await fsp.rm(path.join(dir, 'sub', 'new'))
    const list = path.join(path.dirname(dir), 'list')
    await fsp.writeFile(list, 'sub/x\nkeep\n')
    const chosen = (await ckpt(['snapshot', dir, '--files-from', list, '--repo', path.join(dir, '.ckpt'), '--quiet'])).stdout.trim()
    const part = await verifyJson([chosen, '--source', dir, '--repo', path.join(dir, '.ckpt')])
    expect(part.report.source!.differences).toEqual([])
  })
})
