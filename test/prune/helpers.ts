// Shared fixtures of the prune tests: repositories in temp directories, snapshots taken in
// process (fast) with chosen times, hosts and tags, and checks that a repository is whole.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {expect} from 'vitest'

import {openLocalRepository, initLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {type PruneOptions, type PruneReport, runPrune} from '../../src/prune/prune.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {runCli} from '../helpers/cli.js'
import {type Captured, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

export interface Fixture {
  root: string
  repoDir: string
  /** A directory to snapshot (realpath). */
  src: string
  open(): Promise<Repository>
  cleanup(): Promise<void>
}

export async function fixture(opts: {packSize?: number} = {}): Promise<Fixture> {
  const root = await fsp.realpath(await tempDir('ckpt-prune-'))
  const repoDir = path.join(root, 'repo')
  const src = path.join(root, 'src')
  await fsp.mkdir(src)
  await initLocalRepository(repoDir, {now: Date.now(), packSize: opts.packSize})
  return {
    root, repoDir, src,
    open: () => openLocalRepository(repoDir),
    cleanup: () => fsp.rm(root, {recursive: true, force: true}),
  }
}

export async function snap(f: Fixture, opts: {time?: string; host?: string; tags?: string[]; source?: string} = {}): Promise<string> {
  const repo = await f.open()
  const r = await createSnapshot(repo, {source: opts.source ?? f.src, program: 'test', time: opts.time ? new Date(opts.time) : undefined, host: opts.host, tags: opts.tags})
  return r.id
}

export const DEFAULT_GC = {repackThreshold: 0.5, mergeSmall: false}

export async function prune(f: Fixture, opts: Partial<PruneOptions> = {}): Promise<PruneReport> {
  return runPrune(await f.open(), {
    policy: {last: 1}, groupBy: ['host', 'source'], timeZone: 'UTC', now: Date.now(), dryRun: false, ...DEFAULT_GC, exclusiveRetryMs: 10_000, ...opts,
  })
}

export async function names(f: Fixture, kind: 'data' | 'index' | 'snapshots' | 'pins' | 'locks'): Promise<string[]> {
  const repo = await f.open()
  const out: string[] = []
  for await (const o of repo.backend.list(kind)) out.push(o.name)
  return out.sort()
}

/** `ckpt verify --read-data`: every finding that is an error fails the test. */
export async function verifyClean(repoDir: string): Promise<void> {
  const r = await runCli(['verify', '--read-data', '--json', '--repo', repoDir])
  const report = JSON.parse(r.stdout) as {exitCode: number; findings: {severity: string; kind: string; message: string}[]}
  const errors = report.findings.filter((x) => x.severity === 'error')
  expect(errors.map((e) => `${e.kind}: ${e.message}`)).toEqual([])
  expect(r.code).toBe(0)
}

/** Restore every snapshot and compare it with what was captured when it was taken. */
export async function restoreAllMatches(repoDir: string, captured: ReadonlyMap<string, Map<string, Captured>>, scratch: string): Promise<number> {
  const repo = await openLocalRepository(repoDir)
  const {snapshots, damaged} = await loadCatalog(repo)
  expect(damaged).toEqual([])
  let n = 0
  for (const s of snapshots) {
    const want = captured.get(s.id)
    if (!want) continue
    const target = path.join(scratch, `restore-${s.id.slice(0, 12)}-${n}`)
    await restoreSnapshot(await openLocalRepository(repoDir), s, {target, lockRetryMs: 30_000})
    const got = await captureTree(target)
    expect(diffTrees(want, got, {ignoreRootMtime: true}), `snapshot ${s.id}`).toEqual([])
    await fsp.rm(target, {recursive: true, force: true})
    n++
  }
  return n
}

export {captureTree}
