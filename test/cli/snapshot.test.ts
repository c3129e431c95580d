// How snapshots behave on real directories: the stat cache, dedup, files that change or cannot
// be read while a snapshot runs.
import {spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openLocalRepository} from '../../src/repo/open.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {initLocalRepository} from '../../src/repo/open.js'
import {BIN, ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {waitFor} from '../helpers/programs.js'
import {buildTree, captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

interface SnapJson {
  id: string
  parent: string | null
  files: number
  bytes: number
  newBytes: number
  storedBytes: number
  bytesRead: number
  filesRead: number
  warnings: number
  incomplete: number
  warningList: {kind: string; path: string; message: string}[]
}

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-snap-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function duBytes(dir: string): Promise<number> {
  let total = 0
  for (const e of await fsp.readdir(dir, {withFileTypes: true})) {
    const p = path.join(dir, e.name)
    total += e.isDirectory() ? await duBytes(p) : (await fsp.lstat(p)).size
  }
  return total
}

async function countObjects(repo: string): Promise<number> {
  let n = 0
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, {withFileTypes: true})) {
      if (e.isDirectory()) await walk(path.join(d, e.name))
      else n++
    }
  }
  await walk(repo)
  return n
}

describe('stat cache and dedup', () => {
  it('a second snapshot of an unchanged directory reads no file, stores no chunk and adds only a few KiB', async () => {
    const src = path.join(work, 'unchanged')
    await fsp.mkdir(src)
    await buildTree(src, {
      'big.bin': {file: {random: 8 * 1024 * 1024, seed: 1}},
      db: {dir: Object.fromEntries(Array.from({length: 200}, (_, i) => [`f${i}.txt`, `file ${i}\n`.repeat(i + 1)]))},
    })
    await new Promise((r) => setTimeout(r, 100)) // out of the racy window of the first snapshot
    const repo = path.join(work, 'repo-unchanged')
    await ckpt(['init', '--repo', repo])
    const first = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo])
    expect(first.filesRead).toBe(201)
    const size1 = await duBytes(repo)
    const objects1 = await countObjects(repo)
    const second = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo])
    const size2 = await duBytes(repo)
    expect(second.parent).toBe(first.id)
    expect(second.bytesRead).toBe(0)
    expect(second.filesRead).toBe(0)
    expect(second.newBytes).toBe(0)
    expect(second.files).toBe(201)
    expect(second.bytes).toBe(first.bytes)
    expect(size2 - size1).toBeLessThan(8 * 1024)
    expect(await countObjects(repo)).toBe(objects1 + 1) // just the manifest

    // --force reads everything again, still storing nothing new.
    const forced = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo, '--force'])
    expect(forced.bytesRead).toBe(first.bytes)
    expect(forced.newBytes).toBe(0)
  })

  it('re-reads exactly the files whose size, mtime, ctime or inode changed', async () => {
    const src = path.join(work, 'partial')
    await fsp.mkdir(src)
    await buildTree(src, {'a.txt': 'aaaa', 'b.txt': 'bbbb', 'c.txt': 'cccc', 'd.txt': 'dddd'})
    await new Promise((r) => setTimeout(r, 100))
    const repo = path.join(work, 'repo-partial')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    await new Promise((r) => setTimeout(r, 100))
    await fsp.writeFile(path.join(src, 'a.txt'), 'AAAA') // same size, new mtime
    await fsp.chmod(path.join(src, 'b.txt'), 0o600) // ctime only
    await fsp.rename(path.join(src, 'c.txt'), path.join(src, 'c2.txt')) // new name
    await new Promise((r) => setTimeout(r, 100))
    const next = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo])
    expect(next.filesRead).toBe(3) // a (content), b (ctime), c2 (no parent entry); d from the cache
    const target = path.join(work, 'partial-out')
    await ckpt(['restore', next.id, '--target', target, '--repo', repo])
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
  })

  it('re-reads a file modified within the timestamp granularity of the parent snapshot (racy)', async () => {
    const src = path.join(work, 'racy')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'f'), 'content')
    const st = await fsp.stat(path.join(src, 'f'), {bigint: true})
    const repoDir = path.join(work, 'repo-racy')
    const repo = await initLocalRepository(repoDir, {now: Date.now()})
    // The parent "started" 10 ms after the file's last change: the file may have changed again
    // in the same clock tick after being read, so its unchanged stat proves nothing.
    await createSnapshot(repo, {source: src, program: 'test', nowNs: () => st.ctimeNs + 10_000_000n})
    await new Promise((r) => setTimeout(r, 100)) // the next snapshots start well after the change
    const reopened = await openLocalRepository(repoDir)
    const second = await createSnapshot(reopened, {source: src, program: 'test'})
    expect(second.manifest.summary.filesRead).toBe(1)
    // Well after the change, the cache is trusted.
    const third = await createSnapshot(await openLocalRepository(repoDir), {source: src, program: 'test'})
    expect(third.manifest.summary.filesRead).toBe(0)
  })

  it('unchanged directories keep the parent\'s tree ids; a change rewrites only the trees on its path', async () => {
    const src = path.join(work, 'trees')
    await fsp.mkdir(src)
    await buildTree(src, {
      a: {dir: {'f1.txt': 'one', 'f2.txt': 'two'}},
      b: {dir: {'g.txt': 'gee', link: {symlink: '../a/f1.txt'}}},
      c: {dir: {d: {dir: {'h.txt': 'aitch'}}, 'e.txt': 'e'}},
    })
    await new Promise((r) => setTimeout(r, 100)) // out of the racy window of the first snapshot
    const repoDir = path.join(work, 'repo-trees')
    await initLocalRepository(repoDir, {now: Date.now()})
    const snap = async () => (await createSnapshot(await openLocalRepository(repoDir), {source: src, program: 'test'})).manifest
    const subtrees = async (tree: string): Promise<Record<string, string>> => {
      const repo = await openLocalRepository(repoDir)
      await repo.loadIndex()
      const out: Record<string, string> = {}
      const walk = async (id: string, rel: string) => {
        for (const n of decodeTree(await repo.readBlob(Buffer.from(id, 'hex')), id)) {
          if (n.type !== 'dir') continue
          const p = rel + n.name.toString()
          out[p] = n.subtree!.toString('hex')
          await walk(out[p], p + '/')
        }
      }
      await walk(tree, '')
      return out
    }

    const first = await snap()
    const second = await snap()
    expect(second.tree).toBe(first.tree)
    expect(second.summary.newBlobs).toBe(0)
    const before = await subtrees(first.tree)
    expect(Object.keys(before).sort()).toEqual(['a', 'b', 'c', 'c/d'])

    await fsp.writeFile(path.join(src, 'c', 'd', 'h.txt'), 'AITCH')
    await new Promise((r) => setTimeout(r, 100))
    const third = await snap()
    const after = await subtrees(third.tree)
    expect(third.tree).not.toBe(first.tree)
    expect(after.a).toBe(before.a)
    expect(after.b).toBe(before.b)
    expect(after.c).not.toBe(before.c)
    expect(after['c/d']).not.toBe(before['c/d'])
    expect(third.summary.filesRead).toBe(1)
    expect(third.summary.newBlobs).toBe(4) // the new chunk, and the trees of c/d, c and the root

    // An entry gone (and one new) changes its directory's tree even though every other entry matches.
    await fsp.rm(path.join(src, 'a', 'f2.txt'))
    const fourth = await snap()
    expect((await subtrees(fourth.tree)).a).not.toBe(before.a)
    await fsp.writeFile(path.join(src, 'a', 'f2.txt'), 'two')
    await new Promise((r) => setTimeout(r, 100))
    const fifth = await snap()
    const a5 = (await subtrees(fifth.tree)).a
    expect(a5).not.toBe((await subtrees(fourth.tree)).a)
    // Restoring the latest gives the directory as it is.
    const target = path.join(work, 'trees-out')
    await ckpt(['restore', 'latest', '--target', target, '--repo', repoDir])
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
  })

  it('the memory governor collects only over its budget, and its collections change nothing', async () => {
    const src = path.join(work, 'governed')
    await fsp.mkdir(src)
    await buildTree(src, {'big.bin': {file: {random: 24 * 1024 * 1024, seed: 9}}, 'small.txt': 'small'})
    const repoDir = path.join(work, 'repo-governed')
    await ckpt(['init', '--repo', repoDir])
    // Node's --trace-gc names the collections gc() asks for "testing".
    const forcedCollections = (env: Record<string, string>) => new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, ['--trace-gc', BIN, 'snapshot', src, '--repo', repoDir, '--quiet'], {env: {...process.env, CKPT_REPO: undefined, ...env}, stdio: ['ignore', 'pipe', 'inherit']})
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.on('error', reject)
      child.on('close', (code) => (code === 0 ? resolve(out.split('\n').filter((l) => l.includes('testing')).length) : reject(new Error(`snapshot exited ${code}`))))
    })
    expect(await forcedCollections({CKPT_MEMORY_MB: '1'})).toBeGreaterThan(0)
    expect(await forcedCollections({})).toBe(0)
    const target = path.join(work, 'governed-out')
    await ckpt(['restore', 'latest', '--target', target, '--repo', repoDir])
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
  })

  it('inserting 100 bytes in the middle of a 256 MiB file stores only a few chunks', async () => {
    const src = path.join(work, 'insert')
    await fsp.mkdir(src)
    const file = path.join(src, 'shard.bin')
    const half = 128 * 1024 * 1024
    const fh = await fsp.open(file, 'w')
    for (let i = 0; i < 16; i++) await fh.write(seededBytes(16 * 1024 * 1024, 100 + i))
    await fh.close()
    const repo = path.join(work, 'repo-insert')
    await ckpt(['init', '--repo', repo])
    const first = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo])
    // All content is new, plus the trees (the file's chunk list is ~2000 ids).
    expect(first.newBytes).toBeGreaterThanOrEqual(256 * 1024 * 1024)
    expect(first.newBytes).toBeLessThan(256 * 1024 * 1024 + 512 * 1024)
    // Rewrite with 100 bytes inserted at the middle, streaming.
    const tmp = file + '.new'
    const out = await fsp.open(tmp, 'w')
    const inp = await fsp.open(file, 'r')
    const buf = Buffer.allocUnsafe(16 * 1024 * 1024)
    for (let pos = 0; pos < 256 * 1024 * 1024; pos += buf.length) {
      const {bytesRead} = await inp.read(buf, 0, buf.length, pos)
      if (pos === half) await out.write(seededBytes(100, 999))
      await out.write(buf.subarray(0, bytesRead))
    }
    await inp.close()
    await out.close()
    await fsp.rename(tmp, file)
    const second = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo])
    const config = JSON.parse(await fsp.readFile(path.join(repo, 'config'), 'utf8')) as {chunker: {avgSize: number}}
    // New data: the chunk(s) around the insert, plus the file's new tree (chunk list) and root.
    expect(second.newBytes).toBeGreaterThan(0)
    expect(second.newBytes).toBeLessThanOrEqual(4 * config.chunker.avgSize + 256 * 1024)
    expect(second.bytes).toBe(256 * 1024 * 1024 + 100)
  }, 120_000)
})

