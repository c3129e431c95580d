// Snapshot manifests: what a snapshot is. Stored in snapshots/ named by the BLAKE3 of these
// bytes (that name is the snapshot id). Written last: its write is the snapshot's commit point.
import {IntegrityError} from '../core/errors.js'
import {isHexId} from '../core/ids.js'
import {decodeFlags, decodeXattrs, type EncodedXattr, encodeXattrs, isOwnerId, type TreeNode} from './tree.js'

export const MANIFEST_VERSION = 1
/** At most this many warnings are listed in a manifest; the summary keeps the full count. */
export const MAX_LISTED_WARNINGS = 1000
/** At most this many moves during a capture are listed; the count keeps the rest. */
export const MAX_LISTED_MOVES = 100

/** 'metadata': xattrs or inode flags the file system would not give (once per kind); like 'special', it leaves the snapshot complete. */
export type WarningKind = 'unreadable' | 'changed' | 'vanished' | 'special' | 'metadata'

export interface SnapshotWarning {
  kind: WarningKind
  /** Path relative to the source, display form. */
  path: string
  message: string
}

export interface SnapshotSummary {
  files: number
  dirs: number
  symlinks: number
  /** Plain bytes of all files in the snapshot. */
  bytes: number
  /** What restoring the files takes on disk: their data regions (holes of sparse files left out), each hard-linked inode once (absent before ckpt recorded it). */
  dataBytes?: number
  /** Plain bytes of blobs this snapshot stored for the first time. */
  newBytes: number
  /** Their size in the repository (compressed), including new trees. */
  storedBytes: number
  newBlobs: number
  /** File content actually read (the rest came from the parent's stat cache). */
  bytesRead: number
  filesRead: number
  /** FIFOs and device nodes stored (absent when none). */
  specials?: number
  /** Sockets skipped: they cannot be stored, and are counted rather than warned about (absent when none). */
  sockets?: number
  durationMs: number
  warnings: number
  /** Warnings that leave the snapshot incomplete (files unreadable, or changed or vanished while read): exit code 3. */
  incomplete: number
}

export type MoveKind = 'changed' | 'appeared' | 'vanished' | 'replaced' | 'written-during' | 'mapped'

/** Something that moved in the directory while it was captured. */
export interface Move {
  /** Path relative to the source, display form. */
  path: string
  change: MoveKind
}

export const CAPTURE_MODES = ['plain', 'paused', 'frozen', 'hooks'] as const
export type CaptureMode = (typeof CAPTURE_MODES)[number]

/** How the directory was captured, and whether the result is the directory as it was at one instant. */
export interface CaptureRecord {
  mode: CaptureMode
  consistent: boolean
  /** What moved during the capture (at most MAX_LISTED_MOVES listed), and how many moves in all. */
  moves: Move[]
  moveCount: number
  /** A paused capture: how long the program was stopped, and what the pause copied. */
  pause?: PauseRecord
  /** The hooks run around the capture, with how each ended (their output is not kept here). */
  hooks?: HookRecord[]
}

export interface PauseRecord {
  pauseMs: number
  /** Pre-copy passes made while the program ran. */
  rounds: number
  /** Files copied aside inside the pause, and their bytes. */
  copiedFiles: number
  copiedBytes: number
  /** How: reflinks (no bytes moved), into memory, or to disk. */
  copyKind: 'reflink' | 'memory' | 'disk' | 'none'
  /** The pause ran past --max-pause and the program was resumed mid-copy: not consistent. */
  timedOut: boolean
}

export interface HookRecord {
  phase: 'pre' | 'freeze' | 'thaw' | 'post'
  command: string
  exitCode: number | null
  signal: string | null
  durationMs: number
}

/** Metadata of the snapshotted directory itself. */
export interface RootMeta {
  mode: number
  uid: number
  gid: number
  mtimeNs: string
  /** Inode flags within FS_FLAGS_RECORDED, as a tree node has them (absent when none, and in manifests written before ckpt recorded them). */
  flags?: number
  /** Extended attributes (default and access ACLs among them), encoded as a tree node's (absent when none, and before ckpt recorded them). */
  xattrs?: EncodedXattr[]
}

/** The root's metadata as the manifest records it: the directory's stat and what readMeta found. */
export function rootMetaOf(st: {mode: number; uid: number; gid: number; mtimeNs: bigint}, extra: Pick<TreeNode, 'xattrs' | 'flags'>): RootMeta {
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, mtimeNs: st.mtimeNs.toString(),
    ...(extra.flags ? {flags: extra.flags} : {}),
    ...(extra.xattrs?.length ? {xattrs: encodeXattrs(extra.xattrs)} : {}),
  }
}

/** The root as a directory node holds its metadata: what restore, export, verify and inspect take it as. */
export function rootMetaNode(root: RootMeta): Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs' | 'xattrs' | 'flags'> {
  const fail = (what: string) => new IntegrityError(`snapshot root: ${what}`)
  return {
    type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs),
    ...(root.flags !== undefined ? {flags: decodeFlags(root.flags, 'root', fail)} : {}),
    ...(root.xattrs !== undefined ? {xattrs: decodeXattrs(root.xattrs, 'root', fail)} : {}),
  }
}

