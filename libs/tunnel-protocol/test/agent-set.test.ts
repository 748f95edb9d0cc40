import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentTunnelSet } from '../src/index.ts';
import { LOCALHOST, agentOptions, echoServer, readExactly, startTunnelServer, tcpServer, waitFor, type RunningTunnelServer } from './support.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP load balancer that hands each new connection to the next live backend, like a cloud L4 LB. */
async function roundRobin(backends: () => number[]) {
  let next = 0;
  const lb = await tcpServer((client: Socket) => {
    const ports = backends();
    const port = ports[next++ % ports.length];
    if (port === undefined) return client.destroy();
    const upstream = connect(port, LOCALHOST);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  cleanups.push(() => lb.close());
  return lb;
}

describe('AgentTunnelSet', () => {
  it('collects one tunnel per replica behind a load balancer and replaces a lost one', async () => {
    const replicas: Array<RunningTunnelServer | undefined> = [];
    for (let i = 0; i < 3; i++) replicas.push(await startTunnelServer({ serverId: `replica-${i}`, serverCount: 3 }));
    cleanups.push(() => Promise.all(replicas.map((r) => r?.stop())));
    const lb = await roundRobin(() => replicas.flatMap((r) => (r ? [r.port] : [])));

    const set = new AgentTunnelSet({ ...agentOptions(`${LOCALHOST}:${lb.port}`), syncIntervalMs: 50, syncIntervalCapMs: 200 });
    cleanups.push(() => set.stop());
    set.start();
    await waitFor('tunnels to all three replicas', () => set.tunnels.size === 3);
    expect([...set.tunnels.keys()].sort()).toEqual(['replica-0', 'replica-1', 'replica-2']);
    expect(set.serverCount).toBe(3);
    for (const replica of replicas) expect(replica?.tunnel.agents().map((a) => a.agentId)).toEqual(['agent-a']);

    // Every replica can dial through the agent.
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    for (const replica of replicas) {
      const stream = await replica!.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`);
      stream.write('ping');
      expect((await readExactly(stream, 4)).toString()).toBe('ping');
      stream.destroy();
    }

    // Replica 1 dies; the set drops its tunnel, and picks it up again when it comes back on a new port.
    const lost = replicas[1]!;
    replicas[1] = undefined;
    await lost.stop();
    await waitFor('the lost tunnel to be dropped', () => set.tunnels.size === 2 && !set.tunnels.has('replica-1'));
    replicas[1] = await startTunnelServer({ serverId: 'replica-1', serverCount: 3 });
    await waitFor('the replacement tunnel', () => set.tunnels.size === 3, 10_000);
  });

  it('backs off while the server is unreachable and connects once it appears', async () => {
    const placeholder = await tcpServer(() => undefined);
    const port = placeholder.port;
    await placeholder.close();

    const failures: Error[] = [];
    const set = new AgentTunnelSet({ ...agentOptions(`${LOCALHOST}:${port}`), syncIntervalMs: 20, syncIntervalCapMs: 100, handshakeTimeoutMs: 1_000 });
    set.on('connectFailed', (error) => failures.push(error));
    cleanups.push(() => set.stop());
    set.start();
    await waitFor('a few failed attempts', () => failures.length >= 3);

    const server = await startTunnelServer({ serverId: 'late' }, port);
    cleanups.push(() => server.stop());
    await waitFor('the tunnel', () => set.tunnels.has('late'), 10_000);
    expect(failures[0]).toMatchObject({ name: 'HandshakeError', reason: 'unavailable' });
  });

  it('drains current and future tunnels', async () => {
    const server = await startTunnelServer({ serverId: 'only' });
    cleanups.push(() => server.stop());
    const set = new AgentTunnelSet({ ...agentOptions(server.address), syncIntervalMs: 20 });
    cleanups.push(() => set.stop());
    set.start();
    await waitFor('the tunnel', () => set.tunnels.size === 1);
    set.drain();
    await waitFor('the server to see the drain', () => server.tunnel.agents()[0]?.draining === true);
    await expect(server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:1`)).rejects.toMatchObject({ reason: 'no-agent' });
  });
});
