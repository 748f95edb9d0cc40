import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { binCacheRoot } from './binaries.ts';

export const WORKSPACE_ROOT = new URL('../../../', import.meta.url).pathname;

/**
 * tsx's loader as an absolute URL, usable from any working directory (its package exports `.` as this file).
 * Resolved through require: vitest's global-setup module runner does not support `import.meta.resolve`.
 */
export const TSX_LOADER = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/loader.mjs')).href;

export type AppName = 'gateway-pickup' | 'tunnel-agent' | 'proxy-server' | 'proxy-client';

/** The Node the images ship (the Dockerfiles' NODE_IMAGE); bootstrap --binaries unpacks it (scripts/image-node.mjs). */
export function imageNodeVersion(): string {
  const m = /^ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-/m.exec(readFileSync(join(WORKSPACE_ROOT, 'apps/gateway-pickup/Dockerfile'), 'utf8'));
  if (!m) throw new Error('apps/gateway-pickup/Dockerfile declares no ARG NODE_IMAGE=node:<version>-...');
  return m[1]!;
}

export const imageNodePath = (): string => join(binCacheRoot(), `node-v${imageNodeVersion()}`, 'node');

/**
 * How to launch one of our apps. `RAVEN_APP_MODE=bundle` (what `npm test` sets after `nx build`) runs the
 * shipped bundle `dist/apps/<app>/main.js` on the images' Node; otherwise the TypeScript sources run through tsx, so a test run
 * never exercises a stale bundle.
 */
export function appCommand(app: AppName): { command: string; args: string[] } {
  // Extra node flags for every app process, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (NODE_OPTIONS refuses those).
  const nodeArgs = process.env.RAVEN_APP_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const bundle = join(WORKSPACE_ROOT, 'dist/apps', app, 'main.js');
  if (process.env.RAVEN_APP_MODE === 'bundle') {
    if (!existsSync(bundle)) throw new Error(`RAVEN_APP_MODE=bundle but ${bundle} is missing; run npm run build`);
    // As the images run it: on their Node (so the tests prove the version that ships), and without
    // --enable-source-maps, which costs about 30 MB of RSS per process (RAVEN_APP_NODE_ARGS=--enable-source-maps for
    // source stack traces).
    const node = imageNodePath();
    if (!existsSync(node)) throw new Error(`RAVEN_APP_MODE=bundle runs the apps on the images' Node, and ${node} is missing; run node scripts/bootstrap.mjs --binaries`);
    return { command: node, args: [...nodeArgs, bundle] };
  }
  // tsx by absolute URL: processes started inside a box node run with `/` as their directory, where a bare
  // `--import tsx` would not resolve.
  return { command: process.execPath, args: [...nodeArgs, '--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps', app, 'src/main.ts')] };
}
