// What snapshot's selection flags name, read from their files: --exclude-file patterns,
// --exclude-if-present and --exclude-caches markers, --files-from paths (and which are missing).
import {promises as fsp} from 'node:fs'

import {BadPathError, errnoCode} from '../core/errors.js'
import {CACHEDIR_TAG, type Marker, parseFilesFrom, parseMarker, parsePatternFile} from '../snapshot/exclude.js'
import {displayName} from '../snapshot/tree.js'

export interface SelectionFlags {
  'exclude-file'?: string[]
  'exclude-if-present'?: string[]
  'exclude-caches'?: boolean
  'files-from'?: string[]
}

export interface Selection {
  excludes: string[]
  markers: Marker[]
  /** Undefined: everything. */
  paths?: string[]
  /** Listed in --files-from, not in the source (left out, with a warning). */
  missing: string[]
}

async function readList(flag: string, file: string): Promise<string>
async function readList(flag: string, file: string, encoding: 'latin1'): Promise<string>
async function readList(flag: string, file: string, encoding: BufferEncoding = 'utf8'): Promise<string> {
  try {
    return await fsp.readFile(file, encoding)
  } catch (err) {
    throw new BadPathError(`--${flag} ${file}: ${errnoCode(err) === 'ENOENT' ? 'no such file' : errnoCode(err) ?? (err as Error).message}`)
  }
}

export async function readSelection(flags: SelectionFlags, source: string): Promise<Selection> {
  const excludes: string[] = []
  for (const f of flags['exclude-file'] ?? []) excludes.push(...parsePatternFile(await readList('exclude-file', f)))
  const markers = (flags['exclude-if-present'] ?? []).map(parseMarker)
  if (flags['exclude-caches']) markers.push(CACHEDIR_TAG)
  if (!flags['files-from']?.length) return {excludes, markers, missing: []}
  // A listed path is bytes, as names are: read as latin1 (one character a byte), so that a name
  // that is not UTF-8 is found, and given to the walk as it shows names (displayName).
  const root = Buffer.from(source)
  const listed: Buffer[] = []
  for (const f of flags['files-from']) {
    for (const p of parseFilesFrom(await readList('files-from', f, 'latin1'), root.toString('latin1'))) listed.push(Buffer.from(p, 'latin1'))
  }
  const shown = (p: Buffer) => p.toString('latin1').split('/').map((c) => displayName(Buffer.from(c, 'latin1'))).join('/')
  const paths: string[] = []
  const missing: string[] = []
  for (const p of listed) {
    try {
      await fsp.lstat(Buffer.concat([root, Buffer.from('/'), p]))
      paths.push(shown(p))
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err
      missing.push(shown(p))
    }
  }
  if (paths.length === 0) throw new BadPathError(`--files-from: none of the ${listed.length} listed paths is in ${source}`)
  return {excludes, markers, paths, missing}
}
