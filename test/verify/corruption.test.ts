// The corruption matrix: for each kind of object, flip a byte, truncate it, delete it. Verify
// must report it with the snapshots it affects and exit non-zero; restore of an affected
// snapshot must fail clearly or (where the damage cannot reach the bytes restore reads) give
// exactly the snapshotted tree, never wrong bytes; snapshots not affected still restore.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import {decodeIndex, encodeIndex} from '../../src/repo/indexfile.js'
import {
  buildFixture, copyRepo, expectRestores, type Fixture, flipByte, locate, type Located, packFile, packLayout, removeScratch, restore,
  truncateTo, verifyJson, withRepo,
} from './fixture.js'
import {diffTrees} from '../helpers/tree.js'

type Name = 'a' | 'b' | 'c' | 'a2'

interface Places {
  /** First chunk of dirA/a1.bin (used by a and a2 only), in pack pA. */
  chunk: Located
  /** The zstd-compressed chunk of dirA/log.txt (used by a and a2 only), in pack pA. */
  compressed: Located
  /** Root tree of a (used by a only), in pack pA. */
  tree: Located
  /** pA: holds a's blobs and the file a and b share, so a, a2 and b use it; c does not. */
  pack: string
  /** The index file that lists pA. */
  index: string
}

interface Case {
  name: string
  damage: (repo: string, at: Places) => Promise<void>
  /** Only --read-data sees it (structure verify must pass). */
  readData?: boolean
  exit: number
  /** Error findings that must be reported (info findings with `info:`). */
  kinds: string[]
  /** Snapshots the findings must name, and snapshots no finding may name. */
  affected: Name[]
  unaffected: Name[]
  /** Restores that must fail, with their exit code (or the codes allowed). */
  fails: [Name, number | number[]][]
  /** Restores that must give exactly the snapshotted tree. */
  exact: Name[]
  /** Restores that must give the exact tree or fail with exit 12: never wrong bytes. */
  exactOr12?: Name[]
}

const pf = (repo: string, at: Places) => packFile(repo, at.pack)

async function rewriteIndexWithout(repo: string, at: Places, blob: string): Promise<void> {
  const old = path.join(repo, 'index', at.index)
  const packs = decodeIndex(await fsp.readFile(old), at.index).map((p) => ({...p, entries: p.entries.filter((e) => e.id.toString('hex') !== blob)}))
  const bytes = encodeIndex(packs)
  await fsp.writeFile(path.join(repo, 'index', blake3(bytes).toString('hex')), bytes)
  await fsp.rm(old)
}

async function editConfig(repo: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(repo, 'config')
  const c = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>
  edit(c)
  await fsp.chmod(file, 0o644)
  await fsp.writeFile(file, JSON.stringify(c))
}

// A manifest that exists but is damaged is an integrity error (12), never "not found" (4).
const DAMAGED_MANIFEST = 12

