import { describe, expect, it } from 'vitest';
import { emptyIdentifiers } from '@raven/tunnel-protocol';
import type { PeerCertificate } from 'node:tls';
import { activeProxyServerGateway, isProxyCandidate, type Gateway, type NodeView } from '@raven/api-types';
import { AdmissionError, admitClient, stillServes } from '../src/admission.ts';
import { verifyTargetIdentity } from '../src/frontend.ts';
import { parseHead, type HeadError } from '../src/head.ts';
import { RouteError, podOfKubeletPath, refuseForbiddenTarget, routeRequest, splitHostPort, type RouteRequest, type RouteTarget } from '../src/routing.ts';
import { StaticClusterView } from '../src/cluster-view.ts';

const node = (name: string, gateway: string | undefined, ip: string): NodeView => ({ metadata: { name }, gateway, internalIPs: [ip], externalIPs: [], podCIDRs: [], ready: 'True', calico: false });
const gateway = (name: string, spec: Gateway['spec'], status?: Gateway['status']): Gateway => ({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec, status });

// Two edge domains whose nodes share 172.16.2.103, a lone node, and the cloud.
const view = new StaticClusterView(
  [node('cloud-1', 'gw-cloud', '192.168.0.195'), node('hz-1', 'gw-hz', '172.16.2.103'), node('qd-1', 'gw-qd', '172.16.2.103'), node('qd-2', 'gw-qd', '172.16.1.90'), node('lone', undefined, '10.9.0.5')],
  [
    gateway('gw-cloud', { exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: '10255,9445', proxyHTTPSPort: '10250,9100,9445' }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'cloud-1', type: 'proxy', publicIP: '198.18.0.11' }] },
      { activeEndpoints: [{ nodeName: 'cloud-1', type: 'proxy', publicIP: '198.18.0.11' }] }),
    gateway('gw-hz', { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'hz-1', type: 'proxy', underNAT: true }] }),
    gateway('gw-qd', { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'qd-2', type: 'proxy', underNAT: true }] },
      { activeEndpoints: [{ nodeName: 'qd-2', type: 'proxy', underNAT: true }] }),
  ],
);
const pods: Record<string, string> = { 'default/web': 'qd-1' };
const route = (req: Partial<RouteRequest>) => routeRequest({ frontend: 'https', host: undefined, proxyHost: undefined, url: '/', ...req }, view, async (ns, pod) => pods[`${ns}/${pod}`]);
const refusal = async (req: Partial<RouteRequest>) => {
  const err = await route(req).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(RouteError);
  return err as RouteError;
};

