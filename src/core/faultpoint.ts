// Named points at the I/O boundaries where a crash test kills the process (docs/RELIABILITY.md
// lists them). A crash between two durable steps is the case ordinary tests never reach, and a
// kill at a random time lands in one of those gaps only by luck; a named point lands there
// every time.
//
//   CKPT_FAULT=name[@n][,name2@m]  SIGKILL this process at the nth hit (default: first) of `name`;
//                                  `*@n` is the nth hit of any point.
//   CKPT_FAULT_LOG=file            append one line `name@k` per hit, so a harness can list the
//                                  points a command passes through and then crash at each.
//
// Both are read once, at load. With neither set, faultPoint is one test of a constant.
import {appendFileSync} from 'node:fs'

const ANY = '*'

/** `name[@n]` items, comma-separated, to the hit number at which each kills. Malformed items are ignored. */
export function parseFaultSpec(spec: string | undefined): Map<string, number> {
  const out = new Map<string, number>()
  for (const item of (spec ?? '').split(',')) {
    const m = /^\s*([\w.*-]+)(?:@(\d+))?\s*$/.exec(item)
    if (m) out.set(m[1]!, m[2] === undefined ? 1 : Number(m[2]))
  }
  return out
}

const killAt = parseFaultSpec(process.env.CKPT_FAULT)
const logFile = process.env.CKPT_FAULT_LOG || undefined
const enabled = killAt.size > 0 || logFile !== undefined
const hits = new Map<string, number>()
let anyHits = 0

export function faultPoint(name: string): void {
  if (!enabled) return
  const n = (hits.get(name) ?? 0) + 1
  hits.set(name, n)
  anyHits++
  // Synchronous, so the line is on disk before a kill below: the log then names the point that killed.
  if (logFile) appendFileSync(logFile, `${name}@${n}\n`)
  if (killAt.get(name) === n || killAt.get(ANY) === anyHits) process.kill(process.pid, 'SIGKILL')
}
