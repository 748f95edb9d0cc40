import { hostname } from 'node:os';
import { AGENT_DIAGNOSE_PATH, HEARTBEAT, PORTS, PSK_SECRET, SYSTEM_NAMESPACE } from '@raven/api-types';
import {
  COMMON_FLAGS, ConfigError, HealthServer, KubeClient, Shutdown, createLogger, durationFlag, intFlag, parseFlags,
} from '@raven/controller-kit';
import { hostExec } from '@raven/netlink';
import { TunnelAgent } from './agent.ts';
import { DataPathApplier } from './datapath.ts';
import { PresharedKey } from './psk.ts';
import { ownerState, parseOwnerFlag, removesStateOnStop } from './uninstall.ts';
import type { VpnDriver } from './vpn/driver.ts';
import { LibreswanDriver } from './vpn/libreswan.ts';
import { WireguardDriver } from './vpn/wireguard.ts';

const flags = {
  ...COMMON_FLAGS,
  'node-name': { type: 'string', description: 'This node (default: $NODE_NAME, then the hostname)' },
  namespace: { type: 'string', description: 'Namespace of raven-cfg and the PSK Secret', default: SYSTEM_NAMESPACE },
  'psk-file': { type: 'string', description: `Read the tunnel PSK from this file (the Secret's ${PSK_SECRET.key} key mounted as a volume) instead of getting the Secret through the API; re-read every 30 s` },
  'vpn-driver': { type: 'string', description: 'wireguard or libreswan', default: 'wireguard' },
  'wireguard-implementation': { type: 'string', description: 'auto (kernel module, else wireguard-go), kernel or userspace', default: 'auto' },
  'wireguard-go': { type: 'string', description: 'The userspace WireGuard daemon (path or name on PATH) when there is no kernel module', default: 'wireguard-go' },
  'state-dir': { type: 'string', description: 'Where keys and generated VPN config live (keep it across restarts)', default: '/var/lib/raven' },
  'forward-node-ip': { type: 'boolean', description: 'Also route node IPs across domains, not only pod subnets', default: false },
  'keepalive': { type: 'string', description: 'Persistent keepalive towards peers when behind NAT', default: '5s' },
  'resync-period': { type: 'string', description: 'Read the whole kernel state back and repair it this often', default: '30s' },
  'nat-traversal': { type: 'boolean', description: `Direct tunnels between NATed gateways where their NATs allow it (hole punching, coordinated through the API); the central gateway answers NAT discovery on UDP ${PORTS.natDiscovery} and ${PORTS.natDiscoveryAlt}`, default: false },
  'probe-interval': { type: 'string', description: 'How often gateways probe each other through the tunnel', default: '5s' },
  'heartbeat-interval': { type: 'string', description: 'Heartbeat renew interval', default: `${HEARTBEAT.defaultRenewIntervalMs}ms` },
  'health-port': { type: 'string', description: `Port for /healthz, /readyz, /metrics and ${AGENT_DIAGNOSE_PATH} (read-only JSON)`, default: String(PORTS.health) },
  'health-bind': { type: 'string', description: 'Address of the health/metrics server', default: '0.0.0.0' },
  'uninstall-with': { type: 'string', description: 'namespace/name of this agent\'s DaemonSet: when it is gone or being deleted at stop, remove every kernel object and VPN device (uninstall) instead of keeping them for the next agent' },
  'diagnose-endpoint': { type: 'boolean', description: `Serve ${AGENT_DIAGNOSE_PATH} on the health port (read-only; what ravenctl diagnose reads)`, default: true },
} as const;

const SUMMARY = `Raven L3 agent, one per node (host network). Non-gateway nodes route cross-domain traffic over vxlan raven0
to their domain's gateway; gateway nodes build WireGuard (or IPsec) tunnels to the other gateways.

Commands:
  (none)    run the agent
  cleanup   remove every kernel object and VPN device the agent owns (for uninstall)`;

interface WireguardFlags {
  implementation: string;
  wireguardGo: string;
}

