import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { HEARTBEAT } from '@raven/api-types';
import { adminClient, uniqueName, waitFor } from '@raven/testbed';
import {
  ApiError, ConflictRetriesExhaustedError, EventRecorder, HeartbeatRenewer, Informer, LeaderElector, RESOURCES, createLogger, writeStatus,
  type KubeClient,
} from '../src/index.ts';

const cluster = inject('cluster');
const log = createLogger('test', { level: 'silent' });
let kube: KubeClient;
const namespace = uniqueName('ck');

beforeAll(async () => {
  kube = await adminClient(cluster);
  await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } }).catch(() => undefined);
});

afterAll(async () => {
  await kube.request('DELETE', `/api/v1/namespaces/${namespace}`).catch(() => undefined);
  kube.close();
});

type Cm = { metadata: { name: string; namespace?: string; resourceVersion?: string }; data?: Record<string, string> };
const cm = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data });

describe('KubeClient', () => {
  it('surfaces API errors with status and reason', async () => {
    const err = await kube.get(RESOURCES.configMaps, { namespace, name: 'missing' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).reason).toBe('NotFound');
  });

  it('lists every page', async () => {
    for (let i = 0; i < 7; i++) await kube.create(RESOURCES.configMaps, cm(`page-${i}`, {}));
    const all = await kube.listAll<Cm>(RESOURCES.configMaps, { namespace });
    expect(all.items.filter((c) => c.metadata.name.startsWith('page-'))).toHaveLength(7);
    const pages: string[][] = [];
    for await (const page of kube.listPages<Cm>(RESOURCES.configMaps, { namespace, limit: 3 })) pages.push(page.items.map((c) => c.metadata.name).filter((n) => n.startsWith('page-')));
    expect(pages.flat().sort()).toEqual([...Array(7).keys()].map((i) => `page-${i}`));
    expect(pages.every((p) => p.length <= 3)).toBe(true);
    // Stopping early leaves no failure behind (the prefetched page is dropped).
    for await (const page of kube.listPages<Cm>(RESOURCES.configMaps, { namespace, limit: 3 })) if (page.items.length > 0) break;
  });

  it('runs a burst of requests on at most maxConnections connections, watches aside', async () => {
    const small = await adminClient(cluster, 'raven-test-pool', { maxConnections: 3 });
    try {
      const informer = new Informer<Cm>({ kube: small, log, type: RESOURCES.configMaps, namespace, transform: (raw) => raw as Cm });
      informer.start();
      await informer.waitForSync();
      const results = await Promise.all(Array.from({ length: 40 }, () => small.list<Cm>(RESOURCES.configMaps, { namespace, limit: 1 })));
      expect(results).toHaveLength(40);
      expect(small.pooledConnections()).toBeGreaterThan(0);
      expect(small.pooledConnections()).toBeLessThanOrEqual(3);
      await informer.stop();
    } finally {
      small.close();
    }
  });
});

describe('Informer', () => {
  it('lists, then delivers adds, updates and deletes from the watch, and indexes', async () => {
    const informer = new Informer<Cm>({ kube, log, type: RESOURCES.configMaps, namespace, labelSelector: 'watched=yes', transform: (raw) => raw as Cm });
    informer.addIndex('color', (c) => (c.data?.color ? [c.data.color] : []));
    const events: string[] = [];
    informer.on({ add: (c) => events.push(`add:${c.metadata.name}`), update: (_o, c) => events.push(`update:${c.metadata.name}`), delete: (c) => events.push(`delete:${c.metadata.name}`) });
    await kube.create(RESOURCES.configMaps, { ...cm('before', { color: 'red' }), metadata: { name: 'before', namespace, labels: { watched: 'yes' } } });
    informer.start();
    await informer.waitForSync();
    expect(informer.keys()).toEqual([`${namespace}/before`]);
    await kube.create(RESOURCES.configMaps, { ...cm('after', { color: 'red' }), metadata: { name: 'after', namespace, labels: { watched: 'yes' } } });
    await kube.patch(RESOURCES.configMaps, { namespace, name: 'before' }, { data: { color: 'blue' } }, 'merge');
    await kube.delete(RESOURCES.configMaps, { namespace, name: 'after' });
    await waitFor('three watch events', async () => events.length === 4, 5_000);
    expect(events).toEqual(['add:before', 'add:after', 'update:before', 'delete:after']);
    expect(informer.byIndex('color', 'blue').map((c) => c.metadata.name)).toEqual(['before']);
    expect(informer.byIndex('color', 'red')).toEqual([]);
    await informer.stop();
  });
});

describe('writeStatus', () => {
  it('retries on a conflict with a fresh read, and skips the write when nothing changes', async () => {
    const name = uniqueName('gw-conflict');
    await kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec: {} });
    type Gw = { metadata: { name: string; resourceVersion?: string }; status?: { nodes?: Array<{ nodeName: string }> } };
    const stale = await kube.get<Gw>(RESOURCES.gateways, { name });
    await kube.patch(RESOURCES.gateways, { name, subresource: 'status' }, { status: { nodes: [{ nodeName: 'by-someone-else' }] } }, 'merge');
    const seen: string[] = [];
    const wrote = await writeStatus(kube, RESOURCES.gateways, { name }, stale, (gw) => {
      seen.push(gw.metadata.resourceVersion!);
      return { nodes: [...(gw.status?.nodes ?? []), { nodeName: 'mine' }] };
    }, { fieldManager: 'test' });
    expect(wrote).toBe(true);
    expect(seen).toHaveLength(2);
    const after = await kube.get<Gw>(RESOURCES.gateways, { name });
    expect(after.status?.nodes?.map((n) => n.nodeName)).toEqual(['by-someone-else', 'mine']);
    expect(await writeStatus(kube, RESOURCES.gateways, { name }, after, () => undefined, { fieldManager: 'test' })).toBe(false);
    await expect(writeStatus(kube, RESOURCES.gateways, { name }, stale, () => ({ nodes: [] }), { fieldManager: 'test', attempts: 1 })).rejects.toBeInstanceOf(ConflictRetriesExhaustedError);
    await kube.delete(RESOURCES.gateways, { name });
  });
});

