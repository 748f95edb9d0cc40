// A real-node box's keeper: its own process, so that a box kept by demo `--keep` works after the process that built
// it has gone. It serves the box's image registry on a unix socket and keeps the apiserver's hosts file equal to the
// machine's plus the edge-tunnel-nodes ConfigMap. SIGTERM restores the hosts file and ends it.
//   node --import <tsx> keeper.ts <registry-socket> <hosts-file> <kubeconfig> <watch-pid:N|detached> <image.tar>...
import { readFileSync, writeFileSync } from 'node:fs';
import { CONFIGMAPS, EDGE_TUNNEL_NODES_KEY, SYSTEM_NAMESPACE } from '@raven/api-types';
import { KubeClient, RESOURCES } from '@raven/controller-kit';
import { OciRegistry } from '../oci-registry.ts';
import { HOSTS_MARKER, hostsWithTunnelNodes } from './hosts-sync.ts';

const [registrySocket = '', hostsFile = '', kubeconfig = '', watch = '', ...images] = process.argv.slice(2);
if (!registrySocket || !hostsFile || !kubeconfig || !watch) {
  console.error('usage: keeper.ts <registry-socket> <hosts-file> <kubeconfig> <watch-pid:N|detached> <image.tar>...');
  process.exit(2);
}

const registry = await OciRegistry.listen(registrySocket, images);
const kube = await KubeClient.load({ kubeconfig, userAgent: 'raven-box-keeper' });
const base = readFileSync(hostsFile, 'utf8').split(HOSTS_MARKER)[0]!;
console.log(`keeper: registry on ${registrySocket} with ${images.length} images; syncing ${hostsFile}`);

let syncing = false;
const timer = setInterval(() => {
  if (syncing) return;
  syncing = true;
  kube.get<{ data?: Record<string, string> }>(RESOURCES.configMaps, { namespace: SYSTEM_NAMESPACE, name: CONFIGMAPS.edgeTunnelNodes })
    .then((cm) => {
      const next = hostsWithTunnelNodes(base, cm.data?.[EDGE_TUNNEL_NODES_KEY] ?? '');
      // In place: the apiserver's bind mount holds this inode.
      if (readFileSync(hostsFile, 'utf8') !== next) writeFileSync(hostsFile, next);
    }, () => undefined)
    .finally(() => {
      syncing = false;
    });
}, 500);

let ending = false;
async function end(): Promise<void> {
  if (ending) return;
  ending = true;
  clearInterval(timer);
  writeFileSync(hostsFile, base);
  await registry.close();
  kube.close();
  process.exit(0);
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void end());
if (watch.startsWith('watch-pid:')) {
  const pid = Number(watch.slice('watch-pid:'.length));
  setInterval(() => {
    try {
      process.kill(pid, 0);
    } catch {
      void end();
    }
  }, 1_000).unref();
}
