import { ANNOTATIONS, HEARTBEAT, LABELS, PSK_SECRET, RAVEN_CFG_KEYS, heartbeatLeaseName, mayHoldProxyClientIdentity, proxyServerGateways, type HeartbeatComponent } from '@raven/api-types';
import type { IssuedCertificate, Snapshot } from './snapshot.ts';
import { activeTunnelNode, isLeaseFresh, leaseAgeSeconds } from './show.ts';

export type Severity = 'error' | 'warning';

/** One problem, what it breaks, and the one command (or step) that fixes it. */
export interface Finding {
  severity: Severity;
  check: string;
  object: string;
  message: string;
  fix: string;
}

export interface DiagnoseOptions {
  /** Clock difference between a node and the apiserver worth reporting. */
  maxClockSkewSeconds: number;
  /** Warn when less than this share of a certificate's lifetime remains (rotation should have happened by then). */
  certificateWarnFraction: number;
}

export const DEFAULT_DIAGNOSE_OPTIONS: DiagnoseOptions = { maxClockSkewSeconds: 2, certificateWarnFraction: 0.1 };

const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
const ns = (s: Snapshot) => s.namespace;

function modes(s: Snapshot): { l3: boolean; l7: boolean } {
  const cfg = s.ravenConfig ?? {};
  return { l3: cfg[RAVEN_CFG_KEYS.l3Tunnel] === 'true', l7: cfg[RAVEN_CFG_KEYS.l7Proxy] === 'true' };
}

export function checkConfig(s: Snapshot): Finding[] {
  const cm = `configmap/${ns(s)}/raven-cfg`;
  if (!s.ravenConfig) {
    return [{ severity: 'error', check: 'config', object: cm, message: 'raven-cfg is missing: gateway-pickup elects no endpoint and no agent sets up anything', fix: 'kubectl apply --server-side -k k8s/overlays/wireguard   (or create raven-cfg with enable-l3-tunnel/enable-l7-proxy)' }];
  }
  const { l3, l7 } = modes(s);
  const patch = (key: string) => `kubectl -n ${ns(s)} patch configmap raven-cfg --type merge -p '{"data":{"${key}":"true"}}'`;
  if (!l3 && !l7) return [{ severity: 'error', check: 'config', object: cm, message: 'both enable-l3-tunnel and enable-l7-proxy are off: Raven does nothing', fix: patch(RAVEN_CFG_KEYS.l3Tunnel) }];
  if (!l3) return [{ severity: 'warning', check: 'config', object: cm, message: `enable-l3-tunnel is "${s.ravenConfig[RAVEN_CFG_KEYS.l3Tunnel] ?? ''}", not "true": pods cannot reach each other across domains (only L7 by node name works)`, fix: patch(RAVEN_CFG_KEYS.l3Tunnel) }];
  return [];
}