describe('routeRequest', () => {
  it('takes the node from X-Tunnel-Proxy-Host, then ?nodeName=, then the Host name', async () => {
    expect(await route({ host: 'qd-2:10250', proxyHost: 'hz-1' })).toMatchObject({ node: 'hz-1', port: 10250, via: 'header', domain: 'gw/gw-hz', ip: '172.16.2.103', tls: true });
    expect(await route({ host: 'qd-2:10250', url: '/stats?nodeName=lone' })).toMatchObject({ node: 'lone', via: 'query', domain: 'node/lone' });
    expect(await route({ host: 'qd-2:10250' })).toMatchObject({ node: 'qd-2', via: 'host', ip: '172.16.1.90' });
    expect(await route({ host: 'x:1', proxyHost: 'qd-2:9100' })).toMatchObject({ node: 'qd-2', port: 9100 });
  });

  it.each([
    ['the apiserver\'s node proxy: its own Host, the node in the server name', { host: '127.0.0.1:6443', serverName: 'hz-1', url: '/metrics' }, { node: 'hz-1', via: 'sni', port: 10250 }],
    ['a shared IP is told apart by the server name', { host: '172.16.2.103:10250', serverName: 'qd-1' }, { node: 'qd-1', via: 'sni', port: 10250 }],
    ['an address of the named node keeps its port', { host: '172.16.1.90:9100', serverName: 'qd-2' }, { node: 'qd-2', via: 'sni', port: 9100 }],
    ['the server name beats a pod path', { host: '127.0.0.1:6443', serverName: 'hz-1', url: '/containerLogs/default/web/c' }, { node: 'hz-1', via: 'sni' }],
    ['a Host naming a node beats the server name', { host: 'qd-2:10250', serverName: 'hz-1' }, { node: 'qd-2', via: 'host' }],
    ['X-Tunnel-Proxy-Host beats the server name', { host: '127.0.0.1:6443', serverName: 'hz-1', proxyHost: 'qd-2:10250' }, { node: 'qd-2', via: 'header' }],
    ['a server name that is no node is ignored', { host: '172.16.1.90:10250', serverName: 'example.com' }, { node: 'qd-2', via: 'ip' }],
  ] as const)('routes by the TLS server name: %s', async (_what, req, want) => {
    expect(await route(req)).toMatchObject(want);
  });

  it('takes the kubelet port for a pod path whose Host is the caller\'s own (the apiserver\'s port-forward)', async () => {
    expect(await route({ host: '127.0.0.1:41101', url: '/portForward/default/web' })).toMatchObject({ node: 'qd-1', via: 'pod', port: 10250 });
    expect(await route({ frontend: 'http', host: '127.0.0.1:41101', url: '/containerLogs/default/web/c' })).toMatchObject({ node: 'qd-1', port: 10255, tls: false });
    expect(await route({ host: '172.16.2.103:9445', url: '/containerLogs/default/web/c' })).toMatchObject({ node: 'qd-1', port: 9445 });
  });

  it('uses no server name on the plain-HTTP front end', async () => {
    expect((await refusal({ frontend: 'http', host: '127.0.0.1:6443', serverName: 'hz-1' })).reason).toBe('unknown-ip');
  });

  it('sends kubelet pod paths addressed by IP to the pod\'s node, even when the IP is shared', async () => {
    expect(await route({ host: '172.16.2.103:10250', url: '/containerLogs/default/web/c?follow=true' })).toMatchObject({ node: 'qd-1', via: 'pod' });
    expect(await route({ host: '172.16.2.103:10250', url: '/exec/default/web/c?command=ls' })).toMatchObject({ node: 'qd-1' });
    expect((await refusal({ host: '172.16.2.103:10250', url: '/portForward/default/gone' })).status).toBe(404);
  });

  it('accepts an IP literal only when one node has it', async () => {
    expect(await route({ host: '172.16.1.90:10250' })).toMatchObject({ node: 'qd-2', via: 'ip', ipUnique: true });
    expect(await route({ host: 'hz-1:10250' })).toMatchObject({ ip: '172.16.2.103', ipUnique: false });
    const ambiguous = await refusal({ host: '172.16.2.103:10250' });
    expect([ambiguous.status, ambiguous.reason]).toEqual([409, 'ambiguous-ip']);
    expect(ambiguous.message).toContain('hz-1, qd-1');
    expect((await refusal({ host: '10.1.1.1:10250' })).reason).toBe('unknown-ip');
  });

  it('is not an open proxy: only the scheme\'s configured ports and the kubelet\'s', async () => {
    expect(await route({ frontend: 'http', host: 'hz-1:9445' }).catch((e: RouteError) => e.status)).toBe(403); // 9445 is HTTPS (listed as both)
    expect(await route({ frontend: 'https', host: 'hz-1:9445' })).toMatchObject({ port: 9445 });
    expect(await route({ frontend: 'http', host: 'hz-1:10255' })).toMatchObject({ tls: false });
    for (const host of ['hz-1:22', 'hz-1:10255', 'hz-1:6443']) expect((await refusal({ host })).status).toBe(403);
    expect((await refusal({ host: 'hz-1' })).reason).toBe('no-target');
    expect((await refusal({ host: 'nope:10250' })).status).toBe(404);
    expect((await refusal({ host: 'hz-1:99999' })).reason).toBe('bad-port');
  });
});

