#!/usr/bin/env node
// The long fault soak (not CI): the harness of test/fault/ run by the thousand.
//   crash points: snapshot, in-place restore, restore --target and prune, each SIGKILLed at a
//     fault point (src/core/faultpoint.ts) or at a random moment after one, then checked:
//     verify --read-data, every snapshot restored and compared, the destination whole, the next
//     run, leftovers (test/helpers/crash.ts);
//   hostile inputs: the named attacks and generated variations of test/helpers/hostilerepo.ts,
//     each probed with restore --target, verify, verify --read-data and snapshots.
// It imports the same helpers the tests use (bundled from TypeScript with esbuild into
// bench/out/), so a failure here is reproduced by the same code: every failure is printed with
// the command that repeats it alone (--trial N or --hostile-case N with the same --seed).
//
//   node bench/soak.mjs [--crash-points 1000] [--hostile 300] [--seed 1] [--jobs 1]
//                       [--out bench/out/soak-<seed>.json] [--trial N] [--hostile-case N]
// Needs `npm run build` first (the CLI it runs is dist/).
import {promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {fileURLToPath, pathToFileURL} from 'node:url'

import {build} from 'esbuild'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const {values: args} = parseArgs({
  options: {
    'crash-points': {type: 'string', default: '1000'},
    hostile: {type: 'string', default: '300'},
    seed: {type: 'string', default: '1'},
    jobs: {type: 'string', default: '1'},
    out: {type: 'string'},
    trial: {type: 'string'},
    'hostile-case': {type: 'string'},
  },
})
const seed = Number(args.seed)
const crashPoints = args['hostile-case'] !== undefined ? 0 : args.trial !== undefined ? 1 : Number(args['crash-points'])
const hostileCount = args.trial !== undefined ? 0 : args['hostile-case'] !== undefined ? 1 : Number(args.hostile)
const jobs = Math.max(1, Number(args.jobs))
const outFile = path.resolve(args.out ?? path.join(root, 'bench', 'out', `soak-${seed}.json`))

// The helpers, bundled (src/ and test/helpers/ are TypeScript; packages stay in node_modules).
// The bundle sits in bench/out/ so the modules that look for package.json and the addon from
// their own location find this checkout's.
const bundle = path.join(root, 'bench', 'out', 'soak-harness.mjs')
await fsp.mkdir(path.dirname(bundle), {recursive: true})
await build({
  stdin: {
    contents: ["export * from './test/helpers/crash.ts'", "export * from './test/helpers/hostilerepo.ts'", "export * from './test/helpers/tmpfs.ts'", "export {seededRandom, tempDir} from './test/helpers/tree.ts'"].join('\n'),
    resolveDir: root,
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  outfile: bundle,
  logLevel: 'warning',
})
const h = await import(pathToFileURL(bundle).href)

const started = Date.now()
const summary = {
  seed, started: new Date(started).toISOString(), durationS: 0, host: os.hostname(), cpus: os.cpus().length,
  crashPoints: {tried: 0, killed: 0, finishedBeforeFault: 0, byOp: {}, byPoint: {}},
  faultsInjected: 0,
  hostileInputs: {tried: 0, named: 0, generated: 0, skipped: []},
  bytesLost: 0,
  leftoversAfterNextRun: 0,
  snapshotsRestoredAndCompared: 0,
  peakRssMb: 0,
  problemsByKind: {},
  failures: [],
}
const repro = (flag, n) => `node bench/soak.mjs --seed ${seed} ${flag} ${n}`
const tally = (kind) => (summary.problemsByKind[kind] = (summary.problemsByKind[kind] ?? 0) + 1)

// --- crash points --------------------------------------------------------------------------
// Trial i: op = CRASH_OPS[i % CRASH_OPS.length] (restore-delta among them); the source change it makes comes from one of a few seeds per
// op (whose fault points are listed once); 70% die at a listed point, 30% at a random moment.
const POOL = 4
async function crashWorker(worker, trials) {
  const ws = await h.createWorkspace(await h.tempDir(`ckpt-soak-${worker}-`), seed)
  const points = new Map()
  try {
    for (const i of trials) {
      const op = h.CRASH_OPS[i % h.CRASH_OPS.length]
      const rand = h.seededRandom(seed * 1_000_003 + i)
      const trialSeed = seed * 100 + Math.floor(rand() * POOL)
      const key = `${op}/${trialSeed}`
      if (!points.has(key)) points.set(key, await h.enumeratePoints(ws, op, trialSeed))
      const list = points.get(key)
      const fault = rand() < 0.7 ? {point: list[Math.floor(rand() * list.length)]} : {afterHits: 1 + Math.floor(rand() * list.length), delayMs: Math.floor(rand() * 30)}
      const t = await h.crashTrial(ws, op, trialSeed, fault, {restoreAll: true})
      summary.crashPoints.tried++
      summary.crashPoints.byOp[op] = (summary.crashPoints.byOp[op] ?? 0) + 1
      if ('point' in fault) {
        const name = fault.point.replace(/@\d+$/, '')
        summary.crashPoints.byPoint[name] = (summary.crashPoints.byPoint[name] ?? 0) + 1
      }
      if (t.killed) {
        summary.crashPoints.killed++
        summary.faultsInjected++
      } else summary.crashPoints.finishedBeforeFault++
      summary.bytesLost += t.bytesLost
      summary.leftoversAfterNextRun += t.leftovers.length
      summary.snapshotsRestoredAndCompared += t.snapshotsChecked
      for (const p of t.problems) tally(p.kind)
      if (t.problems.length > 0) {
        const f = {what: h.describeTrial(t), reproduce: repro('--trial', i), problems: t.problems.map((p) => `${p.kind}: ${p.message.slice(0, 600)}`)}
        summary.failures.push(f)
        console.log(`FAIL trial ${i}: ${f.what}\n  ${f.problems.join('\n  ')}\n  reproduce: ${f.reproduce}`)
      }
      if (summary.crashPoints.tried % 10 === 0) console.log(`crash points: ${summary.crashPoints.tried}/${crashPoints} (${summary.failures.length} failing so far)`)
    }
  } finally {
    await fsp.rm(ws.root, {recursive: true, force: true})
  }
}

// --- hostile inputs ------------------------------------------------------------------------
// Case j: the named attacks first, then generated variations (hostileVariant(seed, j)).
async function hostileWorker(worker, cases) {
  const dir = await h.tempDir(`ckpt-soak-hostile-${worker}-`)
  const template = path.join(dir, 'template')
  const init = await h.runCkpt(['init', '-q', '--repo', template])
  if (init.code !== 0) throw new Error(`ckpt init failed: ${init.stderr}`)
  try {
    for (const j of cases) {
      const named = j < h.HOSTILE_CASES.length
      const c = named ? h.HOSTILE_CASES[j] : h.hostileVariant(seed * 1_000_003 + j)
      const layout = await h.hostileLayout(dir, template, `case-${j}`)
      let mounted = false
      if (c.smallTarget) {
        const m = h.mountTmpfs(layout.sentinel, 64 * 1024 * 1024)
        if (!m.ok) {
          summary.hostileInputs.skipped.push(`${c.name}: ${m.reason}`)
          continue
        }
        mounted = true
      }
      try {
        let r
        try {
          const id = await c.build(new h.Crafter(layout.repo), layout.outside)
          r = await h.probeRepository(layout, id, c)
        } catch (err) {
          r = {probes: [], problems: [`harness error: ${err.stack ?? err}`]}
        }
        summary.hostileInputs.tried++
        summary.hostileInputs[named ? 'named' : 'generated']++
        for (const p of r.probes) summary.peakRssMb = Math.max(summary.peakRssMb, Math.round(p.peakRssMb))
        for (const p of r.problems) tally(p.startsWith('harness') ? 'harness' : /stack trace/.test(p) ? 'stack-trace' : /hung/.test(p) ? 'hang' : /RSS/.test(p) ? 'memory' : /outside|beside/.test(p) ? 'escape' : 'exit')
        if (r.problems.length > 0) {
          const f = {what: `hostile: ${c.name}`, reproduce: repro('--hostile-case', j), problems: r.problems.map((p) => p.slice(0, 600))}
          summary.failures.push(f)
          console.log(`FAIL hostile ${j}: ${c.name}\n  ${f.problems.join('\n  ')}\n  reproduce: ${f.reproduce}`)
        }
      } finally {
        if (mounted) h.unmount(layout.sentinel)
        await fsp.rm(path.join(dir, `case-${j}`), {recursive: true, force: true}).catch(() => undefined)
      }
      if (summary.hostileInputs.tried % 10 === 0) console.log(`hostile inputs: ${summary.hostileInputs.tried}/${hostileCount}`)
    }
  } finally {
    await fsp.rm(dir, {recursive: true, force: true})
  }
}

const split = (items, n) => Array.from({length: n}, (_, w) => items.filter((_, k) => k % n === w))
const trialIds = args.trial !== undefined ? [Number(args.trial)] : Array.from({length: crashPoints}, (_, i) => i)
const caseIds = args['hostile-case'] !== undefined ? [Number(args['hostile-case'])] : Array.from({length: hostileCount}, (_, j) => j)
await Promise.all(split(trialIds, jobs).map((t, w) => crashWorker(w, t)))
await Promise.all(split(caseIds, jobs).map((c, w) => hostileWorker(w, c)))

summary.durationS = Math.round((Date.now() - started) / 1000)
await fsp.mkdir(path.dirname(outFile), {recursive: true})
await fsp.writeFile(outFile, JSON.stringify(summary, null, 2) + '\n')
const c = summary.crashPoints
console.log(`
soak (seed ${seed}) in ${summary.durationS} s:
  crash points tried:         ${c.tried} (${c.killed} killed, ${c.finishedBeforeFault} finished first) - ${Object.entries(c.byOp).map(([k, v]) => `${k} ${v}`).join(', ')}
  faults injected:            ${summary.faultsInjected}
  hostile inputs tried:       ${summary.hostileInputs.tried} (${summary.hostileInputs.named} named, ${summary.hostileInputs.generated} generated${summary.hostileInputs.skipped.length ? `, ${summary.hostileInputs.skipped.length} skipped` : ''})
  snapshots restored, compared: ${summary.snapshotsRestoredAndCompared}
  bytes lost:                 ${summary.bytesLost}
  leftovers after next run:   ${summary.leftoversAfterNextRun}
  peak RSS of a hostile probe: ${summary.peakRssMb} MB
  failures:                   ${summary.failures.length}${Object.keys(summary.problemsByKind).length ? ` (${Object.entries(summary.problemsByKind).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}
summary: ${path.relative(process.cwd(), outFile)}`)
process.exitCode = summary.failures.length > 0 ? 1 : 0
