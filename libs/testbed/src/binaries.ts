import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** Pinned upstream versions; scripts/go-binaries.sh builds exactly these (keep the two in step). */
export const VERSIONS = {
  kubernetes: 'v1.34.4', etcd: 'v3.6.4', konnectivity: 'v0.34.0', helm: 'v3.19.0', prometheus: 'v0.316.0',
  'wireguard-go': 'v0.0.0-20260522210424-ecfc5a8d5446', coredns: 'v1.12.1',
} as const;

export type Binary =
  | 'kube-apiserver' | 'kube-controller-manager' | 'kubectl' | 'etcd'
  | 'kubelet' | 'kube-proxy' | 'kube-scheduler'
  | 'konnectivity-server' | 'konnectivity-agent' | 'helm' | 'promtool' | 'wireguard-go' | 'coredns';

export const binCacheRoot = () => process.env.RAVEN_BIN_CACHE ?? join(homedir(), '.cache/raven-ts/bin');
const cacheRoot = binCacheRoot;

const locations: Record<Binary, [dir: () => string, file: string, envtest: boolean]> = {
  'kube-apiserver': [() => join(cacheRoot(), `kubernetes-${VERSIONS.kubernetes}`), 'kube-apiserver', true],
  'kube-controller-manager': [() => join(cacheRoot(), `kubernetes-${VERSIONS.kubernetes}`), 'kube-controller-manager', true],
  kubectl: [() => join(cacheRoot(), `kubernetes-${VERSIONS.kubernetes}`), 'kubectl', true],
  // Also built one at a time (go-binaries.sh <binary>) when KUBEBUILDER_ASSETS has the others: see `alone` below.
  kubelet: [() => join(cacheRoot(), `kubernetes-node-${VERSIONS.kubernetes}`), 'kubelet', false],
  'kube-proxy': [() => join(cacheRoot(), `kubernetes-node-${VERSIONS.kubernetes}`), 'kube-proxy', false],
  'kube-scheduler': [() => join(cacheRoot(), `kubernetes-node-${VERSIONS.kubernetes}`), 'kube-scheduler', false],
  etcd: [() => join(cacheRoot(), `etcd-${VERSIONS.etcd}`), 'etcd', true],
  'konnectivity-server': [() => join(cacheRoot(), `konnectivity-${VERSIONS.konnectivity}`), 'proxy-server', false],
  'konnectivity-agent': [() => join(cacheRoot(), `konnectivity-${VERSIONS.konnectivity}`), 'proxy-agent', false],
  helm: [() => join(cacheRoot(), `helm-${VERSIONS.helm}`), 'helm', false],
  promtool: [() => join(cacheRoot(), `promtool-${VERSIONS.prometheus}`), 'promtool', false],
  'wireguard-go': [() => join(cacheRoot(), `wireguard-go-${VERSIONS['wireguard-go']}`), 'wireguard-go', false],
  coredns: [() => join(cacheRoot(), `coredns-${VERSIONS.coredns}`), 'coredns', false],
};

/** prometheus-operator's monitoring.coreos.com CRDs (PodMonitor, ServiceMonitor, PrometheusRule), fetched with promtool. */
export function monitoringCrdFiles(): string[] {
  const dir = join(dirname(binaryPath('promtool')), 'crds');
  return ['podmonitors', 'servicemonitors', 'prometheusrules'].map((kind) => join(dir, `monitoring.coreos.com_${kind}.yaml`));
}

export class MissingBinaryError extends Error {
  override readonly name = 'MissingBinaryError';
}

/** The control-plane binaries go-binaries.sh also builds alone, each into its own directory. */
const alone = (binary: Binary): string | undefined =>
  ['kube-apiserver', 'kube-controller-manager', 'kubectl'].includes(binary) ? join(cacheRoot(), `${binary}-${VERSIONS.kubernetes}`, binary) : undefined;

/**
 * Path of a pinned binary: KUBEBUILDER_ASSETS first (the setup-envtest convention: etcd, kube-apiserver, kubectl),
 * then our cache (the whole target's directory, then the binary built alone for what the assets lack).
 */
export function binaryPath(binary: Binary): string {
  const [dir, file, envtest] = locations[binary];
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (envtest && assets && existsSync(join(assets, file))) return join(assets, file);
  const candidates = [join(dir(), file), alone(binary)].filter((p): p is string => p !== undefined);
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    const hint = envtest && assets ? `it is not in KUBEBUILDER_ASSETS=${assets} either; run \`node scripts/bootstrap.mjs --binaries\`, which builds only what that directory lacks` : 'run `node scripts/bootstrap.mjs --binaries` (or set KUBEBUILDER_ASSETS)';
    throw new MissingBinaryError(`${binary} not found at ${candidates.join(' or ')}; ${hint}`);
  }
  return path;
}
