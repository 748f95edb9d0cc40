import { gatewayV1beta1Schema, CSR_SIGNERS, PROXY_CLIENT_HEALTH_PORT, mayHoldProxyClientIdentity, proxyClientCommonName, toNodeView, type Gateway } from '@raven/api-types';
import {
  COMMON_FLAGS, ConfigError, HealthServer, HeartbeatRenewer, Informer, KubeClient, RESOURCES, Shutdown, createLogger, durationFlag, intFlag, parseFlags,
} from '@raven/controller-kit';
import {
  CsrCertificateSource, FileCertificateSource, exportCertificateExpiry, loadTrustBundle, type CertificateSource,
} from '@raven/node-certs';
import { parseHostPort, tcpDialer } from '@raven/tunnel-protocol';
import { policyDialer } from './dial.ts';
import { exportConnectionMetrics, servingMetrics } from './metrics.ts';
import { planClient, type ClientPlan } from './plan.ts';
import { ServerConnections } from './servers.ts';

const flags = {
  ...COMMON_FLAGS,
  'node-name': { type: 'string', description: 'This node (defaults to $NODE_NAME)' },
  'health-port': { type: 'string', description: '/healthz, /readyz and /metrics (0 = any free port)', default: String(PROXY_CLIENT_HEALTH_PORT) },
  'health-bind': { type: 'string', description: 'Address of the health/metrics server', default: '0.0.0.0' },
  'server-address': { type: 'string', multiple: true, description: 'Also connect to this proxy server (host:port), e.g. an upstream konnectivity server or a load balancer; repeatable' },
  'server-name': { type: 'string', description: 'TLS name to verify --server-address servers against (default: the address host)' },
  'ca-file': { type: 'string', description: 'CA bundle that proxy-server certificates must chain to; default: the kubeconfig cluster CA' },
  'tls-cert-file': { type: 'string', description: 'Client certificate file (e.g. cert-manager) instead of one from the CSR API' },
  'tls-private-key-file': { type: 'string', description: 'Key of --tls-cert-file' },
  'cert-dir': { type: 'string', description: 'Keep the CSR-issued key and certificate here across restarts', default: '' },
  'cert-expiration': { type: 'string', description: 'Requested certificate lifetime (CSR expirationSeconds); default: the signer\'s' },
  'cert-renew-before': { type: 'string', description: 'Renew this long before expiry; default: at 70-90% of the lifetime' },
  'insecure-allow-loopback-targets': { type: 'boolean', description: 'Dial members whose InternalIP is a loopback address (logged; for tests whose nodes all live on 127.0.0.0/8)', default: false },
  'dial-timeout': { type: 'string', description: 'Connecting to a target for a server', default: '5s' },
  'reconnect-interval': { type: 'string', description: 'First retry after a lost or failed server connection (then backoff)', default: '1s' },
  'reconnect-max': { type: 'string', description: 'Ceiling of the reconnect backoff', default: '10s' },
  'shutdown-grace': { type: 'string', description: 'How long open streams may finish after SIGTERM or a server leaving', default: '10s' },
} as const;

