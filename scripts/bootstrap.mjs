// Brings a fresh clone to a runnable state with nothing but Node built-ins:
//   --npm       npm ci when node_modules is missing or older than the lock file
//   --apt       Debian packages for the data path (root only; skipped when already present)
//   --binaries  the pinned Go-built upstream binaries (kube-apiserver, etcd, ...), cached under $HOME
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ENVTEST_TARGETS, planBinaries } from './envtest-assets.mjs';
import { ensureImageNode } from './image-node.mjs';
import { preflight } from './preflight.mjs';
import { runWithProgress } from './progress.mjs';

const root = new URL('..', import.meta.url).pathname;
const args = new Set(process.argv.slice(2));
const say = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`);
const run = (cmd, argv, opts = {}) => {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed with ${r.status ?? r.signal}`);
};
const onPath = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

function stopOn(problems) {
  if (problems.length === 0) return;
  for (const problem of problems) say(`cannot continue: ${problem}`);
  process.exit(1);
}
// The kernel check needs iptables and ip, which --apt installs, so it runs after the packages.
stopOn(preflight({ apt: args.has('--apt'), binaries: args.has('--binaries'), diskGiB: args.has('--binaries') ? 8 : 0 }));

if (args.has('--npm')) {
  const marker = join(root, 'node_modules/.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
    say('installing npm dependencies (npm ci)');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
}

// Command -> Debian package that provides it.
const aptNeeds = {
  ip: 'iproute2', iptables: 'iptables', ipset: 'ipset', wg: 'wireguard-tools', 'wireguard-go': 'wireguard-go',
  ipsec: 'libreswan', iperf3: 'iperf3', tcpdump: 'tcpdump', conntrack: 'conntrack', unshare: 'util-linux', nsenter: 'util-linux',
  ping: 'iputils-ping', ethtool: 'ethtool',
  // `ravenctl graph --layout=graphviz` and its tests (they are skipped without it; the built-in layout needs nothing).
  dot: 'graphviz',
  // Real nodes in the box: each node's container runtime, its CNI plugins, and the root file system of the busybox image.
  containerd: 'containerd', ctr: 'containerd', runc: 'runc', '/usr/lib/cni/bridge': 'containernetworking-plugins',
  '/usr/lib/cni/host-local': 'containernetworking-plugins', '/bin/busybox': 'busybox-static',
  // The Raven images (npm run images): Dockerfiles built without a daemon, on base images made from Debian's archive.
  buildah: 'buildah', mmdebstrap: 'mmdebstrap',
};
// A need is a command on PATH, or (when it starts with /) a file that the package installs off PATH.
const present = (need) => (need.startsWith('/') ? existsSync(need) : onPath(need));
if (args.has('--apt')) {
  const missing = [...new Set(Object.entries(aptNeeds).filter(([need]) => !present(need)).map(([, pkg]) => pkg))];
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) throw new Error(`missing packages ${missing.join(' ')}; install them as root (apt-get install ${missing.join(' ')})`);
    say(`installing Debian packages: ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-qq'], { env });
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
  }
  stopOn(preflight({ kernel: true }));
}

if (args.has('--binaries')) {
  const goBinaries = join(root, 'scripts/go-binaries.sh');
  const targets = ['etcd', 'kubernetes', 'kubernetes-node', 'konnectivity', 'helm', 'promtool', 'wireguard-go', 'coredns'];
  const cacheDir = (target) => spawnSync(goBinaries, ['dir', target], { encoding: 'utf8' }).stdout.trim();
  const singles = Object.values(ENVTEST_TARGETS).flat();
  const built = new Set([...new Set([...targets, ...singles])].filter((t) => existsSync(join(cacheDir(t), '.complete'))));
  const dir = process.env.KUBEBUILDER_ASSETS;
  if (dir && !existsSync(dir)) throw new Error(`KUBEBUILDER_ASSETS=${dir} does not exist`);
  const assets = dir ? { dir, files: readdirSync(dir) } : undefined;
  const plan = planBinaries(targets, { assets, built });
  if (plan.message) say(plan.message);
  for (const target of plan.build) await runWithProgress(target, goBinaries, [target], { cwd: root, say });
  // The app bundles run in the tests on the Node the images ship, not on the one running npm.
  ensureImageNode(root, say);
}