export function checkGateways(s: Snapshot): Finding[] {
  const out: Finding[] = [];
  for (const bad of s.invalidGateways) {
    out.push({ severity: 'error', check: 'gateway-schema', object: `gateway/${bad.name}`, message: `does not match the Gateway schema: ${bad.error.split('\n').join('; ')}`, fix: `kubectl edit gateway ${q(bad.name)}` });
  }
  const nodes = new Map(s.nodes.map((n) => [n.name, n]));
  const natted = s.gateways.filter((g) => g.spec?.endpoints?.some((e) => e.underNAT));
  const exposed = s.gateways.filter((g) => g.spec?.exposeType);
  if (s.gateways.length > 1 && exposed.length === 0 && modes(s).l3) {
    const candidate = s.gateways.find((g) => !natted.includes(g))?.metadata.name ?? '<cloud-gateway>';
    out.push({ severity: 'error', check: 'exposed-gateway', object: 'gateways', message: `no Gateway is exposed (spec.exposeType): ${natted.length > 0 ? 'the domains behind NAT have no gateway to dial' : 'no domain accepts tunnels from the others'}`, fix: `kubectl patch gateway ${q(candidate)} --type merge -p '{"spec":{"exposeType":"PublicIP"}}'` });
  }
  for (const gw of s.gateways) {
    const name = gw.metadata.name;
    const obj = `gateway/${name}`;
    if (!gw.spec?.endpoints?.length) {
      out.push({ severity: 'warning', check: 'gateway-endpoints', object: obj, message: 'lists no endpoints: nothing can be elected, its domain has no tunnel or proxy', fix: `kubectl edit gateway ${q(name)}   (add spec.endpoints for the domain's gateway nodes)` });
      continue;
    }
    const ready = gw.status?.conditions?.find((c) => c.type === 'Ready');
    const degraded = gw.status?.conditions?.find((c) => c.type === 'Degraded');
    if (!ready) {
      out.push({ severity: 'warning', check: 'gateway-status', object: obj, message: 'has no status: gateway-pickup has not reconciled it', fix: `kubectl -n ${ns(s)} get deploy,lease raven-gateway-pickup; kubectl -n ${ns(s)} logs deploy/raven-gateway-pickup` });
    } else if (ready.status !== 'True') {
      out.push({ severity: 'error', check: 'gateway-ready', object: obj, message: `not Ready (${ready.reason}): ${ready.message}`, fix: `kubectl get nodes ${gw.spec.endpoints.map((e) => q(e.nodeName)).join(' ')}   (candidates must be Ready and heartbeating)` });
    } else if (degraded?.status === 'True') {
      out.push({ severity: 'warning', check: 'gateway-degraded', object: obj, message: `Degraded (${degraded.reason}): ${degraded.message}`, fix: `add candidate endpoints or lower Replicas: kubectl edit gateway ${q(name)}` });
    }
    if (gw.spec.exposeType) {
      for (const e of (gw.status?.activeEndpoints ?? []).filter((x) => x.type === 'tunnel')) {
        const annotated = nodes.get(e.nodeName)?.annotations[ANNOTATIONS.publicIP];
        if (!e.publicIP && !annotated) {
          const fix = gw.spec.exposeType === 'LoadBalancer'
            ? `kubectl -n ${ns(s)} get svc -l ${LABELS.endpointsName}=${q(e.nodeName)}   (the LoadBalancer Service needs an ingress IP)`
            : `kubectl annotate node ${q(e.nodeName)} ${ANNOTATIONS.publicIP}=<public-ip>   (or set publicIP on the endpoint in the Gateway spec)`;
          out.push({ severity: 'error', check: 'public-ip', object: obj, message: `exposed, but its active tunnel endpoint ${e.nodeName} has no publicIP: peers behind NAT cannot dial it`, fix });
        }
      }
    }
    if (modes(s).l3) {
      const bare = (gw.status?.nodes ?? []).filter((n) => !n.subnets?.length).map((n) => n.nodeName);
      if (bare.length > 0) {
        out.push({ severity: 'warning', check: 'pod-subnet', object: obj, message: `${bare.length} member node(s) have no pod subnet (spec.podCIDR or a Calico block), so their pods are not routed across domains: ${bare.slice(0, 5).join(', ')}${bare.length > 5 ? ', ...' : ''}`, fix: 'give nodes a podCIDR (kube-controller-manager --allocate-node-cidrs=true --cluster-cidr=...) or use Calico IPAM' });
      }
    }
    for (const c of gw.status?.connections ?? []) {
      if (c.status === 'Connected') continue;
      out.push({
        severity: c.status === 'Error' ? 'error' : 'warning', check: 'connection', object: obj,
        message: `peer ${c.gateway} (${c.nodeName}) is ${c.status}${c.statusMessage ? `: ${c.statusMessage}` : ''}`,
        fix: `allow UDP 4500 between ${activeTunnelNode(gw) ?? name} and ${c.nodeName}${c.endpoint ? ` (${c.endpoint})` : ''}; then check the tunnel-agent logs on both`,
      });
    }
  }
  return out;
}

export function checkNodes(s: Snapshot): Finding[] {
  const names = new Set(s.gateways.map((g) => g.metadata.name));
  if (names.size === 0) {
    return s.nodes.length > 0 ? [{ severity: 'error', check: 'gateways', object: 'gateways', message: 'no Gateway exists: no domain is connected', fix: 'create one Gateway per network domain (README: Create the Gateways)' }] : [];
  }
  const sample = [...names][0]!;
  return s.nodes.flatMap((n): Finding[] => {
    const label = n.labels[LABELS.gateway];
    if (!label) return [{ severity: 'warning', check: 'node-gateway-label', object: `node/${n.name}`, message: 'belongs to no Gateway: its pods are not routed to or from other domains', fix: `kubectl label node ${q(n.name)} ${LABELS.gateway}=${q(sample)}   (the Gateway of its network domain)` }];
    if (!names.has(label)) return [{ severity: 'error', check: 'node-gateway-label', object: `node/${n.name}`, message: `is labelled with Gateway "${label}", which does not exist`, fix: `kubectl label node ${q(n.name)} --overwrite ${LABELS.gateway}=<existing-gateway>   (or create Gateway ${q(label)})` }];
    return [];
  });
}

