import nx from '@nx/eslint-plugin';

// Module boundaries, checked on direct imports: apps are leaves (they never import each other); the L7 proxy
// apps and shared libs never import the kernel library (scope:l3); only tests and tooling use the testbed.
const constraints = (extraForTests) => [
  { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
  { sourceTag: 'scope:control', onlyDependOnLibsWithTags: ['scope:shared', ...extraForTests] },
  { sourceTag: 'scope:l7', onlyDependOnLibsWithTags: ['scope:shared', ...extraForTests] },
  { sourceTag: 'scope:l3', onlyDependOnLibsWithTags: ['scope:shared', 'scope:l3', ...extraForTests] },
  { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared', ...extraForTests] },
  { sourceTag: 'scope:test', onlyDependOnLibsWithTags: ['*'] },
];
// Tests of a lib use the testbed (and the API client), which build on that lib: not a cycle of the shipped code.
const testbedDeps = ['api-types', 'controller-kit', 'pki', 'netlink'];
const boundaries = (extraForTests) => ({
  enforceBuildableLibDependency: false,
  allow: [],
  ignoredCircularDependencies: [...testbedDeps.map((lib) => [lib, 'testbed']), ['api-types', 'controller-kit']],
  depConstraints: constraints(extraForTests),
});
export const moduleBoundaries = boundaries([]);
const TEST_FILES = ['**/test/**/*.ts', '**/*.test.ts', '**/bench/**/*.ts'];

export default [
  { ignores: ['**/dist', '**/node_modules', '**/.nx', '.cluster', '.box', '**/*.mjs', '**/*.js'] },
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  {
    files: ['**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': ['error', moduleBoundaries],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    files: TEST_FILES,
    rules: { '@nx/enforce-module-boundaries': ['error', boundaries(['scope:test'])] },
  },
];