describe('helpers', () => {
  it('splits host and port like a Host header', () => {
    expect(splitHostPort('a:1')).toEqual({ host: 'a', port: 1 });
    expect(splitHostPort('[fd00::1]:10250')).toEqual({ host: 'fd00::1', port: 10250 });
    expect(splitHostPort('fd00::1')).toEqual({ host: 'fd00::1', port: undefined });
    expect(splitHostPort('a')).toEqual({ host: 'a', port: undefined });
    expect(podOfKubeletPath('/attach/ns/p/c')).toEqual({ namespace: 'ns', pod: 'p' });
    expect(podOfKubeletPath('/stats/summary')).toBeUndefined();
  });

  it('parses the first request head: origin and absolute forms, headers, and what it refuses', () => {
    const head = parseHead('GET /containerLogs/ns/p/c?follow=true HTTP/1.1\r\nHost: hz-1:10250\r\nX-Tunnel-Proxy-Host:  qd-2 \r\nAccept: a\r\naccept: b');
    expect(head).toMatchObject({ method: 'GET', url: '/containerLogs/ns/p/c?follow=true', host: 'hz-1:10250' });
    expect(head.headers.get('x-tunnel-proxy-host')).toBe('qd-2');
    expect(head.headers.get('accept')).toBe('a, b');
    expect(parseHead('GET http://hz-1:10255/metrics HTTP/1.1\r\nHost: other')).toMatchObject({ url: '/metrics', host: 'hz-1:10255' });
    const status = (text: string) => {
      try {
        parseHead(text);
        return 0;
      } catch (err) {
        return (err as HeadError).status;
      }
    };
    expect(status('CONNECT hz-1:10250 HTTP/1.1\r\nHost: hz-1:10250')).toBe(405);
    expect(status('GET / HTTP/1.1\r\nHost: a\r\nHost: b')).toBe(400);
    expect(status('GET / HTTP/2.0')).toBe(400);
    expect(status('GET * HTTP/1.1')).toBe(400);
    expect(status('GET / HTTP/1.1\r\nbad header')).toBe(400);
  });

  it('knows which node serves and which nodes renew proxy heartbeats', () => {
    expect(activeProxyServerGateway('cloud-1', view.gateways())?.metadata.name).toBe('gw-cloud');
    expect(activeProxyServerGateway('hz-1', view.gateways())).toBeUndefined();
    expect([isProxyCandidate('hz-1', view.gateways()), isProxyCandidate('qd-1', view.gateways())]).toEqual([true, false]);
  });
});

describe('admitClient', () => {
  const cert = (cn: string) => ({ subject: { CN: cn } }) as unknown as PeerCertificate;
  const ids = (hosts: string[], extra: Partial<ReturnType<typeof emptyIdentifiers>> = {}) => ({ ...emptyIdentifiers(), host: hosts, ...extra });
  const reason = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(AdmissionError);
      return (err as AdmissionError).reason;
    }
    return 'admitted';
  };

  it('admits a client for its own domain, by names or IPs of its members', () => {
    expect(admitClient(cert('raven:proxy-client:qd-2'), ids(['qd-1', 'qd-2', '172.16.2.103']), view)).toEqual({ node: 'qd-2', domain: 'gw/gw-qd' });
    expect(admitClient(cert('raven:proxy-client:lone'), ids(['lone']), view)).toEqual({ node: 'lone', domain: 'node/lone' });
  });

  it('refuses missing or foreign identities and claims outside the domain', () => {
    expect(reason(() => admitClient(undefined, ids([]), view))).toBe('no-certificate');
    expect(reason(() => admitClient(cert('system:node:qd-2'), ids([]), view))).toBe('bad-identity');
    expect(reason(() => admitClient(cert('raven:proxy-client:ghost'), ids([]), view))).toBe('unknown-node');
    expect(reason(() => admitClient(cert('raven:proxy-client:qd-2'), ids(['hz-1']), view))).toBe('foreign-claim');
    expect(reason(() => admitClient(cert('raven:proxy-client:lone'), ids(['lone', 'qd-2']), view))).toBe('foreign-claim');
    expect(reason(() => admitClient(cert('raven:proxy-client:qd-2'), ids([], { defaultRoute: true }), view))).toBe('foreign-claim');
    expect(reason(() => admitClient(cert('raven:proxy-client:qd-2'), ids([], { cidr: ['0.0.0.0/0'] }), view))).toBe('foreign-claim');
  });

  it('admits only elected proxy endpoints: a listed standby, a plain member, and a node of an exposed Gateway are refused', () => {
    expect(reason(() => admitClient(cert('raven:proxy-client:hz-1'), ids(['hz-1']), view))).toBe('not-elected');
    expect(reason(() => admitClient(cert('raven:proxy-client:qd-1'), ids(['qd-1']), view))).toBe('not-elected');
    expect(reason(() => admitClient(cert('raven:proxy-client:cloud-1'), ids(['cloud-1']), view))).toBe('not-elected');
  });

  it('relabel-and-hijack: a node that labels itself into another Gateway is not that Gateway\'s client, and an admitted client loses its domain when its election or label changes', () => {
    const gateways = view.gateways();
    const relabelled = new StaticClusterView([...['cloud-1', 'hz-1', 'qd-1', 'qd-2', 'lone'].map((n) => view.node(n)!), node('mallory', 'gw-qd', '172.16.1.66')], gateways);
    expect(reason(() => admitClient(cert('raven:proxy-client:mallory'), ids(['qd-1', 'qd-2', 'mallory']), relabelled))).toBe('not-elected');
    const admitted = admitClient(cert('raven:proxy-client:qd-2'), ids(['qd-2']), view);
    expect(stillServes(admitted, view)).toBe(true);
    const reelected = new StaticClusterView(['cloud-1', 'hz-1', 'qd-1', 'qd-2', 'lone'].map((n) => view.node(n)!), gateways.map((g) => g.metadata.name === 'gw-qd' ? { ...g, status: { activeEndpoints: [] } } : g));
    expect(stillServes(admitted, reelected)).toBe(false);
    const movedOut = new StaticClusterView([node('qd-2', undefined, '172.16.1.90')], gateways);
    expect(stillServes(admitted, movedOut)).toBe(false);
    expect(stillServes(admitClient(cert('raven:proxy-client:lone'), ids(['lone']), view), movedOut)).toBe(false);
  });
});

