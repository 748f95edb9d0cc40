import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYSTEM_NAMESPACE } from '@raven/api-types';
import { appCommand, type AppName } from './apps.ts';
import { freePort } from './net.ts';
import { ManagedProcess, waitFor } from './process.ts';
import { serviceAccountKubeconfig, type ApiAccess } from './service-accounts.ts';

export interface AppProcess {
  proc: ManagedProcess;
  healthPort: number;
  logFile: string;
  metrics(): Promise<string>;
  get(path: string): Promise<Response>;
  stop(): Promise<void>;
}

export interface StartAppOptions {
  /** API access; the app authenticates as `serviceAccount` (its own RBAC) unless `kubeconfig` is given. */
  access: ApiAccess;
  serviceAccount: string;
  kubeconfig?: string;
  args?: string[];
  name?: string;
  waitReady?: boolean;
  /** Prefix the command, for example with `ip netns exec <ns>`. */
  wrap?: string[];
  env?: NodeJS.ProcessEnv;
  /** Survive this process (the demo's `--keep`). */
  detached?: boolean;
}

/** Runs one of our apps as a real process with its ServiceAccount's token, health on a free port, and waits for /readyz. */
export async function startApp(app: AppName, opts: StartAppOptions): Promise<AppProcess> {
  const dir = mkdtempSync(join(tmpdir(), `raven-${app}-`));
  const kubeconfig = opts.kubeconfig ?? (await serviceAccountKubeconfig(opts.access, SYSTEM_NAMESPACE, opts.serviceAccount, dir));
  const healthPort = await freePort();
  const { command, args } = appCommand(app);
  const logFile = join(dir, `${opts.name ?? app}.log`);
  const argv = [...args, `--kubeconfig=${kubeconfig}`, `--health-port=${healthPort}`, '--health-bind=127.0.0.1', ...(opts.args ?? [])];
  const proc = ManagedProcess.start({
    name: opts.name ?? app, logFile, env: opts.env, detached: opts.detached,
    command: opts.wrap?.[0] ?? command,
    args: opts.wrap ? [...opts.wrap.slice(1), command, ...argv] : argv,
  });
  const get = (path: string) => fetch(`http://127.0.0.1:${healthPort}${path}`);
  if (opts.waitReady ?? true) {
    await waitFor(`${opts.name ?? app} /readyz`, async () => {
      proc.assertRunning();
      return (await get('/readyz')).status === 200;
    }, 30_000);
  }
  return { proc, healthPort, logFile, get, metrics: async () => (await get('/metrics')).text(), stop: () => proc.stop() };
}
