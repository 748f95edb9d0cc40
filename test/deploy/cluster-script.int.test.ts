import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlPlane, kubectl, pidAlive, TSX_LOADER, waitFor, WORKSPACE_ROOT } from '@raven/testbed';

/** `npm run cluster -- up|status|down` (scripts/cluster.ts) in a directory of its own: Gateways applied to it are elected. */
const dir = join(mkdtempSync(join(tmpdir(), 'raven-cluster-script-')), 'cluster');
const kubeconfig = join(dir, 'kubeconfig');

function cluster(command: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'scripts/cluster.ts'), command], {
      cwd: WORKSPACE_ROOT, env: { ...process.env, RAVEN_CLUSTER_DIR: dir }, timeout: 180_000,
    }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout: stdout + stderr }));
  });
}

afterAll(async () => {
  if (existsSync(dir)) await cluster('down');
  rmSync(join(dir, '..'), { recursive: true, force: true });
}, 60_000);

describe('npm run cluster', () => {
  it('up starts a control plane with gateway-pickup\'s controllers: a Gateway applied to it is elected', async () => {
    const up = await cluster('up');
    expect(up.code, up.stdout).toBe(0);
    expect(up.stdout).toContain('gateway-pickup\'s controllers running');
    // As the README's install says: raven-cfg turns the modes on.
    await kubectl(kubeconfig, ['apply', '-f', join(WORKSPACE_ROOT, 'k8s/examples/walkthrough/raven-cfg.yaml')]);
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'local-1', labels: { 'raven.openyurt.io/gateway': 'gw-local' } } };
    await kubectl(kubeconfig, ['apply', '-f', '-'], JSON.stringify(node));
    await kubectl(kubeconfig, ['patch', 'node', 'local-1', '--subresource=status', '--type=merge', '-p', JSON.stringify({
      status: { addresses: [{ type: 'InternalIP', address: '172.16.9.10' }], conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ready', lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() }] },
    })]);
    await kubectl(kubeconfig, ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw-local' },
      spec: { tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'local-1', underNAT: true, port: 4500, type: 'tunnel' }] },
    }));
    await waitFor('gw-local elected', async () => (await kubectl(kubeconfig, ['get', 'gateway', 'gw-local', '-o', 'jsonpath={.status.activeEndpoints[*].nodeName}'])).trim() === 'local-1', 30_000, 250);
    expect((await cluster('status')).stdout).toMatch(/^cluster: up$/m);
  }, 240_000);

  it('down stops every process it started and removes its state', async () => {
    const pids = Object.values(ControlPlane.readState(dir)?.pids ?? {});
    expect(pids.length).toBeGreaterThanOrEqual(3);
    const down = await cluster('down');
    expect(down.code, down.stdout).toBe(0);
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect((await cluster('status')).stdout).toContain('cluster: down');
  }, 60_000);
});