export interface Manifest {
  version: number
  /** The snapshot's time (ISO 8601): when it started, or what --time said. */
  time: string
  /** Wall clock when the walk began, in ns: files changed after it are never trusted from the stat cache. */
  startTimeNs: string
  parent: string | null
  host: string
  /** Absolute path of the snapshotted directory. */
  source: string
  tags: string[]
  /**
   * The --exclude patterns the snapshot was taken with (absent when none, and in manifests
   * written before ckpt recorded them): an in-place restore keeps what they match.
   */
  excludes?: string[]
  /** Taken with --exclude-nodump: entries with the nodump flag were left out on purpose (absent otherwise). */
  excludeNodump?: true
  /**
   * The paths --files-from chose (relative to the source), when the snapshot holds only those:
   * an in-place restore of it is refused, since it would remove everything else.
   */
  paths?: string[]
  /** Root tree id. */
  tree: string
  root: RootMeta
  summary: SnapshotSummary
  warnings: SnapshotWarning[]
  /** ckpt version that wrote it. */
  program: string
  /** How it was captured (absent in manifests written before ckpt recorded it: unknown). */
  capture?: CaptureRecord
  /**
   * True when written without the native addon, so no xattrs or inode flags could be read: its
   * nodes' "none" means "not read", and the next snapshot reads them afresh instead of taking them
   * from this one's stat cache.
   */
  metadataSkipped?: true
}

export function encodeManifest(m: Manifest): Buffer {
  const ordered: Manifest = {
    version: m.version, time: m.time, startTimeNs: m.startTimeNs, parent: m.parent, host: m.host, source: m.source,
    tags: m.tags, ...(m.excludes?.length ? {excludes: m.excludes} : {}), ...(m.excludeNodump ? {excludeNodump: true} : {}), ...(m.paths ? {paths: m.paths} : {}), tree: m.tree, root: m.root, summary: m.summary, warnings: m.warnings, program: m.program,
    ...(m.capture ? {capture: m.capture} : {}),
    ...(m.metadataSkipped ? {metadataSkipped: true} : {}),
  }
  return Buffer.from(JSON.stringify(ordered, null, 1) + '\n')
}

export function decodeManifest(bytes: Buffer, id: string): Manifest {
  const fail = (what: string) => new IntegrityError(`snapshot ${id}: ${what}`, {snapshot: id})
  let v: unknown
  try {
    v = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw fail('manifest is not valid JSON')
  }
  if (!v || typeof v !== 'object') throw fail('manifest is not an object')
  const m = v as Manifest
  if (m.version !== MANIFEST_VERSION) throw fail(`unknown manifest version ${String(m.version)}`)
  if (typeof m.time !== 'string' || !Number.isFinite(Date.parse(m.time))) throw fail('bad time')
  if (typeof m.startTimeNs !== 'string' || !/^[0-9]{1,20}$/.test(m.startTimeNs)) throw fail('bad start time')
  if (m.parent !== null && (typeof m.parent !== 'string' || !isHexId(m.parent))) throw fail('bad parent id')
  if (typeof m.host !== 'string' || typeof m.source !== 'string' || !m.source.startsWith('/')) throw fail('bad host or source')
  if (!Array.isArray(m.tags) || !m.tags.every((t) => typeof t === 'string')) throw fail('bad tags')
  if (m.excludes !== undefined && (!Array.isArray(m.excludes) || !m.excludes.every((e) => typeof e === 'string' && e !== ''))) throw fail('bad exclude patterns')
  if (m.paths !== undefined && (!Array.isArray(m.paths) || !m.paths.every((e) => typeof e === 'string'))) throw fail('bad paths')
  if (typeof m.tree !== 'string' || !isHexId(m.tree)) throw fail('bad root tree id')
  const r = m.root as Partial<RootMeta> | undefined
  if (!r || !Number.isInteger(r.mode) || (r.mode as number) < 0 || (r.mode as number) > 0o7777 || !isOwnerId(r.uid) || !isOwnerId(r.gid) || typeof r.mtimeNs !== 'string' || !/^-?[0-9]{1,20}$/.test(r.mtimeNs)) {
    throw fail('bad root metadata')
  }
  // Checked as a tree node's are: restore hands them to setxattr and FS_IOC_SETFLAGS.
  if (r.flags !== undefined) decodeFlags(r.flags, 'root', fail)
  if (r.xattrs !== undefined) decodeXattrs(r.xattrs, 'root', fail)
  if (!m.summary || typeof m.summary !== 'object') throw fail('no summary')
  if (!Array.isArray(m.warnings)) throw fail('bad warnings')
  if (m.capture !== undefined) {
    const c = m.capture as Partial<CaptureRecord> | null
    if (!c || typeof c !== 'object' || !CAPTURE_MODES.includes(c.mode as CaptureMode) || typeof c.consistent !== 'boolean' ||
      !Array.isArray(c.moves) || !Number.isSafeInteger(c.moveCount)) throw fail('bad capture record')
  }
  return m
}

/**
 * The fields every new snapshot's manifest starts with (snapshot and import): when, from where,
 * after which parent, with which tags (deduplicated, sorted).
 */
export function manifestHead(opts: {time?: Date; startNs: bigint; parent: string | undefined; host: string; source: string; tags?: readonly string[]}): Pick<Manifest, 'version' | 'time' | 'startTimeNs' | 'parent' | 'host' | 'source' | 'tags'> {
  return {
    version: MANIFEST_VERSION,
    time: (opts.time ?? new Date(Number(opts.startNs / 1_000_000n))).toISOString(),
    startTimeNs: opts.startNs.toString(),
    parent: opts.parent ?? null,
    host: opts.host,
    source: opts.source,
    tags: [...new Set(opts.tags ?? [])].sort(),
  }
}
