// Hostile content built to exhaust: a chunk claiming 1 GiB, 10,000 nested directories, a subtree
// referenced 512 times (checks: hostile.cases.ts).
import {HOSTILE_CASES} from '../helpers/hostilerepo.js'
import {BOMBS, hostileSuite} from './hostile.cases.js'

hostileSuite(HOSTILE_CASES.filter((c) => !c.soakOnly && BOMBS.test(c.name)))
