// --exclude patterns. A pattern without "/" matches a name at any depth (like .gitignore);
// one with "/" matches the path from the snapshot root ("/" at the start is optional).
// "*" and "?" stay within one name, "**" crosses directories, [abc] / [!abc] are classes.
// An excluded directory is not entered.
import {UsageError} from '../core/errors.js'

/**
 * Whether a path is left out. `relPath` and `name` are as displayName shows them, which for a name
 * that is not UTF-8 or holds a control character is an escaped form (a\x0ab); the patterns are
 * then also matched against the text of the bytes (`rawName`, below `rawParent`: the parent's
 * path from the root, empty at the root), so that `a?b`, or a pattern typed with the newline,
 * leaves out "a\nb". Bytes that are not UTF-8 read as U+FFFD there, as in ckpt find.
 */
export type ExcludeMatcher = (relPath: string, name: string, rawName?: Buffer, rawParent?: Buffer) => boolean

// A pattern with one run of "*" / "**" at most is matched by a regular expression (anchored, it
// cannot backtrack more than once over the text). One with more runs as an NFA over the text, in
// O(text x pattern) steps: a backtracking regular expression takes exponential time on patterns
// like "*a*a*a*a*b", and patterns also come from manifests (an in-place restore applies the
// snapshot's), which a hostile writer controls.
type Token =
  | {k: 'char'; c: string}
  | {k: 'one'} // ?: one character of a name
  | {k: 'class'; re: RegExp; source: string} // [abc] / [!abc]: one character of a name
  | {k: 'star'} // *: any run within a name
  | {k: 'any'} // **: any run
  | {k: 'dirs'} // **/: nothing, or any run ending in "/"

function tokenize(glob: string): Token[] {
  const tokens: Token[] = []
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++
        if (glob[i + 1] === '/') {
          i++
          tokens.push({k: 'dirs'})
        } else {
          tokens.push({k: 'any'})
        }
      } else {
        tokens.push({k: 'star'})
      }
    } else if (c === '?') {
      tokens.push({k: 'one'})
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2)
      if (close < 0) throw new UsageError(`--exclude ${JSON.stringify(glob)}: unclosed "["`)
      let body = glob.slice(i + 1, close)
      if (body.startsWith('!')) body = '^' + body.slice(1)
      // A class stays within one name, like "?": it never matches "/".
      const source = `(?:(?!/)[${body.replace(/\\/g, '\\\\')}])`
      let re: RegExp
      try {
        re = new RegExp(`^${source}$`, 's')
      } catch (err) {
        // A range out of order ([z-a]): the pattern's mistake, not ours.
        throw new UsageError(`--exclude ${JSON.stringify(glob)}: bad class "${glob.slice(i, close + 1)}" (${(err as Error).message.replace(/^.*: /, '')})`)
      }
      tokens.push({k: 'class', re, source})
      i = close
    } else {
      tokens.push({k: 'char', c})
    }
  }
  return tokens
}

const RUN = new Set<Token['k']>(['star', 'any', 'dirs'])

function regExpSource(tokens: readonly Token[]): string {
  return tokens.map((t) => {
    switch (t.k) {
      case 'char': return t.c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
      case 'one': return '[^/]'
      case 'class': return t.source
      case 'star': return '[^/]*'
      case 'any': return '.*'
      case 'dirs': return '(?:.*/)?'
    }
  }).join('')
}

/** A function telling whether `tokens` match all of a text (see above for which way). */
function matcher(tokens: readonly Token[]): (text: string) => boolean {
  if (tokens.filter((t) => RUN.has(t.k)).length <= 1) {
    const re = new RegExp(`^${regExpSource(tokens)}$`, 's')
    return (text) => re.test(text)
  }
  return nfaMatcher(tokens)
}

/** A function telling whether `tokens` match all of a text (its state arrays are reused: calls must not overlap, and cannot, being synchronous). */
function nfaMatcher(tokens: readonly Token[]): (text: string) => boolean {
  const n = tokens.length
  // at[i]: the first i tokens match the text read so far; inDirs[i]: token i ("**/") is partway through a run.
  const arrays = [new Uint8Array(n + 1), new Uint8Array(n + 1), new Uint8Array(n + 1), new Uint8Array(n + 1)] as const
  const close = (s: Uint8Array) => {
    for (let i = 0; i < n; i++) if (s[i] && (tokens[i]!.k === 'star' || tokens[i]!.k === 'any' || tokens[i]!.k === 'dirs')) s[i + 1] = 1
  }
  return (text) => {
    let [at, inDirs, nextAt, nextIn] = arrays
    at.fill(0)
    inDirs.fill(0)
    at[0] = 1
    close(at)
    for (let p = 0; p < text.length; p++) {
      const c = text[p]!
      nextAt.fill(0)
      nextIn.fill(0)
      let alive = false
      for (let i = 0; i < n; i++) {
        if (inDirs[i]) {
          nextIn[i] = 1
          if (c === '/') nextAt[i + 1] = 1
          alive = true
        }
        if (!at[i]) continue
        const t = tokens[i]!
        if (t.k === 'char') {
          if (c === t.c) nextAt[i + 1] = 1
        } else if (t.k === 'one') {
          if (c !== '/') nextAt[i + 1] = 1
        } else if (t.k === 'class') {
          if (t.re.test(c)) nextAt[i + 1] = 1
        } else if (t.k === 'star') {
          if (c !== '/') nextAt[i] = 1
        } else if (t.k === 'any') {
          nextAt[i] = 1
        } else {
          nextIn[i] = 1
          if (c === '/') nextAt[i + 1] = 1
        }
        alive = true
      }
      if (!alive) return false
      close(nextAt)
      ;[at, nextAt] = [nextAt, at]
      ;[inDirs, nextIn] = [nextIn, inDirs]
    }
    return at[n] === 1
  }
}

