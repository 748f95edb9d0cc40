import { z } from 'zod';
import {
  CSR_SIGNERS, NODE_NAME_EXTRA, NODE_ORGANIZATION, PROXY_SERVICE_ACCOUNTS, mayHoldProxyClientIdentity, nodeOfProxyClientCommonName,
  nodeOfServingCommonName, proxyServerGateways, proxyServingSans, type Gateway, type NodeView,
} from '@raven/api-types';
import { Controller, Informer, RESOURCES, isNotFound, metaTime, type KubeClient, type Logger } from '@raven/controller-kit';
import { inspectCsr, normalizeIp, type CsrFacts } from '@raven/node-certs';
import { Counter, type Registry } from 'prom-client';
import type { Caches } from '../caches.ts';

const csrSchema = z.object({
  metadata: z.object({ name: z.string(), resourceVersion: z.string().optional(), uid: z.string().optional() }),
  spec: z.object({
    request: z.string(),
    signerName: z.string(),
    usages: z.array(z.string()).optional(),
    username: z.string().optional(),
    extra: z.record(z.string(), z.array(z.string())).optional(),
  }),
  status: z.object({ conditions: z.array(z.object({ type: z.string() })).optional() }).optional(),
});
export type CsrView = z.infer<typeof csrSchema>;

export type Verdict =
  | { verdict: 'ignore' }
  | { verdict: 'approve' | 'deny'; reason: string; message: string };

export interface CsrPolicy {
  namespace: string;
  serverServiceAccount: string;
  clientServiceAccount: string;
  /** Require the requester's token to be bound to a Pod on the node the certificate names (spec.extra node-name). */
  requireNodeBinding: boolean;
  node(name: string): NodeView | undefined;
  /** Nodes listing `ip` among their addresses. */
  nodesWithAddress(ip: string): readonly NodeView[];
  gateways(): readonly Gateway[];
}

const SERVING_USAGES = new Set(['digital signature', 'key encipherment', 'server auth']);
const CLIENT_USAGES = new Set(['digital signature', 'key encipherment', 'client auth']);
const saUser = (namespace: string, name: string) => `system:serviceaccount:${namespace}:${name}`;
const deny = (reason: string, message: string): Verdict => ({ verdict: 'deny', reason, message });

/**
 * The approval policy for the L7 proxy's certificates, as a pure function of the request, its parsed content and the
 * cluster. A CSR is ours when it comes from a proxy ServiceAccount or asks for a proxy-client identity; everything
 * else (kubelets' own requests, other components') is left alone. Ours are approved only when well formed:
 *  - proxy-server: kubelet-serving signer, CN system:node:<n>, O system:nodes, server usages, and SANs that all
 *    belong to <n> (its name and addresses, its endpoints' public IPs, the internal Service's names), where <n> is
 *    a proxy endpoint of an exposed Gateway;
 *  - proxy-client: kube-apiserver-client signer, CN raven:proxy-client:<n>, no organization (so no API groups), no
 *    SANs, client usages, where <n> is a proxy endpoint of a non-exposed Gateway or a node in no Gateway;
 * and, when the requester's token is bound to a Pod (the apiserver then records the Pod's node in spec.extra),
 * <n> must be that node. Anything else of ours is denied, with the reason in the condition.
 */
