// restore --include (every path must be in the snapshot), --exclude and --dry-run, run as a user would.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {buildTree, captureTree, tempDir} from '../helpers/tree.js'

let work: string
let src: string
let repo: string
beforeAll(async () => {
  work = await tempDir('ckpt-restore-select-')
  src = path.join(work, 'src')
  repo = path.join(work, 'repo')
  await fsp.mkdir(src)
  await buildTree(src, {
    db: {dir: {CURRENT: 'MANIFEST-1', 'MANIFEST-1': 'm', 'LOG': 'log lines'}},
    cache: {dir: {blob: 'cached', deeper: {dir: {x: 'x'}}}},
    'top.log': 'top',
    link: {symlink: 'db/CURRENT'},
  })
  await ckpt(['init', '--repo', repo])
  await ckpt(['snapshot', src, '--repo', repo])
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function names(dir: string): Promise<string[]> {
  return [...(await captureTree(dir)).keys()].map((k) => Buffer.from(k, 'hex').toString()).filter(Boolean).sort()
}

describe('restore --include', () => {
  it('a path not in the snapshot: exit 4 naming it, nothing written', async () => {
    const target = path.join(work, 'inc-missing')
    const r = await runCli(['restore', 'latest', '--repo', repo, '--target', target, '--include', 'db/CURRENT', '--include', 'db/NOPE', '--include', 'top.log/below'])
    expect(r.code).toBe(4)
    expect(r.stderr).toBe('ckpt: --include "db/NOPE", "top.log/below": not in the snapshot (nothing was restored)\n')
    await expect(fsp.lstat(target)).rejects.toThrow(/ENOENT/)
    expect((await fsp.readdir(work)).sort()).toEqual(['repo', 'src'])
    const j = await runCli(['restore', 'latest', '--repo', repo, '--target', target, '--include', 'path/not/in/snapshot', '--json'])
    expect(j.code).toBe(4)
    expect(JSON.parse(j.stdout).error).toEqual({code: 'NOT_FOUND', exitCode: 4, message: '--include "path/not/in/snapshot": not in the snapshot (nothing was restored)', data: {paths: ['path/not/in/snapshot']}})
  })

  it('paths that are there restore as before', async () => {
    const target = path.join(work, 'inc-ok')
    await ckpt(['restore', 'latest', '--repo', repo, '--target', target, '--include', 'db/CURRENT', '--include', './cache/deeper'])
    expect(await names(target)).toEqual(['cache', 'cache/deeper', 'cache/deeper/x', 'db', 'db/CURRENT'])
    await fsp.rm(target, {recursive: true})
  })
})

describe('restore --include of names that are not plain text', () => {
  it('takes the name as the shell passes it or as ckpt ls shows it', async () => {
    const odd = path.join(work, 'odd')
    const oddRepo = path.join(work, 'odd-repo')
    await fsp.mkdir(odd)
    await buildTree(odd, {'a\nb': 'newline', 'tab\there': 'tab', 'hex:6361669e': 'latin-1', other: 'other'})
    await ckpt(['init', '--repo', oddRepo])
    await ckpt(['snapshot', odd, '--repo', oddRepo])
    expect((await ckpt(['ls', 'latest', '--repo', oddRepo])).stdout).toBe('a\\nb\ncaf\\236\nother\ntab\\there\n')
    for (const [i, typed] of [['a\nb', 'tab\there'], ['a\\nb', 'tab\\there', 'caf\\236']].entries()) {
      const target = path.join(work, `odd-out-${i}`)
      await ckpt(['restore', 'latest', '--repo', oddRepo, '--target', target, ...typed.flatMap((p) => ['--include', p])])
      const got = (await fsp.readdir(target, {encoding: 'buffer'})).map((n) => n.toString('latin1')).sort()
      expect(got).toEqual(i === 0 ? ['a\nb', 'tab\there'] : ['a\nb', 'caf\x9e', 'tab\there'])
    }
    await fsp.rm(odd, {recursive: true})
    await fsp.rm(oddRepo, {recursive: true})
  })
})

describe('restore --exclude', () => {
  it('leaves out what matches, with the snapshot pattern syntax', async () => {
    const target = path.join(work, 'exc')
    const r = await ckptJson<{files: number; dirs: number; symlinks: number}>(['restore', 'latest', '--repo', repo, '--target', target, '--exclude', 'LOG', '--exclude', '*.log', '--exclude', 'cache/**'])
    expect(await names(target)).toEqual(['cache', 'db', 'db/CURRENT', 'db/MANIFEST-1', 'link'])
    expect(r).toMatchObject({files: 2, dirs: 2, symlinks: 1})
    await fsp.rm(target, {recursive: true})
  })

  it('in place, what the directory holds at an excluded path stays as it is', async () => {
    const own = path.join(work, 'own')
    await fsp.mkdir(own)
    await buildTree(own, {'app.log': 'old log', data: 'v1'})
    await ckpt(['snapshot', own, '--repo', repo])
    await fsp.writeFile(path.join(own, 'app.log'), 'newer log lines')
    await fsp.writeFile(path.join(own, 'data'), 'v2')
    await ckpt(['restore', 'latest', '--source', own, '--repo', repo, '--exclude', '*.log', '--no-safety-snapshot'])
    expect(await fsp.readFile(path.join(own, 'data'), 'utf8')).toBe('v1')
    expect(await fsp.readFile(path.join(own, 'app.log'), 'utf8')).toBe('newer log lines')
  })

  it('a bad pattern is a usage error', async () => {
    const r = await runCli(['restore', 'latest', '--repo', repo, '--target', path.join(work, 'bad'), '--exclude', '[abc'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/unclosed "\["/)
  })
})

describe('restore --dry-run', () => {
  it('counts what would be written and touches nothing', async () => {
    const before = await captureTree(work)
    const target = path.join(work, 'dry')
    const r = await ckpt(['restore', 'latest', '--source', src, '--repo', repo, '--target', target, '--dry-run'])
    expect(r.stdout).toMatch(new RegExp(`^restore \\(dry run\\): would write snapshot [0-9a-f]{12} to ${target}: 6 files, 3 directories, 1 symlink, 30 B\\n$`))
    const inPlace = await ckptJson<Record<string, unknown>>(['restore', 'latest', '--source', src, '--repo', repo, '-n', '--exclude', 'cache'])
    expect(inPlace).toMatchObject({destination: src, replaced: true, dryRun: true, files: 4, dirs: 1, symlinks: 1, bytes: 23})
    // Nothing written: not the target, not a safety snapshot, not a temp tree.
    const after = await captureTree(work)
    expect([...after.keys()].filter((k) => !before.has(k)).map((k) => Buffer.from(k, 'hex').toString()).filter((n) => !n.startsWith('repo/locks'))).toEqual([])
    const list = await ckptJson<unknown[]>(['snapshots', '--repo', repo])
    expect(list.length).toBe(2)
  })

  it('with --include, a missing path is still exit 4', async () => {
    const r = await runCli(['restore', 'latest', '--source', src, '--repo', repo, '--target', path.join(work, 'dry2'), '--dry-run', '--include', 'nope'])
    expect(r.code).toBe(4)
  })
})
