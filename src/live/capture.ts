// A consistent capture of a running program with a short pause (the `paused` and `frozen` capture
// modes): what live migration does with memory, done with a directory.
//
//  1. Pre-copy while the program runs: an ordinary archive pass (stat cache from the parent), then
//     again with the pass before as parent while the set of files re-read keeps shrinking. Every
//     blob is stored; only a tree of mixed moments exists so far, and it is not committed.
//  2. Pause (SIGSTOP of process trees, or a cgroup freeze), with the watchdog holding the way back.
//  3. Inside the pause, nothing but: list and lstat the whole directory, ask /proc what the paused
//     processes hold open for writing or map shared-writable, decide what must be read again
//     (planCapture: changed, appeared, renamed, racy, written, mapped), and copy exactly those files
//     aside (a reflink where the filesystem has them: no bytes move; else a kernel copy into memory,
//     /dev/shm, or a staging directory). Then resume.
//  4. With the program running again, archive the directory as it was recorded in the pause: the
//     recorded listings and stats, the copies for what changed, and the last pre-copy's tree for
//     everything else. Nothing is chunked, hashed, compressed or written inside the pause.
// The result is the directory as it was at one instant (the pause), unless the pause ran past
// --max-pause, in which case the watchdog resumed the program mid-copy and the snapshot is recorded
// as not consistent.
import {type BigIntStats, constants as fsc, copyFileSync, existsSync, lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {errnoCode} from '../core/errors.js'
import {readFlags, readXattrs} from '../core/fsextra.js'
import {faultPoint} from '../core/faultpoint.js'
import {LongPaths} from '../core/longpath.js'
import {filesBeingWritten} from '../core/procfs.js'
import {processGone, processStart} from '../store/lock.js'
import {Archiver, type ArchiveOptions, type ArchiveResult, type RecordedMeta, type SourceView} from '../snapshot/archiver.js'
import {type CaptureContext, type Captured, type CaptureStrategy, plainPass} from '../snapshot/create.js'
import type {HookRecord, PauseRecord} from '../snapshot/manifest.js'
import {compileExcludes} from '../snapshot/exclude.js'
import {childPath, displayName, type TreeNode} from '../snapshot/tree.js'
import {TreeCache} from '../snapshot/treecache.js'
import {type HookCommands, type HookResult, runWithHooks} from './hooks.js'
import {pause, PauseError, type PauseTargets} from './pause.js'
import {type EntryType, planCapture, type ReadRecord, type StatRecord} from './plan.js'
import {Watchdog} from './watchdog.js'

export interface PausedCaptureOptions {
  targets: PauseTargets
  /** The longest the program may stay paused; past it the watchdog resumes it. */
  maxPauseMs: number
  hooks: HookCommands
  /** The repository's location, for hooks (CKPT_REPO). */
  repoLocation: string
  /** Pre-copy passes at most (default 3). */
  maxRounds?: number
  /** Copies that cannot be reflinked are kept in memory (/dev/shm) up to this many bytes, else in `stageDir`. */
  memoryBytes?: number
  /** Where copies go when neither a reflink nor memory will do (default: the system temp directory). */
  stageDir?: string
}

const DEFAULT_ROUNDS = 3
const DEFAULT_MEMORY = 256 * 1024 * 1024

const hookRecords = (hooks: readonly HookResult[]): HookRecord[] =>
  hooks.map((h) => ({phase: h.phase, command: h.command, exitCode: h.exitCode, signal: h.signal, durationMs: h.durationMs}))

/**
 * Hooks without a pause (the `hooks` mode): `pre`, then a plain pass between `freeze` and `thaw`
 * (a program that quiesces itself on freeze), then `post`. The check of what moved still decides
 * whether the snapshot is consistent: a freeze hook is trusted to have quiesced, and verified.
 */
export function hookedCapture(hooks: HookCommands, repoLocation: string): CaptureStrategy {
  return async (ctx) => {
    let captured: Captured | undefined
    const hooked = await runWithHooks(hooks, {source: ctx.archive.source, repo: repoLocation}, {
      window: async () => {
        captured = await plainPass(ctx)
      },
      finish: async (ran) => {
        const committed = await ctx.commit({archived: captured!.archived, capture: {...captured!.capture, mode: 'hooks', hooks: hookRecords(ran)}})
        return {snapshotId: committed.id, value: committed}
      },
    })
    return hooked.value
  }
}

/** The strategy for createSnapshot: pre-copy, pause, copy aside, resume, store. */
export function pausedCapture(opts: PausedCaptureOptions): CaptureStrategy {
  return async (ctx) => {
    // Started first, so its start-up overlaps the pre-copy; it must be listening before the pause.
    const watchdog = Watchdog.spawn({maxPauseMs: opts.maxPauseMs})
    let stage: Stage | undefined
    try {
      let last: PrecopyPass | undefined
      let rounds = 0
      let recorded: Recorded | undefined
      let record: PauseRecord | undefined
      const hooked = await runWithHooks(opts.hooks, {source: ctx.archive.source, repo: opts.repoLocation}, {
        prepare: async () => {
          last = await precopy(ctx, opts.maxRounds ?? DEFAULT_ROUNDS, (n) => (rounds = n))
          await watchdog.ready()
          stage = Stage.beside(ctx.archive.source, opts.stageDir)
        },
        window: async () => {
          const known = await loadTree(ctx.archive.trees ?? new TreeCache(ctx.repo), ctx.archive.source, last!.tree)
          let result
          let failed: unknown
          try {
            result = captureWindow(ctx, opts, watchdog, known, last!.startNs, stage!)
          } catch (err) {
            failed = err
          }
          // The program runs again: the watchdog may go (it says whether it had to resume it).
          const {timedOutAfterMs} = await watchdog.resumed()
          // The watchdog resumed the program before it was all stopped (--max-pause shorter than
          // stopping takes): no instant was captured. The last pre-copy is stored, as not consistent.
          if (failed !== undefined && !(failed instanceof PauseError && timedOutAfterMs !== undefined)) throw failed
          recorded = result?.recorded
          const pauseRecord = result?.record ?? {pauseMs: timedOutAfterMs ?? opts.maxPauseMs, copiedFiles: 0, copiedBytes: 0, copyKind: 'none' as const, timedOut: true}
          record = {...pauseRecord, rounds, timedOut: pauseRecord.timedOut || timedOutAfterMs !== undefined}
        },
        finish: async (hooks) => {
          const archived = recorded
            ? await new Archiver(ctx.repo, ctx.writer, {
              ...ctx.archive,
              parentTree: last!.tree,
              parentStartNs: last!.startNs,
              trustParent: true,
              view: recorded.view(),
            }).run()
            : last!.pass
          const consistent = recorded !== undefined && !record!.timedOut && recorded.unplanned === 0
          const committed = await ctx.commit({
            archived,
            capture: {
              mode: opts.targets.cgroups?.length && !opts.targets.pids?.length ? 'frozen' : 'paused', consistent, moves: [], moveCount: 0, pause: record,
              hooks: hookRecords(hooks),
            },
          })
          return {snapshotId: committed.id, value: committed}
        },
      })
      return hooked.value
    } finally {
      stage?.remove()
      watchdog.kill()
    }
  }
}

/** Archive passes while the program runs, each with the one before as parent, while they shrink. */
interface PrecopyPass {
  tree: Buffer
  startNs: bigint
  pass: ArchiveResult
}

async function precopy(ctx: CaptureContext, maxRounds: number, count: (n: number) => void): Promise<PrecopyPass> {
  let parentTree = ctx.archive.parentTree
  let parentStartNs = ctx.archive.parentStartNs
  let lastRead = Number.POSITIVE_INFINITY
  for (let round = 1; ; round++) {
    const startNs = ctx.nowNs()
    const pass: ArchiveResult = await new Archiver(ctx.repo, ctx.writer, {...ctx.archive, parentTree, parentStartNs}).run()
    // The next pass (and the pause) read this pass's trees back as their parent.
    await ctx.writer.flush()
    count(round)
    parentTree = pass.tree
    parentStartNs = startNs
    // Another pass is worth it while it still reads much less than the one before did.
    const read = pass.bytesRead
    if (round >= maxRounds || read === 0 || read > lastRead / 2) return {tree: pass.tree, startNs, pass}
    lastRead = read
  }
}

/** The last pre-copy's entries by absolute path (latin1 of the bytes): what the pause compares with. */
async function loadTree(trees: Pick<TreeCache, 'read'>, source: string, tree: Buffer): Promise<Map<string, TreeNode>> {
  const out = new Map<string, TreeNode>()
  const visit = async (abs: Buffer, id: Buffer): Promise<void> => {
    // The pre-copy just decoded or wrote these trees: the run's cache has them.
    for (const node of await trees.read(id)) {
      const child = childPath(abs, node.name)
      out.set(child.toString('latin1'), node)
      if (node.type === 'dir' && node.subtree) await visit(child, node.subtree)
    }
  }
  await visit(Buffer.from(source), tree)
  return out
}

/**
 * The pause itself, synchronous from the first SIGSTOP to the last SIGCONT: no callback of ours
 * (or anyone's) runs in between, so nothing can lengthen it but the work it has to do.
 */
function captureWindow(ctx: CaptureContext, opts: PausedCaptureOptions, watchdog: Watchdog, known: Map<string, TreeNode>, lastStartNs: bigint, stage: Stage): {recorded: Recorded; record: Omit<PauseRecord, 'rounds'>} {
  const source = ctx.archive.source
  const paused = pause(opts.targets, {timeoutMs: Math.max(100, opts.maxPauseMs / 2), guard: watchdog, spare: [watchdog.pid]})
  let recorded: Recorded
  let copied = {files: 0, bytes: 0}
  let report
  try {
    faultPoint('capture.paused')
    recorded = Recorded.walk(source, ctx.archive, known)
    const writers = filesBeingWritten(paused.pids(), source).map((u) => ({path: Buffer.from(u.path, 'utf8').toString('latin1'), use: u.use}))
    const read: ReadRecord[] = []
    for (const [abs, node] of known) {
      if (node.type === 'file' || node.type === 'symlink') read.push({...nodeRecord(relOf(source, abs), node), readNs: lastStartNs})
    }
    const plan = planCapture(read, recorded.statRecords(source), writers)
    const copyPaths = [...plan.copy.map((c) => c.path), ...plan.moved.map((m) => m.to)]
    copied = recorded.stageCopies(source, copyPaths, stage, opts.memoryBytes ?? DEFAULT_MEMORY)
    faultPoint('capture.copied')
  } finally {
    report = paused.resume()
  }
  // The watchdog resumed the program itself if the pause ran past the maximum.
  const timedOut = watchdog.timedOutAfterMs !== undefined || report.pausedUs / 1000 > opts.maxPauseMs
  return {recorded, record: {pauseMs: report.pausedUs / 1000, copiedFiles: copied.files, copiedBytes: copied.bytes, copyKind: copied.files === 0 ? 'none' : stage.kind, timedOut}}
}

const relOf = (source: string, absLatin1: string): string => absLatin1.slice(Buffer.byteLength(source) + 1)

function typeOf(st: BigIntStats): EntryType {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other'
}

function nodeRecord(rel: string, n: TreeNode): StatRecord {
  return {path: rel, type: n.type === 'file' || n.type === 'dir' || n.type === 'symlink' ? n.type : 'other', size: BigInt(n.size), mtimeNs: n.mtimeNs, ctimeNs: n.ctimeNs, ino: n.ino}
}

/** Staging directories of captures whose process is gone (killed mid-capture): remove them. */
function removeAbandoned(parent: string, prefix: string): void {
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    // pid and start time: a pid reused by a live process is told apart (pids wrap quickly).
    const [pid, start] = name.slice(prefix.length).split('-').map(Number)
    if (Number.isInteger(pid) && pid! > 0 && pid !== process.pid && processGone(pid!, Number.isInteger(start) && start! > 0 ? start! : null)) {
      rmSync(path.join(parent, name), {recursive: true, force: true})
    }
  }
}

