// verify --source compares what tree version 2 records: a snapshot of a directory with hard
// links, a sparse file, xattrs, an ACL, a FIFO, a device and a socket finds no difference with
// that directory, and each kind of change is named.
import {spawnSync} from 'node:child_process'
import {closeSync, ftruncateSync, linkSync, mkdirSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {afterEach, beforeEach, expect, it} from 'vitest'

import {makeNode, writeXattr} from '../../src/core/fsextra.js'
import {BlobType} from '../../src/repo/pack.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import type {Manifest} from '../../src/snapshot/manifest.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {compareWithDirectory} from '../../src/verify/source.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

const MiB = 1024 * 1024
let work: string
let src: string
let repoDir: string
let server: net.Server
let manifest: Manifest

beforeEach(async () => {
  work = await tempDir('ckpt-verify-fidelity-')
  src = path.join(work, 'src')
  repoDir = path.join(work, 'repo')
  mkdirSync(path.join(src, 'a'), {recursive: true})
  mkdirSync(path.join(src, 'b'))
  writeFileSync(path.join(src, 'a', 'one'), seededBytes(200_000, 1))
  linkSync(path.join(src, 'a', 'one'), path.join(src, 'b', 'two'))
  writeFileSync(path.join(src, 'other'), seededBytes(200_000, 1))
  const fd = openSync(path.join(src, 'sparse'), 'w')
  ftruncateSync(fd, 64 * MiB)
  writeSync(fd, seededBytes(MiB, 2), 0, MiB, 8 * MiB)
  closeSync(fd)
  writeXattr(path.join(src, 'other'), Buffer.from('user.k'), Buffer.from([0, 1, 2]))
  spawnSync('setfacl', ['-m', 'u:nobody:r', path.join(src, 'a', 'one')])
  makeNode(path.join(src, 'pipe'), 'fifo', 0o600)
  if (process.getuid?.() === 0) makeNode(path.join(src, 'null'), 'chardev', 0o666, 1, 3)
  server = net.createServer()
  await new Promise<void>((resolve) => server.listen(path.join(src, 'sock'), resolve))
  await initLocalRepository(repoDir, {now: Date.now()})
  const repo = await openLocalRepository(repoDir)
  manifest = (await createSnapshot(repo, {source: src, program: 'test'})).manifest
})
afterEach(async () => {
  await new Promise((resolve) => server.close(resolve))
  rmSync(work, {recursive: true, force: true})
})

async function compare() {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  return compareWithDirectory(src, Buffer.from(manifest.tree, 'hex'), manifest.root, {
    chunker: repo.config.chunker,
    readTree: async (id) => decodeTree(await repo.readBlob(id, BlobType.tree), id.toString('hex')),
    compareOwners: true,
  })
}

it('finds no difference with the directory the snapshot was taken from (a socket and a FIFO are no damage)', async () => {
  const r = await compare()
  expect(r.differences).toEqual([])
  expect(r.bytesRead).toBe(3 * 200_000 + MiB) // each name read; of the sparse file only its data region, not its 63 MiB of holes
})

it('names a changed xattr, a broken hard link, data written into a hole, and a changed device', async () => {
  writeXattr(path.join(src, 'other'), Buffer.from('user.k'), Buffer.from('changed'))
  // b/two becomes a separate copy of the same bytes.
  unlinkSync(path.join(src, 'b', 'two'))
  writeFileSync(path.join(src, 'b', 'two'), seededBytes(200_000, 1))
  const fd = openSync(path.join(src, 'sparse'), 'r+')
  writeSync(fd, Buffer.from([7]), 0, 1, 40 * MiB)
  closeSync(fd)
  if (process.getuid?.() === 0) {
    unlinkSync(path.join(src, 'null'))
    makeNode(path.join(src, 'null'), 'chardev', 0o666, 1, 5)
  }
  const kinds = (await compare()).differences.map((d) => `${d.path} ${d.kind}`)
  expect(kinds).toEqual(expect.arrayContaining(['other xattrs', 'b/two links', 'sparse content', ...(process.getuid?.() === 0 ? ['null device'] : [])]))
  expect(kinds).not.toContain('sock extra')
})

it('with --exclude-nodump, a nodump entry left out of the snapshot is not extra', async () => {
  writeFileSync(path.join(src, 'cache'), 'c')
  if (spawnSync('chattr', ['+d', path.join(src, 'cache')]).status !== 0) return
  const repo = await openLocalRepository(repoDir)
  manifest = (await createSnapshot(repo, {source: src, program: 'test', excludeNodump: true})).manifest
  expect(manifest.excludeNodump).toBe(true)
  await repo.loadIndex()
  const opts = {
    chunker: repo.config.chunker,
    readTree: async (id: Buffer) => decodeTree(await repo.readBlob(id, BlobType.tree), id.toString('hex')),
    compareOwners: true,
  }
  expect((await compareWithDirectory(src, Buffer.from(manifest.tree, 'hex'), manifest.root, {...opts, excludeNodump: true})).differences).toEqual([])
  expect((await compareWithDirectory(src, Buffer.from(manifest.tree, 'hex'), manifest.root, opts)).differences.map((d) => `${d.path} ${d.kind}`)).toEqual(['cache extra'])
})

it("compares the root's own xattrs, ACLs and inode flags as any directory's", async () => {
  writeXattr(src, Buffer.from('user.purpose'), Buffer.from('state'))
  expect(spawnSync('setfacl', ['-d', '-m', 'u:nobody:rwx', src]).status).toBe(0)
  const flagged = process.getuid?.() === 0 && spawnSync('chattr', ['+A', src]).status === 0
  const repo = await openLocalRepository(repoDir)
  manifest = (await createSnapshot(repo, {source: src, program: 'test'})).manifest
  expect((await compare()).differences).toEqual([])
  writeXattr(src, Buffer.from('user.purpose'), Buffer.from('changed'))
  if (flagged) spawnSync('chattr', ['-A', src])
  const diffs = (await compare()).differences
  expect(diffs.map((d) => `${d.path} ${d.kind}`)).toEqual(['. xattrs', ...(flagged ? ['. flags'] : [])])
  expect(diffs[0]!.snapshot).toContain(`user.purpose=${Buffer.from('state').toString('hex')}`)
  expect(diffs[0]!.directory).toContain(`user.purpose=${Buffer.from('changed').toString('hex')}`)
})
