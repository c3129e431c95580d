// Typed errors. Every failure the user can cause or meet has a class here with a stable
// `code` and an exit code; the CLI maps them in one place (src/cli/base.ts). The table of
// exit codes is documented in README.md and man/ckpt.1: keep the three in step.

export const ExitCode = {
  ok: 0,
  /** Unexpected failure (a bug, or an OS error we have no better name for). */
  failure: 1,
  /** Bad flags, arguments or policy. */
  usage: 2,
  /** The command finished, but with warnings (a file could not be read, or changed while read). */
  warnings: 3,
  /** The snapshot, path or object named does not exist (or a prefix is ambiguous). */
  notFound: 4,
  /** The source or target directory is missing, not a directory, or not usable. */
  badPath: 5,
  /** No space left on the device. */
  noSpace: 7,
  /** No repository at the given path. */
  noRepository: 10,
  /** The repository is locked by another process. */
  locked: 11,
  /** The repository is damaged: a missing or corrupt object, or a hostile manifest or tree. */
  integrity: 12,
  /** The repository has a format version this build does not know. */
  unsupportedFormat: 13,
  /** The command must write to the repository, and the repository is read-only. */
  readOnly: 14,
  /** An in-place restore of a directory a running process uses (open files, mappings, working directory). */
  busy: 15,
  /** `ckpt import`: the tar is damaged, truncated, or hostile (a path leaving the root, a file under a symlink...); nothing was committed. */
  badArchive: 16,
  /** The object store refused a request (credentials, permissions) or kept failing it until the retries ran out. */
  storage: 17,
  /** Interrupted by SIGINT (Ctrl-C); locks released. */
  interrupted: 130,
  /** Stopped by SIGTERM; locks released. */
  terminated: 143,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export abstract class CkptError extends Error {
  abstract readonly code: string
  abstract readonly exitCode: ExitCodeValue
  readonly data: Record<string, unknown>

  constructor(message: string, data: Record<string, unknown> = {}, options?: {cause?: unknown}) {
    super(message, options)
    this.name = new.target.name
    this.data = data
  }

  toJSON(): {code: string; message: string; exitCode: number; data: Record<string, unknown>} {
    return {code: this.code, message: this.message, exitCode: this.exitCode, data: this.data}
  }
}

export class UsageError extends CkptError {
  readonly code = 'USAGE'
  readonly exitCode = ExitCode.usage
}

export class NotFoundError extends CkptError {
  readonly code = 'NOT_FOUND'
  readonly exitCode = ExitCode.notFound
}

export class BadPathError extends CkptError {
  readonly code = 'BAD_PATH'
  readonly exitCode = ExitCode.badPath
}

export class NoSpaceError extends CkptError {
  readonly code = 'NO_SPACE'
  readonly exitCode = ExitCode.noSpace
}

export class NoRepositoryError extends CkptError {
  readonly code = 'NO_REPOSITORY'
  readonly exitCode = ExitCode.noRepository
}

export class LockedError extends CkptError {
  readonly code = 'LOCKED'
  readonly exitCode = ExitCode.locked
}

/** A command that must write met a read-only repository (read-only mount, chattr +i, no write permission). */
export class ReadOnlyRepositoryError extends CkptError {
  readonly code = 'READ_ONLY'
  readonly exitCode = ExitCode.readOnly
}

/** An in-place restore met a directory that running processes use: the message names them. */
export class BusyError extends CkptError {
  readonly code = 'BUSY'
  readonly exitCode = ExitCode.busy
}

/** A tar given to `ckpt import` that cannot be stored as it says: malformed, truncated, or naming something unsafe. */
export class BadArchiveError extends CkptError {
  readonly code = 'BAD_ARCHIVE'
  readonly exitCode = ExitCode.badArchive
}

/** A request to the object store was refused, or kept failing (throttling, 5xx, dropped connections) until the retries ran out. */
export class StorageError extends CkptError {
  readonly code = 'STORAGE'
  readonly exitCode = ExitCode.storage
}

/** Something stored is missing, truncated, fails its hash, or describes something unsafe. */
export class IntegrityError extends CkptError {
  readonly code = 'INTEGRITY'
  readonly exitCode = ExitCode.integrity
}

export class UnsupportedFormatError extends CkptError {
  readonly code = 'UNSUPPORTED_FORMAT'
  readonly exitCode = ExitCode.unsupportedFormat
}

export class InterruptedError extends CkptError {
  readonly code = 'INTERRUPTED'
  readonly exitCode = ExitCode.interrupted
}

/** Node's system errors carry an errno code; this narrows to them. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as {code: unknown}).code === 'string') {
    return (err as {code: string}).code
  }
  return undefined
}

/** Turn an OS error worth naming into its typed error; anything else passes through unchanged. */
export function classifyOsError(err: unknown, what: string): unknown {
  if (err instanceof CkptError) return err
  const code = errnoCode(err)
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new NoSpaceError(`no space left on device while writing ${what}`, {what}, {cause: err})
  }
  return err
}

/** A stored object the repository expects is not there. */
export class ObjectMissingError extends CkptError {
  readonly code = 'OBJECT_MISSING'
  readonly exitCode = ExitCode.integrity
}
