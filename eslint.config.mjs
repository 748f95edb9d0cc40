import nx from '@nx/eslint-plugin';

// Module boundaries: apps are leaves (never imported by anything), the L7 proxy apps
// never touch the kernel library, and only tests and tooling may use the testbed.
export const moduleBoundaries = {
  enforceBuildableLibDependency: false,
  allow: [],
  depConstraints: [
    { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'], notDependOnLibsWithTags: ['scope:test'] },
    { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
    { sourceTag: 'scope:l7', notDependOnLibsWithTags: ['scope:l3'] },
    { sourceTag: 'scope:shared', notDependOnLibsWithTags: ['scope:l3', 'scope:test'] },
  ],
};

export default [
  { ignores: ['**/dist', '**/node_modules', '**/.nx', '.cluster', '.box', '**/*.mjs', '**/*.js'] },
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  {
    files: ['**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': ['error', moduleBoundaries],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
];
