// ls, cat, diff, log, stats, find and the snapshot filters, run as a user would: the built CLI in
// a child process, checking output, JSON shape and exit codes, on names no terminal should see raw.
import {spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import {toHex} from '../../src/core/ids.js'
import {openLocalRepository} from '../../src/repo/open.js'
import {decodeManifest, encodeManifest} from '../../src/snapshot/manifest.js'
import {ckpt, ckptJson, ROOT, runCli} from '../helpers/cli.js'
import {buildTree, seededBytes, tempDir} from '../helpers/tree.js'

let work: string
let repo: string
let src: string
let first: string
let second: string
const big = seededBytes(600_000, 5)

const r = (args: string[]) => [...args, '--repo', repo]

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-inspect-cli-'))
  repo = path.join(work, 'repo')
  src = path.join(work, 'state')
  await fsp.mkdir(src)
  await buildTree(src, {
    db: {dir: {CURRENT: 'MANIFEST-000001\n', '000001.log': 'log one', 'old.sst': 'sst'}},
    big: big,
    'hex:6361669e': 'not utf-8',
    'esc\x1b[31mred': 'control chars',
    link: {symlink: 'db/CURRENT'},
  })
  await ckpt(r(['init']))
  first = (await ckpt(r(['snapshot', src, '--tag', 'one', '--time', '2026-01-01T00:00:00Z', '-q']))).stdout.trim()
  await fsp.writeFile(path.join(src, 'db/000001.log'), 'log one, and two')
  await fsp.rm(path.join(src, 'db/old.sst'))
  await fsp.writeFile(path.join(src, 'db/new.sst'), 'new sst')
  await fsp.chmod(path.join(src, 'db/CURRENT'), 0o600)
  second = (await ckpt(r(['snapshot', src, '--tag', 'two', '--tag', 'nightly', '--time', '2026-01-02T00:00:00Z', '-q']))).stdout.trim()
}, 30_000)

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe('ckpt ls', () => {
  it('lists names escaped as ls -b, long and recursive; --json is one object per line with the raw bytes in hex', async () => {
    const plain = await ckpt(r(['ls', 'latest']))
    expect(plain.stdout.split('\n').filter(Boolean)).toEqual(['big', 'caf\\236', 'db', 'esc\\033[31mred', 'link'])
    const long = await ckpt(r(['ls', second.slice(0, 8), 'db', 'link', '-l']))
    const lines = long.stdout.trim().split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[1]).toMatch(/^-rw------- +1 +\d+\/\d+ +16 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d db\/CURRENT$/)
    expect(lines[3]).toMatch(/^lrwxrwxrwx .* link -> db\/CURRENT$/)
    const json = await ckpt(r(['ls', 'latest', '--recursive', '--json']))
    const entries = json.stdout.trim().split('\n').map((l) => JSON.parse(l))
    expect(entries.map((e) => e.path)).toEqual(['big', 'caf\\236', 'db', 'db/000001.log', 'db/CURRENT', 'db/new.sst', 'esc\x1b[31mred', 'link'])
    expect(entries[1]).toMatchObject({pathHex: '6361669e', type: 'file', size: 9})
    expect(entries[0]).toEqual({path: 'big', type: 'file', mode: 0o644, uid: expect.any(Number), gid: expect.any(Number), size: 600_000, mtime: expect.stringMatching(/^\d{4}-.*\.\d{9}Z$/), mtimeNs: expect.stringMatching(/^\d+$/)})
    expect(entries[7]).toMatchObject({type: 'symlink', target: 'db/CURRENT'})
    // The escaped name ls printed names the file.
    expect((await ckpt(r(['cat', 'latest', 'caf\\236']))).stdout).toBe('not utf-8')
  })

  it('a path not in the snapshot, an unknown id, a missing repository: exit codes 4, 4, 10, as JSON under --json', async () => {
    const [missing, unknown, norepo, dotdot] = await Promise.all([
      runCli(r(['ls', 'latest', 'db/nope'])), runCli(r(['ls', 'ffffffff', '--json'])),
      runCli(['ls', 'latest', '--repo', path.join(work, 'no-repo')]), runCli(r(['ls', 'latest', '../etc'])),
    ])
    expect(missing.code).toBe(4)
    expect(missing.stderr).toBe(`ckpt: db/nope: no such path in snapshot ${second.slice(0, 12)}\n`)
    expect(unknown.code).toBe(4)
    expect(JSON.parse(unknown.stdout)).toMatchObject({error: {code: 'NOT_FOUND', exitCode: 4}})
    expect(norepo.code).toBe(10)
    expect(dotdot.code).toBe(2)
  })
})

