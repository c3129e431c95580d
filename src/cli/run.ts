// What bin/run.js loads after it has set V8's flags: oclif's entry point, wrapped. In the built
// CLI this module and the command table are the two entry points of one bundle (bundle.mjs), so
// they share a single copy of oclif with the commands.
//
// The wrapper gives the habits other backup tools taught users (`ckpt help [COMMAND]`, `-h`,
// set in package.json) and routes what oclif reports before any command runs (an unknown
// command) through the same one-line message, exit code and --json error document as
// every command's errors (base.ts).
import {flush} from '@oclif/core/flush'
import {handle} from '@oclif/core/handle'
import {run} from '@oclif/core/run'

import {ExitCode} from '../core/errors.js'

/** `ckpt help` and `ckpt help COMMAND` are `ckpt --help` and `ckpt COMMAND --help`. */
export function helpArgv(argv: readonly string[]): string[] {
  if (argv[0] !== 'help') return [...argv]
  return [...argv.slice(1), '--help']
}

/** The command oclif says it could not find (running it, or showing its help: @oclif/core 4's wordings), if that is the error. */
export function unknownCommand(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined
  return /^[Cc]ommand (.*) not found\.?$/.exec(err.message)?.[1]
}

export async function execute(opts: {dir: string}): Promise<void> {
  const argv = helpArgv(process.argv.slice(2))
  try {
    await run(argv, opts.dir)
    flush()
  } catch (err) {
    const id = unknownCommand(err)
    if (id === undefined) return handle(err as Error)
    const message = id.startsWith('-')
      ? `expected a command before ${id} (see ckpt --help)`
      : `unknown command "${id.replace(/:/g, ' ')}" (see ckpt --help for the commands)`
    process.exitCode = ExitCode.usage
    if (argv.includes('--json')) {
      process.stdout.write(JSON.stringify({error: {code: 'USAGE', message, exitCode: ExitCode.usage, data: {command: id}}}, null, 2) + '\n')
    } else {
      process.stderr.write(`ckpt: ${message}\n`)
    }
  }
}
