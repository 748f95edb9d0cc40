import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROXY_SERVICE_ACCOUNTS, SYSTEM_NAMESPACE } from '@raven/api-types';
import { startApp, type AppProcess, type ClusterInfo } from '@raven/testbed';

export const ns = SYSTEM_NAMESPACE;

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `raven-${prefix}-`));
}

export interface ProxyServerOptions {
  node: string;
  kubeconfig: string;
  bind: string;
  tunnelPort: number;
  httpPort: number;
  httpsPort: number;
  args?: string[];
  name?: string;
  waitReady?: boolean;
  wrap?: string[];
}

export function startProxyServer(cluster: ClusterInfo, o: ProxyServerOptions): Promise<AppProcess> {
  return startApp('proxy-server', {
    access: cluster, serviceAccount: PROXY_SERVICE_ACCOUNTS.server, kubeconfig: o.kubeconfig, name: o.name ?? `proxy-server-${o.node}`, waitReady: o.waitReady, wrap: o.wrap,
    args: [`--node-name=${o.node}`, `--bind-address=${o.bind}`, `--tunnel-port=${o.tunnelPort}`, `--http-port=${o.httpPort}`, `--https-port=${o.httpsPort}`, '--log-level=debug',
      // These tests' nodes live on 127.0.0.0/8.
      '--insecure-allow-loopback-targets', ...(o.args ?? [])],
  });
}

export function startProxyClient(cluster: ClusterInfo, o: { node: string; kubeconfig: string; args?: string[]; name?: string; waitReady?: boolean; wrap?: string[] }): Promise<AppProcess> {
  return startApp('proxy-client', {
    access: cluster, serviceAccount: PROXY_SERVICE_ACCOUNTS.client, kubeconfig: o.kubeconfig, name: o.name ?? `proxy-client-${o.node}`, waitReady: o.waitReady, wrap: o.wrap,
    args: [`--node-name=${o.node}`, '--reconnect-interval=200ms', '--reconnect-max=1s', '--log-level=debug', '--insecure-allow-loopback-targets', ...(o.args ?? [])],
  });
}

/** gateway-pickup electing endpoints and approving the proxies' CSRs (its csrapprover), with its own ServiceAccount. */
export async function startPickup(cluster: ClusterInfo): Promise<{ stop(): Promise<void> }> {
  return startApp('gateway-pickup', {
    access: cluster, serviceAccount: 'raven-gateway-pickup', name: 'gateway-pickup-l7',
    args: ['--controllers=gatewaypickup,csrapprover', '--leader-elect=false'],
  });
}

export { httpGet, followLines, wsExec, type HttpResult, type Identity } from './calls.ts';
export { TSX_LOADER, boundKubeconfig, clusterCa, deletePod, enableL7, startFixture, startKubelet, type Fixture, type KubeletOptions } from '@raven/testbed';
