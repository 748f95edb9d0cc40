// npm run demo: bring up the real control plane, apply the walkthrough's Gateways and raven-cfg, show them, tear down.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectl, startCluster, WORKSPACE_ROOT } from '@raven/testbed';

const walkthrough = join(WORKSPACE_ROOT, 'k8s/examples/walkthrough');
const step = (title: string) => console.log(`\n\x1b[1m== ${title}\x1b[0m`);

async function main(): Promise<void> {
  step('Starting a real control plane (etcd, kube-apiserver, kube-controller-manager, gateway-pickup webhook)');
  const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-demo-')) });
  const k = (...args: string[]) => kubectl(cluster.info().kubeconfig, args);
  try {
    step('kubectl apply -f k8s/examples/walkthrough/ (the walkthrough Gateways, v1alpha1 and v1beta1, and raven-cfg)');
    console.log(await k('apply', '-f', walkthrough));
    step('kubectl get gateways');
    console.log(await k('get', 'gateways'));
    step('kubectl get gateway gw-cloud -o yaml (stored as v1beta1, read as the preferred version)');
    console.log(await k('get', 'gateway', 'gw-cloud', '-o', 'yaml'));
    step('kubectl get gateways.v1alpha1.raven.openyurt.io gw-hangzhou -o yaml (converted by the webhook)');
    console.log(await k('get', 'gateways.v1alpha1.raven.openyurt.io', 'gw-hangzhou', '-o', 'yaml'));
    step('The apiserver itself rejects a bad Gateway (CEL validation in the CRD)');
    const bad = 'apiVersion: raven.openyurt.io/v1beta1\nkind: Gateway\nmetadata:\n  name: gw-bad\nspec:\n  exposeType: PublicIP\n  endpoints:\n  - {nodeName: a, type: tunnel, underNAT: true, publicIP: 1.2.3}\n';
    await kubectl(cluster.info().kubeconfig, ['apply', '-f', '-'], bad).then(
      () => { throw new Error('the bad Gateway was accepted'); },
      (err: Error) => console.log(err.message.replace(/^kubectl .*?: /, '')),
    );
  } finally {
    step('Tearing down');
    await cluster.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
