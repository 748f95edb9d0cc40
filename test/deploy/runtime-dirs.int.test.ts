import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createNetns, freePort, ManagedProcess, uniqueName, waitFor, WORKSPACE_ROOT, writeKubeconfig, type Netns,
} from '@raven/testbed';
import { APPS, CommandFailedError, run, type App } from './support.ts';

/**
 * Acceptance 3, the runtime half: the directory each Dockerfile copies into its image (dist/apps/<app>: the bundle,
 * its source map, package.json) runs on its own. It is copied to a temporary directory with no node_modules anywhere
 * above it and run with plain `node` and a bare environment, as the image's ENTRYPOINT would, so a dependency
 * missing from the bundle fails here. gateway-pickup and tunnel-agent are shown serving /healthz (and pickup
 * /readyz, against the shared cluster); the proxies serve /healthz while their API server is unreachable.
 */
const cluster = inject('cluster');
const root = mkdtempSync(join(tmpdir(), 'raven-runtime-'));
const dirOf = (app: App) => join(root, app);
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root };
const started: ManagedProcess[] = [];
let netns: Netns | undefined;

beforeAll(async () => {
  // Under `npm test` the bundles are the build's output (RAVEN_APP_MODE=bundle); otherwise bundle the sources now.
  for (const app of APPS) {
    if (process.env.RAVEN_APP_MODE !== 'bundle') await run(process.execPath, [join(WORKSPACE_ROOT, 'scripts/bundle.mjs'), app]);
    cpSync(join(WORKSPACE_ROOT, 'dist/apps', app), dirOf(app), { recursive: true });
  }
}, 120_000);

afterAll(async () => {
  for (const p of started) await p.stop();
  await netns?.destroy();
  rmSync(root, { recursive: true, force: true });
});

function start(app: App, args: string[], wrap: string[] = []): ManagedProcess {
  const argv = [join(dirOf(app), 'main.js'), ...args];
  const proc = ManagedProcess.start({
    name: app, command: wrap[0] ?? process.execPath, args: wrap.length ? [...wrap.slice(1), process.execPath, ...argv] : argv,
    logFile: join(root, `${app}.log`), cwd: dirOf(app), env,
  });
  started.push(proc);
  return proc;
}

async function get(url: string, via?: Netns): Promise<{ status: number; body: string }> {
  if (!via) {
    const res = await fetch(url);
    return { status: res.status, body: await res.text() };
  }
  const script = `fetch(${JSON.stringify(url)}).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))`;
  return JSON.parse(await run('ip', ['netns', 'exec', via.name, process.execPath, '-e', script], { env })) as { status: number; body: string };
}

/** A kubeconfig for an API server that is not there: the app starts, serves health, and never gets ready. */
async function unreachableKubeconfig(): Promise<string> {
  return writeKubeconfig(join(root, 'unreachable.kubeconfig'), `https://127.0.0.1:${await freePort()}`, cluster.caPem, { token: 'none' });
}

describe('the bundle directory alone', () => {
  it('has no node_modules in or above it', () => {
    for (let dir = root; dir !== dirname(dir); dir = dirname(dir)) expect(existsSync(join(dir, 'node_modules')), dir).toBe(false);
    for (const app of APPS) expect(readdirSync(dirOf(app)).sort()).toEqual(expect.arrayContaining(['main.js', 'main.js.map', 'package.json']));
    for (const app of APPS) expect(readdirSync(dirOf(app)).filter((f) => f === 'node_modules')).toEqual([]);
  });

  it.each(APPS)('%s: --help', async (app) => {
    const out = await run(process.execPath, [join(dirOf(app), 'main.js'), '--help'], { cwd: dirOf(app), env });
    expect(out).toMatch(new RegExp(`^Usage: ${app} (\\[\\w+\\] )?\\[flags\\]`));
    expect(out).toContain('--kubeconfig');
  });

  it.each(APPS)('%s: a bad flag is a clean ConfigError, exit code 2', async (app) => {
    const err = await run(process.execPath, [join(dirOf(app), 'main.js'), '--no-such-flag'], { cwd: dirOf(app), env }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    expect((err as CommandFailedError).code).toBe(2);
    // The apps log JSON lines (pino) to stdout.
    expect(JSON.parse((err as CommandFailedError).stdout.split('\n')[0]!)).toMatchObject({ level: 'fatal', err: { type: 'ConfigError', message: expect.stringContaining('no-such-flag') } });
  });
});

describe('serving health on its own', () => {
  it('gateway-pickup: /healthz, and /readyz once its informers synced against the shared cluster', async () => {
    const port = await freePort();
    const proc = start('gateway-pickup', [
      `--kubeconfig=${cluster.kubeconfig}`, `--namespace=${uniqueName('raven-rt')}`, '--controllers=gatewaydns', '--leader-elect=false',
      `--health-port=${port}`, '--health-bind=127.0.0.1',
    ]);
    await waitFor('gateway-pickup /readyz', async () => {
      proc.assertRunning();
      return (await get(`http://127.0.0.1:${port}/readyz`).catch(() => ({ status: 0 }))).status === 200;
    }, 30_000, 200);
    expect((await get(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await get(`http://127.0.0.1:${port}/metrics`)).body).toMatch(/^raven_pickup_/m);
    await proc.stop(10_000);
    expect(await proc.waitExit()).toBe(0);
  });

  it('tunnel-agent, in a network namespace of its own: /healthz, its WireGuard key, and not ready without the API', async () => {
    netns = await createNetns('rvdeploy');
    const port = await freePort();
    const stateDir = join(root, 'tunnel-state');
    // From inside the namespace the cluster's 127.0.0.1 address is unreachable, so the agent never syncs and never
    // touches the kernel; it still starts, initialises its driver and serves health.
    const proc = start('tunnel-agent', [
      `--kubeconfig=${cluster.kubeconfig}`, '--node-name=raven-runtime-test', `--state-dir=${stateDir}`,
      `--health-port=${port}`, '--health-bind=127.0.0.1',
    ], ['ip', 'netns', 'exec', netns.name]);
    const health = await waitFor('tunnel-agent /healthz', async () => {
      proc.assertRunning();
      const res = await get(`http://127.0.0.1:${port}/healthz`, netns).catch(() => undefined);
      return res?.status === 200 ? res : undefined;
    }, 30_000, 250);
    expect(health.status).toBe(200);
    const ready = await get(`http://127.0.0.1:${port}/readyz`, netns);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/data-path.*waiting for/);
    expect(readdirSync(stateDir).length).toBeGreaterThan(0);
    await proc.stop(10_000);
    expect(proc.running).toBe(false);
  });

  it.each(['proxy-server', 'proxy-client'] as const)('%s: /healthz while its API server is unreachable', async (app) => {
    const port = await freePort();
    const proc = start(app, [`--kubeconfig=${await unreachableKubeconfig()}`, '--node-name=raven-runtime-test', `--health-port=${port}`, '--health-bind=127.0.0.1']);
    await waitFor(`${app} /healthz`, async () => {
      proc.assertRunning();
      return (await get(`http://127.0.0.1:${port}/healthz`).catch(() => ({ status: 0 }))).status === 200;
    }, 30_000, 200);
    const ready = await get(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/informers-synced failed/);
    await proc.stop(10_000);
    expect(proc.running).toBe(false);
  });
});
