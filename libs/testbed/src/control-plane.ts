import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { request } from 'node:https';
import { join } from 'node:path';
import { createCA, issueCertificate, type KeyPairPem } from '@raven/pki';
import { binaryPath } from './binaries.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { freePort } from './net.ts';
import { ManagedProcess, pidAlive, waitFor } from './process.ts';

export interface ControlPlaneOptions {
  /** State directory: certificates, etcd data, logs, kubeconfigs. Removed by `destroy()`. */
  dir: string;
  /** Leave the processes running after this process exits (`npm run cluster -- up`). */
  detached?: boolean;
  /** kube-controller-manager signs CSRs and cleans up namespaces; on by default. */
  controllerManager?: boolean;
  /** Address the apiserver binds and advertises. */
  host?: string;
}

/** What a running control plane needs to be found again, persisted as `<dir>/state.json`. */
export interface ControlPlaneState {
  dir: string;
  host: string;
  apiserverPort: number;
  etcdPort: number;
  etcdPeerPort: number;
  server: string;
  kubeconfig: string;
  pids: Record<string, number>;
}

const SERVICE_CIDR = '10.96.0.0/16';
/** The user the apiserver authenticates as to kubelets (and to Raven's L7 front ends). */
export const KUBELET_CLIENT_USER = 'kube-apiserver-kubelet-client';
/** In the control plane's directory: where the apiserver sends traffic for nodes (an HTTP CONNECT proxy). */
export const CLUSTER_EGRESS_SOCKET = 'cluster-egress.sock';
/** In the control plane's directory: the apiserver's /etc/hosts (the machine's, plus what a real-node box adds). */
export const APISERVER_HOSTS_FILE = 'apiserver-hosts';
/** kube-controller-manager runs only what the tests and the demo need; without a kubelet, node lifecycle would mark every Node unhealthy. */
const KCM_CONTROLLERS = [
  'namespace', 'garbagecollector', 'serviceaccount', 'serviceaccount-token', 'csrsigning', 'csrcleaner',
  'root-ca-cert-publisher', 'clusterrole-aggregation', 'endpointslice', 'endpointslicemirroring',
];

interface Pki {
  ca: KeyPairPem;
  serving: KeyPairPem;
  /** The apiserver's client identity towards kubelets (--kubelet-client-certificate), bound to system:kubelet-api-admin. */
  kubeletClient: KeyPairPem;
  admin: KeyPairPem;
  controllerManager: KeyPairPem;
  serviceAccount: KeyPairPem;
}

/** A real etcd + kube-apiserver (+ kube-controller-manager), with TLS, RBAC and an admin credential. */
export class ControlPlane {
  private processes = new Map<string, ManagedProcess>();

  private constructor(readonly state: ControlPlaneState, private readonly opts: ControlPlaneOptions, private readonly pki: Pki) {}

  get kubeconfig(): string {
    return this.state.kubeconfig;
  }

  get server(): string {
    return this.state.server;
  }

  get caPem(): string {
    return this.pki.ca.certPem;
  }

  get adminCredential(): { clientCertPem: string; clientKeyPem: string } {
    return { clientCertPem: this.pki.admin.certPem, clientKeyPem: this.pki.admin.keyPem };
  }

