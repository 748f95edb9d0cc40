import { isIP } from 'node:net';
import { LABELS, activeEndpointsOfType, type Gateway } from '@raven/api-types';
import type { NodeSnapshot, Snapshot } from './snapshot.ts';

/**
 * Probe Pods for `verify` and `benchmark`, as pure data: where they go, their manifests and shell scripts, and how
 * their results are read back. Results travel in each prober's termination message, which its kubelet reports in the
 * Pod status: reading them needs no apiserver-to-kubelet connection, so a broken L7 path does not hide L3 results.
 */

export const PROBE_LABEL = 'raven.openyurt.io/probe';
export const PROBE_PORT = 8080;
/** The kubelet keeps at most this much of a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;
const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const GATEWAY_NAME = NODE_NAME;

export class ProbeInputError extends Error {
  override readonly name = 'ProbeInputError';
}

/** One node that gets a probe: a domain's active gateway, or one of its other members. */
export interface ProbeSite {
  node: string;
  gateway: string;
  role: 'gateway' | 'member';
}

/**
 * A domain's active tunnel endpoint and one other Ready member (a node that is no endpoint candidate if there is one),
 * for every valid Gateway with Ready nodes: each node kind in every domain.
 */
export function chooseProbeSites(snapshot: Pick<Snapshot, 'gateways' | 'nodes'>): ProbeSite[] {
  const sites: ProbeSite[] = [];
  const ready = (n: NodeSnapshot) => n.ready === 'True';
  for (const gw of [...snapshot.gateways].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const name = gw.metadata.name;
    const members = snapshot.nodes.filter((n) => n.labels[LABELS.gateway] === name && ready(n)).sort((a, b) => a.name.localeCompare(b.name));
    const active = activeEndpointsOfType(gw, 'tunnel')[0]?.nodeName;
    const gatewayNode = members.find((n) => n.name === active);
    if (gatewayNode) sites.push({ node: gatewayNode.name, gateway: name, role: 'gateway' });
    const candidates = new Set((gw.spec?.endpoints ?? []).map((e) => e.nodeName));
    const others = members.filter((n) => n.name !== active);
    const member = others.find((n) => !candidates.has(n.name)) ?? others[0];
    if (member) sites.push({ node: member.name, gateway: name, role: 'member' });
  }
  return sites;
}

export type CheckKind = 'pod' | 'large' | 'service';

/** One check a prober runs: a ping (of `bytes`), or an HTTP GET of a ClusterIP that answers with its node's name. */
export interface ProbeCheck {
  id: number;
  kind: CheckKind;
  /** The site (node) probed, or for `service` the Gateway whose Service it is. */
  to: string;
  address: string;
}

export const LARGE_PING_BYTES = 3000;

function assertAddress(address: string): string {
  if (isIP(address) === 0) throw new ProbeInputError(`${JSON.stringify(address)} is not an IP address`);
  return address;
}

const ping = (address: string, bytes?: number) => `ping -c 2 -W 3 ${bytes ? `-s ${bytes} ` : ''}${address}`;
const httpGet = (address: string, path = '/') => `get http://${isIP(address) === 6 ? `[${address}]` : address}:${PROBE_PORT}${path}`;

/**
 * The prober's script: every check at once in the background, each writing `<id> <exit code> <last output line>`,
 * then all of them as the termination message. Addresses are checked to be IP literals before they reach the shell.
 */
export function proberScript(checks: readonly ProbeCheck[]): string {
  const lines = [
    'set +e',
    // The last line of output, reduced to characters that cannot break the result format.
    "run() { id=$1; shift; out=$(\"$@\" 2>&1); rc=$?; echo \"$id $rc $(echo \"$out\" | tail -n 1 | tr -cd 'A-Za-z0-9./=:_ %-' | cut -c 1-64)\" > /tmp/result.$id; }",
    // A Service just created may not be programmed by kube-proxy yet: retry for about 20 s.
    'get() { i=0; while [ $i -lt 10 ]; do timeout 3 wget -q -O - "$1" && return 0; i=$((i+1)); sleep 1; done; return 1; }',
  ];
  for (const check of checks) {
    const address = assertAddress(check.address);
    const command = check.kind === 'service' ? httpGet(address) : ping(address, check.kind === 'large' ? LARGE_PING_BYTES : undefined);
    lines.push(`run ${check.id} ${command} &`);
  }
  lines.push('wait', 'cat /tmp/result.* > /dev/termination-log 2>/dev/null', `echo "raven-probe $NODE_NAME done"`);
  return lines.join('\n');
}

export interface CheckResult {
  id: number;
  ok: boolean;
  /** Average RTT of a ping (ms), when it answered. */
  rttMs?: number;
  /** The node that answered an HTTP check. */
  answeredBy?: string;
  detail: string;
}

const RESULT_LINE = /^(\d{1,6}) (\d{1,3}) ?(.*)$/;
const ROUND_TRIP = /round-trip min\/avg\/max = [\d.]+\/([\d.]+)\//;

