import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const WORKSPACE_ROOT = new URL('../../../', import.meta.url).pathname;

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
  return { command: process.execPath, args: ['--import', 'tsx', join(WORKSPACE_ROOT, 'apps', app, 'src/main.ts')] };
}
