import { readFileSync } from 'node:fs';
import { createSecureServer as createHttp2Server } from 'node:http2';
import type { AddressInfo, Server as NetServer } from 'node:net';
import {
  CSR_SIGNERS, PORTS, SYSTEM_NAMESPACE, isProxyCandidate,
} from '@raven/api-types';
import {
  COMMON_FLAGS, ConfigError, HealthServer, HeartbeatRenewer, KubeClient, Shutdown, createLogger, durationFlag, intFlag, parseFlags,
} from '@raven/controller-kit';
import {
  CsrCertificateSource, FileCertificateSource, exportCertificateExpiry, loadTrustBundle, serveCurrentCertificate, type CertificateSource,
} from '@raven/node-certs';
import { InformerClusterView } from './cluster.ts';
import { NodeProxyAuthorizer } from './authz.ts';
import { Frontends, type TargetTls } from './frontend.ts';
import { proxyMetrics } from './metrics.ts';
import { mayHoldServingIdentity, servedGateway, servingSpec } from './identity.ts';
import { PodNodes } from './pods.ts';
import { domainKeyOf } from './cluster-view.ts';
import { TunnelHub } from './tunnels.ts';

const flags = {
  ...COMMON_FLAGS,
  'node-name': { type: 'string', description: 'This node (defaults to $NODE_NAME)' },
  namespace: { type: 'string', description: 'Namespace of the internal Service (its names are in the serving certificate)', default: SYSTEM_NAMESPACE },
  'bind-address': { type: 'string', description: 'Address of the public tunnel listener', default: '0.0.0.0' },
  'frontend-bind-address': { type: 'string', description: 'Address of the internal front ends (the internal Service targets it); default: the node\'s InternalIP' },
  'tunnel-port': { type: 'string', description: 'mTLS port proxy-clients connect to (konnectivity agent protocol)', default: String(PORTS.proxyTunnel) },
  'https-port': { type: 'string', description: 'HTTPS front end (target of the internal Service https-* ports)', default: String(PORTS.proxyInternalSecure) },
  'http-port': { type: 'string', description: 'HTTP front end (target of the internal Service http-* ports)', default: String(PORTS.proxyInternalInsecure) },
  'health-port': { type: 'string', description: '/healthz, /readyz and /metrics (0 = any free port)', default: String(PORTS.proxyMetrics) },
  'health-bind': { type: 'string', description: 'Address of the health/metrics server', default: '0.0.0.0' },
  'server-count': { type: 'string', description: 'serverCount sent to clients: replicas reachable behind one address (a load balancer); 1 when each replica has its own', default: '1' },
  'ca-file': { type: 'string', description: 'CA bundle of the CSR signers: verifies proxy-client certificates and (by default) targets; default: the kubeconfig cluster CA' },
  'tls-cert-file': { type: 'string', description: 'Serving certificate file (e.g. cert-manager) instead of one from the CSR API' },
  'tls-private-key-file': { type: 'string', description: 'Key of --tls-cert-file' },
  'cert-dir': { type: 'string', description: 'Keep the CSR-issued key and certificate here across restarts', default: '' },
  'cert-expiration': { type: 'string', description: 'Requested certificate lifetime (CSR expirationSeconds), e.g. 24h; default: the signer\'s' },
  'cert-renew-before': { type: 'string', description: 'Renew this long before expiry; default: at 70-90% of the lifetime' },
  'target-ca-file': { type: 'string', description: 'CA bundle that target (kubelet, exporter) certificates must chain to; default: --ca-file' },
  'target-client-cert-file': { type: 'string', description: 'Client certificate presented to HTTPS targets (e.g. a kubelet client certificate)' },
  'target-client-key-file': { type: 'string', description: 'Key of --target-client-cert-file' },
  'insecure-skip-target-verify': { type: 'boolean', description: 'Do not verify target certificates (logged; for targets without a verifiable certificate only)', default: false },
  'frontend-client-ca-file': { type: 'string', description: 'CA of HTTPS front-end callers\' client certificates (the issuer of the apiserver\'s --kubelet-client-certificate); default: --ca-file' },
  'insecure-frontend-no-client-auth': { type: 'boolean', description: 'HTTPS front end: accept callers without a client certificate and do not authorize them (logged; anyone who reaches the port gets exec on every edge pod)', default: false },
  'insecure-http-frontend': { type: 'boolean', description: 'Serve the plain-HTTP front end, which cannot authenticate callers (logged; reaches only the HTTP proxy ports)', default: false },
  'insecure-allow-loopback-targets': { type: 'boolean', description: 'Dial targets whose InternalIP is a loopback address (logged; for tests whose nodes all live on 127.0.0.0/8)', default: false },
  'max-frontend-connections': { type: 'string', description: 'Open front-end connections in all; more are closed at once', default: '10000' },
  'max-frontend-connections-per-source': { type: 'string', description: 'Open front-end connections from one address', default: '2000' },
  'max-new-connections-per-second': { type: 'string', description: 'Front-end connections routed per second (at their first request); more get 429', default: '5000' },
  'dial-timeout': { type: 'string', description: 'Opening a connection to a target, through a tunnel or directly (and its TLS handshake)', default: '10s' },
  'client-wait': { type: 'string', description: 'How long a request for a domain with no connected proxy-client waits for one (after a failover or a reconnect)', default: '3s' },
  'request-head-timeout': { type: 'string', description: 'Receiving the first request head of a front-end connection', default: '30s' },
  'idle-timeout': { type: 'string', description: 'Closing a front-end connection with no traffic either way this long (0 = never)', default: '4h' },
  'half-close-timeout': { type: 'string', description: 'After a caller half-closed through a tunnel, how long the target may stay silent before the connection closes', default: '30s' },
  'shutdown-grace': { type: 'string', description: 'How long in-flight requests and streams may finish after SIGTERM', default: '15s' },
} as const;