describe('small files read into shared slabs', () => {
  it('keeps every file intact when files just under the small-file limit fill the slabs one each', async () => {
    // Small files (under 1 MiB) share two 1 MiB read slabs: a file of 1 MiB - 1 bytes (plus the
    // byte read to catch growth) fills a slab alone, so the 16 files read at once take turns for
    // slabs while the chunks of earlier ones are still being written from them.
    const src = path.join(work, 'slabs')
    const spec: Record<string, {dir: Record<string, {file: {random: number; seed: number}} | string>}> = {}
    for (let d = 0; d < 4; d++) {
      const files: Record<string, {file: {random: number; seed: number}} | string> = {}
      for (let i = 0; i < 12; i++) files[`near-limit-${i}.bin`] = {file: {random: 1024 * 1024 - 1 - i * 4099, seed: d * 100 + i}}
      for (let i = 0; i < 40; i++) files[`tiny-${i}.txt`] = `dir ${d} file ${i}\n`.repeat(i)
      files['empty'] = ''
      spec[`d${d}`] = {dir: files}
    }
    await fsp.mkdir(src)
    await buildTree(src, spec)
    const repo = path.join(work, 'repo-slabs')
    await ckpt(['init', '--repo', repo])
    const snap = await ckptJson<SnapJson>(['snapshot', src, '--repo', repo])
    expect(snap.files).toBe(4 * 53)
    expect(snap.filesRead).toBe(4 * 53)
    const target = path.join(work, 'slabs-out')
    await ckpt(['restore', snap.id, '--target', target, '--repo', repo])
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
    await ckpt(['verify', '--read-data', '--repo', repo])
    await ckpt(['verify', snap.id, '--source', src, '--repo', repo])
  })
})

