import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS, SERVICES, SYSTEM_NAMESPACE } from '@raven/api-types';
import { RESOURCES, isNotFound, type KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, registerNode, setNodeAddresses, setNodeReady, uniqueName, waitFor } from '@raven/testbed';
import { publicServiceName } from '../src/controllers/public-service.ts';
import { activeIds, applyRavenConfig, createGateway, deleteGateway, patchGatewaySpec, startPickup, waitForGateway, type PickupProcess } from './support.ts';

const cluster = inject('cluster');
let kube: KubeClient;
let pickup: PickupProcess;
const nodes: string[] = [];
const gateways: string[] = [];
const ns = SYSTEM_NAMESPACE;

type Svc = { metadata: { name: string; labels?: Record<string, string> }; spec: { clusterIP?: string; type: string; externalTrafficPolicy?: string; ports: Array<{ name: string; port: number; targetPort: number; protocol: string }> } };
type Slice = { endpoints: Array<{ addresses: string[]; nodeName?: string }>; ports: Array<{ name: string; port: number }>; metadata: { labels: Record<string, string> } };

let n = 0;
async function node(gateway: string, ip = `10.98.0.${++n}`): Promise<string> {
  const name = uniqueName('l7node');
  await registerNode(kube, { name, internalIP: ip, podCIDRs: [`10.120.${n}.0/24`], labels: { [LABELS.gateway]: gateway } });
  nodes.push(name);
  return name;
}

const dnsFile = async () => {
  const cm = await kube.get<{ data?: Record<string, string> }>(RESOURCES.configMaps, { namespace: ns, name: 'edge-tunnel-nodes' }).catch(() => undefined);
  return cm?.data?.['tunnel-nodes'] ?? '';
};
const getOrUndefined = async <T>(type: typeof RESOURCES.services | typeof RESOURCES.endpointSlices, name: string): Promise<T | undefined> => {
  try {
    return await kube.get<T>(type, { namespace: ns, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
};

beforeAll(async () => {
  kube = await adminClient(cluster);
  await applyRavenConfig(kube, { l3: true, l7: false });
  pickup = await startPickup(cluster);
});

afterAll(async () => {
  for (const g of gateways) await deleteGateway(kube, g);
  await waitFor('internal service removed', async () => !(await getOrUndefined(RESOURCES.services, SERVICES.proxyInternal)), 10_000).catch(() => undefined);
  await pickup?.stop();
  for (const x of nodes) await deleteNode(kube, x);
  await applyRavenConfig(kube, { l3: true, l7: true });
  kube.close();
});

describe('gatewaydns: kube-system/edge-tunnel-nodes', () => {
  it('follows node add, address change and delete, in the upstream format', async () => {
    const x = await node('dns-none', '10.98.1.1');
    await waitFor('line for the new node', async () => (await dnsFile()).split('\n').includes(`10.98.1.1\t${x}`), 5_000);
    const file = await dnsFile();
    expect(file.endsWith('\n')).toBe(false);
    expect(file.split('\n')).toEqual([...file.split('\n')].sort());
    await setNodeAddresses(kube, x, '10.98.1.2');
    await waitFor('line updated', async () => (await dnsFile()).split('\n').includes(`10.98.1.2\t${x}`), 5_000);
    await deleteNode(kube, x);
    await waitFor('line removed', async () => !(await dnsFile()).includes(x), 5_000);
  });
});

describe('gatewayinternalservice: x-raven-proxy-internal-svc', () => {
  it('gets ports from exposed gateways, backends from active proxies, follows failover, and maps DNS to its ClusterIP', async () => {
    await applyRavenConfig(kube, { l3: true, l7: true });
    const gw1 = uniqueName('gw-exp1');
    gateways.push(gw1);
    const [a, b] = [await node(gw1), await node(gw1)];
    await createGateway(kube, gw1, {
      exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: '10255,9445', proxyHTTPSPort: '10250,9100' }, tunnelConfig: { Replicas: 0 },
      endpoints: [{ nodeName: a, type: 'proxy', publicIP: '198.18.5.1' }, { nodeName: b, type: 'proxy', publicIP: '198.18.5.2' }],
    });
    await waitForGateway(kube, gw1, 'a', (g) => activeIds(g).join() === `proxy/${a}`);
    const svc = await waitFor('service with four ports', async () => {
      const s = await getOrUndefined<Svc>(RESOURCES.services, SERVICES.proxyInternal);
      return s && s.spec.ports.length === 4 ? s : undefined;
    }, 10_000);
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.ports.map((p) => [p.name, p.port, p.targetPort, p.protocol])).toEqual([
      ['http-9445', 9445, 10264, 'TCP'], ['http-10255', 10255, 10264, 'TCP'], ['https-9100', 9100, 10263, 'TCP'], ['https-10250', 10250, 10263, 'TCP'],
    ]);
    const aIP = (await kube.get<{ status: { addresses: Array<{ address: string }> } }>(RESOURCES.nodes, { name: a })).status.addresses[0]!.address;
    const slice = await waitFor('slice with a', async () => {
      const s = await getOrUndefined<Slice>(RESOURCES.endpointSlices, `${SERVICES.proxyInternal}-ipv4`);
      return s && s.endpoints.length === 1 && s.endpoints[0]!.addresses[0] === aIP ? s : undefined;
    }, 10_000);
    expect(slice.metadata.labels['kubernetes.io/service-name']).toBe(SERVICES.proxyInternal);
    expect(slice.ports.map((p) => [p.name, p.port]).sort()).toEqual([['http-10255', 10264], ['http-9445', 10264], ['https-10250', 10263], ['https-9100', 10263]]);

    await waitFor('DNS maps every node to the ClusterIP', async () => {
      const lines = (await dnsFile()).split('\n');
      return lines.length > 1 && lines.every((l) => l.startsWith(`${svc.spec.clusterIP}\t`));
    }, 10_000);

    await setNodeReady(kube, a, 'False');
    await waitForGateway(kube, gw1, 'b', (g) => activeIds(g).join() === `proxy/${b}`);
    await waitFor('slice follows failover to b', async () => {
      const s = await getOrUndefined<Slice>(RESOURCES.endpointSlices, `${SERVICES.proxyInternal}-ipv4`);
      return s?.endpoints.length === 1 && s.endpoints[0]!.nodeName === b;
    }, 10_000);
  });

  it('merges the same port from two gateways into one valid Service port, preferring HTTPS on an http/https clash', async () => {
    const gw2 = uniqueName('gw-exp2');
    gateways.push(gw2);
    const c = await node(gw2);
    await createGateway(kube, gw2, {
      exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: '10250', proxyHTTPSPort: '10250,9200' }, tunnelConfig: { Replicas: 0 },
      endpoints: [{ nodeName: c, type: 'proxy', publicIP: '198.18.5.3' }],
    });
    const svc = await waitFor('service with five ports', async () => {
      const s = await getOrUndefined<Svc>(RESOURCES.services, SERVICES.proxyInternal);
      return s && s.spec.ports.length === 5 ? s : undefined;
    }, 10_000);
    expect(svc.spec.ports.map((p) => p.name)).toEqual(['http-9445', 'http-10255', 'https-9100', 'https-9200', 'https-10250']);
    await waitFor('two backends', async () => (await getOrUndefined<Slice>(RESOURCES.endpointSlices, `${SERVICES.proxyInternal}-ipv4`))?.endpoints.length === 2, 10_000);
  });
});

