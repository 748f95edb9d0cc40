import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ANNOTATIONS, HEARTBEAT, LABELS, type Gateway } from '@raven/api-types';
import { HeartbeatRenewer, RESOURCES, createLogger, type KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, labelNode, registerNode, setNodeReady, uniqueName, waitFor } from '@raven/testbed';
import {
  activeIds, applyRavenConfig, createGateway, deleteGateway, getGateway, patchGatewaySpec, startPickup, waitForGateway, type PickupProcess,
} from './support.ts';

const cluster = inject('cluster');
let kube: KubeClient;
let pickup: PickupProcess;
const createdNodes: string[] = [];
const createdGateways: string[] = [];
const log = createLogger('test', { level: 'silent' });

let ipCounter = 10;
async function node(gateway: string, opts: { podCIDRs?: string[]; ready?: 'True' | 'False' } = {}): Promise<string> {
  const name = uniqueName('node');
  ipCounter += 1;
  await registerNode(kube, { name, internalIP: `10.99.${Math.floor(ipCounter / 250)}.${ipCounter % 250}`, podCIDRs: opts.podCIDRs ?? [`10.${100 + (ipCounter % 100)}.${ipCounter % 250}.0/24`], labels: { [LABELS.gateway]: gateway }, ready: opts.ready });
  createdNodes.push(name);
  return name;
}

async function gateway(name: string, spec: Record<string, unknown>, annotations?: Record<string, string>): Promise<string> {
  await createGateway(kube, name, spec, annotations);
  createdGateways.push(name);
  return name;
}

const tunnel = (nodeName: string) => ({ nodeName, type: 'tunnel', underNAT: true });
const proxy = (nodeName: string) => ({ nodeName, type: 'proxy', underNAT: true });
const WG_KEY = `${'k'.repeat(42)}A=`;
const idsAre = (...ids: string[]) => (g: Gateway) => JSON.stringify(activeIds(g)) === JSON.stringify(ids);

beforeAll(async () => {
  kube = await adminClient(cluster);
  await applyRavenConfig(kube, { l3: true, l7: true });
  pickup = await startPickup(cluster, { args: ['--resync-period=3s'] });
});

afterAll(async () => {
  await pickup?.stop();
  for (const g of createdGateways) await deleteGateway(kube, g);
  for (const n of createdNodes) await deleteNode(kube, n);
  await applyRavenConfig(kube, { l3: true, l7: true });
  kube.close();
});