describe('ckpt cat', () => {
  it('streams a file byte for byte; a directory is a usage error, a missing path exit 4', async () => {
    // Through the shell into a file: the bytes as written, not decoded as text.
    const file = path.join(work, 'big.out')
    const shell = (cmd: string) => new Promise<{code: number | null; stderr: string}>((resolve) => {
      const child = spawn('sh', ['-c', cmd], {cwd: ROOT, env: {...process.env, CKPT_REPO: repo}})
      let stderr = ''
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      child.on('close', (code) => resolve({code, stderr}))
    })
    const [whole, head, dir, gone, meta] = await Promise.all([
      shell(`"${process.execPath}" bin/run.js cat ${first} big > "${file}"`),
      // A reader that stops early ends the output quietly.
      shell(`"${process.execPath}" bin/run.js cat ${first} big | head -c 10 > /dev/null`),
      runCli(r(['cat', 'latest', 'db'])),
      runCli(r(['cat', 'latest', 'db/old.sst'])),
      ckptJson<{path: string; chunks: string[]}>(r(['cat', 'latest', 'db/CURRENT'])),
    ])
    expect(whole).toEqual({code: 0, stderr: ''})
    expect((await fsp.readFile(file)).equals(big)).toBe(true)
    expect(head.stderr).toBe('')
    expect(dir.code).toBe(2)
    expect(dir.stderr).toMatch(/db is a directory/)
    expect(gone.code).toBe(4)
    expect(meta).toMatchObject({path: 'db/CURRENT', size: 16, chunks: [expect.stringMatching(/^[0-9a-f]{64}$/)]})
  })
})

describe('ckpt diff', () => {
  it('lists added, removed, modified and metadata-only changes with sizes, then a summary with the trees read', async () => {
    const out = await ckpt(r(['diff', first, second]))
    expect(out.stdout.split('\n').slice(0, 4)).toEqual([
      'M  db/000001.log  (7 B -> 16 B; mtime)',
      'U  db/CURRENT  (mode)',
      '+  db/new.sst  (7 B)',
      '-  db/old.sst  (3 B)',
    ])
    expect(out.stdout).toMatch(/: 1 added \(7 B\), 1 removed \(3 B\), 1 modified \(7 B -> 16 B\), 1 metadata only, 0 type changed; 4 trees read\n$/)
    const json = await ckptJson<{changes: unknown[]; stats: Record<string, number>}>(r(['diff', first, 'latest', 'db']))
    expect(json).toMatchObject({before: first, after: second, path: 'db'})
    expect(json.changes).toContainEqual({kind: 'metadata', path: 'db/CURRENT', type: 'file', size: 16, oldSize: 16, fields: ['mode']})
    expect(json.stats).toEqual({added: 1, removed: 1, modified: 1, metadata: 1, type: 0, addedBytes: 7, removedBytes: 3, modifiedBytesBefore: 7, modifiedBytesAfter: 16, treesRead: 4})
  })
})

