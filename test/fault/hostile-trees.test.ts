// Hostile trees and data: sizes, owners, cycles, unsafe names, symlink tricks (checks: hostile.cases.ts).
import {HOSTILE_CASES} from '../helpers/hostilerepo.js'
import {BOMBS, hostileSuite} from './hostile.cases.js'

hostileSuite(HOSTILE_CASES.filter((c) => !c.soakOnly && !BOMBS.test(c.name) && !/^(index|pack):|manifest/.test(c.name)))
