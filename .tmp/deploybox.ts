import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RavenBox, realWalkthroughTopology, startCluster } from '@raven/testbed';
const t = Date.now();
const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-deploy-cp-')), webhook: false });
console.log(`KUBECONFIG=${cluster.info().kubeconfig}`);
let rb: RavenBox | undefined;
const stop = async () => { await rb?.down().catch((e) => console.error(e)); await cluster.destroy(); process.exit(0); };
process.on('SIGTERM', () => void stop());
try {
  rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-deploy-')), cluster: cluster.info(), realNodes: true, topology: realWalkthroughTopology(), deploy: { log: (l) => console.log(`[deploy] ${l}`) } });
  console.log(`deployed after ${(Date.now() - t) / 1000} s`);
  await rb.waitConverged(180_000);
  console.log(`CONVERGED after ${(Date.now() - t) / 1000} s`);
} catch (err) { console.error('FAILED', err); }
setInterval(() => undefined, 1 << 30);