describe('ckpt log, snapshots, stats, find', () => {
  it('log: the parent chain newest first, with tags and pins', async () => {
    await ckpt(r(['pin', first, '-q']))
    const log = await ckptJson<{entries: {id: string; tags: string[]; pinned: boolean; files: number; newBytes: number}[]; missingParent: null}>(r(['log', '--source', src]))
    expect(log.entries.map((e) => [e.id, e.tags, e.pinned])).toEqual([[second, ['nightly', 'two'], false], [first, ['one'], true]])
    expect(log.missingParent).toBeNull()
    const human = await ckpt(r(['log']))
    expect(human.stdout).toMatch(/one,pinned/)
  })

  it('snapshots: pins shown, filters by --tag, --latest, --host and --source (a directory that is gone)', async () => {
    type List = {id: string; pinned: boolean}[]
    const [all, tagged, latest, host, gone] = await Promise.all([
      ckptJson<List>(r(['snapshots'])), ckptJson<List>(r(['snapshots', '--tag', 'nightly'])), ckptJson<List>(r(['snapshots', '--latest', '1'])),
      ckptJson<List>(r(['snapshots', '--host', 'no-such-host'])), ckptJson<List>(r(['snapshots', '--source', path.join(work, 'never-existed')])),
    ])
    expect(all.map((s) => [s.id, s.pinned])).toEqual([[first, true], [second, false]])
    expect(tagged.map((s) => s.id)).toEqual([second])
    expect(latest.map((s) => s.id)).toEqual([second])
    expect(host).toEqual([])
    expect(gone).toEqual([])
  })

  it('stats: per snapshot sizes and unique bytes, repository totals', async () => {
    const s = await ckptJson<{snapshots: {id: string; logicalBytes: number; unique: {blobs: number}; dedupRatio: number}[]; totals: Record<string, unknown>; treesRead: number}>(r(['stats']))
    expect(s.snapshots.map((x) => x.id)).toEqual([first, second])
    expect(s.snapshots[0]!.logicalBytes).toBe(600_000 + 9 + 13 + 16 + 7 + 3)
    // first alone holds its root and db trees and the chunks of old.sst and the old log.
    expect(s.snapshots[0]!.unique.blobs).toBe(4)
    expect(s.totals).toMatchObject({snapshots: 2, packs: expect.any(Number), unreferenced: {blobs: 0, rawBytes: 0, storedBytes: 0}, missingBlobs: 0})
    const human = await ckpt(r(['stats', 'latest']))
    expect(human.stdout).toMatch(/^ID +TIME +SOURCE +FILES +SIZE +STORED +DEDUP +COMPR +UNIQUE\n/)
    expect(human.stdout).toMatch(/repository: 2 snapshots, /)
  })

  it('find: matches in each snapshot, newest first, with size and mtime', async () => {
    const found = await ckptJson<{snapshot: string; path: string; size: number; mtime: string}[]>(r(['find', '*.sst']))
    expect(found.map((f) => [f.snapshot, f.path, f.size])).toEqual([[second, 'db/new.sst', 7], [first, 'db/old.sst', 3]])
    expect((await ckptJson<unknown[]>(r(['find', '*.sst', '--snapshot', first]))).length).toBe(1)
    const none = await ckpt(r(['find', 'nothing-like-this']))
    expect(none.stdout).toBe('')
    expect(none.stderr).toMatch(/0 matches in 0 of 2 snapshots/)
  })
})

describe('latest and --source mean the same everywhere', () => {
  it('verify latest --source DIR checks the latest snapshot of DIR, not of the repository; restore latest --source DIR works once DIR is gone', async () => {
    const other = path.join(work, 'other')
    await fsp.mkdir(other)
    await fsp.writeFile(path.join(other, 'x'), 'other source')
    await ckpt(r(['snapshot', other, '-q', '--time', '2026-01-03T00:00:00Z']))
    // The newest snapshot of the repository is of `other`: comparing it with src would differ (exit 12).
    await ckpt(r(['verify', 'latest', '--source', src, '-q']))
    await fsp.rm(src, {recursive: true})
    const res = await ckptJson<{snapshot: string; destination: string}>(r(['restore', 'latest', '--source', src]))
    expect(res).toMatchObject({snapshot: second, destination: src})
    expect(await fsp.readFile(path.join(src, 'db/new.sst'), 'utf8')).toBe('new sst')
  })

  it('an ambiguous prefix is exit 4 and names the candidates', async () => {
    // Two manifests whose ids share their first four hex digits: variants of a real one, by time.
    const repository = await openLocalRepository(repo)
    const m = decodeManifest(await repository.readSnapshotBytes(first), first)
    const byPrefix = new Map<string, Buffer>()
    let pair: Buffer[] | undefined
    for (let i = 0; !pair; i++) {
      const bytes = encodeManifest({...m, time: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(), tags: ['crafted']})
      const prefix = toHex(blake3(bytes)).slice(0, 4)
      const seen = byPrefix.get(prefix)
      if (seen) pair = [seen, bytes]
      else byPrefix.set(prefix, bytes)
    }
    const ids = [await repository.writeSnapshotBytes(pair[0]!), await repository.writeSnapshotBytes(pair[1]!)]
    const out = await runCli(r(['ls', ids[0]!.slice(0, 4)]))
    expect(out.code).toBe(4)
    expect(out.stderr).toMatch(new RegExp(`ambiguous: it matches (${ids[0]!.slice(0, 12)}|${ids[1]!.slice(0, 12)}), `))
    for (const id of ids) await repository.deleteSnapshot(id)
  })
})