describe('refuseForbiddenTarget', () => {
  const self = { node: 'cloud-1', domain: 'gw/gw-cloud', ips: ['192.168.0.195', '198.18.0.11'], ports: [10262, 10263, 10264, 10266], allowLoopback: false };
  const target = (over: Partial<RouteTarget>): RouteTarget => ({ node: 'hz-1', domain: 'gw/gw-hz', ip: '172.16.2.103', port: 10250, tls: true, via: 'host', ipUnique: false, ...over });
  const refused = (t: RouteTarget, s = self) => {
    try {
      refuseForbiddenTarget(t, s);
      return undefined;
    } catch (err) {
      expect(err).toBeInstanceOf(RouteError);
      return (err as RouteError).message;
    }
  };

  it('SSRF: loopback, metadata (link-local) and unspecified addresses a Node claims are refused with 403', () => {
    expect(refused(target({}))).toBeUndefined();
    expect(refused(target({ ip: '127.0.0.1' }))).toMatch(/loopback/);
    expect(refused(target({ ip: '169.254.169.254' }))).toMatch(/link-local/);
    expect(refused(target({ ip: '0.0.0.0' }))).toMatch(/unspecified/);
    expect(refused(target({ ip: '::ffff:169.254.169.254' }))).toMatch(/link-local/);
    expect(refused(target({ ip: '127.0.0.5' }), { ...self, allowLoopback: true })).toBeUndefined();
  });

  it('its own listeners are refused (a Gateway listing 10264 as a proxy port), by node name or by its own address in its domain', () => {
    expect(refused(target({ node: 'cloud-1', domain: 'gw/gw-cloud', ip: '192.168.0.195', port: 10264, tls: false }))).toMatch(/own listener/);
    expect(refused(target({ node: 'cloud-2', domain: 'gw/gw-cloud', ip: '198.18.0.11', port: 10263 }))).toMatch(/own listener/);
    expect(refused(target({ node: 'cloud-1', domain: 'gw/gw-cloud', ip: '192.168.0.195', port: 10250 }))).toBeUndefined();
    // The same IP in another domain is another machine, reached through its tunnel.
    expect(refused(target({ ip: '192.168.0.195', port: 10264 }))).toBeUndefined();
  });
});

describe('verifyTargetIdentity', () => {
  const cert = (san: string) => ({ subject: { CN: 'system:node:whoever' }, subjectaltname: san }) as unknown as PeerCertificate;
  it('needs the node name; an IP SAN counts only when the IP is unique across domains (edge IPs repeat)', () => {
    const hz1 = { node: 'hz-1', ip: '172.16.2.103', ipUnique: false };
    expect(verifyTargetIdentity(hz1, cert('DNS:hz-1, IP Address:172.16.2.103'))).toBeUndefined();
    // qd-1's kubelet has the same IP: its certificate must not pass for hz-1.
    expect(verifyTargetIdentity(hz1, cert('DNS:qd-1, IP Address:172.16.2.103'))?.message).toMatch(/not unique across domains/);
    expect(verifyTargetIdentity({ ...hz1, ipUnique: true }, cert('DNS:qd-1, IP Address:172.16.2.103'))).toBeUndefined();
    expect(verifyTargetIdentity({ ...hz1, ipUnique: true }, cert('DNS:qd-1, IP Address:172.16.2.104'))).toBeInstanceOf(Error);
  });
});