/** Where copies made inside the pause live until they are stored. */
class Stage {
  private n = 0
  kind: 'reflink' | 'memory' | 'disk' = 'reflink'
  private constructor(private readonly reflinkDir: string | undefined, private readonly memoryDir: string | undefined, private readonly diskDir: string) {}

  /**
   * A reflink needs the source's filesystem: a directory beside the source (never inside it, where
   * the program would see it). Memory is /dev/shm. Made before the pause, so the pause only copies.
   */
  static beside(source: string, stageDir: string | undefined): Stage {
    // Named with our pid, so the next capture can remove what a killed one left behind.
    const prefix = `.${path.basename(source)}.ckpt-stage-`
    const tryMake = (parent: string): string | undefined => {
      removeAbandoned(parent, prefix)
      try {
        return mkdtempSync(path.join(parent, `${prefix}${process.pid}-${processStart(process.pid) ?? 0}-`))
      } catch {
        return undefined
      }
    }
    const memory = existsSync('/dev/shm') ? tryMake('/dev/shm') : undefined
    const disk = tryMake(stageDir ?? os.tmpdir())
    if (!disk) throw new Error(`cannot make a staging directory in ${stageDir ?? os.tmpdir()}`)
    return new Stage(tryMake(path.dirname(source)), memory, disk)
  }

