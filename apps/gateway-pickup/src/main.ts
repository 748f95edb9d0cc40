import { hostname } from 'node:os';
import { CONVERSION_WEBHOOK, PORTS, SYSTEM_NAMESPACE, cidrProblem } from '@raven/api-types';
import {
  COMMON_FLAGS, ConfigError, EventRecorder, HealthServer, KubeClient, LeaderElector, Shutdown, createLogger, durationFlag,
  intFlag, parseFlags, type Controller,
} from '@raven/controller-kit';
import { createCaches } from './caches.ts';
import { csrApproverController } from './controllers/csr-approver.ts';
import { dnsController } from './controllers/dns.ts';
import { gatewayStatusController } from './controllers/gateway-status.ts';
import { internalServiceController } from './controllers/internal-service.ts';
import { managedLabels } from './controllers/manifests.ts';
import { publicServiceController } from './controllers/public-service.ts';
import { HeartbeatTracker } from './heartbeats.ts';
import { startWebhook } from './webhook/index.ts';

const CONTROLLERS = ['webhook', 'gatewaypickup', 'gatewaydns', 'gatewayinternalservice', 'gatewaypublicservice', 'csrapprover'] as const;
type ControllerName = (typeof CONTROLLERS)[number];

const flags = {
  ...COMMON_FLAGS,
  controllers: { type: 'string', description: `Comma list of what to run (${CONTROLLERS.join(', ')}), or * for all`, default: '*' },
  namespace: { type: 'string', description: 'Namespace of Raven system objects (ConfigMaps, Services, Secrets, Leases)', default: SYSTEM_NAMESPACE },
  'leader-elect': { type: 'boolean', description: 'Elect a leader among replicas before running controllers', default: true },
  'leader-elect-lease-duration': { type: 'string', description: 'Leader lease duration', default: '15s' },
  'leader-elect-renew-deadline': { type: 'string', description: 'How long the leader keeps trying to renew before stepping down', default: '10s' },
  'leader-elect-retry-period': { type: 'string', description: 'Interval between election attempts', default: '2s' },
  'leader-elect-lease-name': { type: 'string', description: 'Name of the leader Lease', default: 'raven-gateway-pickup' },
  'resync-period': { type: 'string', description: 'Every period, every object is reconciled again', default: '1m' },
  workers: { type: 'string', description: 'Concurrent reconciles (status writes) of the election controller', default: '16' },
  'event-concurrency': { type: 'string', description: 'Events created at once; more wait (up to 10,000, then dropped), so a burst does not slow status writes', default: '2' },
  'csr-require-node-binding': { type: 'boolean', description: 'Approve proxy certificates only for requesters whose token is bound to a Pod on the named node', default: true },
  'protected-cidrs': { type: 'string', description: 'Comma-separated ranges (the Service CIDR, the apiserver network) that no extra-allowed-source-cidrs entry may overlap', default: '' },
  'public-ip-from-external-ip': { type: 'boolean', description: "Use a node's ExternalIP as an endpoint's public IP when spec and annotation give none", default: false },
  'webhook-port': { type: 'string', description: 'HTTPS port of the conversion webhook', default: String(CONVERSION_WEBHOOK.containerPort) },
  'webhook-bind': { type: 'string', description: 'Address the webhook listens on', default: '0.0.0.0' },
  'webhook-url': { type: 'string', description: 'Inject this URL into the CRD instead of the in-cluster Service (out-of-cluster runs)' },
  'webhook-host': { type: 'string', description: 'Extra comma-separated DNS names/IPs for the serving certificate', default: '' },
  'webhook-secret': { type: 'string', description: 'Secret holding the webhook serving certificate and CA bundle (the CA key is in <name>-ca)', default: 'raven-gateway-pickup-webhook-certs' },
  'cert-check-interval': { type: 'string', description: 'How often to re-check the serving certificate for rotation', default: '1h' },
  'health-port': { type: 'string', description: 'Port for /healthz, /readyz and /metrics (0 = any free port)', default: String(PORTS.health) },
  'health-bind': { type: 'string', description: 'Address of the health/metrics server', default: '0.0.0.0' },
} as const;

function protectedCidrs(flag: string | undefined): string[] {
  const list = (flag ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const c of list) {
    const problem = cidrProblem(c);
    if (problem) throw new ConfigError(`--protected-cidrs: ${problem}`);
  }
  return list;
}