/** Parses a prober's termination message; lines that do not fit the format are ignored (the check then has no result). */
export function parseProberResults(message: string, checks: readonly ProbeCheck[]): Map<number, CheckResult> {
  const byId = new Map(checks.map((c) => [c.id, c]));
  const results = new Map<number, CheckResult>();
  for (const line of message.split('\n')) {
    const match = RESULT_LINE.exec(line.trim());
    if (!match) continue;
    const id = Number(match[1]);
    const check = byId.get(id);
    if (!check) continue;
    const detail = match[3] ?? '';
    const ok = match[2] === '0';
    const result: CheckResult = { id, ok, detail };
    if (check.kind === 'service') {
      if (ok && NODE_NAME.test(detail)) result.answeredBy = detail;
      else if (ok) result.ok = false;
    } else {
      const rtt = ROUND_TRIP.exec(detail)?.[1];
      if (ok && rtt) result.rttMs = Number(rtt);
    }
    results.set(id, result);
  }
  return results;
}

export interface ProbeManifestOptions {
  namespace: string;
  image: string;
  runId: string;
}

const tolerateAll = [{ operator: 'Exists' }];
const nodeNameEnv = [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }];
// The runtime's default capabilities include NET_RAW, which ping needs; PodSecurity baseline refuses adding it explicitly.
const probeContainerSecurity = { allowPrivilegeEscalation: false };
const podName = (kind: string, node: string, runId: string) => `raven-${kind}-${runId}-${node}`.slice(0, 63).replace(/[.-]+$/, '');

function assertSite(site: ProbeSite): void {
  if (!NODE_NAME.test(site.node)) throw new ProbeInputError(`node name ${JSON.stringify(site.node)} is not a DNS subdomain`);
  if (!GATEWAY_NAME.test(site.gateway)) throw new ProbeInputError(`Gateway name ${JSON.stringify(site.gateway)} is not a DNS subdomain`);
}

/**
 * A responder: HTTP on PROBE_PORT answering with its node's name, and `/cgi-bin/zero?<MiB>` streaming that many MiB
 * of zeros (the benchmark's payload). Pinned to its node with nodeName, tolerating every taint.
 */
export function responderPod(site: ProbeSite, opts: ProbeManifestOptions): object {
  assertSite(site);
  const script = [
    'mkdir -p /www/cgi-bin',
    'echo "$NODE_NAME" > /www/index.html',
    // The query is a count of MiB, digits only.
    "printf '%s\\n' '#!/bin/sh' 'case \"$QUERY_STRING\" in \"\"|*[!0-9]*) echo \"Status: 400\"; echo; exit 0;; esac' 'echo \"Content-Type: application/octet-stream\"' 'echo' 'exec dd if=/dev/zero bs=1048576 count=\"$QUERY_STRING\" 2>/dev/null' > /www/cgi-bin/zero",
    'chmod 755 /www/cgi-bin/zero',
    `exec httpd -f -p ${PROBE_PORT} -h /www`,
  ].join('\n');
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: podName('responder', site.node, opts.runId), namespace: opts.namespace, labels: { [PROBE_LABEL]: 'responder', [`${PROBE_LABEL}-gateway`]: site.gateway, [`${PROBE_LABEL}-run`]: opts.runId } },
    spec: {
      nodeName: site.node, tolerations: tolerateAll, restartPolicy: 'Never', terminationGracePeriodSeconds: 1, automountServiceAccountToken: false,
      containers: [{
        name: 'responder', image: opts.image, command: ['sh', '-c', script], env: nodeNameEnv, ports: [{ containerPort: PROBE_PORT }],
        readinessProbe: { httpGet: { path: '/', port: PROBE_PORT }, periodSeconds: 1 },
        securityContext: probeContainerSecurity, resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
      }],
    },
  };
}

/** A prober: runs `script` once on its node and ends, its results in its termination message. */
export function proberPod(site: ProbeSite, script: string, opts: ProbeManifestOptions & { round: number }): object {
  assertSite(site);
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: podName(`prober${opts.round}`, site.node, opts.runId), namespace: opts.namespace, labels: { [PROBE_LABEL]: 'prober', [`${PROBE_LABEL}-run`]: opts.runId } },
    spec: {
      nodeName: site.node, tolerations: tolerateAll, restartPolicy: 'Never', terminationGracePeriodSeconds: 1, automountServiceAccountToken: false,
      containers: [{
        name: 'prober', image: opts.image, command: ['sh', '-c', script], env: nodeNameEnv, terminationMessagePolicy: 'File',
        securityContext: probeContainerSecurity, resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
      }],
    },
  };
}

/** A ClusterIP Service over one domain's responders. */
export function domainService(gateway: string, opts: ProbeManifestOptions): object {
  if (!GATEWAY_NAME.test(gateway)) throw new ProbeInputError(`Gateway name ${JSON.stringify(gateway)} is not a DNS subdomain`);
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: `raven-probe-${opts.runId}-${gateway}`.slice(0, 63).replace(/[.-]+$/, '').replace(/\./g, '-'), namespace: opts.namespace },
    spec: { selector: { [PROBE_LABEL]: 'responder', [`${PROBE_LABEL}-gateway`]: gateway }, ports: [{ port: PROBE_PORT, targetPort: PROBE_PORT }] },
  };
}

/** Gateways that carry tunnel traffic between their domains (and so are expected to reach each other). */
export function tunnelGateways(gateways: readonly Gateway[]): Set<string> {
  return new Set(gateways.filter((gw) => (gw.spec?.endpoints ?? []).some((e) => e.type === 'tunnel')).map((gw) => gw.metadata.name));
}
