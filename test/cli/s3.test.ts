// Repositories in object storage, end to end through the built CLI against a real S3 API (Swift
// s3api on loopback, started once for this file): init, snapshot, restore, verify, forget, prune,
// copy to and from a local repository, a snapshot killed mid-upload, a prune killed while it deletes.
// Also: locations ckpt does not support are usage errors.
import {randomBytes} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {type Swift, startSwift, swiftMissing} from '../helpers/swift.js'
import {buildTree, captureTree, diffTrees, tempDir, type TreeSpec} from '../helpers/tree.js'

describe('repository locations', () => {
  it('an unsupported scheme or a malformed s3 location is a usage error (exit 2), and creates nothing', async () => {
    const cwd = await tempDir('ckpt-scheme-')
    try {
      for (const loc of ['s3:/bucket/x', 'sftp:host:/srv/repo', 'rest:http://host:8000/', 's3://B/x', 's3://bucket//x', 'S3X://bucket']) {
        const r = await runCli(['init', '--repo', loc], {cwd})
        expect(r.code, `${loc}: ${r.stderr}`).toBe(2)
        expect(r.stderr).toMatch(/repository location|bucket name|prefix/)
        const env = await runCli(['snapshots'], {cwd, env: {CKPT_REPO: loc}})
        expect(env.code, loc).toBe(2)
      }
      expect(await fsp.readdir(cwd)).toEqual([])
      // A directory whose name has a colon is still reachable as a path.
      await ckpt(['init', '--repo', './odd:name', '-q'], {cwd})
      expect(await fsp.readdir(cwd)).toEqual(['odd:name'])
    } finally {
      await fsp.rm(cwd, {recursive: true, force: true})
    }
  })
})

const skip = swiftMissing()
if (skip) console.warn(skip)

