// Hostile repository content (test/helpers/hostilerepo.ts): for each case, restore --target,
// verify, verify --read-data and snapshots via the CLI: no stack trace, no hang, a documented
// exit code (0 only for content that is legitimately fine), peak RSS under 300 MB, nothing
// written outside the target. Split over two files to keep each short.
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {removeTree} from '../../src/restore/deeptree.js'
import {ckpt} from '../helpers/cli.js'
import {Crafter, type HostileCase, hostileLayout, probeRepository} from '../helpers/hostilerepo.js'
import {mountTmpfs, unmount} from '../helpers/tmpfs.js'
import {tempDir} from '../helpers/tree.js'

/** The cases that cost memory, depth or disk when not refused: a file of their own. */
export const BOMBS = /1 GiB|10,000 nested|512 times/

export function hostileSuite(cases: readonly HostileCase[]): void {
  let root: string
  let template: string
  const mounts: string[] = []
  beforeAll(async () => {
    root = await tempDir('ckpt-hostile-')
    template = path.join(root, 'template')
    await ckpt(['init', '-q', '--repo', template])
  })
  afterAll(async () => {
    for (const m of mounts) unmount(m)
    if (root) removeTree(root) // restored trees may be deeper than fs.rm reaches
  })

  test.for(cases.map((c, i) => ({...c, i})))('$name', {timeout: 300_000}, async (c, ctx) => {
    const layout = await hostileLayout(root, template, `case-${c.i}`)
    if (c.smallTarget) {
      // Gigabytes would be written: the target gets a 64 MiB file system of its own.
      const m = mountTmpfs(layout.sentinel, 64 * 1024 * 1024)
      if (!m.ok) {
        console.warn(`skipped "${c.name}": needs a small tmpfs for the target and ${m.reason}`)
        ctx.skip()
      }
      mounts.push(layout.sentinel)
    }
    const id = await c.build(new Crafter(layout.repo), layout.outside)
    const r = await probeRepository(layout, id, c)
    expect(r.problems).toEqual([])
  })
}
