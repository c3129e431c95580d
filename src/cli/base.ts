// The base of every command: shared flags, where the repository is, and the one place where
// errors become exit codes and one-line messages (or a JSON error document with --json).
import path from 'node:path'

import {Command} from '@oclif/core/command'
import * as Flags from '@oclif/core/flags'

import {CkptError, classifyOsError, errnoCode, ExitCode, UsageError} from '../core/errors.js'
import {startMemoryGovernor} from './memory.js'

export abstract class CkptCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    repo: Flags.string({
      char: 'r',
      summary: 'Repository path.',
      description: 'Default: $CKPT_REPO, else .ckpt in the current directory.',
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
  }

  /** Where the repository is, and whether the user said so (or got the default .ckpt). */
  protected repoLocation(flag: string | undefined): {root: string; isDefault: boolean} {
    if (flag) return {root: path.resolve(flag), isDefault: false}
    return {root: path.resolve('.ckpt'), isDefault: true}
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
      return this.fail(ExitCode.usage, err.message.split('\n')[0]!, {code: 'USAGE', message: err.message, exitCode: ExitCode.usage, data: {}})
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
