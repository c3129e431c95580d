// Crash points of `ckpt snapshot` (the checks: crash.cases.ts).
import {crashSuite} from './crash.cases.js'

crashSuite('snapshot')