  /** Paths of the cluster CA, used by kube-controller-manager to sign CSRs; tests verify certificates against it. */
  get caFiles(): { cert: string; key: string } {
    return { cert: join(this.state.dir, 'pki/ca.crt'), key: join(this.state.dir, 'pki/ca.key') };
  }

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const host = opts.host ?? '127.0.0.1';
    mkdirSync(join(opts.dir, 'pki'), { recursive: true });
    mkdirSync(join(opts.dir, 'logs'), { recursive: true });
    const pki = await createPki(opts.dir, host);
    const [apiserverPort, etcdPort, etcdPeerPort] = [await freePort(host), await freePort(), await freePort()];
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${apiserverPort}`;
    const kubeconfig = writeKubeconfig(join(opts.dir, 'kubeconfig'), server, pki.ca.certPem, { clientCertPem: pki.admin.certPem, clientKeyPem: pki.admin.keyPem }, 'raven-admin');
    writeKubeconfig(join(opts.dir, 'pki/kcm.kubeconfig'), server, pki.ca.certPem, { clientCertPem: pki.controllerManager.certPem, clientKeyPem: pki.controllerManager.keyPem }, 'kcm');
    const state: ControlPlaneState = { dir: opts.dir, host, apiserverPort, etcdPort, etcdPeerPort, server, kubeconfig, pids: {} };
    const cp = new ControlPlane(state, opts, pki);
    try {
      await cp.startEtcd();
      await cp.startApiserver();
      if (opts.controllerManager ?? true) await cp.startControllerManager();
    } catch (err) {
      await cp.stop();
      throw err;
    }
    cp.saveState();
    return cp;
  }

  private saveState(): void {
    for (const [name, proc] of this.processes) this.state.pids[name] = proc.pid;
    writeFileSync(join(this.state.dir, 'state.json'), JSON.stringify(this.state, null, 2));
  }

  private launch(name: string, command: string, args: string[]): ManagedProcess {
    const proc = ManagedProcess.start({ name, command, args, logFile: join(this.state.dir, 'logs', `${name}.log`), detached: this.opts.detached });
    this.processes.set(name, proc);
    return proc;
  }

  private async startEtcd(): Promise<void> {
    const { dir, etcdPort, etcdPeerPort } = this.state;
    this.launch('etcd', binaryPath('etcd'), [
      '--name=raven', `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`, `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=raven=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync', '--quota-backend-bytes=8589934592', '--log-level=warn',
    ]);
    await waitFor('etcd health', async () => {
      const res = await fetch(`http://127.0.0.1:${etcdPort}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    }, 30_000);
  }

  /** Starts (or restarts, after `stopApiserver`) kube-apiserver on the same port with the same certificates. */
  async startApiserver(): Promise<void> {
    const { dir, host, apiserverPort, etcdPort } = this.state;
    const pkiDir = join(dir, 'pki');
    // The apiserver looks node names up itself (the node proxy refuses names that do not resolve): it runs in a
    // private mount namespace whose /etc/hosts is this control plane's copy, which a real-node box extends with the
    // names raven-proxy-dns serves. Nothing of the machine's changes.
    const hosts = join(dir, APISERVER_HOSTS_FILE);
    if (!existsSync(hosts)) writeFileSync(hosts, readFileSync('/etc/hosts', 'utf8'));
    this.launch('kube-apiserver', 'unshare', [
      '-m', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, binaryPath('kube-apiserver'),
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--bind-address=${host}`, `--advertise-address=${host}`, `--secure-port=${apiserverPort}`,
      `--tls-cert-file=${pkiDir}/apiserver.crt`, `--tls-private-key-file=${pkiDir}/apiserver.key`,
      `--client-ca-file=${pkiDir}/ca.crt`,
      `--kubelet-client-certificate=${pkiDir}/apiserver-kubelet-client.crt`, `--kubelet-client-key=${pkiDir}/apiserver-kubelet-client.key`,
      // Nodes by name first: in a Raven cluster the name resolves to the L7 proxy (raven-proxy-dns).
      '--kubelet-preferred-address-types=Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP',
      `--egress-selector-config-file=${pkiDir}/egress-selector.yaml`,
      // As in production: the Node authorizer and NodeRestriction bound what a node's own credentials may do.
      '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction',
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${pkiDir}/sa.pub`, `--service-account-signing-key-file=${pkiDir}/sa.key`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      '--v=1',
    ]);
    await waitFor('kube-apiserver /readyz', () => this.get('/readyz').then((r) => r.status === 200), 60_000, 200);
    this.saveState();
  }

  async stopApiserver(): Promise<void> {
    await this.processes.get('kube-apiserver')?.stop();
    this.processes.delete('kube-apiserver');
  }

  /**
   * Restarts kube-controller-manager, as its static Pod does in a real control plane: a leader-elected KCM exits when
   * an apiserver outage outlasts its lease's renew deadline (10 s). This one runs without leader election, so a test
   * that stops the apiserver for longer calls this to keep the cluster production-shaped.
   */
  async restartControllerManager(): Promise<void> {
    await this.processes.get('kube-controller-manager')?.stop();
    this.processes.delete('kube-controller-manager');
    await this.startControllerManager();
    this.saveState();
  }

  /** The log file of one of the control plane's processes (etcd, kube-apiserver, kube-controller-manager). */
  logFile(name: string): string {
    return join(this.state.dir, 'logs', `${name}.log`);
  }

  private async startControllerManager(): Promise<void> {
    const pkiDir = join(this.state.dir, 'pki');
    this.launch('kube-controller-manager', binaryPath('kube-controller-manager'), [
      `--kubeconfig=${pkiDir}/kcm.kubeconfig`,
      `--controllers=${KCM_CONTROLLERS.join(',')}`,
      `--cluster-signing-cert-file=${pkiDir}/ca.crt`, `--cluster-signing-key-file=${pkiDir}/ca.key`,
      `--root-ca-file=${pkiDir}/ca.crt`, `--service-account-private-key-file=${pkiDir}/sa.key`,
      // Each controller runs as its own ServiceAccount (as in real clusters): the bootstrap RBAC roles then apply,
      // for example the certificate controller's right to sign approved CSRs.
      '--leader-elect=false', '--secure-port=0', '--use-service-account-credentials=true', '--v=1',
    ]);
  }

  /** GET against the apiserver with the admin credential. */
  get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.state.server}${path}`, {
        ca: this.pki.ca.certPem, cert: this.pki.admin.certPem, key: this.pki.admin.keyPem, timeout: 5_000,
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
  }

  /** Tracks a further process of the cluster (for example the webhook) so that `stop`, `down` and the state file cover it. */
  adopt(proc: ManagedProcess): void {
    this.processes.set(proc.name, proc);
    this.saveState();
  }

  /** Stops everything, newest first, so the apiserver outlives its clients and etcd outlives the apiserver. */
  async stop(): Promise<void> {
    for (const [name, proc] of [...this.processes].reverse()) {
      await proc.stop();
      this.processes.delete(name);
    }
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.state.dir, { recursive: true, force: true });
  }

  /** Stops a detached control plane found through its state file (the `cluster down` path). */
  static async stopFromState(dir: string): Promise<boolean> {
    const file = join(dir, 'state.json');
    if (!existsSync(file)) return false;
    const state = JSON.parse(readFileSync(file, 'utf8')) as ControlPlaneState;
    for (const pid of Object.values(state.pids)) {
      if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
    }
    await waitFor('control plane processes to exit', async () => Object.values(state.pids).every((pid) => !pidAlive(pid)), 15_000).catch(() => {
      for (const pid of Object.values(state.pids)) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    return true;
  }

  static readState(dir: string): ControlPlaneState | undefined {
    const file = join(dir, 'state.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ControlPlaneState) : undefined;
  }
}

async function createPki(dir: string, host: string): Promise<Pki> {
  const pkiDir = join(dir, 'pki');
  const ca = await createCA('raven-testbed-ca');
  const serving = await issueCertificate(ca, {
    commonName: 'kube-apiserver',
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    ipAddresses: [...new Set(['127.0.0.1', '10.96.0.1', host])],
    usages: ['server'],
  });
  const admin = await issueCertificate(ca, { commonName: 'raven-admin', organizations: ['system:masters'], usages: ['client'] });
  const controllerManager = await issueCertificate(ca, { commonName: 'system:kube-controller-manager', usages: ['client'] });
  const kubeletClient = await issueCertificate(ca, { commonName: KUBELET_CLIENT_USER, usages: ['client'] });
  // The service-account signing key only needs to be a key; a throwaway CA provides one in the right format.
  const serviceAccount = await createCA('service-accounts');
  const files: Record<string, string> = {
    'ca.crt': ca.certPem, 'ca.key': ca.keyPem,
    'apiserver.crt': serving.certPem, 'apiserver.key': serving.keyPem,
    'apiserver-kubelet-client.crt': kubeletClient.certPem, 'apiserver-kubelet-client.key': kubeletClient.keyPem,
    // Traffic to nodes (logs, exec, port-forward, node proxy) leaves through an HTTP CONNECT proxy on a unix socket, as
    // with konnectivity. A real-node box listens there from its cloud network (RealNodes); without one it is refused.
    'egress-selector.yaml': [
      'apiVersion: apiserver.k8s.io/v1beta1',
      'kind: EgressSelectorConfiguration',
      'egressSelections:',
      '- name: cluster',
      '  connection:',
      '    proxyProtocol: HTTPConnect',
      '    transport:',
      '      uds:',
      `        udsName: ${join(dir, CLUSTER_EGRESS_SOCKET)}`,
      '',
    ].join('\n'),
    'sa.key': serviceAccount.keyPem,
    'sa.pub': createPublicKey(serviceAccount.keyPem).export({ type: 'spki', format: 'pem' }).toString(),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(pkiDir, name), content, { mode: 0o600 });
  return { ca, serving, kubeletClient, admin, controllerManager, serviceAccount };
}
