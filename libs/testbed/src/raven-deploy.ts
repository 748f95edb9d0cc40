import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { LABELS, SYSTEM_NAMESPACE } from '@raven/api-types';
import { issueCertificate } from '@raven/pki';
import { WORKSPACE_ROOT } from './apps.ts';
import { binaryPath } from './binaries.ts';
import { WALKTHROUGH_DIR, type Box } from './box/index.ts';
import type { ClusterInfo } from './cluster.ts';
import { ensureRavenImages, importRavenImages } from './images.ts';
import { kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';
import { clusterCa } from './l7.ts';
import { CONTAINERD_SOCKET, type RealNodes } from './real-nodes.ts';

/**
 * Raven installed on a real-node box as a platform team installs it (README, "Install on a cluster"): its four images,
 * built from their Dockerfiles, imported into every node's containerd; the PSK Secret; the node labels; `kubectl apply
 * --server-side -k` of an overlay; the Gateways. Then Raven runs as Pods of its own images.
 */

export const BOX_OVERLAY = join(WORKSPACE_ROOT, 'k8s/overlays/box');
/** The user proxy-server's kubelet client certificate names (README, install section 5). */
export const PROXY_KUBELET_CLIENT_USER = 'raven:proxy-server-kubelet-client';
export const PROXY_KUBELET_CLIENT_SECRET = 'raven-proxy-server-kubelet-client';

/** How Raven is installed: `kubectl apply --server-side -k` of an overlay, or `helm install` of charts/raven. */
export type InstallMethod = { kind: 'kustomize'; overlay?: string } | { kind: 'helm'; values?: Record<string, string> };

/** The chart values that mean what k8s/overlays/box means. */
export const BOX_CHART_VALUES: Readonly<Record<string, string>> = { k8sServiceHost: '127.0.0.1', k8sServicePort: '6443' };
export const HELM_RELEASE = 'raven';
export const CHART_DIR = join(WORKSPACE_ROOT, 'charts/raven');

export interface DeployOptions {
  box: Box;
  realNodes: RealNodes;
  cluster: ClusterInfo;
  /** Domains whose gateway nodes run proxy-server. */
  cloudDomains: readonly string[];
  install?: InstallMethod;
  log?: (line: string) => void;
}

/** The images into every node's containerd, then {@link installRaven}. */
export async function deployRaven(opts: DeployOptions): Promise<void> {
  const log = opts.log ?? (() => undefined);
  const images = Object.values(await ensureRavenImages({ log }));
  const started = Date.now();
  // Two nodes at a time: the imports unpack about 0.5 GB each, on two cores.
  const nodes = [...opts.realNodes.nodes.values()];
  for (let i = 0; i < nodes.length; i += 2) {
    await Promise.all(nodes.slice(i, i + 2).map((real) => importRavenImages(images, CONTAINERD_SOCKET, (args) => real.exec('ctr', args))));
  }
  log(`imported ${images.length} images into ${nodes.length} nodes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await installRaven(opts);
}

/** The README's install steps on a box whose nodes hold the images; waits until every workload has rolled out. */
export async function installRaven(opts: Omit<DeployOptions, 'realNodes'>): Promise<void> {
  const log = opts.log ?? (() => undefined);
  const k = (args: string[], input?: string) => kubectl(opts.cluster.kubeconfig, args, input);
  const started = Date.now();
  const install = opts.install ?? { kind: 'kustomize' };
  // 1. The tunnel PSK Secret.
  const psk = await k(['-n', SYSTEM_NAMESPACE, 'create', 'secret', 'generic', 'raven-agent-secret', `--from-literal=vpn-connection-psk=${randomBytes(48).toString('base64')}`, '--dry-run=client', '-o', 'yaml']);
  await k(['apply', '-f', '-'], psk);
  // 2. The node labels: Gateways, where the proxy runs (server on the cloud gateway nodes, client on the other
  // Gateways' proxy endpoints and on nodes in no Gateway).
  for (const node of opts.box.nodes) {
    const labels = node.gateway ? [`${LABELS.gateway}=${node.gateway}`] : [];
    const endpoint = opts.box.nodes.find((n) => n.domain === node.domain && n.gateway)?.name;
    if (opts.cloudDomains.includes(node.domain)) {
      if (node.name === endpoint || !endpoint) labels.push('raven.openyurt.io/proxy=server');
    } else if (!node.gateway || node.name === endpoint) labels.push('raven.openyurt.io/proxy=client');
    if (labels.length > 0) await k(['label', '--overwrite', 'node', node.name, ...labels]);
  }
  // 5 (L7). proxy-server's client identity towards kubelets, from the kubelet client CA, bound to kubelet-api-admin.
  const identity = await issueCertificate(await clusterCa(opts.cluster), { commonName: PROXY_KUBELET_CLIENT_USER, usages: ['client'], validityDays: 2 });
  await k(['apply', '--server-side', '-f', '-'], JSON.stringify({
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: PROXY_KUBELET_CLIENT_SECRET, namespace: SYSTEM_NAMESPACE },
    stringData: { 'tls.crt': identity.certPem, 'tls.key': identity.keyPem },
  }));
  await k(['create', 'clusterrolebinding', 'raven-proxy-server-kubelet-client', '--clusterrole=system:kubelet-api-admin', `--user=${PROXY_KUBELET_CLIENT_USER}`, '--dry-run=client', '-o', 'yaml'])
    .then((manifest) => k(['apply', '-f', '-'], manifest));
  // 3. Install.
  if (install.kind === 'kustomize') {
    log(`kubectl apply --server-side -k ${install.overlay ?? BOX_OVERLAY}`);
    await k(['apply', '--server-side', '--force-conflicts', '-k', install.overlay ?? BOX_OVERLAY]);
  } else {
    const values = { ...BOX_CHART_VALUES, ...install.values };
    const sets = Object.entries(values).flatMap(([key, value]) => ['--set', `${key}=${value}`]);
    log(`helm install ${HELM_RELEASE} charts/raven -n ${SYSTEM_NAMESPACE} ${sets.join(' ')}`);
    await runHelm(opts.cluster, ['install', HELM_RELEASE, CHART_DIR, '--namespace', SYSTEM_NAMESPACE, ...sets]);
  }
  await k(['-n', SYSTEM_NAMESPACE, 'rollout', 'status', 'deployment/raven-gateway-pickup', '--timeout=180s']);
  await k(['wait', '--for=condition=Established', 'crd/gateways.raven.openyurt.io', '--timeout=60s']);
  // 4. The Gateways (and raven-cfg as the walkthrough has it). Until kube-proxy on the apiserver's side has the new
  // webhook Service's rules, converting the v1alpha1 Gateways fails: retried, as an operator would.
  await waitFor('the Gateways applied', () => k(['apply', '-f', join(WALKTHROUGH_DIR, 'gateways.yaml')]).then(() => true, (err: unknown) => {
    log(`kubectl apply of the Gateways failed, retrying: ${String(err).slice(0, 300)}`);
    return false;
  }), 90_000, 2_000);
  for (const ds of ['raven-tunnel-agent', 'raven-proxy-client']) await k(['-n', SYSTEM_NAMESPACE, 'rollout', 'status', `daemonset/${ds}`, '--timeout=180s']);
  await k(['-n', SYSTEM_NAMESPACE, 'rollout', 'status', 'deployment/raven-proxy-server', '--timeout=180s']);
  log(`Raven's Pods rolled out ${((Date.now() - started) / 1000).toFixed(1)} s after the install began`);
}

/**
 * The README's uninstall: the overlay (`kubectl delete -k`) or the release (`helm uninstall`); once Raven's Pods are
 * gone (so that none writes again), the Secrets and the binding the operator created and what gateway-pickup created
 * at run time (labelled managed-by=raven-ts).
 */
export async function uninstallRaven(cluster: ClusterInfo, install: InstallMethod = { kind: 'kustomize' }, opts: { forceDeletePodsOn?: readonly string[]; slowPodsReport?: () => Promise<string> } = {}): Promise<void> {
  const k = (args: string[]) => kubectl(cluster.kubeconfig, args);
  if (install.kind === 'kustomize') await k(['delete', '-k', install.overlay ?? BOX_OVERLAY, '--ignore-not-found', '--wait=false']);
  else await runHelm(cluster, ['uninstall', HELM_RELEASE, '--namespace', SYSTEM_NAMESPACE]);
  // No kubelet confirms the end of Pods on a node that is down: remove them by hand, as an operator does.
  for (const node of opts.forceDeletePodsOn ?? []) {
    await k(['-n', SYSTEM_NAMESPACE, 'delete', 'pods', '-l', 'app.kubernetes.io/part-of=raven', '--field-selector', `spec.nodeName=${node}`, '--force', '--grace-period=0', '--ignore-not-found']);
  }
  const podsGone = (seconds: number) => k(['-n', SYSTEM_NAMESPACE, 'wait', '--for=delete', 'pod', '-l', 'app.kubernetes.io/part-of=raven', `--timeout=${seconds}s`]);
  try {
    await podsGone(120);
  } catch (err) {
    // A kubelet was seen once to take over 2 minutes to end a Pod after helm uninstall: say why, then give it longer.
    if (!opts.slowPodsReport) throw err;
    console.warn(`Raven Pods still there after 120 s of uninstall:\n${await opts.slowPodsReport()}`);
    await podsGone(180);
  }
  await k(['-n', SYSTEM_NAMESPACE, 'delete', 'secret', 'raven-agent-secret', PROXY_KUBELET_CLIENT_SECRET, '--ignore-not-found']);
  await k(['delete', 'clusterrolebinding', 'raven-proxy-server-kubelet-client', '--ignore-not-found']);
  await k(['-n', SYSTEM_NAMESPACE, 'delete', 'service,endpointslice,configmap,secret,lease', '-l', 'app.kubernetes.io/managed-by=raven-ts', '--ignore-not-found']);
}

function runHelm(cluster: ClusterInfo, args: string[]): Promise<string> {
  // Helm keeps its caches and config under HOME: a private one, so nothing of the user's is read or written.
  const home = join(cluster.dir, 'helm-home');
  return new Promise((resolve, reject) => {
    execFile(binaryPath('helm'), [...args, `--kubeconfig=${cluster.kubeconfig}`], { env: { PATH: process.env.PATH, HOME: home, XDG_CACHE_HOME: join(home, 'cache'), XDG_CONFIG_HOME: join(home, 'config'), XDG_DATA_HOME: join(home, 'data') }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new HelmError(args, stderr || err.message));
      else resolve(stdout);
    });
  });
}

export class HelmError extends Error {
  constructor(readonly args: readonly string[], readonly stderr: string) {
    super(`helm ${args.join(' ')} failed: ${stderr.trim()}`);
    this.name = 'HelmError';
  }
}