  /** Copy one file aside: reflink first, else into memory while under the bound, else to disk. */
  copy(from: Buffer, size: number, memoryLeft: () => number): Buffer {
    const name = `${this.n++}`
    if (this.reflinkDir && this.kind === 'reflink') {
      const to = path.join(this.reflinkDir, name)
      try {
        copyFileSync(from, to, fsc.COPYFILE_FICLONE_FORCE)
        return Buffer.from(to)
      } catch (err) {
        // No reflinks here (another filesystem, or one without them): stop trying for this pause.
        if (!['EOPNOTSUPP', 'ENOTSUP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ENOTTY'].includes(errnoCode(err) ?? '')) throw err
      }
    }
    const useMemory = this.memoryDir !== undefined && size <= memoryLeft()
    this.kind = useMemory ? 'memory' : 'disk'
    const to = path.join(useMemory ? this.memoryDir! : this.diskDir, name)
    copyFileSync(from, to)
    return Buffer.from(to)
  }

  remove(): void {
    for (const dir of [this.reflinkDir, this.memoryDir, this.diskDir]) if (dir) rmSync(dir, {recursive: true, force: true})
  }
}

/** The directory as the pause saw it: every listing and stat, symlink targets, and the copies. */
class Recorded {
  private readonly listings = new Map<string, Buffer[]>()
  private readonly stats = new Map<string, BigIntStats>()
  private readonly links = new Map<string, Buffer>()
  private readonly copies = new Map<string, Buffer>()
  /** Xattrs and flags of the files and directories the final pass will not take from the pre-copy. */
  private readonly metas = new Map<string, RecordedMeta>()
  /** Files the final pass had to read from the live directory: the plan missed them (never expected). */
  unplanned = 0

