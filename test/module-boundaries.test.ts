import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const eslint = new ESLint({ cwd: root });

/** Lints `code` as if it were the file at `path` and returns the module-boundary messages. */
async function boundaryErrors(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${path}` });
  return (result?.messages ?? []).filter((m) => m.ruleId === '@nx/enforce-module-boundaries').map((m) => m.message);
}

// The first lint builds Nx's project graph: seconds on a loaded machine.
describe('module boundaries are enforced by lint', { timeout: 60_000 }, () => {
  it('forbids a proxy app from importing libs/netlink', async () => {
    const errors = await boundaryErrors('apps/proxy-server/src/fixture.ts', "import { x } from '@raven/netlink';\nexport const y = x;\n");
    expect(errors.join('\n')).toMatch(/scope:l7.*can only depend on libs tagged with "scope:shared"/);
  });

  it('forbids an app from importing another app', async () => {
    const errors = await boundaryErrors('apps/gateway-pickup/src/fixture.ts', "import { x } from '@raven/tunnel-agent';\nexport const y = x;\n");
    expect(errors.join('\n')).toMatch(/Imports of apps are forbidden/);
  });

  it('forbids shipped code from importing the testbed, but lets tests use it', async () => {
    const shipped = await boundaryErrors('apps/gateway-pickup/src/fixture.ts', "import { x } from '@raven/testbed';\nexport const y = x;\n");
    expect(shipped).not.toEqual([]);
    const test = await boundaryErrors('apps/gateway-pickup/test/fixture.test.ts', "import { x } from '@raven/testbed';\nexport const y = x;\n");
    expect(test).toEqual([]);
  });

  it('allows the tunnel-agent to use libs/netlink', async () => {
    expect(await boundaryErrors('apps/tunnel-agent/src/fixture.ts', "import { x } from '@raven/netlink';\nexport const y = x;\n")).toEqual([]);
  });
});