/** Candidate endpoints must heartbeat while their mode is on; a Lease older than its duration means the process stopped. */
export function checkHeartbeats(s: Snapshot): Finding[] {
  const { l3, l7 } = modes(s);
  const leases = new Map(s.heartbeats.map((l) => [l.name, l]));
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const gw of s.gateways) {
    for (const e of gw.spec?.endpoints ?? []) {
      const component: HeartbeatComponent = e.type;
      if ((component === 'tunnel' && !l3) || (component === 'proxy' && !l7)) continue;
      const leaseName = heartbeatLeaseName(component, e.nodeName);
      if (seen.has(leaseName)) continue;
      seen.add(leaseName);
      const process = component === 'tunnel' ? 'tunnel-agent' : 'proxy-server/proxy-client';
      const lease = leases.get(leaseName);
      const obj = `lease/${HEARTBEAT.namespace}/${leaseName}`;
      if (!lease) {
        out.push({ severity: 'warning', check: 'heartbeat', object: obj, message: `no heartbeat from ${process} on ${e.nodeName} (candidate of ${gw.metadata.name}): election falls back to Node Ready, failover is slow`, fix: `kubectl -n ${ns(s)} get pods -o wide --field-selector spec.nodeName=${e.nodeName} -l app.kubernetes.io/part-of=raven` });
      } else if (!isLeaseFresh(lease, s.takenAt)) {
        const age = leaseAgeSeconds(lease, s.takenAt);
        out.push({ severity: 'error', check: 'heartbeat', object: obj, message: `${process} on ${e.nodeName} stopped heartbeating: last renewal ${age === undefined ? 'never' : `${Math.round(age)}s ago`} (valid ${lease.durationSeconds ?? '?'}s), so it is not elected`, fix: `check ${process} on ${e.nodeName}: kubectl -n ${ns(s)} logs -l app.kubernetes.io/component=${component === 'tunnel' ? 'tunnel-agent' : 'proxy-client'} --field-selector spec.nodeName=${e.nodeName}` });
      }
    }
  }
  return out;
}

/** Clock skew: the holder stamps renewTime with its clock; the apiserver records the write time (managedFields) with its own. */
export function checkClockSkew(s: Snapshot, maxSkewSeconds: number): Finding[] {
  const out: Finding[] = [];
  for (const l of s.heartbeats) {
    if (l.renewTime === undefined || l.serverWriteTime === undefined || !l.holder) continue;
    // serverWriteTime is truncated to the second: the true write time is in [serverWriteTime, serverWriteTime + 1 s).
    const skew = (l.renewTime - l.serverWriteTime) / 1000;
    const excess = skew > 1 ? skew - 1 : skew < 0 ? -skew : 0;
    if (excess <= maxSkewSeconds) continue;
    const estimate = skew - 0.5;
    out.push({ severity: 'warning', check: 'clock-skew', object: `node/${l.holder}`, message: `clock is about ${Math.round(Math.abs(estimate))}s ${estimate > 0 ? 'ahead of' : 'behind'} the apiserver (from lease ${l.name}); certificates and logs go wrong`, fix: `enable time sync on ${l.holder}: timedatectl set-ntp true` });
  }
  return out;
}

export function checkLeader(s: Snapshot): Finding[] {
  const obj = `lease/${ns(s)}/raven-gateway-pickup`;
  if (!s.pickupLeader) return [{ severity: 'warning', check: 'pickup-leader', object: obj, message: 'no gateway-pickup leader Lease: gateway-pickup is not running, or runs without leader election', fix: `kubectl -n ${ns(s)} get deploy raven-gateway-pickup` }];
  if (!isLeaseFresh(s.pickupLeader, s.takenAt)) {
    const age = leaseAgeSeconds(s.pickupLeader, s.takenAt);
    return [{ severity: 'error', check: 'pickup-leader', object: obj, message: `leader ${s.pickupLeader.holder ?? '?'} stopped renewing ${age === undefined ? '' : `${Math.round(age)}s ago `}: no controller elects endpoints or writes status`, fix: `kubectl -n ${ns(s)} rollout restart deploy/raven-gateway-pickup` }];
  }
  return [];
}

