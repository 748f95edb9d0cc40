// npm run cluster -- up|down|status : a real control plane for local work, kept in .cluster/.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SYSTEM_NAMESPACE } from '@raven/api-types';
import { ControlPlane, ManagedProcess, appCommand, kubectl, pidAlive, serviceAccountKubeconfig, startCluster, waitFor, WORKSPACE_ROOT } from '@raven/testbed';

// RAVEN_CLUSTER_DIR lets a test run its own without touching the user's.
const dir = process.env.RAVEN_CLUSTER_DIR ?? join(WORKSPACE_ROOT, '.cluster');
const kubeconfig = join(dir, 'kubeconfig');

async function status(): Promise<boolean> {
  const state = ControlPlane.readState(dir);
  if (!state) {
    console.log('cluster: down');
    return false;
  }
  const procs = Object.entries(state.pids).map(([name, pid]) => `${name}=${pidAlive(pid) ? 'running' : 'dead'}(${pid})`);
  const healthy = Object.values(state.pids).every(pidAlive);
  let ready = 'unreachable';
  if (healthy) {
    ready = await kubectl(kubeconfig, ['get', '--raw', '/readyz']).then((s) => s.trim(), () => 'not ready');
  }
  console.log(`cluster: ${healthy && ready === 'ok' ? 'up' : 'degraded'}\n  server: ${state.server}\n  kubeconfig: ${kubeconfig}\n  processes: ${procs.join(' ')}\n  apiserver /readyz: ${ready}`);
  return healthy && ready === 'ok';
}

async function down(): Promise<void> {
  const stopped = await ControlPlane.stopFromState(dir);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  console.log(stopped ? 'cluster: stopped and state removed' : 'cluster: was not running');
}

/** gateway-pickup's controllers beside the webhook that startCluster runs, as its own ServiceAccount, detached. */
async function startControllers(controlPlane: ControlPlane): Promise<void> {
  const access = { server: controlPlane.server, kubeconfig: controlPlane.kubeconfig, caPem: controlPlane.caPem };
  const pickupKubeconfig = await serviceAccountKubeconfig(access, SYSTEM_NAMESPACE, 'raven-gateway-pickup', join(dir, 'pki'));
  const { command, args } = appCommand('gateway-pickup');
  const proc = ManagedProcess.start({
    name: 'gateway-pickup',
    command,
    args: [...args, `--kubeconfig=${pickupKubeconfig}`, '--controllers=gatewaypickup,gatewaydns,gatewayinternalservice,gatewaypublicservice,csrapprover', '--health-port=0', '--health-bind=127.0.0.1'],
    logFile: join(dir, 'logs', 'gateway-pickup.log'),
    detached: true,
  });
  controlPlane.adopt(proc);
  await waitFor('gateway-pickup to take the leader Lease', async () => {
    proc.assertRunning();
    const holder = await kubectl(controlPlane.kubeconfig, ['-n', SYSTEM_NAMESPACE, 'get', 'lease', 'raven-gateway-pickup', '-o', 'jsonpath={.spec.holderIdentity}']).catch(() => '');
    return holder.length > 0;
  }, 60_000, 250);
}

async function up(): Promise<void> {
  if (ControlPlane.readState(dir)) {
    if (await status()) return;
    console.log('cluster: found a broken previous run; replacing it');
    await down();
  }
  const started = Date.now();
  const cluster = await startCluster({ dir, detached: true });
  await startControllers(cluster.controlPlane);
  console.log(`cluster: up in ${((Date.now() - started) / 1000).toFixed(1)} s (gateway-pickup's controllers running: Gateways you apply are elected)`);
  console.log(await kubectl(cluster.info().kubeconfig, ['get', 'crd', 'gateways.raven.openyurt.io']));
  await status();
  console.log(`\nUse it with:  kubectl --kubeconfig ${kubeconfig} get gateways`);
  // Detached children keep running; drop our handles so this process can exit.
  process.exit(0);
}

const command = process.argv[2];
const commands: Record<string, () => Promise<unknown>> = { up, down, status };
const run = command ? commands[command] : undefined;
if (!run) {
  console.error('usage: npm run cluster -- up|down|status');
  process.exit(2);
}
run().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
