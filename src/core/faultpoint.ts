// Named points at the I/O boundaries where a crash test kills the process (docs/RELIABILITY.md
// lists them). A crash between two durable steps is the case ordinary tests never reach, and a
// kill at a random time lands in one of those gaps only by luck; a named point lands there
// every time.
//
//   CKPT_FAULT=name[@n][,name2@m]  SIGKILL this process at the nth hit (default: first) of `name`;
//                                  `*@n` is the nth hit of any point. `name@n:stop` sends SIGSTOP
//                                  instead: the process waits there until a test has changed the
//                                  world under it (a file, the target) and sent SIGCONT.
//   CKPT_FAULT_LOG=file            append one line `name@k` per hit, so a harness can list the
//                                  points a command passes through and then crash at each.
//
// Both are read once, at load. With neither set, faultPoint is one test of a constant.
import {appendFileSync} from 'node:fs'

const ANY = '*'

export interface FaultAction {
  /** The hit at which it fires. */
  at: number
  signal: 'SIGKILL' | 'SIGSTOP'
}

/** `name[@n][:stop]` items, comma-separated. Malformed items are ignored. */
export function parseFaultSpec(spec: string | undefined): Map<string, FaultAction> {
  const out = new Map<string, FaultAction>()
  for (const item of (spec ?? '').split(',')) {
    const m = /^\s*([\w.*-]+)(?:@(\d+))?(:stop)?\s*$/.exec(item)
    if (m) out.set(m[1]!, {at: m[2] === undefined ? 1 : Number(m[2]), signal: m[3] ? 'SIGSTOP' : 'SIGKILL'})
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
  const action = killAt.get(name)?.at === n ? killAt.get(name) : killAt.get(ANY)?.at === anyHits ? killAt.get(ANY) : undefined
  if (action) process.kill(process.pid, action.signal)
}
