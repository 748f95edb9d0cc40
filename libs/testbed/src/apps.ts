import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const WORKSPACE_ROOT = new URL('../../../', import.meta.url).pathname;

/** tsx's loader as an absolute URL, usable from any working directory. */
export const TSX_LOADER = import.meta.resolve('tsx');

export type AppName = 'gateway-pickup' | 'tunnel-agent' | 'proxy-server' | 'proxy-client';

/**
 * How to launch one of our apps. `RAVEN_APP_MODE=bundle` (what `npm test` sets after `nx build`) runs the
 * shipped bundle `dist/apps/<app>/main.js`; otherwise the TypeScript sources run through tsx, so a test run
 * never exercises a stale bundle.
 */
export function appCommand(app: AppName): { command: string; args: string[] } {
  const bundle = join(WORKSPACE_ROOT, 'dist/apps', app, 'main.js');
  if (process.env.RAVEN_APP_MODE === 'bundle') {
    if (!existsSync(bundle)) throw new Error(`RAVEN_APP_MODE=bundle but ${bundle} is missing; run npm run build`);
    return { command: process.execPath, args: ['--enable-source-maps', bundle] };
  }
  // tsx by absolute URL: processes started inside a box node run with `/` as their directory, where a bare
  // `--import tsx` would not resolve.
  return { command: process.execPath, args: ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps', app, 'src/main.ts')] };
}