describe('election', () => {
  it('is sticky: an active endpoint stays even when the spec order changes', async () => {
    const gw = uniqueName('gw-sticky');
    const [a, b, c] = [await node(gw), await node(gw), await node(gw)];
    await gateway(gw, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [proxy(a), proxy(b), proxy(c)] });
    await waitForGateway(kube, gw, 'a elected (first in spec)', idsAre(`proxy/${a}`));
    await patchGatewaySpec(kube, gw, { endpoints: [proxy(c), proxy(b), proxy(a)] });
    await new Promise((r) => setTimeout(r, 500));
    expect(activeIds((await getGateway(kube, gw))!)).toEqual([`proxy/${a}`]);
  });

  it('is deterministic when more endpoints are sticky than Replicas (spec order wins)', async () => {
    const gw = uniqueName('gw-det');
    const [a, b] = [await node(gw), await node(gw)];
    await gateway(gw, { proxyConfig: { Replicas: 2 }, tunnelConfig: { Replicas: 0 }, endpoints: [proxy(b), proxy(a)] });
    await waitForGateway(kube, gw, 'both elected', (g) => activeIds(g).length === 2);
    await patchGatewaySpec(kube, gw, { proxyConfig: { Replicas: 1 } });
    await waitForGateway(kube, gw, 'b kept (first sticky in spec order)', idsAre(`proxy/${b}`));
  });

  it('fails over when the active node turns NotReady, and reports Degraded', async () => {
    const gw = uniqueName('gw-notready');
    const [a, b] = [await node(gw), await node(gw)];
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a), tunnel(b)] });
    await waitForGateway(kube, gw, 'a elected', idsAre(`tunnel/${a}`));
    await setNodeReady(kube, a, 'False');
    const { ms } = await waitForGateway(kube, gw, 'b elected', idsAre(`tunnel/${b}`));
    console.log(`failover after NotReady: status written ${ms.toFixed(0)} ms after the Node update`);
    await setNodeReady(kube, b, 'False');
    const { gateway: none } = await waitForGateway(kube, gw, 'nothing active', idsAre());
    expect(none.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'NoEndpointAvailable' });
    expect(none.status?.conditions?.find((c) => c.type === 'Degraded')?.message).toContain(`${a} (NotReady)`);
    await setNodeReady(kube, b, 'True');
    await waitForGateway(kube, gw, 'b back', idsAre(`tunnel/${b}`));
  });

  it('fails over within 1 s of a heartbeat Lease expiring while the Node stays Ready', async () => {
    const gw = uniqueName('gw-hb');
    const [a, b] = [await node(gw), await node(gw)];
    const renewer = new HeartbeatRenewer({ kube, log, component: 'tunnel', nodeName: a });
    const stop = new AbortController();
    const running = renewer.run(stop.signal);
    try {
      await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a), tunnel(b)] });
      await waitForGateway(kube, gw, 'a elected', idsAre(`tunnel/${a}`));
      await new Promise((r) => setTimeout(r, 1_500)); // several renewals: a stays
      expect(activeIds((await getGateway(kube, gw))!)).toEqual([`tunnel/${a}`]);
      stop.abort();
      await running;
      const lastRenewal = Date.now(); // the renew loop has ended; no renewal after this point
      await waitForGateway(kube, gw, 'b elected', idsAre(`tunnel/${b}`), 10_000);
      const afterExpiry = Date.now() - (lastRenewal + 2_000);
      console.log(`heartbeat failover: new active endpoint written ${afterExpiry} ms after the lease expired`);
      expect(afterExpiry).toBeLessThan(1_000);
      const current = (await getGateway(kube, gw))!;
      expect(current.status?.conditions?.find((c) => c.type === 'Degraded')?.message).toContain(`${a} (heartbeat expired)`);
    } finally {
      stop.abort();
      await kube.delete(RESOURCES.leases, { namespace: HEARTBEAT.namespace, name: renewer.leaseName }).catch(() => undefined);
    }
  });

  it('follows Replicas up and down', async () => {
    const gw = uniqueName('gw-replicas');
    const [a, b, c] = [await node(gw), await node(gw), await node(gw)];
    await gateway(gw, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [proxy(a), proxy(b), proxy(c)] });
    await waitForGateway(kube, gw, 'one', (g) => activeIds(g).length === 1);
    await patchGatewaySpec(kube, gw, { proxyConfig: { Replicas: 3 } });
    await waitForGateway(kube, gw, 'three, sorted by node', (g) => JSON.stringify(activeIds(g)) === JSON.stringify([a, b, c].sort().map((n) => `proxy/${n}`)));
    await patchGatewaySpec(kube, gw, { proxyConfig: { Replicas: 0 } });
    await waitForGateway(kube, gw, 'none', idsAre());
  });

  it('drops an endpoint removed from the spec', async () => {
    const gw = uniqueName('gw-removed');
    const [a, b] = [await node(gw), await node(gw)];
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a), tunnel(b)] });
    await waitForGateway(kube, gw, 'a', idsAre(`tunnel/${a}`));
    await patchGatewaySpec(kube, gw, { endpoints: [tunnel(b)] });
    await waitForGateway(kube, gw, 'b', idsAre(`tunnel/${b}`));
  });

  it('drops a node that is unlabelled or deleted, from election and status.nodes', async () => {
    const gw = uniqueName('gw-members');
    const [a, b, c] = [await node(gw), await node(gw), await node(gw)];
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a), tunnel(b)] });
    await waitForGateway(kube, gw, 'a', idsAre(`tunnel/${a}`));
    await labelNode(kube, a, { [LABELS.gateway]: null });
    const { gateway: g1 } = await waitForGateway(kube, gw, 'b after unlabel', idsAre(`tunnel/${b}`));
    expect(g1.status?.nodes?.map((n) => n.nodeName)).toEqual([b, c].sort());
    await deleteNode(kube, b);
    const { gateway: g2 } = await waitForGateway(kube, gw, 'nothing after delete', idsAre());
    expect(g2.status?.nodes?.map((n) => n.nodeName)).toEqual([c]);
  });

  it('elects nothing for a mode raven-cfg disables, or without raven-cfg', async () => {
    const gw = uniqueName('gw-cfg');
    const a = await node(gw);
    await gateway(gw, { endpoints: [tunnel(a), proxy(a)] });
    await waitForGateway(kube, gw, 'both', idsAre(`proxy/${a}`, `tunnel/${a}`));
    try {
      await applyRavenConfig(kube, { l3: false, l7: true });
      await waitForGateway(kube, gw, 'proxy only', idsAre(`proxy/${a}`));
      await applyRavenConfig(kube, { l3: true, l7: false });
      await waitForGateway(kube, gw, 'tunnel only', idsAre(`tunnel/${a}`));
      await applyRavenConfig(kube, undefined);
      const { gateway: g } = await waitForGateway(kube, gw, 'nothing without raven-cfg', idsAre());
      expect(g.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('NoModeEnabled');
    } finally {
      await applyRavenConfig(kube, { l3: true, l7: true });
    }
    await waitForGateway(kube, gw, 'both again', idsAre(`proxy/${a}`, `tunnel/${a}`));
  });
});

