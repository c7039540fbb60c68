// typescript-eslint's type-aware recommended rules over the whole tree (src, test, bench, scripts).
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

/** node:test's describe/it/before/after return promises the runner itself awaits: not floating. */
const NODE_TEST = ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'];

export default tseslint.config(
  // The kernel's WebAssembly module is generated (npm run build:fused-kernel); dist is tsc's output.
  { ignores: ['dist/**', 'dist*/**', 'node_modules/**', 'src/model/fused/kernel/lstmWasm.ts', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: NODE_TEST }] }],
      // `_` marks a parameter a signature requires and the body does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Tests read JSON documents (HTTP responses, MQTT payloads, manifests) to check their every field: `any` there is the
    // point, and the assertions are the type check. src, bench and scripts keep every rule.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
