import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WORKSPACE_ROOT } from '@raven/testbed';

/** The files vitest would run with this environment, as `vitest list --filesOnly` prints them. */
function listedFiles(env: Record<string, string>): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(WORKSPACE_ROOT, 'node_modules/vitest/vitest.mjs'), 'list', '--filesOnly'], {
      cwd: WORKSPACE_ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, timeout: 120_000, maxBuffer: 8 << 20,
    }, (err, stdout) => (err ? reject(err) : resolve(stdout.split('\n').map((l) => l.replace(/^\[[^\]]+\] /, '').trim()).filter((l) => l.endsWith('.test.ts')))));
  });
}

const NEEDS_ROOT_OR_CLUSTER = /\.(int|kernel|e2e)\.test\.ts$/;

describe('npm run test:unit: the fast tier, without root, Go or a control plane', () => {
  it('installs only npm packages and selects the unit tier', () => {
    const script = (JSON.parse(readFileSync(join(WORKSPACE_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['test:unit'];
    expect(script).toBe('node scripts/bootstrap.mjs --npm && RAVEN_TEST_TIER=unit vitest run');
  });

  it('runs every unit test file and none of the integration, kernel or end-to-end ones', async () => {
    const [unit, all] = await Promise.all([listedFiles({ RAVEN_TEST_TIER: 'unit' }), listedFiles({})]);
    expect(unit.filter((f) => NEEDS_ROOT_OR_CLUSTER.test(f))).toEqual([]);
    expect(unit.sort()).toEqual(all.filter((f) => !NEEDS_ROOT_OR_CLUSTER.test(f)).sort());
    expect(unit.length).toBeGreaterThan(50);
    expect(all.filter((f) => NEEDS_ROOT_OR_CLUSTER.test(f)).length).toBeGreaterThan(10);
  }, 240_000);
});
