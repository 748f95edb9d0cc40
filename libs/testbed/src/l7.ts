import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SYSTEM_NAMESPACE, servingCommonName } from '@raven/api-types';
import { RESOURCES, isNotFound, type KubeClient } from '@raven/controller-kit';
import { issueCertificate, loadCA, type CertificateAuthority } from '@raven/pki';
import { TSX_LOADER, WORKSPACE_ROOT } from './apps.ts';
import type { ClusterInfo } from './cluster.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { waitFor } from './process.ts';

/** Test-bed pieces for the L7 proxy: kubelet-like endpoints, Pod-bound tokens, and the raven-cfg switch. */

const ns = SYSTEM_NAMESPACE;


export function clusterCa(cluster: ClusterInfo): Promise<CertificateAuthority> {
  return loadCA({ certPem: readFileSync(cluster.caCertFile, 'utf8'), keyPem: readFileSync(cluster.caKeyFile, 'utf8') });
}

/** Turns L7 on (and L3 off) in raven-cfg; returns how to put back what was there. */
export async function enableL7(kube: KubeClient): Promise<() => Promise<void>> {
  const ref = { namespace: ns, name: 'raven-cfg' };
  const previous = await kube.get<{ data?: Record<string, string> }>(RESOURCES.configMaps, ref).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  const data = { 'enable-l3-tunnel': 'false', 'enable-l7-proxy': 'true' };
  if (previous) await kube.patch(RESOURCES.configMaps, ref, { data }, 'merge');
  else await kube.create(RESOURCES.configMaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: ref, data });
  return async () => {
    if (previous) await kube.patch(RESOURCES.configMaps, ref, { data: previous.data ?? {} }, 'merge').catch(() => undefined);
    else await kube.delete(RESOURCES.configMaps, ref).catch(() => undefined);
  };
}

/**
 * A kubeconfig for `serviceAccount` whose token is bound to a Pod object on `node`, as a DaemonSet pod's projected
 * token is: the apiserver then records the node in the user's extra info (and so in CSRs the process files).
 */
export async function boundKubeconfig(kube: KubeClient, cluster: Pick<ClusterInfo, 'server' | 'caPem'>, serviceAccount: string, node: string, dir: string, suffix = '', expirationSeconds = 3600): Promise<{ kubeconfig: string; pod: string }> {
  const pod = `${serviceAccount}-${node}${suffix ? `-${suffix}` : ''}`.slice(0, 63).replace(/-+$/, '');
  const created = await kube.create<{ metadata: { uid: string } }>(RESOURCES.pods, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: pod, namespace: ns, labels: { 'app.kubernetes.io/name': serviceAccount } },
    // On real nodes the kubelet runs it: a sleeper standing in for the component's DaemonSet Pod, which holds the token's binding.
    spec: {
      nodeName: node, serviceAccountName: serviceAccount, automountServiceAccountToken: false, terminationGracePeriodSeconds: 0,
      containers: [{ name: 'main', image: 'busybox', command: ['sleep', '2147483647'] }],
    },
  });
  const review = await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${serviceAccount}/token`, {
    body: {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
      spec: { expirationSeconds, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod, uid: created.metadata.uid } },
    },
  });
  const kubeconfig = writeKubeconfig(join(dir, `${pod}.kubeconfig`), cluster.server, cluster.caPem, { token: review.status.token }, serviceAccount);
  return { kubeconfig, pod };
}

/** A kubeconfig with a kubelet's client identity (`system:node:<node>`, group system:nodes), as a node's kubelet holds. */
export async function kubeletKubeconfig(cluster: ClusterInfo, node: string, dir: string): Promise<string> {
  const pair = await issueCertificate(await clusterCa(cluster), { commonName: `system:node:${node}`, organizations: ['system:nodes'], usages: ['client'], validityDays: 1 });
  return writeKubeconfig(join(dir, `kubelet-${node}.kubeconfig`), cluster.server, cluster.caPem, { clientCertPem: pair.certPem, clientKeyPem: pair.keyPem }, `kubelet-${node}`);
}

export async function deletePod(kube: KubeClient, name: string): Promise<void> {
  await kube.delete(RESOURCES.pods, { namespace: ns, name }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}

export interface Fixture {
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Runs a TypeScript fixture (a name in libs/testbed/fixtures, or an absolute path) as its own process (optionally wrapped, e.g. `ip netns exec`), waiting for its ready line. */
export async function startFixture(file: string, config: object, dir: string, wrap: string[] = []): Promise<Fixture> {
  const logFile = join(dir, `${file.replace(/\W/g, '_')}-${Date.now()}.log`);
  const path = file.startsWith('/') ? file : join(WORKSPACE_ROOT, 'libs/testbed/fixtures', file);
  const args = [...wrap, process.execPath, '--import', TSX_LOADER, path, JSON.stringify(config)];
  const child = spawn(args[0]!, args.slice(1), { cwd: WORKSPACE_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const fixture: Fixture = {
    child,
    log: () => output,
    stop: async () => {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
  await waitFor(`fixture ${file} ready`, async () => {
    if (child.exitCode !== null) throw new Error(`fixture ${file} exited: ${output.slice(-2000)}`);
    return output.includes('"ready":true');
  }, 20_000, 50);
  writeFileSync(logFile, output);
  return fixture;
}

export interface KubeletOptions {
  node: string;
  host: string;
  httpsPort: number;
  httpPort: number;
  /** Also listed in the certificate (for example the node's InternalIP when `host` is a bind address). */
  ips?: string[];
  clientCaFile?: string;
  wrap?: string[];
}

/** A kubelet-like endpoint for `node`, with a serving certificate from the cluster CA. */
export async function startKubelet(ca: CertificateAuthority, dir: string, opts: KubeletOptions): Promise<Fixture> {
  const pair = await issueCertificate(ca, { commonName: servingCommonName(opts.node), organizations: ['system:nodes'], dnsNames: [opts.node], ipAddresses: [...new Set([opts.host, ...(opts.ips ?? [])])].filter((h) => h !== '0.0.0.0'), usages: ['server'] });
  const certFile = join(dir, `${opts.node}-kubelet.crt`);
  const keyFile = join(dir, `${opts.node}-kubelet.key`);
  writeFileSync(certFile, pair.certPem);
  writeFileSync(keyFile, pair.keyPem, { mode: 0o600 });
  return startFixture('kubelet.ts', { node: opts.node, host: opts.host, httpsPort: opts.httpsPort, httpPort: opts.httpPort, certFile, keyFile, clientCaFile: opts.clientCaFile }, dir, opts.wrap);
}

