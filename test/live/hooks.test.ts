import {describe, expect, it} from 'vitest'

import {type CaptureSteps, type HookCommands, HookFailedError, type HookResult, runHook, runWithHooks} from '../../src/live/hooks.js'

function sink(): {write(text: string): void; text: () => string} {
  let all = ''
  return {write: (t: string) => void (all += t), text: () => all}
}

const env = {source: '/data/state', repo: '/backups/repo'}

describe('one hook', () => {
  it('runs with the CKPT_* variables, streams its output prefixed and keeps it', async () => {
    const err = sink()
    const r = await runHook('pre', 'echo "$CKPT_PHASE $CKPT_SOURCE $CKPT_REPO"; echo to-stderr >&2; printf partial', {CKPT_PHASE: 'pre', CKPT_SOURCE: env.source, CKPT_REPO: env.repo}, {stderr: err})
    expect(r).toMatchObject({phase: 'pre', exitCode: 0, signal: null, timedOut: false, outputDropped: 0})
    expect(r.output).toContain('pre /data/state /backups/repo\n')
    expect(r.output).toContain('to-stderr\n')
    expect(err.text().split('\n').sort()).toEqual(['', '[pre] partial', '[pre] pre /data/state /backups/repo', '[pre] to-stderr'])
  })

  it('records the exit code, or the signal, and says so', async () => {
    const err = sink()
    expect((await runHook('thaw', 'exit 7', {}, {stderr: err})).exitCode).toBe(7)
    const killed = await runHook('thaw', 'kill -TERM $$', {}, {stderr: err})
    expect(killed).toMatchObject({exitCode: null, signal: 'SIGTERM'})
    expect(err.text()).toBe('[thaw] failed: exit code 7\n[thaw] failed: killed by SIGTERM\n')
  })

  it('keeps only the end of a long output', async () => {
    const r = await runHook('post', 'seq 1 100000', {}, {stderr: sink(), maxOutputBytes: 1000})
    expect(Buffer.byteLength(r.output)).toBe(1000)
    expect(r.output.endsWith('99999\n100000\n')).toBe(true)
    expect(r.outputDropped).toBe(588895 - 1000) // bytes of `seq 1 100000`
  })

  it('kills a hook and what it started after the timeout', async () => {
    const t0 = performance.now()
    const r = await runHook('freeze', 'sleep 30 & sleep 30; echo never', {}, {stderr: sink(), timeoutMs: 100})
    expect(r).toMatchObject({exitCode: null, signal: 'SIGKILL', timedOut: true})
    expect(performance.now() - t0).toBeLessThan(5000) // both sleeps died: the pipes closed
  })
})

/** A capture whose steps log what ran, into the same log as the hooks' output; `fail` makes one step throw. */
function capture(log: {write(t: string): void}, fail?: 'prepare' | 'window' | 'finish'): CaptureSteps<string> {
  const step = (name: 'prepare' | 'window') => async (): Promise<void> => {
    log.write(`${name}\n`)
    if (fail === name) throw new Error(`${name} broke`)
  }
  return {
    prepare: step('prepare'),
    window: step('window'),
    finish: async (hooks) => {
      log.write(`finish(${hooks.map((h) => h.phase).join(',')})\n`)
      if (fail === 'finish') throw new Error('finish broke')
      return {snapshotId: 'abc123', value: 'stored'}
    },
  }
}

// Each hook logs its phase and what post is told.
const logging = (fail: Partial<Record<string, boolean>> = {}): HookCommands => Object.fromEntries(
  (['pre', 'freeze', 'thaw', 'post'] as const).map((p) => [p, `echo "hook $CKPT_PHASE \${CKPT_OUTCOME-} \${CKPT_SNAPSHOT_ID-}"${fail[p] ? '; exit 1' : ''}`]),
)

/** Steps and hooks in the order they ran (hook lines without their prefix, failure notes left out). */
async function runLogged(hooks: HookCommands, fail?: 'prepare' | 'window' | 'finish'): Promise<{log: string[]; error?: unknown; seen: HookResult[]; result?: unknown}> {
  const seen: HookResult[] = []
  const err = sink()
  const lines = (): string[] => err.text().split('\n').filter((l) => l && !l.includes('failed:')).map((l) => l.replace(/^\[\w+\] /, '').trim())
  try {
    const result = await runWithHooks(hooks, env, capture(err, fail), {stderr: err, onHook: (h) => seen.push(h)})
    return {log: lines(), seen, result}
  } catch (error) {
    return {log: lines(), error, seen}
  }
}

describe('hooks around a capture', () => {
  it('runs pre, the pre-copy, freeze, the window, thaw, the store, post in order', async () => {
    const {log, result, seen} = await runLogged(logging())
    expect(seen.map((h) => h.phase)).toEqual(['pre', 'freeze', 'thaw', 'post'])
    expect(log).toEqual(['hook pre', 'prepare', 'hook freeze', 'window', 'hook thaw', 'finish(pre,freeze,thaw)', 'hook post ok abc123'])
    expect(result).toMatchObject({value: 'stored', snapshotId: 'abc123', failed: []})
  })

  it.each([
    ['pre fails', {pre: true}, undefined, ['hook pre', 'hook thaw', 'hook post aborted'], 'aborted'],
    ['freeze fails', {freeze: true}, undefined, ['hook pre', 'prepare', 'hook freeze', 'hook thaw', 'hook post aborted'], 'aborted'],
    ['the pre-copy fails', {}, 'prepare', ['hook pre', 'prepare', 'hook thaw', 'hook post failed'], 'failed'],
    ['the window fails', {}, 'window', ['hook pre', 'prepare', 'hook freeze', 'window', 'hook thaw', 'hook post failed'], 'failed'],
    ['storing fails', {}, 'finish', ['hook pre', 'prepare', 'hook freeze', 'window', 'hook thaw', 'finish(pre,freeze,thaw)', 'hook post failed'], 'failed'],
  ] as const)('%s: aborts, and thaw and post still run', async (_name, failHooks, failStep, expected, outcome) => {
    const {log, error, seen} = await runLogged(logging(failHooks), failStep)
    expect(error).toBeDefined()
    expect(log).toEqual(expected)
    expect(seen.at(-1)?.output).toBe(`hook post ${outcome} \n`)
    if (outcome === 'aborted') {
      expect(error).toBeInstanceOf(HookFailedError)
      expect((error as HookFailedError).data.hooks).toEqual(seen)
    } else {
      expect(error).toBeInstanceOf(Error)
      expect(error).not.toBeInstanceOf(HookFailedError)
    }
  })

  it.each(['thaw', 'post'] as const)('a failing %s is recorded, and the snapshot stands', async (phase) => {
    const {result, log} = await runLogged(logging({[phase]: true}))
    expect(log).toContain('finish(pre,freeze,thaw)')
    expect((result as {failed: HookResult[]}).failed.map((h) => [h.phase, h.exitCode])).toEqual([[phase, 1]])
  })

  it('runs only the hooks given', async () => {
    const {log, seen} = await runLogged({post: 'echo "hook $CKPT_PHASE $CKPT_OUTCOME $CKPT_SNAPSHOT_ID"'})
    expect(seen.map((h) => h.phase)).toEqual(['post'])
    expect(log).toEqual(['prepare', 'window', 'finish()', 'hook post ok abc123'])
  })
})
