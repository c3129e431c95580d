// The base of every command: shared flags, where the repository is, and the one place where
// errors become exit codes and one-line messages (or a JSON error document with --json).
import {statSync} from 'node:fs'
import {Command} from '@oclif/core/command'
import * as Flags from '@oclif/core/flags'

import {CkptError, classifyOsError, errnoCode, ExitCode, NoRepositoryError, UsageError} from '../core/errors.js'
import {describeHolder, releaseHeldLocks, setLockReporter} from '../store/lock.js'
import {parseLocation, type RepoLocation} from '../store/location.js'
import {usageMessage} from './format.js'
import {startMemoryGovernor} from './memory.js'

/** How long a signal waits for this process's locks to be removed before exiting anyway. */
const RELEASE_ON_SIGNAL_MS = 2000

let signalsHandled = false

/**
 * SIGINT and SIGTERM release the locks this process holds, then exit 130 and 143 (128 + the
 * signal's number, as a shell reports a process the signal killed). A second signal exits at
 * once. Without this, a killed command's lock stays until the next command finds it stale.
 */
function handleSignals(): void {
  if (signalsHandled) return
  signalsHandled = true
  let exiting = false
  const handler = (signal: 'SIGINT' | 'SIGTERM', code: number) => () => {
    if (exiting) process.exit(code)
    exiting = true
    process.stderr.write(`ckpt: ${signal === 'SIGINT' ? 'interrupted' : 'terminated'}\n`)
    setTimeout(() => process.exit(code), RELEASE_ON_SIGNAL_MS)
    void releaseHeldLocks().finally(() => process.exit(code))
  }
  process.on('SIGINT', handler('SIGINT', ExitCode.interrupted))
  process.on('SIGTERM', handler('SIGTERM', ExitCode.terminated))
}

export abstract class CkptCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    repo: Flags.string({
      char: 'r',
      summary: 'Repository: a directory path or s3://BUCKET/PREFIX.',
      description: 'Default: $CKPT_REPO, else .ckpt in the current directory (which ckpt snapshot creates, saying so on stderr).',
      env: 'CKPT_REPO',
      helpGroup: 'GLOBAL',
    }),
    quiet: Flags.boolean({char: 'q', summary: 'Print only errors (and what --json asks for).', helpGroup: 'GLOBAL'}),
    'retry-lock': Flags.string({
      summary: 'Wait this long for a lock held by another process (e.g. 30s, 5m, 1h) instead of failing with exit code 11.',
      helpGroup: 'GLOBAL',
    }),
  }

  override async init(): Promise<void> {
    await super.init()
    startMemoryGovernor()
    handleSignals()
    // Read from argv: the reporter must be in place before run() parses, and quiet is only a flag.
    const quiet = this.argv.includes('--quiet') || this.argv.includes('-q') || this.jsonEnabled()
    const warned = new Set<string>()
    setLockReporter({
      staleRemoved: (info, name, location) => {
        if (!info) process.stderr.write(`warning: removed unparsable lock ${name} from ${location} (no ckpt writes such a lock)\n`)
        else if (!quiet) process.stderr.write(`removed stale lock ${name} (${describeHolder(info)})\n`)
      },
      unlocked: (location, code) => {
        if (warned.has(location)) return
        warned.add(location)
        process.stderr.write(`warning: could not lock repository ${location} (${code}: read-only); reading it without a lock\n`)
      },
    })
  }

  /** Where the repository is (an unsupported scheme is a usage error), and whether the user said so (or got the default .ckpt). */
  protected repoLocation(flag: string | undefined, opts: {creating?: boolean} = {}): RepoLocation & {isDefault: boolean} {
    const location = {...parseLocation(flag || '.ckpt'), isDefault: !flag}
    if (location.path !== undefined) checkRepositoryRoot(location.path, opts.creating)
    return location
  }

  /** Write a line to stderr unless --quiet or --json. */
  protected note(flags: {quiet?: boolean}, text: string): void {
    if (!flags.quiet && !this.jsonEnabled()) process.stderr.write(text + '\n')
  }

  protected override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    const classified = classifyOsError(err, 'the repository')
    if (classified instanceof CkptError) return this.fail(classified.exitCode, classified.message, classified.toJSON())
    if (err.oclif?.exit !== undefined) {
      // oclif's own parse errors (unknown flag, missing argument) are usage errors.
      if (err.oclif.exit === 0) return undefined
      // They were parsed, and refused: without this, oclif (outside NODE_ENV=production) adds a
      // warning that the command never parsed its arguments after the message.
      this.parsed = true
      const message = `${usageMessage(err.message)} (see ckpt ${this.id ?? ''} --help)`.replace('  ', ' ')
      return this.fail(ExitCode.usage, message, {code: 'USAGE', message, exitCode: ExitCode.usage, data: {}})
    }
    const code = errnoCode(err)
    const message = code ? `${err.message}` : `internal error: ${err.message}`
    if (process.env.CKPT_DEBUG) process.stderr.write(`${err.stack}\n`)
    return this.fail(ExitCode.failure, message, {code: code ?? 'INTERNAL', message: err.message, exitCode: ExitCode.failure, data: {}})
  }

  private fail(exitCode: number, message: string, json: Record<string, unknown>): undefined {
    process.exitCode = exitCode
    if (this.jsonEnabled()) this.logJson({error: json})
    else process.stderr.write(`ckpt: ${message.replace(/\s*\n\s*/g, ' ')}\n`)
    return undefined
  }
}

/** --retry-lock and similar waits: 500ms, 30s, 5m, 2h (plain number: seconds). */
export function parseWait(text: string | undefined): number {
  if (text === undefined) return 0
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|min|h)?$/.exec(text.trim())
  if (!m) throw new UsageError(`invalid wait "${text}": use e.g. 30s, 5m, 1h`)
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  const ms = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000
  return Math.round(n * ms)
}

/**
 * A repository path that is a file (or lies under one) is no repository: said in one line, with
 * exit code 10 (2 for init, asked to create one there), before any command opens, creates or
 * locks anything there.
 */
export function checkRepositoryRoot(root: string, creating = false): void {
  let code: string | undefined
  try {
    if (statSync(root).isDirectory()) return
    code = 'ENOTDIR'
  } catch (err) {
    code = errnoCode(err)
  }
  if (code === 'ENOTDIR' && creating) throw new UsageError(`cannot create a repository at ${root}: it is a file, or lies under one, not a directory`, {location: root})
  if (code === 'ENOTDIR') throw new NoRepositoryError(`no ckpt repository at ${root}: it is a file, or lies under one, not a directory`, {location: root})
}
