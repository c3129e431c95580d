// Hostile manifests, index files and pack headers: absurd counts, offsets and lengths (checks: hostile.cases.ts).
import {HOSTILE_CASES} from '../helpers/hostilerepo.js'
import {hostileSuite} from './hostile.cases.js'

hostileSuite(HOSTILE_CASES.filter((c) => !c.soakOnly && /^(index|pack):|manifest|control/.test(c.name)))