describe('active endpoint details', () => {
  it('keeps spec config keys (publicKey) and adds the mode flag', async () => {
    const gw = uniqueName('gw-config');
    const a = await node(gw);
    await gateway(gw, { proxyConfig: { Replicas: 0 }, endpoints: [{ ...tunnel(a), config: { publicKey: WG_KEY } }] });
    const { gateway: g } = await waitForGateway(kube, gw, 'a', idsAre(`tunnel/${a}`));
    expect(g.status?.activeEndpoints?.[0]?.config).toEqual({ publicKey: WG_KEY, 'enable-l3-tunnel': 'true' });
  });

  it('takes the public IP from the spec, else the public-ip annotation; the ExternalIP only when the admin opts in', async () => {
    const gw = uniqueName('gw-pubip');
    const annotated = uniqueName('node');
    await registerNode(kube, { name: annotated, internalIP: '10.93.0.1', externalIP: '198.18.7.1', podCIDRs: [], labels: { [LABELS.gateway]: gw }, annotations: { [ANNOTATIONS.publicIP]: '198.18.7.2' } });
    createdNodes.push(annotated);
    const plain = uniqueName('node');
    await registerNode(kube, { name: plain, internalIP: '10.93.0.2', externalIP: '198.18.7.3', podCIDRs: [], labels: { [LABELS.gateway]: gw } });
    createdNodes.push(plain);
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 2 }, endpoints: [{ nodeName: annotated, type: 'tunnel' }, { nodeName: annotated, type: 'proxy', publicIP: '198.18.7.9' }, { nodeName: plain, type: 'proxy' }] });
    const { gateway: g } = await waitForGateway(kube, gw, 'three active', (x) => activeIds(x).length === 3);
    const ip = (type: string, n: string) => g.status?.activeEndpoints?.find((e) => e.type === type && e.nodeName === n)?.publicIP;
    expect(ip('proxy', annotated)).toBe('198.18.7.9');
    expect(ip('tunnel', annotated)).toBe('198.18.7.2');
    expect(ip('proxy', plain)).toBeUndefined();
    const optIn = await startPickup(cluster, { args: ['--public-ip-from-external-ip'], name: 'pickup-extip' });
    try {
      await pickup.stop();
      await kube.patch(RESOURCES.gateways, { name: gw, subresource: 'status' }, { status: { activeEndpoints: [] } }, 'merge');
      await waitForGateway(kube, gw, 'ExternalIP used', (x) => x.status?.activeEndpoints?.find((e) => e.nodeName === plain)?.publicIP === '198.18.7.3');
    } finally {
      await optIn.stop();
      pickup = await startPickup(cluster, { args: ['--resync-period=3s'] });
    }
  });
});