async function main(): Promise<void> {
  const { values } = parseFlags('proxy-server', 'Raven L7 proxy server (cloud): accepts edge proxy-clients and forwards cloud HTTP/HTTPS requests to edge nodes by name.', flags);
  const nodeName = values['node-name'] || process.env.NODE_NAME;
  if (!nodeName) throw new ConfigError('--node-name (or $NODE_NAME) is required');
  const log = createLogger('proxy-server', { level: values['log-level'], node: nodeName });
  const namespace = values.namespace ?? SYSTEM_NAMESPACE;
  const bind = values['bind-address'] ?? '0.0.0.0';
  const graceMs = durationFlag('shutdown-grace', values['shutdown-grace'], 15_000);
  const timeouts = {
    dialMs: durationFlag('dial-timeout', values['dial-timeout'], 10_000),
    headMs: durationFlag('request-head-timeout', values['request-head-timeout'], 30_000),
    idleMs: values['idle-timeout'] === '0' ? 0 : durationFlag('idle-timeout', values['idle-timeout'], 4 * 3_600_000),
    halfCloseMs: durationFlag('half-close-timeout', values['half-close-timeout'], 30_000),
  };
  if (!!values['tls-cert-file'] !== !!values['tls-private-key-file']) throw new ConfigError('--tls-cert-file and --tls-private-key-file go together');
  if (!!values['target-client-cert-file'] !== !!values['target-client-key-file']) throw new ConfigError('--target-client-cert-file and --target-client-key-file go together');

  const kube = await KubeClient.load({ kubeconfig: values.kubeconfig, userAgent: `raven-proxy-server/${nodeName}` });
  const shutdown = new Shutdown(log, graceMs);
  const health = new HealthServer('raven_proxy_server');
  kube.instrument(health.registry, 'raven_proxy_server');
  health.addLivenessCheck('process', () => ({ ok: true }));
  const healthPort = await health.listen(intFlag('health-port', values['health-port'], PORTS.proxyMetrics), values['health-bind']);
  shutdown.onStop('health', () => health.close());
  shutdown.onStop('kube-client', () => kube.close());

  const view = new InformerClusterView(kube, log, health.registry);
  view.start();
  shutdown.onStop('informers', () => view.stop());
  health.addReadinessCheck('informers-synced', () => ({ ok: view.synced() }));
  health.addReadinessCheck('node-known', () => ({ ok: !view.synced() || !!view.node(nodeName), detail: `node ${nodeName}` }));

  const trust = loadTrustBundle(kube, values['ca-file']);
  const serving: CertificateSource = values['tls-cert-file']
    ? new FileCertificateSource({ log, name: 'serving', certFile: values['tls-cert-file'], keyFile: values['tls-private-key-file']! })
    : new CsrCertificateSource({
      kube, log, name: 'serving', signerName: CSR_SIGNERS.serving, usages: ['digital signature', 'server auth'],
      csrNamePrefix: `raven-proxy-server-${nodeName}`, dir: values['cert-dir'] || undefined, trustBundle: () => trust,
      expirationSeconds: values['cert-expiration'] ? Math.round(durationFlag('cert-expiration', values['cert-expiration'], 0) / 1000) : undefined,
      renewBeforeMs: values['cert-renew-before'] ? durationFlag('cert-renew-before', values['cert-renew-before'], 0) : undefined,
      spec: () => (view.synced() ? servingSpec(nodeName, view, namespace) : undefined),
    });
  if (serving instanceof CsrCertificateSource) view.onChange(() => serving.refresh());
  serving.start();
  shutdown.onStop('serving-certificate', () => serving.stop());
  health.addReadinessCheck('serving-certificate', () => {
    const s = serving.status();
    // A proxy-server on a node that is no proxy endpoint is ready to become one; it needs no certificate until then.
    if (!s.ready && serving instanceof CsrCertificateSource && view.synced() && !mayHoldServingIdentity(nodeName, view)) return { ok: true, detail: 'not a proxy endpoint: no certificate needed' };
    return { ok: s.ready, detail: s.ready ? `expires ${s.notAfter?.toISOString()}` : s.lastError ?? 'waiting for issuance' };
  });

  const targetCa = values['target-ca-file'] ? readFileSync(values['target-ca-file'], 'utf8') : trust;
  const targetClient = values['target-client-cert-file']
    ? new FileCertificateSource({ log, name: 'target-client', certFile: values['target-client-cert-file'], keyFile: values['target-client-key-file']! })
    : undefined;
  targetClient?.start();
  exportCertificateExpiry(health.registry, [serving, targetClient]);
  if (values['insecure-skip-target-verify']) log.warn('--insecure-skip-target-verify: target certificates are NOT verified; anyone on a target network can impersonate a target');
  const targetTls = (): TargetTls => ({ ca: targetCa, insecure: values['insecure-skip-target-verify'], cert: targetClient?.current()?.certPem, key: targetClient?.current()?.keyPem });

  const metrics = proxyMetrics(health.registry, () => frontends.bytes());
  const hub: TunnelHub = new TunnelHub({ serverId: nodeName, serverCount: intFlag('server-count', values['server-count'], 1), view, log, metrics, dialTimeoutMs: timeouts.dialMs, clientWaitMs: durationFlag('client-wait', values['client-wait'], 3_000) });

  const pods = new PodNodes(kube, log);
  const ownDomain = () => {
    const me = view.node(nodeName);
    return me ? domainKeyOf(me) : undefined;
  };
  const insecureNoClientAuth = values['insecure-frontend-no-client-auth'];
  const authorizer = insecureNoClientAuth ? undefined : new NodeProxyAuthorizer({
    review: (body) => kube.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { body }),
  });
  const allowLoopback = values['insecure-allow-loopback-targets'];
  if (allowLoopback) log.warn('--insecure-allow-loopback-targets: requests may reach loopback addresses that a Node claims');
  const ownPorts: number[] = [healthPort];
  const self = () => {
    const me = view.node(nodeName);
    return { node: nodeName, domain: ownDomain(), ips: me ? [...me.internalIPs, ...me.externalIPs] : [], ports: ownPorts, allowLoopback };
  };
  const frontends: Frontends = new Frontends({ view, hub, ownDomain, isActive: () => hub.active, self, podNode: pods.lookup, targetTls, authorizer, timeouts, metrics, log,
    limits: {
      connections: intFlag('max-frontend-connections', values['max-frontend-connections'], 10_000),
      connectionsPerSource: intFlag('max-frontend-connections-per-source', values['max-frontend-connections-per-source'], 2_000),
      headsPerSecond: intFlag('max-new-connections-per-second', values['max-new-connections-per-second'], 5_000),
    },
  });

  const reconcileActivation = () => {
    if (!view.synced()) return;
    const gateway = servedGateway(nodeName, view.gateways(), shutdown.signal.aborted);
    if (gateway) {
      if (!hub.active) log.info({ gateway: gateway.metadata.name }, 'elected proxy endpoint: serving');
      hub.activate();
    } else if (hub.active) {
      log.info('no longer an elected proxy endpoint: standby');
      hub.deactivate();
    }
    metrics.active.set(hub.active ? 1 : 0);
    hub.recheck();
  };
  view.onChange(reconcileActivation);

  const heartbeat = new HeartbeatRenewer({ kube, log, component: 'proxy', nodeName });
  void heartbeat.run(shutdown.signal, () => view.synced() && isProxyCandidate(nodeName, view.gateways()));

  await view.waitForSync(shutdown.signal);
  reconcileActivation();
  log.info({ healthPort }, 'caches synced; waiting for the serving certificate');
  if (!(await serving.whenReady(shutdown.signal))) return;

  // Tunnel listener: mTLS with client certificates from the signers' CA; certificates rotate without a restart.
  const tunnelServer = createHttp2Server({ requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  serveCurrentCertificate(tunnelServer, serving, { ca: trust });
  const tunnelService = hub.attach(tunnelServer);

  const clientCa = values['frontend-client-ca-file'] ? readFileSync(values['frontend-client-ca-file'], 'utf8') : trust;
  if (insecureNoClientAuth) log.warn('--insecure-frontend-no-client-auth: the HTTPS front end accepts callers without a client certificate and does not authorize them; anyone who reaches it gets exec on every edge pod');
  const httpsFrontend = frontends.createHttpsServer({ requireClientCert: !insecureNoClientAuth });
  serveCurrentCertificate(httpsFrontend, serving, insecureNoClientAuth ? {} : { ca: clientCa });
  const httpFrontend = values['insecure-http-frontend'] ? frontends.createHttpServer() : undefined;
  if (httpFrontend) log.warn('--insecure-http-frontend: the plain-HTTP front end serves unauthenticated callers (HTTP proxy ports only)');
  const listen = (server: NetServer, port: number, host: string) => new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096 }, () => resolve((server.address() as AddressInfo).port));
  });
  const frontendBind = values['frontend-bind-address'] || view.node(nodeName)?.internalIPs[0];
  if (!frontendBind) throw new ConfigError(`node ${nodeName} has no InternalIP to bind the front ends to; set --frontend-bind-address`);
  const tunnelPort = await listen(tunnelServer, intFlag('tunnel-port', values['tunnel-port'], PORTS.proxyTunnel), bind);
  const httpPort = httpFrontend ? await listen(httpFrontend, intFlag('http-port', values['http-port'], PORTS.proxyInternalInsecure), frontendBind) : undefined;
  const httpsPort = await listen(httpsFrontend, intFlag('https-port', values['https-port'], PORTS.proxyInternalSecure), frontendBind);
  ownPorts.push(tunnelPort, httpsPort, ...(httpPort ? [httpPort] : []));
  health.addReadinessCheck('listeners', () => ({ ok: true, detail: `tunnel ${bind}:${tunnelPort}, https ${frontendBind}:${httpsPort}, http ${httpPort ?? 'off'}` }));
  log.info({ bind, tunnelPort, frontendBind, httpsPort, httpPort, healthPort, active: hub.active }, 'proxy-server listening');

  // Drain (stoppers run last-registered first): stop taking requests and let streams finish, then release tunnels.
  shutdown.onStop('tunnels', async () => {
    hub.deactivate();
    // Deactivation ended every Connect call with OK; the sessions go once their last stream has closed.
    await tunnelService.close(2_000);
  });
  shutdown.onStop('frontends', async () => {
    httpFrontend?.close();
    httpsFrontend.close();
    await frontends.drain(graceMs - 1_000);
  });
}

main().catch((err: unknown) => {
  createLogger('proxy-server').fatal({ err }, err instanceof ConfigError ? err.message : 'fatal error');
  process.exit(err instanceof ConfigError ? 2 : 1);
});
