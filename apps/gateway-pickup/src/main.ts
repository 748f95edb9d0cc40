import { CONVERSION_WEBHOOK, PORTS, SYSTEM_NAMESPACE } from '@raven/api-types';
import {
  COMMON_FLAGS, ConfigError, HealthServer, KubeClient, Shutdown, createLogger, durationFlag, intFlag, parseFlags,
} from '@raven/controller-kit';
import { startWebhook } from './webhook/index.ts';

const ALL_CONTROLLERS = ['webhook'] as const;

const flags = {
  ...COMMON_FLAGS,
  controllers: { type: 'string', description: `Comma list of what to run: ${ALL_CONTROLLERS.join(', ')}, or * for all`, default: '*' },
  namespace: { type: 'string', description: 'Namespace of Raven system objects (ConfigMaps, Secrets, Leases)', default: SYSTEM_NAMESPACE },
  'leader-elect': { type: 'boolean', description: 'Elect a leader among replicas before running controllers', default: true },
  'webhook-port': { type: 'string', description: 'HTTPS port of the conversion webhook', default: String(CONVERSION_WEBHOOK.containerPort) },
  'webhook-bind': { type: 'string', description: 'Address the webhook listens on', default: '0.0.0.0' },
  'webhook-url': { type: 'string', description: 'Inject this URL into the CRD instead of the in-cluster Service (out-of-cluster runs)' },
  'webhook-host': { type: 'string', description: 'Extra comma-separated DNS names/IPs for the serving certificate', default: '' },
  'webhook-secret': { type: 'string', description: 'Secret holding the webhook CA and serving certificate', default: 'raven-gateway-pickup-webhook-certs' },
  'cert-check-interval': { type: 'string', description: 'How often to re-check the serving certificate for rotation', default: '1h' },
  'health-port': { type: 'string', description: 'Port for /healthz, /readyz and /metrics (0 = any)', default: String(PORTS.health) },
  'metrics-port': { type: 'string', description: 'Deprecated alias kept for manifests; metrics are served on the health port', default: '' },
} as const;

async function main(): Promise<void> {
  const { values } = parseFlags('gateway-pickup', 'Raven control plane: Gateway election, status, L7 DNS/Services, and the Gateway conversion webhook.', flags);
  const log = createLogger('gateway-pickup', { level: values['log-level'] });
  const wanted = values.controllers === '*' ? [...ALL_CONTROLLERS] : (values.controllers ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const c of wanted) if (!(ALL_CONTROLLERS as readonly string[]).includes(c)) throw new ConfigError(`unknown controller "${c}"`);

  const kube = await KubeClient.load({ kubeconfig: values.kubeconfig, userAgent: 'raven-gateway-pickup' });
  const shutdown = new Shutdown(log);
  const health = new HealthServer('raven_pickup');
  health.addLivenessCheck('process', () => ({ ok: true }));
  const healthPort = await health.listen(intFlag('health-port', values['health-port'], PORTS.health));
  shutdown.onStop('health', () => health.close());
  log.info({ healthPort, controllers: wanted }, 'starting');

  if (wanted.includes('webhook')) {
    const hosts = (values['webhook-host'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const webhook = await startWebhook({
      kube, log: log.child({ controller: 'webhook' }), registry: health.registry,
      namespace: values.namespace ?? SYSTEM_NAMESPACE,
      secretName: values['webhook-secret'] ?? 'raven-gateway-pickup-webhook-certs',
      port: intFlag('webhook-port', values['webhook-port'], CONVERSION_WEBHOOK.containerPort),
      bind: values['webhook-bind'] ?? '0.0.0.0',
      url: values['webhook-url'], extraHosts: hosts,
      recheckMs: durationFlag('cert-check-interval', values['cert-check-interval'], 3_600_000),
    });
    health.addReadinessCheck('webhook', webhook.ready);
    shutdown.onStop('webhook', () => webhook.stop());
  }
  shutdown.onStop('kube-client', () => kube.close());
}

main().catch((err: unknown) => {
  const log = createLogger('gateway-pickup');
  log.fatal({ err }, err instanceof ConfigError ? err.message : 'fatal error');
  process.exit(err instanceof ConfigError ? 2 : 1);
});