describe('help', () => {
  it('--help shows real examples (the man pages carry the same text: test/cli/man.test.ts)', async () => {
    expect((await ckpt(['diff', '--help'])).stdout).toMatch(/EXAMPLES\n {2}\$ ckpt diff 3fa9c2d1 latest\n/)
  })
})

describe('damage and older formats', () => {
  it('cat stops at a chunk that fails its check (exit 12), having written only bytes that passed', async () => {
    const dir = path.join(work, 'damage')
    const damagedRepo = path.join(work, 'damaged-repo')
    await fsp.mkdir(dir)
    const data = seededBytes(2_000_000, 11)
    await fsp.writeFile(path.join(dir, 'f'), data)
    await ckpt(['init', '-q', '--repo', damagedRepo])
    await ckpt(['snapshot', dir, '-q', '--repo', damagedRepo])
    // Flip one byte in the middle of the (only) data pack.
    const packs: string[] = []
    for (const fan of await fsp.readdir(path.join(damagedRepo, 'data'))) for (const p of await fsp.readdir(path.join(damagedRepo, 'data', fan))) packs.push(path.join(damagedRepo, 'data', fan, p))
    const sizes = await Promise.all(packs.map(async (p) => (await fsp.stat(p)).size))
    const pack = packs[sizes.indexOf(Math.max(...sizes))]!
    const fd = await fsp.open(pack, 'r+')
    const at = Math.floor(Math.max(...sizes) / 2)
    const byte = Buffer.alloc(1)
    await fd.read(byte, 0, 1, at)
    await fd.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at)
    await fd.close()
    const out = await runCli(['cat', 'latest', 'f', '--repo', damagedRepo])
    expect(out.code).toBe(12)
    expect(out.stderr).toMatch(/^ckpt: blob [0-9a-f]{64} in pack [0-9a-f]{64} (fails its BLAKE3 check|is corrupt)/)
    // What was written is a prefix of the file: nothing unchecked.
    const written = Buffer.from(out.stdout, 'latin1')
    expect(written.length).toBeLessThan(data.length)
  })

  it('ls and diff read a repository of format version 1 (legacy trees), without raising its version', async () => {
    const v1 = path.join(work, 'repo-v1')
    await fsp.cp(path.join(ROOT, 'test', 'fixtures', 'repo-v1'), v1, {recursive: true})
    for (const d of ['locks', 'pins', 'index', 'snapshots']) await fsp.mkdir(path.join(v1, d), {recursive: true})
    for (let i = 0; i < 256; i++) await fsp.mkdir(path.join(v1, 'data', i.toString(16).padStart(2, '0')), {recursive: true})
    const [ls, diff] = await Promise.all([ckpt(['ls', 'latest', '-R', '--repo', v1]), ckptJson<{changes: unknown[]}>(['diff', 'latest', 'latest', '--repo', v1])])
    expect(ls.stdout).toMatch(/^a\.txt$/m)
    expect(diff.changes).toEqual([])
    expect(JSON.parse(await fsp.readFile(path.join(v1, 'config'), 'utf8')).version).toBe(1)
  })
})