describe('gatewaypublicservice: LoadBalancer Services', () => {
  it('creates one per active endpoint, takes the public IP from the ingress, follows failover, and leaves nothing stale', async () => {
    const gw = uniqueName('gw-lb');
    gateways.push(gw);
    const [a, b] = [await node(gw), await node(gw)];
    await createGateway(kube, gw, {
      exposeType: 'LoadBalancer', proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 },
      endpoints: [{ nodeName: a, type: 'tunnel' }, { nodeName: a, type: 'proxy' }, { nodeName: b, type: 'tunnel' }, { nodeName: b, type: 'proxy' }],
    });
    await waitForGateway(kube, gw, 'a for both', (g) => activeIds(g).join() === `proxy/${a},tunnel/${a}`);
    const ours = async () => (await kube.list<Svc>(RESOURCES.services, { namespace: ns, labelSelector: `${LABELS.gateway}=${gw}` })).items;
    await waitFor('two services for a', async () => (await ours()).length === 2, 10_000);
    const tunnelSvc = (await ours()).find((s) => s.metadata.labels?.[LABELS.gatewayType] === 'tunnel')!;
    expect(tunnelSvc.metadata.name).toBe(publicServiceName(gw, { nodeName: a, type: 'tunnel' }));
    expect(tunnelSvc.metadata.name.length).toBeLessThanOrEqual(63);
    expect(tunnelSvc.spec).toMatchObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
    expect(tunnelSvc.spec.ports.map((p) => [p.port, p.protocol])).toEqual([[4500, 'UDP']]);

    // A cloud LoadBalancer controller would publish the ingress; the status then carries it as the public IP.
    await kube.patch(RESOURCES.services, { namespace: ns, name: tunnelSvc.metadata.name, subresource: 'status' }, { status: { loadBalancer: { ingress: [{ ip: '198.18.9.9' }] } } }, 'merge');
    await waitForGateway(kube, gw, 'public IP from ingress', (g) => g.status?.activeEndpoints?.find((e) => e.type === 'tunnel')?.publicIP === '198.18.9.9');

    await setNodeReady(kube, a, 'False');
    await waitForGateway(kube, gw, 'b for both', (g) => activeIds(g).join() === `proxy/${b},tunnel/${b}`);
    await waitFor('only b services remain', async () => {
      const names = (await ours()).map((s) => s.metadata.name).sort();
      return JSON.stringify(names) === JSON.stringify([publicServiceName(gw, { nodeName: b, type: 'proxy' }), publicServiceName(gw, { nodeName: b, type: 'tunnel' })].sort());
    }, 10_000);

    await patchGatewaySpec(kube, gw, { exposeType: 'PublicIP', endpoints: [{ nodeName: b, type: 'tunnel', publicIP: '198.18.9.10' }] });
    await waitFor('no LoadBalancer services once not LoadBalancer', async () => (await ours()).length === 0, 10_000);
  });

  it('removes the Services of a deleted Gateway', async () => {
    const gw = uniqueName('gw-lbdel');
    const a = await node(gw);
    await createGateway(kube, gw, { exposeType: 'LoadBalancer', proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: a, type: 'tunnel' }, { nodeName: a, type: 'proxy' }] });
    const ours = async () => (await kube.list<Svc>(RESOURCES.services, { namespace: ns, labelSelector: `${LABELS.gateway}=${gw}` })).items;
    await waitFor('two services', async () => (await ours()).length === 2, 10_000);
    await deleteGateway(kube, gw);
    await waitFor('services gone with the Gateway', async () => (await ours()).length === 0, 10_000);
  });
});
