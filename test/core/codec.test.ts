// The codec through the native addon (src/native/zstd.c).
import {describe} from 'vitest'

import {codecCases} from './codec.cases.js'

describe('codec, native', () => codecCases('native'))
