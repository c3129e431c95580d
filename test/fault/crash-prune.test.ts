// Crash points of `ckpt prune` (the checks: crash.cases.ts).
import {crashSuite} from './crash.cases.js'

crashSuite('prune')
