import { join } from 'node:path';
import { GATEWAY_CRD_NAME, GATEWAY_CRD_PATH, SYSTEM_NAMESPACE } from '@raven/api-types';
import { serviceAccountKubeconfig } from './service-accounts.ts';
import { appCommand, WORKSPACE_ROOT } from './apps.ts';
import { ControlPlane, KUBELET_CLIENT_USER } from './control-plane.ts';
import { kubectl } from './kubectl.ts';
import { freePort } from './net.ts';
import { ManagedProcess, waitFor } from './process.ts';

export interface ClusterOptions {
  dir: string;
  detached?: boolean;
  /**
   * Serve the CRD's conversion webhook from a gateway-pickup process beside the control plane (default true). Off
   * for a cluster where Raven is installed as Pods: their gateway-pickup serves it.
   */
  webhook?: boolean;
}

/** What tests receive (through vitest's provide/inject) to reach the shared cluster. */
export interface ClusterInfo {
  dir: string;
  server: string;
  kubeconfig: string;
  caPem: string;
  caCertFile: string;
  caKeyFile: string;
  webhookPort: number;
}

export interface Cluster {
  controlPlane: ControlPlane;
  info(): ClusterInfo;
  destroy(): Promise<void>;
}

/**
 * The real control plane plus what every Raven cluster has: the CRDs (Established) and gateway-pickup serving the
 * conversion webhook, its CA bundle injected into the CRD. Controllers are left to the tests that exercise them.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const controlPlane = await ControlPlane.start({ dir: opts.dir, detached: opts.detached });
  const { kubeconfig } = controlPlane;
  try {
    await kubectl(kubeconfig, ['apply', '--server-side', '-f', join(WORKSPACE_ROOT, GATEWAY_CRD_PATH)]);
    await waitForCrdEstablished(kubeconfig, GATEWAY_CRD_NAME);
    await kubectl(kubeconfig, ['apply', '--server-side', '-f', join(WORKSPACE_ROOT, 'k8s/base/rbac')]);
    // What kubeadm grants the apiserver's kubelet-client identity: the kubelet API (kubelets authorize it by webhook).
    await kubectl(kubeconfig, ['apply', '--server-side', '-f', '-'], JSON.stringify({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'raven-testbed:apiserver-kubelet-client' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: KUBELET_CLIENT_USER }],
    }));
    const pickupKubeconfig = await serviceAccountKubeconfig(
      { server: controlPlane.server, kubeconfig, caPem: controlPlane.caPem }, SYSTEM_NAMESPACE, 'raven-gateway-pickup', join(opts.dir, 'pki'),
    );
    const webhookPort = await freePort();
    const info: ClusterInfo = {
      dir: opts.dir, server: controlPlane.server, kubeconfig, caPem: controlPlane.caPem,
      caCertFile: controlPlane.caFiles.cert, caKeyFile: controlPlane.caFiles.key, webhookPort,
    };
    const cluster: Cluster = { controlPlane, info: () => info, destroy: () => controlPlane.destroy() };
    if (opts.webhook === false) return cluster;
    const { command, args } = appCommand('gateway-pickup');
    const webhook = ManagedProcess.start({
      name: 'gateway-pickup-webhook',
      command,
      args: [
        ...args, `--kubeconfig=${pickupKubeconfig}`, '--controllers=webhook', '--leader-elect=false',
        `--webhook-port=${webhookPort}`, `--webhook-url=https://127.0.0.1:${webhookPort}/convert`,
        '--webhook-host=127.0.0.1', '--webhook-bind=127.0.0.1', '--health-port=0', '--health-bind=127.0.0.1',
      ],
      logFile: join(opts.dir, 'logs', 'gateway-pickup-webhook.log'),
      detached: opts.detached,
    });
    controlPlane.adopt(webhook);
    await waitFor('the conversion webhook CA bundle in the CRD', async () => {
      webhook.assertRunning();
      const out = await kubectl(kubeconfig, ['get', `crd/${GATEWAY_CRD_NAME}`, '-o', 'jsonpath={.spec.conversion.webhook.clientConfig.caBundle}']);
      return out.length > 0;
    }, 60_000, 250);
    return cluster;
  } catch (err) {
    await controlPlane.stop();
    throw err;
  }
}

/** Polls (rather than `kubectl wait`, which fails while the CRD has no conditions yet) until the CRD is Established. */
export async function waitForCrdEstablished(kubeconfig: string, name: string): Promise<void> {
  await waitFor(`CRD ${name} Established`, async () => {
    const status = await kubectl(kubeconfig, ['get', `crd/${name}`, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}']);
    return status === 'True';
  }, 60_000, 100);
}