async function main(): Promise<void> {
  const { values } = parseFlags('gateway-pickup', 'Raven control plane: Gateway election and status, L7 DNS and Services, and the Gateway conversion webhook.', flags);
  const log = createLogger('gateway-pickup', { level: values['log-level'] });
  const wanted = new Set<ControllerName>();
  for (const c of values.controllers === '*' ? CONTROLLERS : (values.controllers ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(CONTROLLERS as readonly string[]).includes(c)) throw new ConfigError(`unknown controller "${c}"; known: ${CONTROLLERS.join(', ')}`);
    wanted.add(c as ControllerName);
  }
  const namespace = values.namespace ?? SYSTEM_NAMESPACE;
  const resyncMs = durationFlag('resync-period', values['resync-period'], 60_000);

  const kube = await KubeClient.load({ kubeconfig: values.kubeconfig, userAgent: 'raven-gateway-pickup' });
  const shutdown = new Shutdown(log);
  const health = new HealthServer('raven_pickup');
  health.addLivenessCheck('process', () => ({ ok: true }));
  kube.instrument(health.registry, 'raven_pickup');
  const healthPort = await health.listen(intFlag('health-port', values['health-port'], PORTS.health), values['health-bind']);
  shutdown.onStop('health', () => health.close());
  shutdown.onStop('kube-client', () => kube.close());
  log.info({ healthPort, controllers: [...wanted] }, 'starting');

  if (wanted.has('webhook')) {
    const webhook = await startWebhook({
      kube, log: log.child({ controller: 'webhook' }), registry: health.registry, namespace,
      secretName: values['webhook-secret'] ?? 'raven-gateway-pickup-webhook-certs',
      port: intFlag('webhook-port', values['webhook-port'], CONVERSION_WEBHOOK.containerPort),
      bind: values['webhook-bind'] ?? '0.0.0.0', url: values['webhook-url'],
      extraHosts: (values['webhook-host'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
      recheckMs: durationFlag('cert-check-interval', values['cert-check-interval'], 3_600_000),
    });
    health.addReadinessCheck('webhook', webhook.ready);
    shutdown.onStop('webhook', () => webhook.stop());
  }

  const loops = [...wanted].filter((c) => c !== 'webhook');
  if (loops.length === 0) return;

  // Caches start on every replica, so a standby that becomes leader has warm caches and fails over fast.
  const caches = await createCaches(kube, log, health.registry, namespace);
  for (const informer of caches.all) informer.start();
  shutdown.onStop('informers', () => Promise.all(caches.all.map((i) => i.stop())).then(() => undefined));
  health.addReadinessCheck('informers-synced', () => {
    const pending = caches.all.filter((i) => !i.hasSynced()).map((i) => i.resource);
    return { ok: pending.length === 0, detail: pending.length ? `waiting for ${pending.join(', ')}` : undefined };
  });

  const identity = `${hostname()}_${process.pid}`;
  const common = { kube, caches, log, registry: health.registry, namespace, resyncMs };
  const builders: Record<Exclude<ControllerName, 'webhook'>, () => Controller> = {
    gatewaypickup: () => gatewayStatusController({
      ...common, heartbeats: new HeartbeatTracker(() => caches.heartbeats.sessionStartedAt), events: new EventRecorder(kube, log, 'raven.openyurt.io/gateway-pickup', identity, { concurrency: intFlag('event-concurrency', values['event-concurrency'], 2) }),
      workers: intFlag('workers', values.workers, 16), publicIPFromExternalIP: values['public-ip-from-external-ip'], protectedCidrs: protectedCidrs(values['protected-cidrs']),
    }),
    gatewaydns: () => dnsController(common),
    gatewayinternalservice: () => internalServiceController(common),
    gatewaypublicservice: () => publicServiceController(common),
    csrapprover: () => csrApproverController({ ...common, requireNodeBinding: values['csr-require-node-binding'] }),
  };
  // Handlers are registered now (before events flow) so no event is missed; workers start only while leading.
  const controllers = loops.map((c) => builders[c as Exclude<ControllerName, 'webhook'>]());
  const startControllers = async (signal: AbortSignal) => {
    await Promise.all(caches.all.map((i) => i.waitForSync(signal)));
    if (signal.aborted) return;
    log.info({ controllers: controllers.map((c) => c.name), sinceStartMs: Math.round(performance.now()) }, 'caches synced; controllers running');
    for (const c of controllers) c.start();
  };
  const stopControllers = () => shutdown.onStop('controllers', () => Promise.all(controllers.map((c) => c.stop())).then(() => undefined));

  if (!values['leader-elect']) {
    stopControllers();
    void startControllers(shutdown.signal);
    return;
  }
  const elector = new LeaderElector({
    kube, log, namespace, name: values['leader-elect-lease-name'] ?? 'raven-gateway-pickup', identity,
    leaseDurationMs: durationFlag('leader-elect-lease-duration', values['leader-elect-lease-duration'], 15_000),
    renewDeadlineMs: durationFlag('leader-elect-renew-deadline', values['leader-elect-renew-deadline'], 10_000),
    retryPeriodMs: durationFlag('leader-elect-retry-period', values['leader-elect-retry-period'], 2_000),
    registry: health.registry, metricPrefix: 'raven_pickup', labels: managedLabels,
  });
  health.addReadinessCheck('leader-election', () => ({ ok: elector.healthy(), detail: elector.isLeader() ? 'leader' : 'standby' }));
  // Stoppers run last-registered first: controllers drain, then the lease is handed over.
  shutdown.onStop('leader-election', () => elector.release());
  stopControllers();
  void elector.run(shutdown.signal, (leading) => void startControllers(leading), () => {
    if (shutdown.signal.aborted) return;
    // Like client-go controllers: a replica that lost its lease exits and restarts clean rather than risk two leaders.
    log.fatal('leadership lost; exiting');
    process.exit(1);
  });
}

main().catch((err: unknown) => {
  createLogger('gateway-pickup').fatal({ err }, err instanceof ConfigError ? err.message : 'fatal error');
  process.exit(err instanceof ConfigError ? 2 : 1);
});
