// Crash points of `ckpt restore (in place)` (the checks: crash.cases.ts).
import {crashSuite} from './crash.cases.js'

crashSuite('restore-inplace')