async function main(): Promise<void> {
  const { values } = parseFlags('proxy-client', 'Raven L7 proxy client (edge): dials out to every proxy server and serves requests for the nodes of its own domain.', flags);
  const nodeName = values['node-name'] || process.env.NODE_NAME;
  if (!nodeName) throw new ConfigError('--node-name (or $NODE_NAME) is required');
  if (!!values['tls-cert-file'] !== !!values['tls-private-key-file']) throw new ConfigError('--tls-cert-file and --tls-private-key-file go together');
  const log = createLogger('proxy-client', { level: values['log-level'], node: nodeName });
  const graceMs = durationFlag('shutdown-grace', values['shutdown-grace'], 10_000);
  const staticServers = values['server-address'] ?? [];
  for (const address of staticServers) parseHostPort(address);

  const kube = await KubeClient.load({ kubeconfig: values.kubeconfig, userAgent: `raven-proxy-client/${nodeName}` });
  const shutdown = new Shutdown(log, graceMs + 2_000);
  const health = new HealthServer('raven_proxy_client');
  kube.instrument(health.registry, 'raven_proxy_client');
  health.addLivenessCheck('process', () => ({ ok: true }));
  const healthPort = await health.listen(intFlag('health-port', values['health-port'], PROXY_CLIENT_HEALTH_PORT), values['health-bind']);
  shutdown.onStop('health', () => health.close());
  shutdown.onStop('kube-client', () => kube.close());

  const common = { kube, log, registry: health.registry, metricPrefix: 'raven_proxy_client' };
  const gateways = new Informer<Gateway>({ ...common, type: RESOURCES.gateways, transform: (raw) => gatewayV1beta1Schema.parse(raw) });
  const nodes = new Informer({ ...common, type: RESOURCES.nodes, fieldSelector: `metadata.name=${nodeName}`, transform: toNodeView });
  gateways.start();
  nodes.start();
  shutdown.onStop('informers', () => Promise.all([gateways.stop(), nodes.stop()]).then(() => undefined));
  const synced = () => gateways.hasSynced() && nodes.hasSynced();
  health.addReadinessCheck('informers-synced', () => ({ ok: synced() }));

  const trust = loadTrustBundle(kube, values['ca-file']);
  // Ask for the identity only while the approver would grant it (the rule in api-types), and at once when the election
  // makes this node a proxy endpoint: a standby that kept asking would be denied into a backoff of up to a minute,
  // and L7 would wait that long after a failover.
  const mayHoldIdentity = () => {
    const node = nodes.get(nodeName);
    return synced() && !!node && mayHoldProxyClientIdentity({ name: nodeName, gateway: node.gateway }, gateways.list());
  };
  const csrIdentity = values['tls-cert-file'] ? undefined : new CsrCertificateSource({
      kube, log, name: 'client', signerName: CSR_SIGNERS.client, usages: ['digital signature', 'client auth'],
      csrNamePrefix: `raven-proxy-client-${nodeName}`, dir: values['cert-dir'] || undefined, trustBundle: () => trust,
      expirationSeconds: values['cert-expiration'] ? Math.round(durationFlag('cert-expiration', values['cert-expiration'], 0) / 1000) : undefined,
      renewBeforeMs: values['cert-renew-before'] ? durationFlag('cert-renew-before', values['cert-renew-before'], 0) : undefined,
      spec: () => (mayHoldIdentity() ? { commonName: proxyClientCommonName(nodeName), organizations: [], dnsNames: [], ipAddresses: [] } : undefined),
    });
  const identity: CertificateSource = csrIdentity
    ?? new FileCertificateSource({ log, name: 'client', certFile: values['tls-cert-file']!, keyFile: values['tls-private-key-file']! });
  identity.start();
  exportCertificateExpiry(health.registry, [identity]);
  shutdown.onStop('client-certificate', () => identity.stop());
  health.addReadinessCheck('client-certificate', () => {
    const s = identity.status();
    return { ok: s.ready, detail: s.ready ? `expires ${s.notAfter?.toISOString()}` : s.lastError ?? 'waiting for issuance' };
  });

  const metrics = servingMetrics(health.registry);
  let plan: ClientPlan | undefined;
  const dialTimeoutMs = durationFlag('dial-timeout', values['dial-timeout'], 5_000);
  const guard = { node: nodeName, ports: [healthPort], allowLoopback: values['insecure-allow-loopback-targets'] };
  if (guard.allowLoopback) log.warn('--insecure-allow-loopback-targets: servers may reach loopback addresses that a member Node claims');
  const dialer = policyDialer({ plan: () => plan, guard, connect: tcpDialer(), log, dials: metrics.dials });
  const connections = new ServerConnections({
    nodeName, log, identity, trust, dialer, dialTimeoutMs, staticServerName: values['server-name'], drainGraceMs: graceMs,
    syncIntervalMs: durationFlag('reconnect-interval', values['reconnect-interval'], 1_000),
    syncIntervalCapMs: durationFlag('reconnect-max', values['reconnect-max'], 10_000),
  });
  exportConnectionMetrics(health.registry, connections);
  health.addReadinessCheck('plan', () => ({ ok: !!plan, detail: plan ? `${plan.active ? 'active' : 'idle'}: ${plan.reason}; ${connections.connectedServers()}/${plan.active ? plan.servers.length : 0} servers` : 'waiting for caches' }));

  let lastReason = '';
  const reconcile = () => {
    if (!synced() || !identity.current() || shutdown.signal.aborted) return;
    plan = planClient(nodeName, nodes.get(nodeName), gateways.list(), staticServers);
    if (plan.reason !== lastReason) {
      log.info({ active: plan.active, reason: plan.reason, members: plan.members.size, servers: plan.servers.map((s) => s.address) }, 'plan');
      lastReason = plan.reason;
    }
    metrics.active.set(plan.active ? 1 : 0);
    connections.reconcile(plan);
  };
  const onClusterChange = () => {
    csrIdentity?.refresh();
    reconcile();
  };
  gateways.on({ add: onClusterChange, update: onClusterChange, delete: onClusterChange });
  nodes.on({ add: onClusterChange, update: onClusterChange, delete: onClusterChange });
  identity.on('change', reconcile);
  shutdown.onStop('tunnels', () => connections.stop());

  const heartbeat = new HeartbeatRenewer({ kube, log, component: 'proxy', nodeName });
  void heartbeat.run(shutdown.signal, () => synced() && planClient(nodeName, nodes.get(nodeName), gateways.list(), staticServers).candidate);

  await Promise.all([gateways.waitForSync(shutdown.signal), nodes.waitForSync(shutdown.signal)]);
  reconcile();
  log.info({ healthPort }, 'proxy-client started');
}

main().catch((err: unknown) => {
  createLogger('proxy-client').fatal({ err }, err instanceof ConfigError ? err.message : 'fatal error');
  process.exit(err instanceof ConfigError ? 2 : 1);
});
