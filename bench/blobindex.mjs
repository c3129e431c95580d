// The in-memory blob index at scale: load time, lookup time and peak memory of the index as the
// repository (snapshot, restore), verify and prune load it, on a repository of index files only
// (no packs: nothing here reads a pack). Not part of the tests.
//
//   npm run build && node bench/blobindex.mjs [--blobs 2000000] [--work DIR] [--root CHECKOUT]
//
// --root measures another checkout's build (its dist/), for a before/after comparison on one
// repository. Each user runs in its own process under GNU time: wall, CPU and peak RSS include
// Node's start-up (about 50 MiB) and the index files read.
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const SELF = fileURLToPath(import.meta.url)
const ROOT = path.resolve(opt('root', path.join(path.dirname(SELF), '..')))
const BLOBS = Number(opt('blobs', 2_000_000))
const WORK = path.resolve(opt('work', path.join(os.tmpdir(), 'ckpt-bench-blobindex')))
const repoDir = path.join(WORK, `repo-${BLOBS}`)
const dist = (p) => import(path.join(ROOT, 'dist', p))
const PER_PACK = 1000
const PER_FILE = 100_000

const idOf = (i) => createHash('sha256').update(`blob ${i}`).digest()

async function build() {
  const {initLocalRepository} = await dist('repo/open.js')
  const repo = await initLocalRepository(repoDir, {now: Date.now()})
  let packs = []
  let inFile = 0
  for (let p = 0; p * PER_PACK < BLOBS; p++) {
    const entries = []
    for (let i = p * PER_PACK; i < Math.min(BLOBS, (p + 1) * PER_PACK); i++) {
      const at = (i - p * PER_PACK) * 70_000
      entries.push({id: idOf(i), type: i % 50 === 0 ? 1 : 0, compression: 1, offset: at, storedLength: 60_000, rawLength: 65_536})
    }
    packs.push({name: createHash('sha256').update(`pack ${p}`).digest('hex'), size: PER_PACK * 70_000, entries})
    inFile += entries.length
    if (inFile >= PER_FILE) {
      await repo.writeIndex(packs)
      packs = []
      inFile = 0
    }
  }
  if (packs.length > 0) await repo.writeIndex(packs)
}

async function phase(name) {
  const {openLocalRepository} = await dist('repo/open.js')
  const repo = await openLocalRepository(repoDir)
  // The ids to look up, made first in one buffer: the same cost and memory in every build.
  const all = Buffer.allocUnsafe(BLOBS * 32)
  for (let i = 0; i < BLOBS; i++) idOf(i).copy(all, i * 32)
  const at = (i) => all.subarray(i * 32, i * 32 + 32)
  // CPU time, not wall: the figures then mean something on a shared machine.
  const cpu = () => {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1000
  }
  const t0 = cpu()
  let found = 0
  let loaded
  let bytes
  // Bytes of the index's arrays (older builds kept verify's and prune's map in a field of their own).
  const sizeOf = (x) => x.byteSize ?? x.first?.byteSize ?? x.map?.byteSize
  if (name === 'repository') {
    await repo.loadIndex()
    loaded = cpu()
    bytes = sizeOf(repo.index)
    for (let i = 0; i < BLOBS; i++) if (repo.lookup(at(i))) found++
  } else if (name === 'verify') {
    const {loadVerifyIndex} = await dist('verify/blobindex.js')
    const {Findings} = await dist('verify/findings.js')
    const index = await loadVerifyIndex(repo.backend, new Findings(), () => undefined)
    loaded = cpu()
    bytes = sizeOf(index)
    for (let i = 0; i < BLOBS; i++) if (index.rawLength(at(i)) !== undefined && index.locations(at(i)).length === 1) found++
  } else {
    const {loadState} = await dist('prune/plan.js')
    const {table} = await loadState(repo)
    loaded = cpu()
    bytes = sizeOf(table)
    for (let i = 0; i < BLOBS; i += 2) if (table.mark(at(i)) === 'new') found++
    for (let i = 1; i < BLOBS; i += 2) if (table.isMarked(at(i)) === false) found++
    table.tally()
  }
  const done = cpu()
  console.log(JSON.stringify({phase: name, loadMs: Math.round(loaded - t0), lookupMs: Math.round(done - loaded), found, bytes}))
}

const which = opt('phase', undefined)
if (which) {
  await phase(which)
} else {
  if (!existsSync(path.join(repoDir, 'config'))) {
    process.stderr.write(`writing ${BLOBS} blobs of index into ${repoDir}\n`)
    await build()
  }
  console.log(`| user (${BLOBS} blobs, ${ROOT}) | load (CPU) | lookups (CPU) | wall | peak RSS | index bytes per blob |\n| --- | --- | --- | --- | --- | --- |`)
  for (const name of ['repository', 'verify', 'prune']) {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %M', process.execPath, SELF, '--phase', name, '--root', ROOT, '--blobs', String(BLOBS), '--work', WORK], {encoding: 'utf8'})
    if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`)
    const out = JSON.parse(r.stdout)
    const [wall, rss] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number)
    if (out.found !== BLOBS) throw new Error(`${name}: found ${out.found} of ${BLOBS}`)
    console.log(`| ${name} | ${out.loadMs} ms | ${out.lookupMs} ms | ${wall.toFixed(2)} s | ${(rss / 1024).toFixed(0)} MiB | ${(out.bytes / BLOBS).toFixed(1)} |`)
  }
}