describe('status.nodes', () => {
  it('appends extra-allowed-source-cidrs to the active tunnel node only', async () => {
    const gw = uniqueName('gw-extra');
    const [a, b] = [await node(gw, { podCIDRs: ['10.77.1.0/24'] }), await node(gw, { podCIDRs: ['10.77.2.0/24'] })];
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a)] }, { [ANNOTATIONS.extraAllowedSourceCIDRs]: '192.0.2.0/24, 198.51.100.0/24' });
    const { gateway: g } = await waitForGateway(kube, gw, 'a elected', idsAre(`tunnel/${a}`));
    const byName = Object.fromEntries((g.status?.nodes ?? []).map((n) => [n.nodeName, n.subnets]));
    expect(byName[a]).toEqual(['10.77.1.0/24', '192.0.2.0/24', '198.51.100.0/24']);
    expect(byName[b]).toEqual(['10.77.2.0/24']);
  });

  it('refuses the extra-allowed-source-cidrs entries that would cut the cluster off, with a condition and a Warning Event, and routes the rest', async () => {
    const gw = uniqueName('gw-cutoff');
    const a = await node(gw, { podCIDRs: ['10.77.3.0/24'] });
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a)] }, { [ANNOTATIONS.extraAllowedSourceCIDRs]: '0.0.0.0/1,128.0.0.0/1,not-a-cidr,192.0.2.0/24' });
    const { gateway: g } = await waitForGateway(kube, gw, 'refusal reported', (x) => !!x.status?.conditions?.some((c) => c.type === 'ExtraAllowedSourceCIDRsAccepted'));
    expect(g.status?.nodes?.find((n) => n.nodeName === a)?.subnets).toEqual(['10.77.3.0/24', '192.0.2.0/24']);
    expect(g.status?.conditions?.find((c) => c.type === 'ExtraAllowedSourceCIDRsAccepted')).toMatchObject({
      status: 'False', reason: 'Refused',
      message: `${ANNOTATIONS.extraAllowedSourceCIDRs}: refused "0.0.0.0/1" is wider than /8; "128.0.0.0/1" is wider than /8; "not-a-cidr" is not a CIDR (address/prefix-length)`,
    });
    const eventsFor = async () => (await kube.list<{ reason: string; type: string; note: string; regarding: { name: string } }>(RESOURCES.events, { namespace: 'default' })).items.filter((e) => e.regarding.name === gw);
    await waitFor('refusal event', async () => (await eventsFor()).some((e) => e.reason === 'ExtraAllowedSourceCIDRsRefused' && e.type === 'Warning' && e.note.includes('0.0.0.0/1')), 5_000);
  });

  it('lists both dual-stack podCIDRs, and an empty list (never [""]) without podCIDR', async () => {
    const gw = uniqueName('gw-cidrs');
    const dual = await node(gw, { podCIDRs: ['10.78.1.0/24', 'fd00:78:1::/64'] });
    const none = await node(gw, { podCIDRs: [] });
    await gateway(gw, { tunnelConfig: { Replicas: 0 }, proxyConfig: { Replicas: 0 } });
    const { gateway: g } = await waitForGateway(kube, gw, 'two nodes', (x) => (x.status?.nodes ?? []).length === 2);
    const byName = Object.fromEntries((g.status?.nodes ?? []).map((n) => [n.nodeName, n]));
    expect(byName[dual]?.subnets).toEqual(['10.78.1.0/24', 'fd00:78:1::/64']);
    expect(byName[none]?.subnets).toEqual([]);
    expect(byName[dual]?.privateIP).toMatch(/^10\.99\./);
  });

  it('resyncs periodically without writing when nothing changed, and repairs a tampered status', async () => {
    const gw = uniqueName('gw-resync');
    const a = await node(gw);
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a)] });
    const { gateway: settled } = await waitForGateway(kube, gw, 'a', idsAre(`tunnel/${a}`));
    const reconciles = async () => Number(/raven_pickup_reconcile_duration_seconds_count\{controller="gatewaypickup",result="success"\} (\d+)/.exec(await pickup.metrics())?.[1] ?? 0);
    const before = await reconciles();
    await new Promise((r) => setTimeout(r, 3_500)); // one resync period: every gateway reconciled again, none written
    expect(await reconciles()).toBeGreaterThan(before);
    expect((await getGateway(kube, gw))!.metadata.resourceVersion).toBe(settled.metadata.resourceVersion);
    await kube.patch(RESOURCES.gateways, { name: gw, subresource: 'status' }, { status: { activeEndpoints: [{ nodeName: 'ghost', type: 'tunnel' }] } }, 'merge');
    const { ms } = await waitForGateway(kube, gw, 'repaired by resync', idsAre(`tunnel/${a}`), 10_000);
    console.log(`tampered status repaired after ${ms.toFixed(0)} ms`);
  });
});

