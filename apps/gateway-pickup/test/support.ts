import { SYSTEM_NAMESPACE, gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { RESOURCES, isNotFound, type KubeClient } from '@raven/controller-kit';
import { startApp, waitFor, type AppProcess, type ClusterInfo } from '@raven/testbed';

export const ALL_LOOPS = 'gatewaypickup,gatewaydns,gatewayinternalservice,gatewaypublicservice';

export type PickupProcess = AppProcess;

/** Runs the real gateway-pickup (bundle under `npm test`) with its own ServiceAccount's token, and waits for /readyz. */
export function startPickup(cluster: ClusterInfo, opts: { args?: string[]; name?: string; waitReady?: boolean; kubeconfig?: string } = {}): Promise<PickupProcess> {
  return startApp('gateway-pickup', {
    access: cluster, serviceAccount: 'raven-gateway-pickup', kubeconfig: opts.kubeconfig, name: opts.name, waitReady: opts.waitReady,
    args: [`--controllers=${ALL_LOOPS}`, '--leader-elect=false', ...(opts.args ?? [])],
  });
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
