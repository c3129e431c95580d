// Directory trees for the benchmark: walk, stamp fixed times, count, and compare a restore with its source.
import {closeSync, lstatSync, lutimesSync, openSync, readdirSync, readlinkSync, readSync, utimesSync} from 'node:fs'
import {join} from 'node:path'

/** Every entry under root (root excluded) as {rel, path, st}, sorted by path; children before nothing in particular. */
export function walk(root) {
  const out = []
  const visit = (dir, rel) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name)
      const r = rel ? `${rel}/${name}` : name
      const st = lstatSync(path)
      out.push({rel: r, path, st})
      if (st.isDirectory()) visit(path, r)
    }
  }
  visit(root, '')
  return out
}

export function treeStats(root) {
  const s = {files: 0, dirs: 0, symlinks: 0, bytes: 0, largestFiles: []}
  const files = []
  for (const e of walk(root)) {
    if (e.st.isFile()) {
      s.files++
      s.bytes += e.st.size
      files.push({rel: e.rel, size: e.st.size})
    } else if (e.st.isDirectory()) s.dirs++
    else if (e.st.isSymbolicLink()) s.symlinks++
  }
  s.largestFiles = files.sort((a, b) => b.size - a.size || (a.rel < b.rel ? -1 : 1)).slice(0, 8)
  return s
}

/**
 * Sets mtime on the listed entries: files and symlinks in walk order, then directories deepest first (after
 * their children). The order fixes which file gets the newest ctime, which matters to borg: its files cache
 * never keeps the file with the newest ctime, so that file is read again by every `borg create`. Walk order
 * makes it a small file under state/, as it would be for a state directory written front to back.
 */
export function stamp(entries, mtime) {
  const depth = (e) => e.rel.split('/').length
  const dirs = entries.filter((e) => e.st.isDirectory()).sort((a, b) => depth(b) - depth(a))
  const sorted = [...entries.filter((e) => !e.st.isDirectory()), ...dirs]
  for (const e of sorted) {
    if (e.st.isSymbolicLink()) lutimesSync(e.path, mtime, mtime)
    else utimesSync(e.path, mtime, mtime)
  }
}

const BUF = 1 << 20

function sameContent(a, b, size) {
  const fa = openSync(a, 'r')
  const fb = openSync(b, 'r')
  const ba = Buffer.allocUnsafe(BUF)
  const bb = Buffer.allocUnsafe(BUF)
  try {
    for (let pos = 0; pos < size;) {
      const na = readSync(fa, ba, 0, BUF, pos)
      const nb = readSync(fb, bb, 0, BUF, pos)
      if (na !== nb || na === 0) return false
      if (ba.compare(bb, 0, nb, 0, na) !== 0) return false
      pos += na
    }
    return true
  } finally {
    closeSync(fa)
    closeSync(fb)
  }
}

const kindOf = (st) => (st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other')

/**
 * Compares a restored tree with its source: names, types, sizes, bytes (read and compared directly, which is
 * stronger than comparing hashes), symlink targets. Permission bits and mtimes are reported, not required.
 */
export function compareTrees(source, restored) {
  const a = new Map(walk(source).map((e) => [e.rel, e]))
  const b = new Map(walk(restored).map((e) => [e.rel, e]))
  const r = {equal: true, entries: a.size, missing: 0, extra: 0, type: 0, size: 0, content: 0, symlink: 0,
    mode: 0, mtime: 0, examples: []}
  const note = (what, rel) => {
    r[what]++
    if (r.examples.length < 8) r.examples.push(`${what}: ${rel}`)
  }
  for (const [rel, x] of a) {
    const y = b.get(rel)
    if (!y) {
      note('missing', rel)
      continue
    }
    const kind = kindOf(x.st)
    if (kind !== kindOf(y.st)) {
      note('type', rel)
      continue
    }
    if ((x.st.mode & 0o7777) !== (y.st.mode & 0o7777) && kind !== 'symlink') note('mode', rel)
    if (Math.trunc(x.st.mtimeMs / 1000) !== Math.trunc(y.st.mtimeMs / 1000)) note('mtime', rel)
    if (kind === 'file') {
      if (x.st.size !== y.st.size) note('size', rel)
      else if (!sameContent(x.path, y.path, x.st.size)) note('content', rel)
    } else if (kind === 'symlink' && readlinkSync(x.path) !== readlinkSync(y.path)) note('symlink', rel)
  }
  for (const rel of b.keys()) if (!a.has(rel)) note('extra', rel)
  r.equal = r.missing + r.extra + r.type + r.size + r.content + r.symlink === 0
  return r
}
