import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkthroughTopology, WALKTHROUGH_DIR, type BoxDomainSpec, type BoxTopology } from './box/index.ts';
import { kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';

/**
 * The walkthrough on real nodes, as the e2e suite and the demo run it: its six nodes plus a node in no Gateway that
 * reuses hangzhou's gateway node's InternalIP (section 2.3), the walkthrough's busybox Deployment, and probe pods.
 */

export const WALKTHROUGH_NODES = {
  hzGateway: 'izbp15inok0kbfkg3in52rz', hzMember: 'izbp15inok0kbfkg3in52sz',
  qdMember: 'izm5eb24dmjfimuaybpnqzz', qdGateway: 'izm5eb24dmjfimuaybpnr0z',
  cloudGateway: 'izwz9dohcv74iegqecp4axz', cloudMember: 'izwz9ey0js5z7mornclpd6z',
  lone: 'edge-lone-1',
} as const;
export const CONFLICTING_IP = '172.16.2.103';
const LONE_DOMAIN: BoxDomainSpec = { name: 'lone', lan: '172.16.2.0/24', wanIP: '198.18.0.41', nodes: [{ name: WALKTHROUGH_NODES.lone, internalIP: CONFLICTING_IP, podCIDR: '10.224.3.0/26' }] };

/** The cloud member's public address: a second proxy-server there is reachable from the edge (scaling proxy-server). */
export const CLOUD_MEMBER_PUBLIC_IP = '198.18.0.12';

export function realWalkthroughTopology(): BoxTopology {
  const walkthrough = walkthroughTopology();
  const domains = walkthrough.domains.map((d) => ({
    ...d, nodes: d.nodes.map((n) => (n.name === WALKTHROUGH_NODES.cloudMember ? { ...n, publicIP: CLOUD_MEMBER_PUBLIC_IP } : n)),
  }));
  return { ...walkthrough, domains: [...domains, LONE_DOMAIN] };
}

/** k8s/examples/walkthrough/busybox.yaml: the walkthrough's Deployment, verbatim. */
export const walkthroughBusybox = (): string => readFileSync(join(WALKTHROUGH_DIR, 'busybox.yaml'), 'utf8');

// Debian's busybox-static wget crashes with -T; callers bound it with `timeout`.
/** A probe container: says which node it is on (stdout every second, /node over HTTP) and serves 64 MiB at /cgi-bin/big. */
export const probeContainer = (name: string) => ({
  name, image: 'busybox',
  env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
  command: ['/bin/sh', '-c', [
    'mkdir -p /www/cgi-bin', 'echo "$NODE_NAME" > /www/node',
    `printf '#!/bin/sh\\necho Content-Type: application/octet-stream\\necho\\nexec dd if=/dev/zero bs=1048576 count=64 2>/dev/null\\n' > /www/cgi-bin/big`,
    'chmod +x /www/cgi-bin/big', 'httpd -p 8080 -h /www', 'while true; do echo "node=$NODE_NAME"; sleep 1; done',
  ].join('; ')],
  ports: [{ containerPort: 8080, name: 'http' }],
});

/** A probe pod on every node (`app=<name>`), in the pod network or the node's (hostNetwork, a sleeper). */
export const probeDaemonSet = (name: string, hostNetwork: boolean) => ({
  apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name, namespace: 'default' },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { hostNetwork, terminationGracePeriodSeconds: 0, containers: [hostNetwork ? { ...probeContainer(name), command: ['sleep', '2147483647'], ports: [] } : probeContainer(name)] } },
  },
});

export interface PodRow { name: string; node: string; ip: string; phase: string }

export async function podRows(kubeconfig: string, selector: string, namespace = 'default'): Promise<PodRow[]> {
  const out = await kubectl(kubeconfig, ['get', 'pods', '-n', namespace, '-l', selector, '-o',
    'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.phase}{"\\n"}{end}']);
  return out.split('\n').filter(Boolean).map((line) => {
    const [name = '', node = '', ip = '', phase = ''] = line.split(' ');
    return { name, node, ip, phase };
  });
}

/** Waits for `count` Running pods of `selector`; on a timeout, the failure carries what the cluster says. */
export async function runningPods(kubeconfig: string, selector: string, count: number, timeoutMs = 90_000): Promise<PodRow[]> {
  return waitFor(`${count} Running pods ${selector}`, async () => {
    const rows = await podRows(kubeconfig, selector);
    return rows.length === count && rows.every((p) => p.phase === 'Running' && p.ip) ? rows : undefined;
  }, timeoutMs, 500).catch(async (err: unknown) => {
    const events = await kubectl(kubeconfig, ['get', 'events', '-A', '--sort-by=.lastTimestamp']).catch((e: unknown) => String(e));
    const all = await kubectl(kubeconfig, ['get', 'deploy,ds,rs,pods', '-A', '-o', 'wide']).catch((e: unknown) => String(e));
    throw new Error(`${String(err)}\n${all}\n${events.split('\n').slice(-40).join('\n')}`);
  });
}

/**
 * Pod to pod across domains through `kubectl exec`: from every probe to every probe of the other Gateways' domains
 * (`domainOf` names a node's domain; nodes in no Gateway and `excluded` ones are left out). Returns the failures.
 */
export async function podMatrixFailures(kubeconfig: string, probes: readonly PodRow[], domainOf: (node: string) => string, excluded: readonly string[] = []): Promise<{ pairs: number; failures: string[] }> {
  const inGateways = probes.filter((p) => domainOf(p.node) !== LONE_DOMAIN.name && !excluded.includes(p.node));
  const failures: string[] = [];
  let pairs = 0;
  for (const from of inGateways) {
    const targets = inGateways.filter((p) => domainOf(p.node) !== domainOf(from.node));
    pairs += targets.length;
    const script = targets.map((t) => `ping -c 1 -W 3 ${t.ip} >/dev/null && echo "ok ${t.ip}" || echo "FAIL ${t.ip}"`).join('; ');
    const out = await kubectl(kubeconfig, ['exec', '-n', 'default', from.name, '--', 'sh', '-c', script]);
    for (const line of out.split('\n').filter((l) => l.startsWith('FAIL'))) failures.push(`${from.node} (${from.ip}) -> ${line.slice(5)}`);
  }
  return { pairs, failures };
}