  /**
   * List and lstat the tree as the archiver would walk it (same excludes, same skipped
   * directories), and read the xattrs and flags of each file or directory whose inode or ctime
   * differs from the last pre-copy's (`known`): the final pass runs after the resume, and would
   * otherwise read them as the program left them by then.
   */
  static walk(source: string, archive: ArchiveOptions, known: ReadonlyMap<string, TreeNode> = new Map()): Recorded {
    const r = new Recorded()
    const exclude = compileExcludes(archive.excludes)
    // Paths past PATH_MAX are reached through open ancestors, as the archiver reaches them.
    const paths = new LongPaths()
    const visit = (abs: Buffer, rel: string): void => {
      let names: Buffer[]
      try {
        names = readdirSync(paths.short(abs), {encoding: 'buffer'})
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return
        throw err
      }
      const kept: Buffer[] = []
      const rawParent = rel ? abs.subarray(root.length + 1) : undefined
      for (const name of names) {
        const shown = displayName(name)
        const childRel = rel ? `${rel}/${shown}` : shown
        if (exclude(childRel, shown, name, rawParent)) continue
        const child = childPath(abs, name)
        let st: BigIntStats
        try {
          st = lstatSync(paths.short(child), {bigint: true})
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') continue
          throw err
        }
        kept.push(name)
        const key = child.toString('latin1')
        r.stats.set(key, st)
        const was = known.get(key)
        if ((st.isFile() || st.isDirectory()) && (was?.ctimeNs !== st.ctimeNs || was.ino !== st.ino)) r.readMeta(key, paths.short(child), st.isDirectory())
        if (st.isSymbolicLink()) r.links.set(key, readlinkSync(paths.short(child), {encoding: 'buffer'}))
        if (st.isDirectory() && !archive.skipDirs?.some((d) => d.dev === st.dev && d.ino === st.ino)) visit(child, childRel)
      }
      r.listings.set(abs.toString('latin1'), kept)
    }
    const root = Buffer.from(source)
    r.stats.set(root.toString('latin1'), lstatSync(root, {bigint: true}))
    r.readMeta(root.toString('latin1'), root, true)
    try {
      visit(root, '')
    } finally {
      paths.close()
    }
    return r
  }

