import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYSTEM_NAMESPACE, gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { RESOURCES, isNotFound, type KubeClient } from '@raven/controller-kit';
import { ManagedProcess, appCommand, freePort, serviceAccountKubeconfig, waitFor, type ClusterInfo } from '@raven/testbed';

export const ALL_LOOPS = 'gatewaypickup,gatewaydns,gatewayinternalservice,gatewaypublicservice';

export interface PickupProcess {
  proc: ManagedProcess;
  healthPort: number;
  logFile: string;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Runs the real gateway-pickup (bundle under `npm test`) with its own ServiceAccount's token, and waits for /readyz. */
export async function startPickup(cluster: ClusterInfo, opts: { args?: string[]; name?: string; waitReady?: boolean; kubeconfig?: string } = {}): Promise<PickupProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'raven-pickup-'));
  const kubeconfig = opts.kubeconfig ?? (await serviceAccountKubeconfig(cluster, SYSTEM_NAMESPACE, 'raven-gateway-pickup', dir));
  const healthPort = await freePort();
  const { command, args } = appCommand('gateway-pickup');
  const logFile = join(dir, 'pickup.log');
  const proc = ManagedProcess.start({
    name: opts.name ?? 'gateway-pickup', command, logFile,
    args: [...args, `--kubeconfig=${kubeconfig}`, `--controllers=${ALL_LOOPS}`, `--health-port=${healthPort}`, '--health-bind=127.0.0.1', '--leader-elect=false', ...(opts.args ?? [])],
  });
  const url = (path: string) => `http://127.0.0.1:${healthPort}${path}`;
  if (opts.waitReady ?? true) {
    await waitFor('gateway-pickup /readyz', async () => {
      proc.assertRunning();
      return (await fetch(url('/readyz'))).status === 200;
    }, 30_000);
  }
  return {
    proc, healthPort, logFile,
    metrics: async () => (await fetch(url('/metrics'))).text(),
    stop: () => proc.stop(),
  };
}

export async function getGateway(kube: KubeClient, name: string): Promise<Gateway | undefined> {
  try {
    return gatewayV1beta1Schema.parse(await kube.get(RESOURCES.gateways, { name }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Polls the Gateway until `check` holds; returns it and how long it took. */
export async function waitForGateway(kube: KubeClient, name: string, what: string, check: (gw: Gateway) => boolean, timeoutMs = 15_000): Promise<{ gateway: Gateway; ms: number }> {
  const started = performance.now();
  const gateway = await waitFor(`${name}: ${what}`, async () => {
    const gw = await getGateway(kube, name);
    return gw && check(gw) ? gw : undefined;
  }, timeoutMs, 20);
  return { gateway, ms: performance.now() - started };
}

export const activeIds = (gw: Gateway) => (gw.status?.activeEndpoints ?? []).map((e) => `${e.type}/${e.nodeName}`);

export async function applyRavenConfig(kube: KubeClient, data: { l3: boolean; l7: boolean } | undefined): Promise<void> {
  const ref = { namespace: SYSTEM_NAMESPACE, name: 'raven-cfg' };
  if (!data) {
    await kube.delete(RESOURCES.configMaps, ref).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    return;
  }
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: ref, data: { 'enable-l3-tunnel': String(data.l3), 'enable-l7-proxy': String(data.l7) } };
  try {
    await kube.create(RESOURCES.configMaps, body);
  } catch {
    await kube.patch(RESOURCES.configMaps, ref, { data: body.data }, 'merge');
  }
}

export async function createGateway(kube: KubeClient, name: string, spec: Record<string, unknown>, annotations?: Record<string, string>): Promise<void> {
  await kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name, ...(annotations ? { annotations } : {}) }, spec });
}

export async function patchGatewaySpec(kube: KubeClient, name: string, spec: Record<string, unknown>): Promise<void> {
  await kube.patch(RESOURCES.gateways, { name }, { spec }, 'merge');
}

export async function deleteGateway(kube: KubeClient, name: string): Promise<void> {
  await kube.delete(RESOURCES.gateways, { name }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}
