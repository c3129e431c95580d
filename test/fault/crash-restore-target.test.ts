// Crash points of `ckpt restore --target` (the checks: crash.cases.ts).
import {crashSuite} from './crash.cases.js'

crashSuite('restore-target')