describe('files that change, vanish or cannot be read', () => {
  it('a file that keeps changing while read is re-read, then recorded as inconsistent: warning, manifest, exit 3', async () => {
    const src = path.join(work, 'changing')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'log'), seededBytes(32 * 1024 * 1024, 5))
    await fsp.writeFile(path.join(src, 'stable'), 'stable')
    const repo = path.join(work, 'repo-changing')
    await ckpt(['init', '--repo', repo])
    // A writer appends to the file every millisecond for the whole snapshot.
    const writer = spawn(process.execPath, ['-e', `
      const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(path.join(src, 'log'))}, 'a');
      setInterval(() => fs.writeSync(fd, 'x'.repeat(100)), 1);
      setTimeout(() => process.exit(0), 60000);`], {stdio: 'ignore'})
    try {
      // Once it is writing (node starts slowly on a loaded machine).
      await waitFor('the writer to append', async () => (await fsp.stat(path.join(src, 'log'))).size > 32 * 1024 * 1024)
      const r = await runCli(['snapshot', src, '--repo', repo, '--json'])
      expect(r.code).toBe(3)
      const snap = JSON.parse(r.stdout) as SnapJson
      expect(snap.incomplete).toBe(1)
      expect(snap.warningList).toEqual([expect.objectContaining({kind: 'changed', path: 'log'})])
      expect(r.stderr).toContain('warning: log: changed while being read')
      const manifest = JSON.parse(await fsp.readFile(path.join(repo, 'snapshots', snap.id), 'utf8')) as {warnings: {kind: string; path: string}[]}
      expect(manifest.warnings).toEqual([expect.objectContaining({kind: 'changed', path: 'log'})])
      expect(snap.files).toBe(2) // still stored, as last read
    } finally {
      writer.kill('SIGKILL')
    }
  })

  it('an unreadable file: warning, exit 3, the snapshot is still written with everything else', async () => {
    const src = path.join(work, 'unreadable')
    const repo = path.join(work, 'repo-unreadable')
    await fsp.mkdir(src)
    await buildTree(src, {'ok.txt': 'fine', 'secret.txt': {file: 'no', mode: 0o000}, sub: {dir: {'x': 'x'}}})
    const asRoot = process.getuid?.() === 0
    const nobody = 65534
    if (asRoot) {
      // root reads anything: run the snapshot as an unprivileged user instead.
      await fsp.chmod(work, 0o755)
      for (const p of [src, path.join(src, 'ok.txt'), path.join(src, 'sub'), path.join(src, 'sub', 'x')]) await fsp.chown(p, nobody, nobody)
    }
    await ckpt(['init', '--repo', repo])
    if (asRoot) {
      const chownAll = async (p: string): Promise<void> => {
        await fsp.chown(p, nobody, nobody)
        if ((await fsp.lstat(p)).isDirectory()) for (const n of await fsp.readdir(p)) await chownAll(path.join(p, n))
      }
      await chownAll(repo)
    }
    const r = await new Promise<{code: number | null; stdout: string; stderr: string}>((resolve) => {
      const child = spawn(process.execPath, [path.resolve('bin/run.js'), 'snapshot', src, '--repo', repo, '--json'], {
        uid: asRoot ? nobody : undefined, gid: asRoot ? nobody : undefined, env: {...process.env, CKPT_REPO: undefined, CI: '1'},
        cwd: '/',
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d))
      child.stderr.on('data', (d: Buffer) => (stderr += d))
      child.on('close', (code) => resolve({code, stdout, stderr}))
    })
    expect(r.code).toBe(3)
    const snap = JSON.parse(r.stdout) as SnapJson
    expect(snap.warningList).toEqual([expect.objectContaining({kind: 'unreadable', path: 'secret.txt'})])
    expect(snap.files).toBe(2)
    expect(r.stderr).toMatch(/warning: secret\.txt: cannot read: EACCES/)
  })

  it('a FIFO is stored (tree version 2), without a warning', async () => {
    const src = path.join(work, 'fifo')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'file'), 'f')
    await new Promise<void>((resolve, reject) => {
      const p = spawn('mkfifo', [path.join(src, 'pipe')])
      p.on('close', (c) => (c === 0 ? resolve() : reject(new Error('mkfifo failed'))))
    })
    const repo = path.join(work, 'repo-fifo')
    await ckpt(['init', '--repo', repo])
    const r = await runCli(['snapshot', src, '--repo', repo, '--json'])
    expect(r.code).toBe(0)
    const snap = JSON.parse(r.stdout) as SnapJson
    expect(snap.warningList).toEqual([])
    expect(snap).toMatchObject({files: 1, specials: 1})
  })
})