describe('scale and events', () => {
  it('settles 50 Gateways created at once', async () => {
    const names: string[] = [];
    const started = Date.now();
    await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const gw = uniqueName(`gw-many${i}`);
      const n = await node(gw);
      await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(n)] });
      names.push(gw);
    }));
    await waitFor('all 50 elected', async () => {
      const list = await kube.list<Gateway>(RESOURCES.gateways);
      const done = list.items.filter((g) => names.includes(g.metadata.name) && (g.status?.activeEndpoints ?? []).length === 1);
      return done.length === 50;
    }, 30_000, 100);
    console.log(`50 gateways created and elected in ${Date.now() - started} ms`);
  });

  it('records ActiveEndpointElected/Lost only on real changes', async () => {
    const gw = uniqueName('gw-events');
    const [a, b] = [await node(gw), await node(gw)];
    await gateway(gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [tunnel(a), tunnel(b)] });
    await waitForGateway(kube, gw, 'a', idsAre(`tunnel/${a}`));
    const eventsFor = async () => (await kube.list<{ reason: string; note: string; regarding: { name: string } }>(RESOURCES.events, { namespace: 'default' })).items.filter((e) => e.regarding.name === gw);
    await waitFor('elected event', async () => (await eventsFor()).some((e) => e.reason === 'ActiveEndpointElected'), 5_000);
    await new Promise((r) => setTimeout(r, 3_500)); // a resync with nothing changed
    expect((await eventsFor()).map((e) => e.reason)).toEqual(['ActiveEndpointElected']);
    await setNodeReady(kube, a, 'False');
    await waitForGateway(kube, gw, 'b', idsAre(`tunnel/${b}`));
    await waitFor('lost + elected events', async () => (await eventsFor()).length === 3, 5_000);
    expect((await eventsFor()).map((e) => e.reason).sort()).toEqual(['ActiveEndpointElected', 'ActiveEndpointElected', 'ActiveEndpointLost']);
  });
});

describe('observability', () => {
  it('serves metrics, and logs JSON with the gateway name on reconcile lines', async () => {
    const metrics = await pickup.metrics();
    expect(metrics).toMatch(/raven_pickup_reconcile_duration_seconds_count\{controller="gatewaypickup",result="success"\} [1-9]/);
    expect(metrics).toMatch(/workqueue_adds_total\{name="gatewaypickup"\}/);
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(pickup.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; gateway?: string; component: string });
    const written = lines.filter((l) => l.msg === 'status written');
    expect(written.length).toBeGreaterThan(0);
    for (const l of written) {
      expect(l.component).toBe('gateway-pickup');
      expect(l.gateway).toBeTruthy();
    }
  });
});