export function checkPsk(s: Snapshot): Finding[] {
  if (!modes(s).l3) return [];
  const obj = `secret/${ns(s)}/${PSK_SECRET.name}`;
  const fix = `kubectl -n ${ns(s)} create secret generic ${PSK_SECRET.name} --from-literal=${PSK_SECRET.key}="$(openssl rand -base64 48)"`;
  if (s.psk.secret === 'forbidden') return [{ severity: 'warning', check: 'psk', object: obj, message: 'cannot read the PSK Secret with these credentials', fix: 'rerun with credentials that may get Secrets in the Raven namespace' }];
  if (s.psk.secret === 'missing') return [{ severity: 'error', check: 'psk', object: obj, message: 'the tunnel PSK Secret is missing: libreswan agents refuse to start, WireGuard tunnels have no preshared key', fix }];
  if (!s.psk.hasKey) return [{ severity: 'error', check: 'psk', object: obj, message: `the Secret has no "${PSK_SECRET.key}" key`, fix: `kubectl -n ${ns(s)} delete secret ${PSK_SECRET.name} && ${fix}` }];
  return [];
}

/**
 * The newest certificate each proxy process got from the CSR API: expired, close to expiry, or refused. Only for
 * nodes that may hold that identity now (the approver's own rule): a proxy on a node that is no candidate has no
 * certificate by design, and its old refusals say nothing.
 */
function mayHoldIdentity(s: Snapshot, component: IssuedCertificate['component'], nodeName: string): boolean {
  if (component === 'proxy-server') return proxyServerGateways(nodeName, s.gateways).length > 0;
  const node = s.nodes.find((n) => n.name === nodeName);
  return !!node && mayHoldProxyClientIdentity({ name: nodeName, gateway: node.labels[LABELS.gateway] }, s.gateways);
}

export function checkCertificates(s: Snapshot, warnFraction: number): Finding[] {
  if (!s.certificatesReadable) return [{ severity: 'warning', check: 'certificate', object: 'certificatesigningrequests', message: 'cannot list CSRs with these credentials: proxy certificates were not checked', fix: 'rerun with credentials that may list certificatesigningrequests' }];
  const latest = new Map<string, IssuedCertificate[]>();
  for (const c of s.certificates) latest.set(`${c.component}/${c.nodeName}`, [...(latest.get(`${c.component}/${c.nodeName}`) ?? []), c]);
  const out: Finding[] = [];
  for (const [key, certs] of [...latest].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const issued = certs.filter((c) => c.notAfter !== undefined).sort((a, b) => b.notAfter! - a.notAfter!)[0];
    const [component, ...rest] = key.split('/');
    const nodeName = rest.join('/');
    if (!mayHoldIdentity(s, component as IssuedCertificate['component'], nodeName)) continue;
    const fix = `kubectl -n ${ns(s)} delete pod -l app.kubernetes.io/component=${component} --field-selector spec.nodeName=${nodeName}   (a restart requests a new certificate)`;
    if (!issued) {
      const refused = certs.find((c) => c.refused);
      if (refused) out.push({ severity: 'error', check: 'certificate', object: `csr/${refused.csr}`, message: `${component} on ${nodeName} has no certificate: ${refused.refused}`, fix: `kubectl -n ${ns(s)} logs deploy/raven-gateway-pickup | grep csr   (the approver says why)` });
      continue;
    }
    const remaining = issued.notAfter! - s.takenAt;
    const lifetime = issued.notAfter! - (issued.notBefore ?? issued.notAfter!);
    if (remaining <= 0) {
      out.push({ severity: 'error', check: 'certificate', object: `csr/${issued.csr}`, message: `${component} certificate for ${nodeName} expired ${new Date(issued.notAfter!).toISOString()}: its TLS connections fail`, fix });
    } else if (lifetime > 0 && remaining < lifetime * warnFraction) {
      out.push({ severity: 'warning', check: 'certificate', object: `csr/${issued.csr}`, message: `${component} certificate for ${nodeName} expires in ${Math.round(remaining / 60_000)} min and was not renewed`, fix });
    }
  }
  return out;
}

export function diagnose(s: Snapshot, opts: DiagnoseOptions = DEFAULT_DIAGNOSE_OPTIONS): Finding[] {
  const all = [
    ...checkConfig(s), ...checkLeader(s), ...checkGateways(s), ...checkNodes(s), ...checkHeartbeats(s),
    ...checkPsk(s), ...checkCertificates(s, opts.certificateWarnFraction), ...checkClockSkew(s, opts.maxClockSkewSeconds),
  ];
  const rank: Record<Severity, number> = { error: 0, warning: 1 };
  return all.map((f, i) => ({ f, i })).sort((a, b) => rank[a.f.severity] - rank[b.f.severity] || a.i - b.i).map(({ f }) => f);
}