export function decideCsr(csr: CsrView, facts: CsrFacts | undefined, policy: CsrPolicy): Verdict {
  const { signerName, username = '' } = csr.spec;
  const serverUser = saUser(policy.namespace, policy.serverServiceAccount);
  const clientUser = saUser(policy.namespace, policy.clientServiceAccount);
  const claimsClientIdentity = signerName === CSR_SIGNERS.client && facts !== undefined && nodeOfProxyClientCommonName(facts.commonName) !== undefined;
  const kind = username === serverUser ? 'server' : username === clientUser ? 'client' : undefined;
  if (!kind && !claimsClientIdentity) return { verdict: 'ignore' };
  if (!kind) return deny('WrongRequester', `only ${clientUser} may request proxy-client identities, not ${username}`);
  const wantSigner = kind === 'server' ? CSR_SIGNERS.serving : CSR_SIGNERS.client;
  if (signerName !== wantSigner) return deny('WrongSigner', `${username} must use signer ${wantSigner}, not ${signerName}`);
  if (!facts) return deny('Malformed', 'the request is not a parseable PKCS#10 CSR');
  if (!facts.signatureValid) return deny('BadSignature', 'the CSR is not signed by the key it carries');
  if (facts.otherSubject.length > 0) return deny('BadSubject', `unexpected subject attributes: ${facts.otherSubject.join(', ')}`);
  if (facts.otherNames.length > 0) return deny('BadSANs', `only DNS and IP SANs are allowed, got ${facts.otherNames.join(', ')}`);
  if (facts.otherExtensions.length > 0) return deny('BadExtensions', `unexpected extensions: ${facts.otherExtensions.join(', ')}`);
  const usages = csr.spec.usages ?? [];
  const allowed = kind === 'server' ? SERVING_USAGES : CLIENT_USAGES;
  const required = kind === 'server' ? 'server auth' : 'client auth';
  if (!usages.includes(required) || usages.some((u) => !allowed.has(u))) return deny('BadUsages', `usages ${JSON.stringify(usages)}: need "${required}", allowed ${[...allowed].join(', ')}`);

  const nodeName = kind === 'server' ? nodeOfServingCommonName(facts.commonName) : nodeOfProxyClientCommonName(facts.commonName);
  if (!nodeName) return deny('BadSubject', `CN ${JSON.stringify(facts.commonName)} does not have the form ${kind === 'server' ? 'system:node:<node>' : 'raven:proxy-client:<node>'}`);
  const wantOrgs = kind === 'server' ? [NODE_ORGANIZATION] : [];
  if (JSON.stringify(facts.organizations) !== JSON.stringify(wantOrgs)) return deny('BadSubject', `organizations ${JSON.stringify(facts.organizations)}, want ${JSON.stringify(wantOrgs)}`);

  const boundNode = csr.spec.extra?.[NODE_NAME_EXTRA]?.[0];
  if (boundNode !== undefined && boundNode !== nodeName) return deny('NodeMismatch', `the requester runs on node ${boundNode} but asks for node ${nodeName}`);
  if (boundNode === undefined && policy.requireNodeBinding) return deny('UnboundRequester', `the requester's token is not bound to a Pod on node ${nodeName}`);
  const node = policy.node(nodeName);
  if (!node) return deny('UnknownNode', `node ${nodeName} does not exist`);

  if (kind === 'client') {
    if (facts.dnsNames.length + facts.ipAddresses.length > 0) return deny('BadSANs', 'a proxy-client certificate carries no SANs');
    if (!mayHoldProxyClientIdentity({ name: nodeName, gateway: node.gateway }, policy.gateways())) return deny('NotAProxyNode', `node ${nodeName} is neither a proxy endpoint of its non-exposed Gateway nor in no Gateway`);
    return { verdict: 'approve', reason: 'RavenProxyClient', message: `proxy-client identity for node ${nodeName}` };
  }
  const proxyGateways = proxyServerGateways(nodeName, policy.gateways());
  if (proxyGateways.length === 0) return deny('NotAProxyNode', `node ${nodeName} is not a proxy endpoint of an exposed Gateway`);
  if (facts.dnsNames.length + facts.ipAddresses.length === 0) return deny('BadSANs', 'a serving certificate needs DNS or IP SANs');
  // The same rule proxy-server requests by: node-writable addresses only when no other node claims them.
  const sans = proxyServingSans({
    node: { name: nodeName, internalIPs: node.internalIPs, externalIPs: node.externalIPs }, gateways: policy.gateways(), namespace: policy.namespace,
    claimedByOtherNode: (ip) => policy.nodesWithAddress(ip).some((n) => n.metadata.name !== nodeName),
  });
  const dns = new Set(sans.dnsNames);
  const ips = new Set(sans.ipAddresses.map(normalizeIp));
  const foreignDns = facts.dnsNames.filter((d) => !dns.has(d));
  const foreignIps = facts.ipAddresses.map(normalizeIp).filter((ip) => !ips.has(ip));
  if (foreignDns.length + foreignIps.length > 0) return deny('ForeignSANs', `SANs not belonging to node ${nodeName}: ${[...foreignDns, ...foreignIps].join(', ')}`);
  return { verdict: 'approve', reason: 'RavenProxyServer', message: `proxy-server serving certificate for node ${nodeName}` };
}

export interface CsrApproverOptions {
  kube: KubeClient;
  caches: Caches;
  log: Logger;
  registry: Registry;
  namespace: string;
  resyncMs: number;
  serverServiceAccount?: string;
  clientServiceAccount?: string;
  /** Default true. Off only for clusters whose proxy pods cannot use Pod-bound tokens (then any pod of the proxy ServiceAccounts can obtain any proxy node's identity). */
  requireNodeBinding?: boolean;
}

export type RecordOutcome = 'recorded' | 'replaced' | 'gone';

/**
 * Writes `verdict` as the approval condition of the CSR that was decided on. Approval writes the whole object back,
 * so the current object is read first and nothing written meanwhile is lost; and it is written only when it is still
 * the request decided on: a CSR deleted and recreated under the same name (another uid or request) is a new request,
 * decided on its own event.
 */