describe('a damaged stored chunk', () => {
  it('snapshot --force exits 12 naming the blob and ckpt repair, and writes no snapshot', async () => {
    const src = path.join(work, 'force-damaged')
    const repo = path.join(work, 'repo-force-damaged')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'weights'), seededBytes(600_000, 31))
    await ckpt(['init', '--repo', repo, '--zstd-level', '0'])
    await ckpt(['snapshot', src, '--repo', repo, '-q'])
    // One pack: flip a byte in its first blob (stored as is, at offset 0).
    let pack = ''
    for (const d of await fsp.readdir(path.join(repo, 'data'))) for (const f of await fsp.readdir(path.join(repo, 'data', d))) pack = path.join(repo, 'data', d, f)
    const fh = await fsp.open(pack, 'r+')
    const byte = Buffer.alloc(1)
    await fh.read(byte, 0, 1, 100)
    byte[0] = byte[0]! ^ 0xff
    await fh.write(byte, 0, 1, 100)
    await fh.close()
    const before = await fsp.readdir(path.join(repo, 'snapshots'))
    const r = await runCli(['snapshot', src, '--repo', repo, '--force'])
    expect(r.code).toBe(12)
    expect(r.stderr).toMatch(/blob [0-9a-f]{64} in pack [0-9a-f]+ .*run "ckpt repair"/)
    expect(await fsp.readdir(path.join(repo, 'snapshots'))).toEqual(before)
  })
})
