// Where a repository is: the one table of location schemes. A location is a directory path or
// `s3://BUCKET/PREFIX`; anything else that looks like a scheme (`sftp:`, `rest:`, a typo such
// as `s3:/x`) is a usage error, never a local directory of that name. Every command opens its
// repository's backend through openBackend (registry.ts), so a new backend is one entry in
// SCHEMES. The S3 backend (and the AWS SDK under it) is loaded only when an s3 location is
// opened: local commands never pay for it. This file is small and imports no backend: the CLI's
// base command parses locations at start-up.
import path from 'node:path'

import {UsageError} from '../core/errors.js'
import type {Backend} from './backend.js'

export interface RepoLocation {
  /** 'local' for a directory path, else the scheme's name. */
  readonly scheme: string
  /** As messages show it: the absolute path, or `s3://bucket/prefix`. */
  readonly root: string
  /** The absolute path, for a local repository. */
  readonly path?: string
  readonly bucket?: string
  /** Key prefix without a trailing slash ('' for the bucket's root). */
  readonly prefix?: string
}

export interface Scheme {
  usage: string
  parse(text: string): RepoLocation
  open(location: RepoLocation): Promise<Backend>
}

// S3 bucket names: 3-63 of lowercase letters, digits, dots and hyphens (AWS's rules; other engines accept a subset).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

export const SCHEMES: Record<string, Scheme> = {
  s3: {
    usage: 's3://BUCKET/PREFIX',
    parse(text) {
      const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(text)
      if (!m) throw new UsageError(`invalid repository location "${text}": an S3 location is s3://BUCKET/PREFIX`)
      const bucket = m[1]!
      if (!BUCKET.test(bucket)) throw new UsageError(`invalid bucket name "${bucket}" in "${text}": 3-63 lowercase letters, digits, dots and hyphens`)
      const prefix = (m[2] ?? '').replace(/\/+$/, '')
      if (prefix.split('/').some((part) => part === '' || part === '.' || part === '..') && prefix !== '') {
        throw new UsageError(`invalid prefix "${prefix}" in "${text}": empty, "." and ".." path components are not allowed`)
      }
      return {scheme: 's3', root: `s3://${bucket}${prefix ? `/${prefix}` : ''}`, bucket, prefix}
    },
    async open(location) {
      const {openS3Backend} = await import('./s3.js')
      return openS3Backend(location.bucket!, location.prefix!)
    },
  },
}

/** `word:` at the start: a scheme, supported or not (a relative directory with a colon can be written ./name). */
const SCHEME_LIKE = /^([A-Za-z][A-Za-z0-9+.-]*):/

/** Parse a repository location (--repo, CKPT_REPO); a relative path is resolved against `cwd`. */
export function parseLocation(text: string, cwd = process.cwd()): RepoLocation {
  const m = SCHEME_LIKE.exec(text)
  if (!m) {
    const abs = path.resolve(cwd, text)
    return {scheme: 'local', root: abs, path: abs}
  }
  const scheme = SCHEMES[m[1]!.toLowerCase()]
  if (!scheme) {
    const usages = ['a directory path', ...Object.values(SCHEMES).map((s) => s.usage)].join(' or ')
    throw new UsageError(`unsupported repository location "${text}": the repository is ${usages} (a directory whose name has a colon: ./${text})`)
  }
  return scheme.parse(text)
}