describe('LeaderElector', () => {
  it('elects one of two, hands over on release, and is taken over after the lease expires', async () => {
    const name = uniqueName('le');
    const opts = { kube, log, namespace, name, leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 300 };
    const one = new LeaderElector({ ...opts, identity: 'one' });
    const two = new LeaderElector({ ...opts, identity: 'two' });
    const stopOne = new AbortController();
    const stopTwo = new AbortController();
    const led: string[] = [];
    void one.run(stopOne.signal, () => led.push('one'));
    await waitFor('one leads', async () => one.isLeader(), 5_000);
    void two.run(stopTwo.signal, () => led.push('two'));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(two.isLeader()).toBe(false);
    stopOne.abort();
    await one.release();
    const released = Date.now();
    await waitFor('two leads', async () => two.isLeader(), 5_000, 20);
    expect(Date.now() - released).toBeLessThan(1_000);
    expect(led).toEqual(['one', 'two']);
    stopTwo.abort();
  });
});

describe('LeaderElector.release with a renew in flight', () => {
  it('waits for the renew, which then cannot take the lease back, and hands over at once', async () => {
    const name = uniqueName('le');
    // The leader's next lease read is held back until release() has begun: the renew then reads after the release.
    let holdNextGet = false;
    let held: (() => void) | undefined;
    const slow = new Proxy(kube, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (prop !== 'get' || typeof value !== 'function') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        return async (...args: unknown[]) => {
          if (holdNextGet) {
            holdNextGet = false;
            await new Promise<void>((resolve) => (held = resolve));
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }) as typeof kube;
    const opts = { log, namespace, name, leaseDurationMs: 5_000, renewDeadlineMs: 4_000, retryPeriodMs: 300 };
    const one = new LeaderElector({ ...opts, kube: slow, identity: 'one' });
    // Polling every second, the standby rarely looks between the release and the late renew.
    const two = new LeaderElector({ ...opts, kube, identity: 'two', retryPeriodMs: 1_000 });
    const stopOne = new AbortController();
    const stopTwo = new AbortController();
    void one.run(stopOne.signal, () => undefined);
    await waitFor('one leads', async () => one.isLeader(), 5_000);
    void two.run(stopTwo.signal, () => undefined);
    holdNextGet = true;
    await waitFor('a renew in flight', async () => held !== undefined, 5_000, 10);
    stopOne.abort();
    const releasing = one.release();
    // Let the renew read as soon as the release is written (the old order), or after 300 ms (release waits for it).
    const holder = async () => ((await kube.get<{ spec?: { holderIdentity?: string } }>(RESOURCES.leases, { namespace, name })).spec?.holderIdentity ?? '');
    await Promise.race([waitFor('the release written', async () => (await holder()) === '', 2_000, 5).catch(() => undefined), new Promise((r) => setTimeout(r, 300))]);
    held!();
    await releasing;
    const released = Date.now();
    await waitFor('two leads', async () => two.isLeader(), 5_000, 20);
    // Far less than the 5 s lease: the release was not undone by the late renew.
    expect(Date.now() - released).toBeLessThan(1_500);
    expect(await holder()).toBe('two');
    stopTwo.abort();
  });
});

describe('EventRecorder and HeartbeatRenewer', () => {
  it('record an Event about a cluster-scoped object in default', async () => {
    const target = uniqueName('evt');
    await new EventRecorder(kube, log, 'raven.openyurt.io/test', 'test-1').record({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', name: target }, { type: 'Normal', reason: 'ActiveEndpointElected', action: 'Elect', note: 'tunnel endpoint elected' });
    const events = await kube.list<{ reason: string; regarding: { name: string }; reportingController: string }>(RESOURCES.events, { namespace: 'default' });
    expect(events.items.find((e) => e.regarding.name === target)).toMatchObject({ reason: 'ActiveEndpointElected', reportingController: 'raven.openyurt.io/test' });
  });

  it('renew a labelled Lease held by the node, recreating it if deleted', async () => {
    const node = uniqueName('hbnode');
    const renewer = new HeartbeatRenewer({ kube, log, component: 'tunnel', nodeName: node, namespace });
    await renewer.renew();
    type Lease = { metadata: { labels: Record<string, string> }; spec: { holderIdentity: string; leaseDurationSeconds: number; renewTime: string } };
    const first = await kube.get<Lease>(RESOURCES.leases, { namespace, name: renewer.leaseName });
    expect(first.metadata.labels[HEARTBEAT.label]).toBe('tunnel');
    expect(first.spec).toMatchObject({ holderIdentity: node, leaseDurationSeconds: HEARTBEAT.durationSeconds });
    await new Promise((r) => setTimeout(r, 20));
    await renewer.renew();
    const second = await kube.get<Lease>(RESOURCES.leases, { namespace, name: renewer.leaseName });
    expect(second.spec.renewTime > first.spec.renewTime).toBe(true);
    await kube.delete(RESOURCES.leases, { namespace, name: renewer.leaseName });
    await renewer.renew();
    expect(renewer.healthy()).toBe(true);
  });
});
