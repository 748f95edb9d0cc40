import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageNodePath, imageNodeVersion } from '../scripts/image-node.mjs';
import { WORKSPACE_ROOT, imageNodeVersion as testbedImageNodeVersion } from '@raven/testbed';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A tree whose four Dockerfiles declare these NODE_IMAGE lines. */
function tree(lines: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'raven-image-node-'));
  dirs.push(root);
  ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'].forEach((app, i) => {
    mkdirSync(join(root, 'apps', app), { recursive: true });
    writeFileSync(join(root, 'apps', app, 'Dockerfile'), `# syntax\n${lines[i] ?? ''}\nFROM \${NODE_IMAGE}\n`);
  });
  return root;
}

describe('imageNodeVersion (the Node the tests run the bundles on)', () => {
  const same = Array(4).fill('ARG NODE_IMAGE=node:22.22.0-bookworm-slim');
  it.each<[string, string[], string | RegExp]>([
    ['four Dockerfiles that agree', same, '22.22.0'],
    ['one that differs', [...same.slice(0, 3), 'ARG NODE_IMAGE=node:20.1.0-bookworm-slim'], /different Node versions: 22\.22\.0, 20\.1\.0/],
    ['one without the argument', [...same.slice(0, 3), 'FROM node:22'], /apps\/proxy-client\/Dockerfile declares no ARG NODE_IMAGE/],
    ['a tag that is not node:<x.y.z>-', [...same.slice(0, 1), 'ARG NODE_IMAGE=node:lts', ...same.slice(2)], /apps\/tunnel-agent\/Dockerfile declares no ARG NODE_IMAGE/],
  ])('%s', (_what, lines, want) => {
    const root = tree(lines);
    if (typeof want === 'string') expect(imageNodeVersion(root)).toBe(want);
    else expect(() => imageNodeVersion(root)).toThrow(want);
  });

  it('is what the test bed launches the bundles with, under the binary cache', () => {
    expect(testbedImageNodeVersion()).toBe(imageNodeVersion(WORKSPACE_ROOT));
    expect(imageNodePath('22.22.0')).toMatch(/\/node-v22\.22\.0\/node$/);
  });
});
