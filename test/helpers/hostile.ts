// Test helpers for refusals: what a call threw, and documents edited the way a damaged or hostile
// repository might have them.
import {expect} from 'vitest'

/** Call `fn`, expect it to throw an instance of `Class`, and return that error. */
export function thrownBy<E extends Error>(fn: () => unknown, Class: abstract new (...args: never[]) => E): E {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(Class)
    return err as E
  }
  throw new Error(`expected a ${Class.name}, nothing was thrown`)
}

/** A JSON document with the field at `path` replaced (undefined removes it). */
export function withJsonField(json: Buffer, path: readonly string[], value: unknown): Buffer {
  const doc = JSON.parse(json.toString('utf8')) as Record<string, unknown>
  let o = doc
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>
  if (value === undefined) delete o[path[path.length - 1]!]
  else o[path[path.length - 1]!] = value
  return Buffer.from(JSON.stringify(doc))
}
