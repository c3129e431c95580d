// Verify checks what restore checks: a file whose size is not the sum of its chunks, and a chunk
// that claims more raw bytes than the repository's chunker can cut, are findings. The damaged
// snapshots are made the way someone who can write the repository would make them: correctly
// hashed trees, chunks and manifests, written through the library.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import {BlobType} from '../../src/repo/pack.js'
import {BlobWriter} from '../../src/repo/writer.js'
import {decodeManifest, encodeManifest} from '../../src/snapshot/manifest.js'
import {encodeTree} from '../../src/snapshot/tree.js'
import {chunkLengthProblem, fileSizeProblem} from '../../src/verify/bounds.js'
import {buildFixture, copyRepo, type Fixture, plantSnapshot, removeScratch, restore, treeAt, verifyJson, withRepo} from './fixture.js'

let fx: Fixture

beforeAll(async () => {
  fx = await buildFixture()
})

afterAll(async () => {
  await removeScratch()
})

describe('pure checks', () => {
  it('chunkLengthProblem: data blobs up to the bound pass, trees are not bounded', () => {
    expect(chunkLengthProblem(BlobType.data, 524288, 524288)).toBeUndefined()
    expect(chunkLengthProblem(BlobType.data, 524289, 524288)).toMatch(/524289 bytes, above the repository's maximum chunk size of 524288/)
    expect(chunkLengthProblem(BlobType.data, 2 ** 30, 524288)).toBeDefined()
    expect(chunkLengthProblem(BlobType.tree, 2 ** 30, 524288)).toBeUndefined()
  })

  it('fileSizeProblem', () => {
    expect(fileSizeProblem('a', 10, 10)).toBeUndefined()
    expect(fileSizeProblem('a', 0, 0)).toBeUndefined()
    expect(fileSizeProblem('a', 11, 10)).toBe('file a is recorded as 11 bytes, but its chunks add up to 10')
  })
})

describe.concurrent('verify checks what restore checks', () => {
  it('a file whose recorded size does not match its chunks is a finding (restore refuses it too)', async () => {
    const repo = await copyRepo(fx)
    const planted = await withRepo(repo, (r) =>
      plantSnapshot(r, fx.snaps.c.id, async (nodes) => nodes.map((n) => (n.name.toString() === 'c1.bin' ? {...n, size: n.size + 1} : n))),
    )
    for (const args of [[], ['--read-data']]) {
      const {code, report} = await verifyJson(['--repo', repo, ...args])
      expect(report.findings.map((f) => f.kind)).toEqual(['file-size-mismatch'])
      expect(report.findings[0]).toMatchObject({object: 'tree', snapshots: [planted]})
      expect(report.findings[0]!.message).toMatch(/file c1\.bin is recorded as 250001 bytes, but its chunks add up to 250000/)
      expect(code).toBe(12)
    }
    expect((await restore(repo, planted)).code).toBe(12)
    expect((await restore(repo, fx.snaps.c.id)).code).toBe(0)
  })

  it('a chunk longer than the configured maximum is a finding, and --read-data does not inflate it', async () => {
    const repo = await copyRepo(fx)
    const planted = await withRepo(repo, (r) => {
      const max = r.config.chunker.maxSize
      return plantSnapshot(r, fx.snaps.c.id, async (nodes, writer) => {
        // 4 MiB of zeros: a frame of a few hundred bytes, hashed correctly, longer than any chunk ckpt cuts.
        const plain = Buffer.alloc(max * 8)
        const id = blake3(plain)
        await writer.add(BlobType.data, id, plain)
        return nodes.map((n) => (n.name.toString() === 'c1.bin' ? {...n, size: plain.length, chunks: [id]} : n))
      })
    })
    for (const args of [[], ['--read-data']]) {
      const {code, report} = await verifyJson(['--repo', repo, ...args])
      expect(report.findings.map((f) => f.kind)).toEqual(['chunk-too-large'])
      expect(report.findings[0]).toMatchObject({object: 'chunk', snapshots: [planted]})
      expect(report.findings[0]!.message).toMatch(/claims 4194304 bytes, above the repository's maximum chunk size of 524288/)
      expect(code).toBe(12)
    }
  })

  it('ids are checked where they are read: a malformed chunk id in a tree and a malformed tree id in a manifest', async () => {
    const repo = await copyRepo(fx)
    const {badTree, badManifest} = await withRepo(repo, async (r) => {
      const writer = new BlobWriter(r)
      const {nodes} = await treeAt(r, fx.snaps.c.id)
      const doc = JSON.parse(encodeTree(nodes).toString()) as {nodes: {name: string; chunks?: string[]}[]}
      doc.nodes.find((n) => n.name === 'c1.bin')!.chunks![0] = 'XYZ'
      const bytes = Buffer.from(JSON.stringify(doc))
      const tree = blake3(bytes)
      await writer.add(BlobType.tree, tree, bytes)
      await writer.flush()
      const m = decodeManifest(await r.readSnapshotBytes(fx.snaps.c.id), fx.snaps.c.id)
      const badTree = await r.writeSnapshotBytes(encodeManifest({...m, tree: tree.toString('hex')}))
      const badManifest = await r.writeSnapshotBytes(encodeManifest({...m, tree: 'not-an-id'}))
      return {badTree, badManifest}
    })
    const {code, report} = await verifyJson(['--repo', repo])
    expect(report.findings.map((f) => [f.kind, f.snapshots])).toEqual([['manifest-damaged', [badManifest]], ['tree-invalid', [badTree]]])
    expect(code).toBe(12)
  })
})
