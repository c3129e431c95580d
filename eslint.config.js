// Lint rules, and the one rule that keeps the layers honest: imports point down
// commands -> cli -> features (snapshot, restore, retention, verify, prune, live, inspect, copy) -> repo -> store -> core.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const layer = (dir, forbidden, extra = []) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: [
        ...forbidden.map((name) => ({
          regex: `(^|/)${name}/`,
          message: `src/${dir} must not import from src/${name}: imports point down the layers (see docs/DESIGN.md).`,
        })),
        ...extra,
      ],
    }],
  },
})

const noCli = [
  {regex: '^@oclif/', message: 'only src/cli and src/commands may use oclif.'},
  {regex: '^ora$', message: 'only src/cli may draw progress.'},
]
const features = ['snapshot', 'restore', 'retention', 'verify', 'prune', 'live', 'inspect', 'copy']

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'build/**', 'bench/out/**', 'coverage/**']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {globals: {process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', performance: 'readonly'}},
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_'}],
      'no-constant-condition': ['error', {checkLoops: false}],
    },
  },
  layer('core', ['store', 'repo', ...features, 'cli', 'commands'], noCli),
  layer('store', ['repo', ...features, 'cli', 'commands'], noCli),
  layer('repo', [...features, 'cli', 'commands'], noCli),
  ...features.map((f) => layer(f, ['cli', 'commands'], noCli)),
  layer('inspect', ['restore', 'cli', 'commands'], noCli), // reads trees itself: restore's reader writes
  layer('cli', ['commands']),
)
