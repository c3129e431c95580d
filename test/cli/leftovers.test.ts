// What a failed or killed snapshot leaves in the repository, and who gives the space back: a full
// disk (a real one: a small tmpfs) is emptied before the error reaches the user; a killed
// snapshot's temp pack is reported by verify with its size and removed by the next snapshot.
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, promises as fsp, readdirSync, statSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-leftovers-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

/** Temp files anywhere in the repository, with their sizes. */
function temps(repo: string): {file: string; size: number}[] {
  const found: {file: string; size: number}[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, {withFileTypes: true})) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.startsWith('.tmp-')) {
        // A lock's temp file is renamed into place at any moment: gone is not a leftover.
        const st = statSync(p, {throwIfNoEntry: false})
        if (st) found.push({file: path.relative(repo, p), size: st.size})
      }
    }
  }
  walk(repo)
  return found
}

/** Mount a tmpfs of `size` at `dir`; false where the machine does not allow it. */
function mountTmpfs(dir: string, size: string): boolean {
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status === 0
}

function canMount(): boolean {
  if (process.getuid?.() !== 0) return false
  const probe = path.join(process.env.TMPDIR ?? '/tmp', `ckpt-mount-probe-${process.pid}`)
  spawnSync('mkdir', ['-p', probe])
  const ok = mountTmpfs(probe, '64k')
  if (ok) spawnSync('umount', [probe])
  spawnSync('rmdir', [probe])
  return ok
}

describe('a full disk', () => {
  const mountable = canMount()
  if (!mountable) console.warn('skipping the full-disk test: cannot mount a tmpfs here (needs root and mount rights)')

  it.skipIf(!mountable)('ENOSPC: exit 7, no temp object left, the space is free again and the next snapshot succeeds', async () => {
    const disk = path.join(work, 'disk')
    await fsp.mkdir(disk)
    expect(mountTmpfs(disk, '4m')).toBe(true)
    try {
      const repo = path.join(disk, 'repo')
      await ckpt(['init', '--repo', repo])
      const free = () => {
        const r = spawnSync('df', ['-B1', '--output=avail', disk], {encoding: 'utf8'})
        return Number(r.stdout.trim().split('\n').pop())
      }
      const freeAfterInit = free()
      const src = path.join(work, 'big')
      await fsp.mkdir(src)
      // Incompressible, twice the disk: the open pack's temp file fills it.
      await fsp.writeFile(path.join(src, 'weights.bin'), seededBytes(8 * 1024 * 1024, 7))
      const r = await runCli(['snapshot', src, '--repo', repo])
      expect(r.code, r.stderr).toBe(7)
      expect(r.stderr).toMatch(/space/i)
      expect(temps(repo)).toEqual([])
      expect(free()).toBeGreaterThan(freeAfterInit - 256 * 1024)

      // The disk is not left full: a source that fits is stored at once.
      await fsp.writeFile(path.join(src, 'weights.bin'), seededBytes(1024 * 1024, 8))
      const snap = await ckptJson<{id: string}>(['snapshot', src, '--repo', repo])
      expect(snap.id).toMatch(/^[0-9a-f]{64}$/)
      await ckpt(['verify', '--read-data', '--repo', repo])
      expect(temps(repo)).toEqual([])
    } finally {
      spawnSync('umount', ['-l', disk])
    }
  })
})

describe('a killed snapshot', () => {
  it('leaves a temp pack that verify reports with its size and the next snapshot removes', async () => {
    const repo = path.join(work, 'repo-killed')
    const src = path.join(work, 'src-killed')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'weights.bin'), seededBytes(64 * 1024 * 1024, 9))
    await ckpt(['init', '--repo', repo])

    const child = spawn(process.execPath, [BIN, 'snapshot', src, '--repo', repo, '-q'], {stdio: 'ignore', env: {...process.env, CKPT_REPO: undefined, CI: '1'}})
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    // Wait for the event itself: a pack's temp file with data in it.
    let seen: {file: string; size: number} | undefined
    let done = false
    void exited.then(() => (done = true))
    while (!seen && !done) {
      seen = temps(repo).find((t) => t.file.startsWith('data/') && t.size > 0)
      if (!seen) await new Promise((r) => setImmediate(r))
    }
    expect(done, 'the snapshot finished before a temp pack was seen').toBe(false)
    child.kill('SIGKILL')
    await exited
    const left = temps(repo).filter((t) => t.file.startsWith('data/'))
    expect(left.length).toBeGreaterThan(0)

    const report = await ckptJson<{ok: boolean; findings: {kind: string; severity: string; id: string; message: string}[]}>(['verify', '--repo', repo])
    expect(report.ok).toBe(true)
    const leftovers = report.findings.filter((f) => f.kind === 'temp-leftover')
    expect(leftovers.map((f) => f.id).sort()).toEqual(temps(repo).map((t) => t.file).sort())
    for (const f of leftovers) {
      expect(f.severity).toBe('info')
      const size = statSync(path.join(repo, f.id)).size
      expect(f.message).toContain(`(${size} bytes)`)
      expect(f.message).toContain('gone')
    }

    await fsp.writeFile(path.join(src, 'weights.bin'), 'small now')
    const next = await ckpt(['snapshot', src, '--repo', repo])
    expect(next.stderr).toMatch(/removed \d+ temporary objects?, .* left by writes that were killed or failed/)
    expect(temps(repo)).toEqual([])
    for (const t of left) expect(existsSync(path.join(repo, t.file))).toBe(false)
  })
})