export function compileExcludes(patterns: readonly string[]): ExcludeMatcher {
  const byName: ((text: string) => boolean)[] = []
  const byPath: ((text: string) => boolean)[] = []
  for (const raw of patterns) {
    const p = raw.replace(/\/+$/, '')
    if (p === '') throw new UsageError('--exclude pattern is empty')
    if (p.includes('/')) byPath.push(matcher(tokenize(p.replace(/^\/+/, ''))))
    else byName.push(matcher(tokenize(p)))
  }
  if (byName.length === 0 && byPath.length === 0) return () => false
  return (relPath, name, rawName, rawParent) => {
    if (byName.some((m) => m(name)) || byPath.some((m) => m(relPath))) return true
    // Without an escape anywhere on the path, what is shown is already the bytes' text.
    if (rawName === undefined || !relPath.includes('\\x')) return false
    const text = rawName.toString('utf8')
    if (byName.some((m) => m(text))) return true
    const rel = rawParent?.length ? `${rawParent.toString('utf8')}/${text}` : text
    return byPath.some((m) => m(rel))
  }
}

/**
 * A pattern matching exactly one path from the snapshot root, whatever characters it holds: how
 * directories left out by a rule other than a pattern (--one-file-system, --exclude-if-present,
 * --exclude-caches) are recorded among the manifest's excludes, so that an in-place restore
 * keeps them and the settle check does not count them as appeared.
 */
export function literalPattern(relPath: string): string {
  return '/' + relPath.replace(/[*?[]/g, (c) => `[${c}]`)
}

/** Exclude patterns from a file (--exclude-file): one a line; blank lines and lines starting with "#" are skipped; surrounding spaces trimmed. */
export function parsePatternFile(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
}

/** A file whose presence marks a directory to leave out: --exclude-if-present NAME[:HEADER], --exclude-caches. */
export interface Marker {
  name: string
  /** The file must start with these bytes. */
  header?: Buffer
}

/** The Cache Directory Tagging Specification's tag (https://bford.info/cachedir/). */
export const CACHEDIR_TAG: Marker = {name: 'CACHEDIR.TAG', header: Buffer.from('Signature: 8a477f597d28d172789f06886806bc55')}

/** --exclude-if-present NAME or NAME:HEADER (restic's form). */
export function parseMarker(spec: string): Marker {
  const colon = spec.indexOf(':')
  const name = colon < 0 ? spec : spec.slice(0, colon)
  if (name === '' || name.includes('/') || name === '.' || name === '..') throw new UsageError(`--exclude-if-present ${JSON.stringify(spec)}: give a file name (NAME or NAME:HEADER)`)
  return colon < 0 ? {name} : {name, header: Buffer.from(spec.slice(colon + 1))}
}

/**
 * --files-from: whether a path (relative to the source) is one of the chosen paths or below one
 * ('all'), a directory leading to one ('ancestor': entered, but only for what leads to them), or
 * neither ('none').
 */
export type PathSelection = (relPath: string) => 'all' | 'ancestor' | 'none'

interface Trie {
  end: boolean
  children: Map<string, Trie>
}

/** Paths are relative to the source ("./a//b/" is a/b); ".." and the empty path are refused. */
export function compileSelection(paths: readonly string[]): PathSelection {
  const root: Trie = {end: false, children: new Map()}
  for (const raw of paths) {
    const parts = raw.split('/').filter((s) => s !== '' && s !== '.')
    if (parts.includes('..')) throw new UsageError(`--files-from: ${JSON.stringify(raw)} leads outside the source`)
    if (parts.length === 0) return () => 'all' // the source itself
    let t = root
    for (const part of parts) {
      let next = t.children.get(part)
      if (!next) t.children.set(part, (next = {end: false, children: new Map()}))
      t = next
    }
    t.end = true
  }
  return (relPath) => {
    let t = root
    for (const part of relPath.split('/')) {
      const next = t.children.get(part)
      if (!next) return 'none'
      if (next.end) return 'all'
      t = next
    }
    return 'ancestor'
  }
}

/**
 * The lines of a --files-from file as paths relative to the source: relative lines are taken as
 * they are, absolute ones must lie in the source. Blank lines and lines starting with "#" are
 * skipped; other spaces are kept (names can hold them).
 */
export function parseFilesFrom(text: string, source: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n').map((l) => l.replace(/\r$/, ''))) {
    if (line.trim() === '' || line.startsWith('#')) continue
    if (!line.startsWith('/')) {
      out.push(line)
      continue
    }
    const root = source.replace(/\/+$/, '')
    if (line !== root && !line.startsWith(root + '/')) throw new UsageError(`--files-from: ${line} is not inside the source ${source}`)
    out.push(line.slice(root.length + 1) || '.')
  }
  return out
}
