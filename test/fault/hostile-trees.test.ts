// Hostile trees and data: sizes, owners, nesting, shared subtrees, cycles, names, symlinks (checks: hostile.cases.ts).
import {HOSTILE_CASES} from '../helpers/hostilerepo.js'
import {hostileSuite} from './hostile.cases.js'

hostileSuite(HOSTILE_CASES.filter((c) => !c.soakOnly && !/^(index|pack):|manifest/.test(c.name)))
