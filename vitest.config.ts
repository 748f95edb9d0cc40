import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

const controlPlaneSetup = new URL('./libs/testbed/src/vitest-global-setup.ts', import.meta.url).pathname;

/**
 * Every Nx project contributes up to three vitest projects:
 *  - `<name>`      unit tests (`*.test.ts`): pure, parallel;
 *  - `<name>:int`  tests against the shared real control plane (`*.int.test.ts`);
 *  - `<name>:e2e`  tests that need root and network namespaces (`*.kernel.test.ts`, `*.e2e.test.ts`).
 * Integration and e2e groups run one after another (groupOrder): controllers act on cluster-scoped
 * objects and the kernel tests share the machine, so they must not interleave.
 */
const projectDirs = [
  'libs/api-types', 'libs/controller-kit', 'libs/netlink', 'libs/testbed', 'libs/tunnel-protocol', 'libs/pki', 'libs/node-certs',
  'apps/gateway-pickup', 'apps/tunnel-agent', 'apps/proxy-server', 'apps/proxy-client', 'apps/ravenctl', 'test',
];

function projectsFor(dir: string, index: number): TestProjectInlineConfiguration[] {
  const name = dir === 'test' ? 'workspace' : dir.split('/')[1]!;
  const root = `./${dir}`;
  return [
    { test: { name, root, include: ['**/*.test.ts'], exclude: ['**/*.{int,kernel,e2e}.test.ts', '**/node_modules/**'] } },
    {
      test: {
        name: `${name}:int`, root, include: ['**/*.int.test.ts'], exclude: ['**/node_modules/**'],
        globalSetup: [controlPlaneSetup], fileParallelism: false, testTimeout: 60_000, hookTimeout: 120_000,
        sequence: { groupOrder: 1 + index },
      },
    },
    {
      test: {
        name: `${name}:e2e`, root, include: ['**/*.{kernel,e2e}.test.ts'], exclude: ['**/node_modules/**'],
        globalSetup: [controlPlaneSetup], fileParallelism: false, testTimeout: 180_000, hookTimeout: 300_000,
        sequence: { groupOrder: 100 + index },
      },
    },
  ];
}

// `npm run test:unit` sets RAVEN_TEST_TIER=unit: the fast tier, without root, Go binaries or a control plane.
const unitOnly = process.env.RAVEN_TEST_TIER === 'unit';

export default defineConfig({
  test: {
    projects: projectDirs.flatMap((dir, index) => (unitOnly ? projectsFor(dir, index).slice(0, 1) : projectsFor(dir, index))),
    passWithNoTests: true,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
