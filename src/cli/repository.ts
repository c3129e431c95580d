// Finding the repository and the directories commands work on, with one-line errors.
import {appendFileSync, promises as fsp} from 'node:fs'
import path from 'node:path'

import {BadPathError, errnoCode, NoRepositoryError} from '../core/errors.js'
import {RACY_WINDOW_NS} from '../core/racy.js'
import {initRepositoryAt, openRepositoryAt} from '../repo/open.js'
import type {Repository} from '../repo/repository.js'
import type {Backend} from '../store/backend.js'
import type {RepoLocation} from '../store/registry.js'

export async function openRepository(location: RepoLocation): Promise<Repository> {
  let repo: Repository
  try {
    repo = await openRepositoryAt(location)
  } catch (err) {
    // An in-place restore killed while it held the repository in its temp tree: put it back.
    if (!(err instanceof NoRepositoryError) || location.path === undefined) throw err
    const {recoverInterruptedRestores} = await import('../restore/carry.js')
    if (!(await recoverInterruptedRestores(location.path))) throw err
    repo = await openRepositoryAt(location)
  }
  appendFetchStatsAtExit(repo)
  return repo
}

/**
 * Benchmarks (bench/s3.sh): with CKPT_S3_STATS=FILE, what the repository's backend fetched (GETs,
 * bytes, read-ahead) is appended to FILE as one JSON line when the command exits.
 */
function appendFetchStatsAtExit(repo: Repository): void {
  const file = process.env.CKPT_S3_STATS
  const backend = repo.backend
  if (!file || !backend.fetchStats) return
  process.once('exit', () => {
    try {
      appendFileSync(file, JSON.stringify({command: process.argv[2] ?? '', ...backend.fetchStats!()}) + '\n')
    } catch {
      // A benchmark aid never changes how the command ends.
    }
  })
}

/**
 * Open the repository; the default one (.ckpt in the current directory, when neither --repo nor
 * CKPT_REPO names one) is created on first use. That is never silent, not even with --quiet or
 * --json: a cron job run from an unexpected directory would otherwise fill a repository nobody
 * knows about. The line goes to stderr, so stdout keeps only the result.
 */
export async function openOrCreate(location: RepoLocation & {isDefault: boolean}): Promise<Repository> {
  try {
    return await openRepository(location)
  } catch (err) {
    if (!(err instanceof NoRepositoryError) || !location.isDefault) throw err
    const repo = await initRepositoryAt(location, {now: Date.now()})
    process.stderr.write(`created repository at ${location.root} (no --repo or CKPT_REPO given: the default is .ckpt in the current directory)\n`)
    return repo
  }
}

/**
 * The repository's own directory when it is on this machine, by device and inode: a snapshot of
 * a directory holding it leaves it out (and restore's safety snapshot, and verify --source, too).
 */
export async function repositoryDirs(backend: Pick<Backend, 'capabilities'>): Promise<{dev: bigint; ino: bigint}[]> {
  const dir = backend.capabilities.localDirectory
  if (dir === undefined) return []
  const st = await fsp.stat(dir, {bigint: true})
  return [{dev: st.dev, ino: st.ino}]
}

/**
 * A mount point is restored from inside (restore/carry.ts swapInside). Before a snapshot of one,
 * a restore killed midway is undone or finished, as the next restore would (else the snapshot would
 * find the directory's entries set aside; not with `repair` false, a dry run); the temp trees left
 * (of a restore still running) are returned, for the snapshot to leave out.
 */
export async function restoreTempsInside(source: string, repair = true): Promise<{dev: bigint; ino: bigint}[]> {
  // Nearly always none: the restore code (~14 ms to load) only when a name looks like one.
  const names = await fsp.readdir(source).catch(() => [] as string[])
  if (!names.some((n) => n.includes('.ckpt-restore-'))) return []
  const {removeAbandonedTemps, tempPrefix} = await import('../restore/carry.js')
  const prefix = tempPrefix(path.basename(source))
  const ours = async () => (await fsp.readdir(source).catch(() => [] as string[])).filter((n) => n.startsWith(prefix))
  if (repair && (await removeAbandonedTemps(source, path.basename(source), true)) > 0) {
    // Its renames moved the entries' ctimes: the snapshot starts one racy window later, or its
    // capture check would take them for writes during the walk.
    await new Promise((resolve) => setTimeout(resolve, Number(RACY_WINDOW_NS / 1_000_000n) + 1))
  }
  const out: {dev: bigint; ino: bigint}[] = []
  for (const name of await ours()) {
    const st = await fsp.lstat(path.join(source, name), {bigint: true}).catch(() => undefined)
    if (st?.isDirectory()) out.push({dev: st.dev, ino: st.ino})
  }
  return out
}

/** The absolute, symlink-free path of a directory to snapshot. */
export async function sourceDirectory(dir: string): Promise<string> {
  let bytes: Buffer
  try {
    bytes = await fsp.realpath(dir, {encoding: 'buffer'})
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new BadPathError(`${dir}: no such directory`)
    throw new BadPathError(`${dir}: ${errnoCode(err) ?? (err as Error).message}`)
  }
  // Manifests record the source as text: a path that is not UTF-8 would come back as another
  // path (its bytes replaced), which no later command could find.
  const real = bytes.toString('utf8')
  if (!Buffer.from(real, 'utf8').equals(bytes)) {
    const {escapeName} = await import('../inspect/names.js')
    throw new BadPathError(`${dir}: its path ${escapeName(bytes)} is not valid UTF-8, which ckpt cannot record as a source directory (rename it, or a directory above it)`)
  }
  const st = await fsp.stat(real)
  if (!st.isDirectory()) throw new BadPathError(`${dir} is not a directory`)
  return real
}