  /** Left out when either read fails (gone meanwhile): the final pass reads it, and reports what it finds. */
  private readMeta(key: string, path: Buffer, dir: boolean): void {
    try {
      this.metas.set(key, {flags: readFlags(path, dir), xattrs: readXattrs(path)})
    } catch {
      // read again after the pause
    }
  }

  statRecords(source: string): StatRecord[] {
    const out: StatRecord[] = []
    const rootKey = Buffer.from(source).toString('latin1')
    for (const [key, st] of this.stats) {
      if (key === rootKey) continue
      out.push({path: relOf(source, key), type: typeOf(st), size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino})
    }
    return out
  }

  /** Copy the planned files aside (inside the pause). */
  stageCopies(source: string, rels: readonly string[], stage: Stage, memoryBytes: number): {files: number; bytes: number} {
    let inMemory = 0
    let bytes = 0
    const rootKey = Buffer.from(source).toString('latin1')
    const paths = new LongPaths()
    for (const rel of rels) {
      const key = `${rootKey}/${rel}`
      const st = this.stats.get(key)
      if (!st || !st.isFile()) continue // symlinks were recorded with their targets
      const size = Number(st.size)
      let copy: Buffer
      try {
        copy = stage.copy(paths.short(Buffer.from(key, 'latin1')), size, () => memoryBytes - inMemory)
      } catch (err) {
        // Gone while paused: something not paused removed it, or the watchdog resumed the program
        // (past --max-pause). The final pass finds it missing and warns; the image is no instant's.
        if (errnoCode(err) !== 'ENOENT') {
          paths.close()
          throw err
        }
        this.unplanned++
        continue
      }
      if (stage.kind === 'memory') inMemory += size
      this.copies.set(key, copy)
      bytes += size
    }
    paths.close()
    return {files: this.copies.size, bytes}
  }

  /** The recorded directory, as the archiver's source. */
  view(): SourceView {
    const get = <T>(m: Map<string, T>, abs: Buffer, what: string): T => {
      const v = m.get(abs.toString('latin1'))
      if (v === undefined) throw Object.assign(new Error(`${what}: not recorded`), {code: 'ENOENT'})
      return v
    }
    return {
      readdir: (abs) => get(this.listings, abs, 'readdir'),
      lstat: (abs) => get(this.stats, abs, 'lstat'),
      readlink: async (abs) => get(this.links, abs, 'readlink'),
      // A copied file was judged changed (or possibly changed) whatever its stat says: never from the cache.
      mustRead: (abs) => this.copies.has(abs.toString('latin1')),
      meta: (abs) => this.metas.get(abs.toString('latin1')),
      content: (abs) => {
        const key = abs.toString('latin1')
        const copy = this.copies.get(key)
        if (copy) return {path: copy, stat: this.stats.get(key)}
        this.unplanned++
        return {path: abs}
      },
    }
  }
}