const CASES: Case[] = [
  // pack data: one chunk of a1.bin
  {
    name: 'pack data: flipped byte in a chunk', readData: true,
    damage: async (repo, at) => flipByte(pf(repo, at), at.chunk.offset + Math.floor(at.chunk.storedLength / 2)),
    exit: 12, kinds: ['chunk-corrupt'], affected: ['a', 'a2'], unaffected: ['b', 'c'], fails: [['a', 12], ['a2', 12]], exact: ['b', 'c'],
  },
  {
    // The zstd frame's magic: the chunk no longer inflates at all.
    name: 'pack data: flipped byte in a compressed chunk', readData: true,
    damage: async (repo, at) => flipByte(pf(repo, at), at.compressed.offset),
    exit: 12, kinds: ['chunk-corrupt'], affected: ['a', 'a2'], unaffected: ['b', 'c'], fails: [['a2', 12]], exact: ['b', 'c'],
  },
  {
    name: 'pack data: pack truncated inside a chunk',
    damage: async (repo, at) => truncateTo(pf(repo, at), at.chunk.offset + 10),
    exit: 12, kinds: ['pack-truncated', 'pack-header-damaged'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [['a', 12]], exact: ['c'], exactOr12: ['b'],
  },
  {
    name: 'pack data: pack deleted',
    damage: async (repo, at) => fsp.rm(pf(repo, at)),
    exit: 12, kinds: ['pack-missing'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [['a', 12], ['b', 12]], exact: ['c'],
  },
  // pack header and trailer: restore reads blobs through the index, so the bytes it gets are intact
  {
    name: 'pack header: flipped byte',
    damage: async (repo, at) => flipByte(pf(repo, at), (await packLayout(pf(repo, at))).headerStart + 5),
    exit: 12, kinds: ['pack-header-damaged'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [], exact: ['a', 'c'],
  },
  {
    name: 'pack trailer: flipped magic',
    damage: async (repo, at) => flipByte(pf(repo, at), (await packLayout(pf(repo, at))).size - 3),
    exit: 12, kinds: ['pack-header-damaged'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [], exact: ['a', 'c'],
  },
  {
    name: 'pack trailer: truncated',
    damage: async (repo, at) => truncateTo(pf(repo, at), (await packLayout(pf(repo, at))).size - 20),
    exit: 12, kinds: ['pack-truncated', 'pack-header-damaged'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [], exact: ['a', 'c'],
  },
  // index file
  {
    name: 'index: flipped byte',
    damage: async (repo, at) => flipByte(path.join(repo, 'index', at.index), 100),
    exit: 12, kinds: ['index-damaged', 'pack-unindexed'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [['a', 12]], exact: ['c'],
  },
  {
    name: 'index: truncated',
    damage: async (repo, at) => truncateTo(path.join(repo, 'index', at.index), 60),
    exit: 12, kinds: ['index-damaged', 'pack-unindexed'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [['a', 12]], exact: ['c'],
  },
  {
    name: 'index: deleted',
    damage: async (repo, at) => fsp.rm(path.join(repo, 'index', at.index)),
    exit: 12, kinds: ['pack-unindexed'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [['a', 12], ['b', 12]], exact: ['c'],
  },
  // tree: a's root tree
  {
    name: 'tree: flipped byte',
    damage: async (repo, at) => flipByte(pf(repo, at), at.tree.offset + Math.floor(at.tree.storedLength / 2)),
    exit: 12, kinds: ['tree-corrupt'], affected: ['a'], unaffected: ['a2', 'b', 'c'], fails: [['a', 12]], exact: ['a2', 'b', 'c'],
  },
  {
    name: 'tree: pack truncated inside the tree',
    damage: async (repo, at) => truncateTo(pf(repo, at), at.tree.offset + 3),
    exit: 12, kinds: ['pack-truncated'], affected: ['a', 'a2', 'b'], unaffected: ['c'], fails: [['a', 12]], exact: ['c'], exactOr12: ['a2', 'b'],
  },
  {
    name: 'tree: deleted from the index (dangling reference)',
    damage: async (repo, at) => rewriteIndexWithout(repo, at, at.tree.id),
    exit: 12, kinds: ['tree-missing', 'pack-header-mismatch'], affected: ['a'], unaffected: ['c'], fails: [['a', 12]], exact: ['a2', 'b', 'c'],
  },
  // snapshot manifest of a
  {
    name: 'manifest: flipped byte',
    damage: async (repo) => flipByte(path.join(repo, 'snapshots', fx.snaps.a.id), 20),
    exit: 12, kinds: ['manifest-damaged'], affected: ['a'], unaffected: ['a2', 'b', 'c'], fails: [['a', DAMAGED_MANIFEST]], exact: ['a2', 'b', 'c'],
  },
  {
    name: 'manifest: truncated',
    damage: async (repo) => truncateTo(path.join(repo, 'snapshots', fx.snaps.a.id), 100),
    exit: 12, kinds: ['manifest-damaged'], affected: ['a'], unaffected: ['a2', 'b', 'c'], fails: [['a', DAMAGED_MANIFEST]], exact: ['a2', 'b', 'c'],
  },
  {
    // Deleting a manifest is what forgetting a snapshot does: its child only loses a parent, which is information.
    name: 'manifest: deleted',
    damage: async (repo) => fsp.rm(path.join(repo, 'snapshots', fx.snaps.a.id)),
    exit: 0, kinds: ['info:parent-missing'], affected: ['a2'], unaffected: ['b', 'c'], fails: [['a', 4]], exact: ['a2', 'b', 'c'],
  },
  // config
  {
    name: 'config: flipped byte',
    damage: async (repo) => flipByte(path.join(repo, 'config'), 0),
    exit: 12, kinds: ['config-damaged'], affected: ['a', 'a2', 'b', 'c'], unaffected: [], fails: [['c', 12]], exact: [],
  },
  {
    name: 'config: truncated',
    damage: async (repo) => truncateTo(path.join(repo, 'config'), 10),
    exit: 12, kinds: ['config-damaged'], affected: ['a', 'a2', 'b', 'c'], unaffected: [], fails: [['c', 12]], exact: [],
  },
  {
    name: 'config: deleted',
    damage: async (repo) => fsp.rm(path.join(repo, 'config')),
    exit: 12, kinds: ['config-missing'], affected: ['a', 'a2', 'b', 'c'], unaffected: [], fails: [['c', 10]], exact: [],
  },
  {
    name: 'config: unknown format version',
    damage: async (repo) => editConfig(repo, (c) => (c.version = 99)),
    exit: 13, kinds: ['unknown-format-version'], affected: [], unaffected: [], fails: [['c', 13]], exact: [],
  },
]

let fx: Fixture
let at: Places

beforeAll(async () => {
  fx = await buildFixture()
  const chunk = await locate(fx.repo, fx.snaps.a.id, 'a1.bin', 'chunk')
  const compressed = await locate(fx.repo, fx.snaps.a.id, 'log.txt', 'chunk')
  const tree = await locate(fx.repo, fx.snaps.a.id, '', 'tree')
  const shared = await locate(fx.repo, fx.snaps.b.id, 'shared.bin', 'chunk')
  const c1 = await locate(fx.repo, fx.snaps.c.id, 'c1.bin', 'chunk')
  // The matrix relies on this layout: check it rather than assume it.
  expect(tree.pack).toBe(chunk.pack)
  expect(compressed).toMatchObject({pack: chunk.pack, compression: 1})
  expect(shared.pack).toBe(chunk.pack)
  expect(c1.pack).not.toBe(chunk.pack)
  const index = await withRepo(fx.repo, async (repo) => {
    for (const name of repo.indexFiles) if ((await repo.readIndexFile(name)).some((p) => p.name === chunk.pack)) return name
    throw new Error('no index file lists the pack')
  })
  at = {chunk, compressed, tree, pack: chunk.pack, index}
})

afterAll(async () => {
  await removeScratch()
})

describe.concurrent('corruption matrix', () => {
  it('the undamaged fixture verifies clean, with --read-data too', async () => {
    for (const args of [[], ['--read-data']]) {
      const {code, report} = await verifyJson(['--repo', fx.repo, ...args])
      expect(report.findings).toEqual([])
      expect(code).toBe(0)
      expect(report.counts.snapshots).toBe(4)
    }
  })

  it('a chunk the index lacks is counted once, like one it has, though two snapshots reference it', async () => {
    const intact = await verifyJson(['--repo', fx.repo])
    const repo = await copyRepo(fx)
    await rewriteIndexWithout(repo, at, at.chunk.id)
    const {report} = await verifyJson(['--repo', repo])
    expect(report.findings.filter((f) => f.kind === 'chunk-missing').map((f) => f.id)).toEqual([at.chunk.id])
    expect(report.counts.chunks).toBe(intact.report.counts.chunks)
  })

  for (const c of CASES) {
    it(c.name, async () => {
      const repo = await copyRepo(fx)
      await c.damage(repo, at)
      const id = (n: Name) => fx.snaps[n].id

      if (c.readData) {
        // Structure alone cannot see damage inside a chunk: only --read-data reads chunks.
        const structure = await verifyJson(['--repo', repo])
        expect(structure.report.findings).toEqual([])
        expect(structure.code).toBe(0)
      }
      const {code, report} = await verifyJson(['--repo', repo, ...(c.readData ? ['--read-data'] : [])])
      const shown = JSON.stringify(report.findings, null, 1)
      for (const kind of c.kinds) {
        const [severity, k] = kind.startsWith('info:') ? ['info', kind.slice(5)] : ['error', kind]
        expect(report.findings.some((f) => f.kind === k && f.severity === severity), `${kind} in ${shown}`).toBe(true)
      }
      const named = new Set(report.findings.flatMap((f) => f.snapshots))
      for (const n of c.affected) expect(named.has(id(n)), `${n} named in ${shown}`).toBe(true)
      for (const n of c.unaffected) expect(named.has(id(n)), `${n} not named in ${shown}`).toBe(false)
      expect(code).toBe(c.exit)
      expect(report.exitCode).toBe(c.exit)
      expect(report.ok).toBe(c.exit === 0)

      for (const [n, exit] of c.fails) {
        const r = await restore(repo, id(n))
        expect([exit].flat(), `restore ${n} exited ${r.code}: ${r.stderr}`).toContain(r.code)
        expect(r.stderr).toMatch(/^ckpt: /m)
        await expect(fsp.stat(r.target)).rejects.toThrow(/ENOENT/)
      }
      for (const n of c.exact) expect(await expectRestores(repo, fx.snaps[n]), `restore ${n}`).toEqual([])
      for (const n of c.exactOr12 ?? []) {
        const r = await restore(repo, id(n))
        if (r.code === 0) expect(diffTrees(fx.snaps[n].capture, r.capture!), `restore ${n}`).toEqual([])
        else expect(r.code, `restore ${n}: ${r.stderr}`).toBe(12)
      }
    })
  }
})
