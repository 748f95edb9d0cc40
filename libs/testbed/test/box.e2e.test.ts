import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RESOURCES, isNotFound, type KubeClient } from '@raven/controller-kit';
import { hostExec } from '@raven/netlink';
import {
  adminClient, binaryPath, Box, BoxConflictError, formatConnectivity, listNetns, netnsPids, pidGone, uniqueName, waitFor,
  type BoxHost, type BoxNode, type BoxTopology, type ConnectivityPair,
} from '../src/index.ts';

const cluster = inject('cluster');
const CLOUD = 'izwz9dohcv74iegqecp4axz';
const CLOUD2 = 'izwz9ey0js5z7mornclpd6z';
const HZ1 = 'izbp15inok0kbfkg3in52rz';
const HZ2 = 'izbp15inok0kbfkg3in52sz';
const QD1 = 'izm5eb24dmjfimuaybpnqzz';
const HEARTBEAT_MS = 1_000;

interface NodeObject {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { podCIDR?: string; podCIDRs?: string[] };
  status: { addresses: Array<{ type: string; address: string }>; conditions: Array<{ type: string; status: string; lastHeartbeatTime: string }> };
}

let kube: KubeClient;
const dirs: string[] = [];
const boxDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'rvbox-'));
  dirs.push(dir);
  return dir;
};
const getNode = (name: string) => kube.get<NodeObject>(RESOURCES.nodes, { name });
const ready = (node: NodeObject) => node.status.conditions.find((c) => c.type === 'Ready')!;
/** Processes anywhere on the machine whose command line mentions `text` (the box's relays name its socket). */
function processesMentioning(text: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return !pidGone(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  });
}
const boxNamespaces = (box: Box) => [box.internet.netns, ...box.domains.map((d) => d.router.netns), ...box.nodes.flatMap((n) => [n.netns, n.podNetns])];

async function expectConnectivity(box: Box, pairs: ConnectivityPair[]): Promise<void> {
  const rows = await box.connectivityMatrix(pairs, { count: 2, intervalMs: 100, timeoutMs: 700 });
  expect(rows.every((row) => row.ok), `\n${formatConnectivity(rows)}`).toBe(true);
}

beforeAll(async () => {
  kube = await adminClient(cluster);
});