export async function recordDecision(kube: KubeClient, decided: CsrView, verdict: Exclude<Verdict, { verdict: 'ignore' }>): Promise<RecordOutcome> {
  const name = decided.metadata.name;
  let current: { metadata?: { uid?: string }; spec?: { request?: string }; status?: { conditions?: unknown[] } } & Record<string, unknown>;
  try {
    current = await kube.get(RESOURCES.csrs, { name });
  } catch (err) {
    if (isNotFound(err)) return 'gone';
    throw err;
  }
  if (decided.metadata.uid === undefined || current.metadata?.uid !== decided.metadata.uid || current.spec?.request !== decided.spec.request) return 'replaced';
  const condition = {
    type: verdict.verdict === 'approve' ? 'Approved' : 'Denied', status: 'True', reason: verdict.reason, message: verdict.message,
    lastUpdateTime: metaTime(),
  };
  // current's resourceVersion makes the apiserver refuse the write (409, retried) if anything changed since the read.
  await kube.replace(RESOURCES.csrs, { name, subresource: 'approval' }, { ...current, status: { ...current.status, conditions: [...(current.status?.conditions ?? []), condition] } });
  return 'recorded';
}

const isDecided = (csr: CsrView) => (csr.status?.conditions ?? []).some((c) => c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed');

/** A Controller that also owns its CSR informer (started with the workers, on the leader only). */
class CsrApproverController extends Controller {
  constructor(options: ConstructorParameters<typeof Controller>[0], private readonly informer: Informer<CsrView>) {
    super(options);
  }

  override start(): void {
    this.informer.start();
    super.start();
  }

  override async stop(): Promise<void> {
    await super.stop();
    await this.informer.stop();
  }
}

/** `csrapprover`: approves or denies the L7 proxy's CertificateSigningRequests (decideCsr). */
export function csrApproverController(opts: CsrApproverOptions): Controller {
  const { kube, caches, namespace, log } = opts;
  const policy: CsrPolicy = {
    namespace,
    serverServiceAccount: opts.serverServiceAccount ?? PROXY_SERVICE_ACCOUNTS.server,
    clientServiceAccount: opts.clientServiceAccount ?? PROXY_SERVICE_ACCOUNTS.client,
    requireNodeBinding: opts.requireNodeBinding ?? true,
    node: (name) => caches.nodes.get(name),
    // CSRs are rare: a scan per address decided is cheaper than another index to keep.
    nodesWithAddress: (ip) => caches.nodes.list().filter((n) => n.internalIPs.includes(ip) || n.externalIPs.includes(ip)),
    gateways: () => caches.gateways.list(),
  };
  if (!policy.requireNodeBinding) log.warn('CSR approver: node binding not required; any pod of the proxy ServiceAccounts can obtain any proxy node\'s identity');
  const decisions = new Counter({ name: 'raven_pickup_csr_decisions_total', help: 'CSR approver decisions by verdict and reason', labelNames: ['verdict', 'reason'], registers: [opts.registry] });
  // Zero series from the start, so the first approval is an increase() and the metric exists before any CSR.
  for (const reason of ['RavenProxyClient', 'RavenProxyServer']) decisions.inc({ verdict: 'approve', reason }, 0);
  const informer = new Informer<CsrView>({ kube, log, registry: opts.registry, metricPrefix: 'raven_pickup', type: RESOURCES.csrs, transform: (raw) => csrSchema.parse(raw) });
  const controller = new CsrApproverController({
    name: 'csrapprover', log, registry: opts.registry, metricPrefix: 'raven_pickup', resyncMs: opts.resyncMs,
    resyncKeys: () => informer.list().filter((c) => !isDecided(c)).map((c) => c.metadata.name),
    reconcile: async (name, log) => {
      const csr = informer.get(name);
      if (!csr || isDecided(csr)) return;
      const pem = Buffer.from(csr.spec.request, 'base64').toString('utf8');
      const facts = await inspectCsr(pem).catch(() => undefined);
      const verdict = decideCsr(csr, facts, policy);
      if (verdict.verdict === 'ignore') return;
      const outcome = await recordDecision(kube, csr, verdict);
      if (outcome === 'replaced') log.info({ csr: name }, 'CSR replaced since it was decided; deciding the new one on its own event');
      if (outcome !== 'recorded') return;
      decisions.inc({ verdict: verdict.verdict, reason: verdict.reason });
      const fields = { csr: name, requester: csr.spec.username, signer: csr.spec.signerName, subject: facts?.commonName, reason: verdict.reason, message: verdict.message };
      if (verdict.verdict === 'approve') log.info(fields, 'CSR approved');
      else log.warn(fields, 'CSR denied');
    },
  }, informer);
  const enqueue = (csr: CsrView) => !isDecided(csr) && controller.enqueue(csr.metadata.name);
  informer.on({ add: enqueue, update: (_old, csr) => enqueue(csr) });
  return controller;
}