function driverFor(name: string, stateDir: string, wg: WireguardFlags, log: ReturnType<typeof createLogger>, psk: () => string | undefined): VpnDriver {
  if (name === 'wireguard') {
    const { implementation, wireguardGo } = wg;
    if (!['auto', 'kernel', 'userspace'].includes(implementation)) throw new ConfigError(`--wireguard-implementation must be auto, kernel or userspace`);
    if (wireguardGo.trim() === '') throw new ConfigError('--wireguard-go must name a binary');
    return new WireguardDriver({
      exec: hostExec, log, stateDir, device: 'raven-wg0', implementation: implementation as 'auto' | 'kernel' | 'userspace', wireguardGo,
    });
  }
  if (name === 'libreswan') return new LibreswanDriver({ exec: hostExec, log, stateDir, psk });
  throw new ConfigError(`--vpn-driver must be wireguard or libreswan, got "${name}"`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseFlags('tunnel-agent', SUMMARY, flags, process.argv.slice(2), ['cleanup']);
  const nodeName = values['node-name'] || process.env.NODE_NAME || hostname();
  const log = createLogger('tunnel-agent', { level: values['log-level'], node: nodeName });
  const stateDir = values['state-dir'] ?? '/var/lib/raven';
  const driverName = values['vpn-driver'] ?? 'wireguard';
  const wg = { implementation: values['wireguard-implementation'] ?? 'auto', wireguardGo: values['wireguard-go'] ?? 'wireguard-go' };

  if (positionals[0] === 'cleanup') {
    const driver = driverFor(driverName, stateDir, wg, log, () => undefined);
    await driver.cleanup();
    const removed = await new DataPathApplier(hostExec).cleanup();
    log.info({ removed }, 'cleaned up');
    return;
  }

  const uninstallWith = values['uninstall-with'] ? parseOwnerFlag(values['uninstall-with']) : undefined;
  const kube = await KubeClient.load({ kubeconfig: values.kubeconfig, userAgent: `raven-tunnel-agent/${nodeName}` });
  const shutdown = new Shutdown(log);
  const health = new HealthServer('raven_tunnel');
  kube.instrument(health.registry, 'raven_tunnel');
  health.addLivenessCheck('process', () => ({ ok: true }));
  const healthPort = await health.listen(intFlag('health-port', values['health-port'], PORTS.health), values['health-bind']);
  shutdown.onStop('health', () => health.close());
  shutdown.onStop('kube-client', () => kube.close());

  const namespace = values.namespace ?? SYSTEM_NAMESPACE;
  const pskFile = values['psk-file'];
  const psk = new PresharedKey(pskFile ? { kind: 'file', path: pskFile } : { kind: 'secret', kube, namespace }, log);
  const driver = driverFor(driverName, stateDir, wg, log, () => psk.value);
  // Hole punching configures WireGuard peers by their observed mappings; IPsec's IKE would need its own NAT-T story.
  if (values['nat-traversal'] && driver.name !== 'wireguard') throw new ConfigError('--nat-traversal needs --vpn-driver wireguard');
  const agent = new TunnelAgent({
    kube, log, registry: health.registry, exec: hostExec, driver, psk, nodeName, namespace,
    forwardNodeIP: values['forward-node-ip'],
    keepaliveSeconds: Math.round(durationFlag('keepalive', values.keepalive, 5_000) / 1_000),
    resyncMs: durationFlag('resync-period', values['resync-period'], 30_000),
    probeIntervalMs: durationFlag('probe-interval', values['probe-interval'], 5_000),
    natTraversal: values['nat-traversal'],
    heartbeat: {
      intervalMs: durationFlag('heartbeat-interval', values['heartbeat-interval'], 500),
    },
  });
  health.addReadinessCheck('data-path', agent.readiness);
  // Read-only: what the last reconcile planned and had to repair, per subsystem, and the VPN peers (ravenctl diagnose).
  if (values['diagnose-endpoint'] !== false) health.addJsonEndpoint(AGENT_DIAGNOSE_PATH, () => agent.diagnose());
  // Stopping leaves the kernel state in place on purpose: the next agent adopts it (hitless restart). Unless Raven is
  // being uninstalled: then no agent follows.
  shutdown.onStop('agent', async () => {
    await agent.stop();
    if (!uninstallWith) return;
    const owner = await ownerState(kube, uninstallWith);
    if (!removesStateOnStop(owner)) {
      log.info({ daemonSet: uninstallWith, owner }, 'keeping the kernel state for the next agent');
      return;
    }
    await driver.cleanup();
    const removed = await new DataPathApplier(hostExec).cleanup();
    log.info({ daemonSet: uninstallWith, owner, removed }, 'uninstalled: removed every kernel object and VPN device the agent owned');
  });
  log.info({ healthPort, driver: driverName, stateDir }, 'starting');
  await agent.start(shutdown.signal);
}

main().catch((err: unknown) => {
  createLogger('tunnel-agent').fatal({ err }, err instanceof ConfigError ? err.message : 'fatal error');
  process.exit(err instanceof ConfigError ? 2 : 1);
});
