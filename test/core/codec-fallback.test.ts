// The codec without the addon: @mongodb-js/zstd and hash.ts. The addon is looked up on first
// use, after this line, and each test file has modules of its own.
import {describe} from 'vitest'

import {codecCases} from './codec.cases.js'

process.env['CKPT_NATIVE'] = '0'

describe('codec, fallback', () => codecCases('fallback'))
