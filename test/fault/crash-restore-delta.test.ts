// Crash points of a delta restore in place: untouched files hard linked, changed ones rebuilt from
// their old chunks (the checks: crash.cases.ts).
import {crashSuite} from './crash.cases.js'

crashSuite('restore-delta')