describe.skipIf(Boolean(skip))('S3 repository through the CLI (Swift s3api)', () => {
  let swift: Swift
  let work: string
  let env: Record<string, string>
  const bucket = `ckpt-cli-${randomBytes(4).toString('hex')}`
  beforeAll(async () => {
    work = await tempDir('ckpt-s3cli-')
    swift = await startSwift(path.join(work, 'swift'))
    env = {...swift.env, CKPT_S3_LIST_LAG_MS: '300', CKPT_CACHE_DIR: path.join(work, 'cache')}
  }, 180_000)
  afterAll(async () => {
    await swift?.stop()
    if (work) await fsp.rm(work, {recursive: true, force: true})
  })

  const spec: TreeSpec = {
    'small.txt': 'hello\n',
    'big.bin': {file: {random: 5 * 1024 * 1024 + 3, seed: 5}},
    'mode.sh': {file: '#!/bin/sh\n', mode: 0o755},
    'link': {symlink: 'small.txt'},
    'd': {dir: {'e': {dir: {'deep.bin': {file: {random: 300_000, seed: 9}}}}, 'empty': {dir: {}}}},
  }

  it('init (creating the bucket), snapshot, unchanged snapshot, restore, verify --read-data, forget, prune', async () => {
    const repo = `s3://${bucket}/repos/one`
    const src = path.join(work, 'src')
    await fsp.mkdir(src)
    await buildTree(src, spec)
    await ckpt(['init', '--repo', repo, '-q'], {env})
    const again = await runCli(['init', '--repo', repo], {env})
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/objects are stored under that prefix/)

    const first = await ckptJson<{id: string; newBytes: number}>(['snapshot', src, '--repo', repo], {env})
    expect(first.newBytes).toBeGreaterThan(5 * 1024 * 1024)
    const srcTree = await captureTree(src)
    const second = await ckptJson<{id: string; newBytes: number; parent: string}>(['snapshot', src, '--repo', repo], {env: {...env, CKPT_REPO: repo}})
    expect(second.parent).toBe(first.id)
    expect(second.newBytes).toBe(0)
    await fsp.writeFile(path.join(src, 'small.txt'), 'changed\n')
    const third = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo], {env})

    const target = path.join(work, 'restored')
    await ckpt(['restore', first.id, '--target', target, '--repo', repo, '-q'], {env})
    expect(diffTrees(srcTree, await captureTree(target), {ignoreRootMtime: true})).toEqual([])

    const verified = await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})
    expect(verified.errors).toBe(0)

    await ckpt(['forget', first.id, '--repo', repo, '-q'], {env})
    const pruned = await ckptJson<{packsDeleted: number}>(['prune', '--keep-last', '1', '--repo', repo], {env})
    expect(pruned).toBeDefined()
    const after = await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})
    expect(after.errors).toBe(0)
    const target3 = path.join(work, 'restored3')
    await ckpt(['restore', third.id, '--target', target3, '--repo', repo, '-q'], {env})
    expect((await fsp.readFile(path.join(target3, 'small.txt'), 'utf8'))).toBe('changed\n')
  }, 240_000)

  it('copy: a local repository into S3 (only what S3 lacks), restore and verify there, again nothing; and back to a local one', async () => {
    const local = path.join(work, 'local-for-copy')
    const repo = `s3://${bucket}/repos/copied`
    const src = path.join(work, 'src-copy')
    await fsp.mkdir(src)
    await buildTree(src, spec)
    await ckpt(['init', '--repo', local, '-q'], {env})
    const first = await ckptJson<{id: string}>(['snapshot', src, '--repo', local], {env})
    await ckpt(['init', '--repo', repo, '-q'], {env})
    const sent = await ckptJson<{copied: {id: string}[]; bytesSent: number; verify: {ok: boolean}}>(['copy', 'latest', '--repo', local, '--to', repo], {env})
    expect(sent.copied.map((c) => c.id)).toEqual([first.id])
    expect(sent.bytesSent).toBeGreaterThan(5 * 1024 * 1024)
    expect(sent.verify.ok).toBe(true)

    await fsp.writeFile(path.join(src, 'small.txt'), 'changed for copy\n')
    const second = await ckptJson<{id: string}>(['snapshot', src, '--repo', local], {env})
    const more = await ckptJson<{copied: {id: string}[]; skipped: string[]; bytesSent: number}>(['copy', '--all', '--from', local, '--to', repo, '--read-data'], {env})
    expect(more.copied.map((c) => c.id)).toEqual([second.id])
    expect(more.skipped).toEqual([first.id])
    expect(more.bytesSent).toBeLessThan(64 * 1024)
    const again = await ckptJson<{copied: unknown[]; bytesSent: number}>(['copy', '--all', '--from', local, '--to', repo], {env})
    expect(again.copied).toEqual([])

    const target = path.join(work, 'restored-copy')
    await ckpt(['restore', second.id, '--target', target, '--repo', repo, '-q'], {env})
    expect(diffTrees(await captureTree(src), await captureTree(target), {ignoreRootMtime: true})).toEqual([])
    expect((await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})).errors).toBe(0)

    // And from S3 into another local repository (a new host fetching the off-host copy).
    const home = path.join(work, 'local-from-s3')
    await ckpt(['init', '--repo', home, '-q'], {env})
    const fetched = await ckptJson<{copied: {id: string}[]}>(['copy', '--all', '--from', repo, '--to', home], {env})
    expect(fetched.copied.map((c) => c.id)).toEqual([first.id, second.id])
    expect((await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', home], {env})).errors).toBe(0)
  }, 240_000)

  it('a snapshot, then a prune, killed mid-way leave a repository that verifies, and the next run succeeds', async () => {
    const repo = `s3://${bucket}/repos/killed`
    const src = path.join(work, 'src-kill')
    await fsp.mkdir(src)
    await buildTree(src, {'a.bin': {file: {random: 24 * 1024 * 1024, seed: 1}}, 'b.bin': {file: {random: 8 * 1024 * 1024, seed: 2}}})
    await ckpt(['init', '--repo', repo, '-q'], {env})
    // Killed as soon as its first pack is stored, with more to upload.
    const sdk = await import('@aws-sdk/client-s3')
    const client = new sdk.S3Client({endpoint: swift.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: {accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!}})
    const killed = await runCli(['snapshot', src, '--repo', repo], {env, killWhen: {
      ready: async () => ((await client.send(new sdk.ListObjectsV2Command({Bucket: bucket, Prefix: 'repos/killed/data/', MaxKeys: 1}))).KeyCount ?? 0) > 0,
      afterMs: 0,
    }})
    expect(killed.signal).toBe('SIGKILL')
    const v = await ckptJson<{errors: number}>(['verify', '--repo', repo], {env})
    expect(v.errors).toBe(0)
    const next = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo, '--retry-lock', '1m'], {env})
    const target = path.join(work, 'restored-kill')
    await ckpt(['restore', next.id, '--target', target, '--repo', repo, '-q'], {env})
    expect(diffTrees(await captureTree(src), await captureTree(target), {ignoreRootMtime: true})).toEqual([])
    expect((await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})).errors).toBe(0)

    // Prune killed once it holds the exclusive lock (deleting): verify is clean, the next prune finishes.
    await fsp.writeFile(path.join(src, 'b.bin'), randomBytes(2 * 1024 * 1024))
    const kept = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo], {env})
    const killedPrune = await runCli(['prune', '--keep-last', '1', '--repo', repo], {env, killWhen: {
      ready: async () => {
        const locks = await client.send(new sdk.ListObjectsV2Command({Bucket: bucket, Prefix: 'repos/killed/locks/'}))
        for (const o of locks.Contents ?? []) {
          if (!o.Key!.split('/').pop()!.startsWith('x')) continue
          const body = await (await client.send(new sdk.GetObjectCommand({Bucket: bucket, Key: o.Key!}))).Body!.transformToString().catch(() => '{}')
          if (!(JSON.parse(body) as {pending?: boolean}).pending) return true
        }
        return false
      },
      afterMs: 0,
    }})
    expect(killedPrune.signal).toBe('SIGKILL')
    expect((await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})).errors).toBe(0)
    await ckpt(['prune', '--keep-last', '1', '--repo', repo, '-q'], {env})
    const snaps = await ckptJson<{id: string}[]>(['snapshots', '--repo', repo], {env})
    expect(snaps.map((s) => s.id)).toEqual([kept.id])
    const target2 = path.join(work, 'restored-kill2')
    await ckpt(['restore', kept.id, '--target', target2, '--repo', repo, '-q'], {env})
    expect(diffTrees(await captureTree(src), await captureTree(target2), {ignoreRootMtime: true})).toEqual([])
    expect((await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})).errors).toBe(0)
    client.destroy()
  }, 300_000)

  it('a prune killed while it deletes (fault points in its delete phase) leaves a repository that verifies; the next snapshot and prune succeed', async () => {
    const repo = `s3://${bucket}/repos/prune-killed`
    const prefix = 'repos/prune-killed'
    const src = path.join(work, 'src-prune-kill')
    await fsp.mkdir(src)
    await ckpt(['init', '--repo', repo, '-q'], {env})
    const sdk = await import('@aws-sdk/client-s3')
    const client = new sdk.S3Client({endpoint: swift.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: {accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!}})
    // Listings lag deletes on Swift: what exists is asked of each object (HEAD).
    const exists = async (key: string) => client.send(new sdk.HeadObjectCommand({Bucket: bucket, Key: key})).then(() => true, (err: {$metadata?: {httpStatusCode?: number}}) => {
      if (err.$metadata?.httpStatusCode === 404) return false
      throw err
    })
    const packKeys = async () => ((await client.send(new sdk.ListObjectsV2Command({Bucket: bucket, Prefix: `${prefix}/data/`}))).Contents ?? []).map((o) => o.Key!)
    // delete.done@1: the first forgotten manifest is gone, the others are being deleted or not yet.
    // prune.index-deleted: manifests and superseded index files gone, their packs not yet.
    for (const [i, fault] of ['delete.done@1', 'prune.index-deleted'].entries()) {
      // Snapshots of different contents: keeping the last, prune deletes the others' manifests and packs.
      const ids: string[] = []
      for (let k = 0; k < 2; k++) {
        await buildTree(src, {'data.bin': {file: {random: 2 * 1024 * 1024, seed: 10 * i + k}}, 'note.txt': `${i}.${k}\n`})
        ids.push((await ckptJson<{id: string}>(['snapshot', src, '--repo', repo], {env})).id)
      }
      const keptTree = await captureTree(src)
      const packs = await packKeys()
      const forgotten = (await ckptJson<{id: string}[]>(['snapshots', '--repo', repo], {env})).map((s) => s.id).filter((id) => id !== ids[1])
      const killed = await runCli(['prune', '--keep-last', '1', '--repo', repo], {env: {...env, CKPT_FAULT: fault}})
      expect(killed.signal, `${fault}: ${killed.stderr}`).toBe('SIGKILL')
      // Killed inside the delete phase: a forgotten manifest is gone, no pack yet.
      expect(await Promise.all(forgotten.map((id) => exists(`${prefix}/snapshots/${id}`))), fault).toContain(false)
      expect(await Promise.all(packs.map(exists)), fault).not.toContain(false)
      expect((await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})).errors, fault).toBe(0)
      const next = await ckptJson<{id: string; parent: string}>(['snapshot', src, '--repo', repo, '--retry-lock', '1m'], {env})
      expect(next.parent, fault).toBe(ids[1])
      await ckpt(['prune', '--keep-last', '1', '--repo', repo, '--retry-lock', '1m', '-q'], {env})
      expect((await ckptJson<{id: string}[]>(['snapshots', '--repo', repo], {env})).map((s) => s.id), fault).toEqual([next.id])
      expect(await Promise.all(packs.map(exists)), fault).toContain(false)
      const target = path.join(work, `restored-prune-kill-${i}`)
      await ckpt(['restore', next.id, '--target', target, '--repo', repo, '-q'], {env})
      // Restore checks every chunk against its id.
      expect(diffTrees(keptTree, await captureTree(target), {ignoreRootMtime: true}), fault).toEqual([])
    }
    client.destroy()
  }, 300_000)
})
