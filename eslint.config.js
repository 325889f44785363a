import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'coverage/', 'dist/', 'test-artifacts/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // The dashboard: plain ES modules run by the browser.
    files: ['src/dashboard/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(['window', 'document', 'sessionStorage', 'fetch', 'location', 'history', 'navigator', 'Node', 'URLSearchParams', 'ResizeObserver', 'setTimeout', 'clearTimeout'].map((g) => [g, 'readonly'])),
    },
  },
);