afterAll(() => {
  kube.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('a detached box', () => {
  it('keeps running after the process that built it exits, until Box.downFromState', async () => {
    const dir = boxDir();
    const name = uniqueName('kept');
    const topology: BoxTopology = {
      domains: [{ name: 'kept', gateway: 'gw-kept', lan: '172.16.7.0/24', wanIP: '198.18.0.71', nodes: [{ name, internalIP: '172.16.7.10', podCIDR: '10.224.7.0/26' }] }],
    };
    const fixture = new URL('./box-keep.fixture.ts', import.meta.url).pathname;
    const { stdout } = await hostExec.run(process.execPath, ['--import', 'tsx', fixture, dir, JSON.stringify(cluster), JSON.stringify(topology)]);
    const kept = JSON.parse(stdout) as { netns: string; wrap: string[] };
    expect(await listNetns()).toContain(kept.netns);
    const [program, ...prefix] = kept.wrap;
    const viaRelay = await hostExec.run(program!, [...prefix, binaryPath('kubectl'), '--kubeconfig', join(dir, 'kubeconfigs', 'admin.kubeconfig'), 'get', 'node', name, '-o', 'name']);
    expect(viaRelay.stdout.trim()).toBe(`node/${name}`);

    expect(await Box.downFromState(dir)).toBe(true);
    expect(await listNetns()).not.toContain(kept.netns);
    expect(processesMentioning(join(dir, 'apiserver.sock'))).toEqual([]);
    await expect(getNode(name)).rejects.toSatisfy(isNotFound);
    expect(await Box.downFromState(dir)).toBe(false);
  });
});

describe('the walkthrough box', () => {
  let box: Box;
  const node = (name: string) => box.node(name);

  beforeAll(async () => {
    const started = Date.now();
    box = await Box.up({ dir: boxDir(), cluster, heartbeatIntervalMs: HEARTBEAT_MS });
    console.log(`box up in ${Date.now() - started} ms\n${box.describe()}`);
  });

  afterAll(async () => {
    await box?.down();
  });

  it('connects nodes and pods within a domain and edge nodes to the cloud public IP, and nothing across domains', async () => {
    const [cloud, cloud2, hz1, hz2, qd1] = [CLOUD, CLOUD2, HZ1, HZ2, QD1].map(node) as [BoxNode, BoxNode, BoxNode, BoxNode, BoxNode];
    const reach = (from: BoxHost, to: BoxHost | string): ConnectivityPair => ({ from, to, expect: true });
    const blocked = (from: BoxHost, to: BoxHost | string): ConnectivityPair => ({ from, to, expect: false });
    await expectConnectivity(box, [
      reach(hz1, hz2), reach(hz1.pod, hz2.pod), reach(hz2.pod, hz1), reach(cloud.pod, cloud2.pod), reach(qd1, qd1.pod),
      reach(hz1, '198.18.0.11'), reach(hz1.pod, '198.18.0.11'), reach(qd1, '198.18.0.11'), reach(box.internet, '198.18.0.11'),
      // Hairpin: a cloud node reaching its neighbour's public address through the router.
      reach(cloud2, '198.18.0.11'),
      blocked(hz1.pod, qd1.pod), blocked(hz1.pod, cloud.pod), blocked(cloud.pod, hz1.pod), blocked(hz1, qd1), blocked(cloud, hz1),
      blocked(hz1, '198.18.0.31'), blocked(box.internet, '198.18.0.21'), blocked(box.internet, '198.18.0.10'),
    ]);
  });

  it('masquerades edge traffic behind its router and DNATs the cloud public IP to the cloud node', async () => {
    const cloud = node(CLOUD);
    const capture = await box.capture({ at: cloud, iface: cloud.underlay, filter: 'icmp[icmptype] == icmp-echo', count: 2, timeoutMs: 5_000 });
    const result = await box.ping({ from: node(HZ1), to: '198.18.0.11', count: 2, intervalMs: 100 });
    const lines = await capture.done;
    expect(result.received).toBe(2);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('198.18.0.21 > 192.168.0.195: ICMP echo request');
  });

  it('carries full-size packets at the underlay MTU and no larger', async () => {
    const hz1 = node(HZ1);
    const fits = box.mtu - 28;
    expect((await box.ping({ from: hz1.pod, to: node(HZ2).pod, count: 1, size: fits, dontFragment: true })).received).toBe(1);
    expect((await box.ping({ from: hz1, to: '198.18.0.11', count: 1, size: fits, dontFragment: true })).received).toBe(1);
    expect((await box.ping({ from: hz1, to: '198.18.0.11', count: 1, size: fits + 1, dontFragment: true, timeoutMs: 500 })).received).toBe(0);
  });

  it('gives every node its own /run/wireguard and hostname, which later processes on the node share', async () => {
    const [hz1, qd1] = [node(HZ1), node(QD1)];
    for (const n of [hz1, qd1]) {
      // wireguard-go daemonises: the spawned process exits at once, the daemon stays in the node.
      const starter = n.spawn('wireguard-go', ['raven-wg0'], { name: 'wireguard-go' });
      expect(await starter.waitExit()).toBe(0);
    }
    for (const n of [hz1, qd1]) {
      const show = n.spawn('wg', ['show', 'raven-wg0', 'listen-port'], { name: 'wg-show' });
      expect(await show.waitExit()).toBe(0);
      expect(readFileSync(show.logFile, 'utf8').trim()).toMatch(/^\d+$/);
      expect((await n.exec('ls', ['/run/wireguard'])).stdout.trim()).toBe('raven-wg0.sock');
      expect((await n.exec('hostname')).stdout.trim()).toBe(n.name);
    }
    expect(existsSync('/run/wireguard/raven-wg0.sock')).toBe(false);
  });

  it('lets processes inside a node reach the apiserver at https://127.0.0.1:6443', async () => {
    const kubeconfig = await box.kubeconfigFor('raven-gateway-pickup');
    expect(readFileSync(kubeconfig, 'utf8')).toContain('server: https://127.0.0.1:6443');
    const kubectl = binaryPath('kubectl');
    const listed = await node(QD1).exec(kubectl, ['--kubeconfig', kubeconfig, 'get', 'nodes', '-o', 'name']);
    expect(listed.stdout.split('\n')).toEqual(expect.arrayContaining(box.nodes.map((n) => `node/${n.name}`)));
    const viaSpawn = node(CLOUD).spawn(kubectl, ['--kubeconfig', box.adminKubeconfig, 'get', 'node', HZ1, '-o', 'jsonpath={.spec.podCIDR}'], { name: 'kubectl' });
    expect(await viaSpawn.waitExit()).toBe(0);
    expect(readFileSync(viaSpawn.logFile, 'utf8')).toBe('10.224.1.128/26');
    // The relay only serves node namespaces: a pod has no apiserver at 127.0.0.1:6443.
    await expect(node(CLOUD).execPod(kubectl, ['--kubeconfig', box.adminKubeconfig, '--request-timeout=2s', 'get', 'nodes'])).rejects.toThrow(/refused/);
  });

  it('registers every node with its addresses, pod CIDR and gateway label, and keeps it Ready', async () => {
    for (const n of box.nodes) {
      const object = await getNode(n.name);
      expect(object.status.addresses).toContainEqual({ type: 'InternalIP', address: n.internalIP });
      expect(object.spec.podCIDRs).toEqual([n.podCIDR]);
      expect(object.metadata.labels?.['raven.openyurt.io/gateway']).toBe(n.gateway);
      expect(ready(object).status).toBe('True');
    }
    const before = ready(await getNode(HZ1)).lastHeartbeatTime;
    await waitFor('a fresh heartbeat', async () => ready(await getNode(HZ1)).lastHeartbeatTime !== before, 5_000, 200);
    expect(box.heartbeatFailures).toBe(0);
  });

  it('takes a node down hard and brings it back', async () => {
    const [hz1, hz2] = [node(HZ1), node(HZ2)];
    const sleeper = hz2.spawn('sleep', ['600'], { name: 'sleeper' });
    const podSleeper = hz2.spawn('sleep', ['600'], { name: 'pod-sleeper', inPod: true });
    await box.nodeDown(HZ2, { ready: 'Unknown' });
    expect(await sleeper.waitExit()).toBe(-1);
    expect(await podSleeper.waitExit()).toBe(-1);
    expect(hz2.isUp).toBe(false);
    const links = JSON.parse((await hz2.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as Array<{ flags: string[] }>;
    expect(links[0]!.flags).not.toContain('UP');
    expect((await box.ping({ from: hz1, to: hz2, count: 1, timeoutMs: 500 })).received).toBe(0);
    // Only the namespace holder is left in the node.
    expect(await netnsPids(hz2.netns)).toEqual([hz2.holderPid]);
    const frozen = ready(await getNode(HZ2));
    expect(frozen.status).toBe('Unknown');
    await sleep(HEARTBEAT_MS * 2.5);
    expect(ready(await getNode(HZ2)).lastHeartbeatTime).toBe(frozen.lastHeartbeatTime);

    await box.nodeUp(HZ2);
    expect(ready(await getNode(HZ2)).status).toBe('True');
    await expectConnectivity(box, [
      { from: hz1, to: hz2, expect: true }, { from: hz1.pod, to: hz2.pod, expect: true }, { from: hz2, to: '198.18.0.11', expect: true },
    ]);
    const kubectl = await hz2.exec(binaryPath('kubectl'), ['--kubeconfig', box.adminKubeconfig, 'get', 'node', HZ2, '-o', 'name']);
    expect(kubectl.stdout.trim()).toBe(`node/${HZ2}`);
    await waitFor('heartbeats again', async () => ready(await getNode(HZ2)).lastHeartbeatTime !== frozen.lastHeartbeatTime, 5_000, 200);
  });

  it('refuses a second box that would take over its Nodes, and leaves nothing of the attempt behind', async () => {
    const ours = async () => (await listNetns()).filter((ns) => ns.startsWith(`rvbox-${process.pid}-`));
    const before = await ours();
    await expect(Box.up({ dir: boxDir(), cluster })).rejects.toThrow(BoxConflictError);
    expect(await ours()).toEqual(before);
    expect(ready(await getNode(CLOUD)).status).toBe('True');
  });

  it('runs a second box with conflicting InternalIPs across two domains next to it', async () => {
    const [eastA, eastB, westA, westB] = ['east-a', 'east-b', 'west-a', 'west-b'].map((n) => uniqueName(n));
    const topology: BoxTopology = {
      domains: [
        { name: 'east', gateway: 'gw-east', lan: '172.16.9.0/24', wanIP: '198.18.0.41', nodes: [
          { name: eastA!, internalIP: '172.16.9.10', podCIDR: '10.224.9.0/26' },
          { name: eastB!, internalIP: '172.16.9.11', podCIDR: '10.224.9.64/26' },
        ] },
        { name: 'west', gateway: 'gw-west', lan: '172.16.9.0/24', wanIP: '198.18.0.51', nodes: [
          { name: westA!, internalIP: '172.16.9.10', podCIDR: '10.224.10.0/26' },
          { name: westB!, internalIP: '172.16.9.11', podCIDR: '10.224.10.64/26' },
        ] },
      ],
    };
    const second = await Box.up({ dir: boxDir(), cluster, topology, mtu: 1400 });
    try {
      const n = (name: string) => second.node(name);
      await expectConnectivity(second, [
        { from: n(eastA!), to: '172.16.9.11', expect: true }, { from: n(westA!), to: '172.16.9.11', expect: true },
        { from: n(eastA!).pod, to: n(eastB!).pod, expect: true }, { from: n(westA!).pod, to: n(westB!).pod, expect: true },
        { from: n(eastA!).pod, to: n(westB!).pod, expect: false },
      ]);
      // Each domain reaches its own 172.16.9.11: with west's down, east's still answers.
      await second.nodeDown(westB!);
      await expectConnectivity(second, [{ from: n(eastA!), to: '172.16.9.11', expect: true }, { from: n(westA!), to: '172.16.9.11', expect: false }]);
      const registered = await Promise.all([eastA!, westA!].map(getNode));
      expect(registered.map((o) => o.status.addresses.find((a) => a.type === 'InternalIP')?.address)).toEqual(['172.16.9.10', '172.16.9.10']);
      const eth0 = JSON.parse((await n(eastA!).exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as Array<{ mtu: number }>;
      expect(eth0[0]!.mtu).toBe(1400);
      // The first box is untouched.
      await expectConnectivity(box, [{ from: node(HZ1).pod, to: node(HZ2).pod, expect: true }]);
    } finally {
      await second.down();
    }
    for (const name of [eastA!, westA!]) await expect(getNode(name)).rejects.toSatisfy(isNotFound);
  });

  it('tears down every namespace, process (daemonised wireguard-go included), socket and Node', async () => {
    const namespaces = boxNamespaces(box);
    const pids = (await Promise.all(namespaces.map(netnsPids))).flat();
    const wireguard = pids.filter((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'wireguard-go');
    expect(wireguard).toHaveLength(2);
    expect(pids.length).toBeGreaterThan(box.nodes.length * 2);
    expect(processesMentioning(box.apiserverSocket)).toHaveLength(box.nodes.length + 1);
    const started = Date.now();
    await box.down();
    console.log(`box down in ${Date.now() - started} ms`);
    const left = await listNetns();
    expect(namespaces.filter((ns) => left.includes(ns))).toEqual([]);
    expect(pids.filter((pid) => !pidGone(pid))).toEqual([]);
    expect(existsSync(box.apiserverSocket)).toBe(false);
    expect(processesMentioning(box.apiserverSocket)).toEqual([]);
    for (const n of box.nodes) await expect(getNode(n.name)).rejects.toSatisfy(isNotFound);
  });
});
