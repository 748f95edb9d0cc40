import { once } from 'node:events';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { DialError, HandshakeError, spliceStreams, tcpDialer, type AgentTunnel, type Dialer, type TunnelStream } from '../src/index.ts';
import {
  LOCALHOST, connectAgent, echoServer, patternChunk, readAll, readExactly, sha256, startTunnelServer, tcpServer, waitFor,
  type RunningTunnelServer,
} from './support.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(serverOptions: Parameters<typeof startTunnelServer>[0] = {}, agentOverrides: Parameters<typeof connectAgent>[1] = {}) {
  const server = await startTunnelServer(serverOptions);
  cleanups.push(() => server.stop());
  const agent = await connectAgent(server.address, agentOverrides);
  cleanups.push(() => agent.close());
  await waitFor('agent registration', () => server.tunnel.agents().length === 1);
  return { server, agent };
}

async function target(onSocket: (socket: Socket) => void) {
  const t = await tcpServer(onSocket);
  cleanups.push(() => t.close());
  return t;
}

const errorOf = (stream: TunnelStream) => once(stream, 'error').then(([error]) => error as Error);

describe('handshake', () => {
  it('exchanges agentID/agentIdentifiers for serverID/serverCount', async () => {
    const { server, agent } = await setup({ serverId: 'replica-7', serverCount: () => 3 }, { agentId: 'edge-1', identifiers: { host: ['node-a'], ipv4: ['10.0.0.5'] } });
    expect(agent.serverId).toBe('replica-7');
    expect(agent.serverCount).toBe(3);
    expect(server.tunnel.agents()).toMatchObject([{ agentId: 'edge-1', identifiers: { host: ['node-a'], ipv4: ['10.0.0.5'] }, draining: false }]);
  });

  it('lets the authorize hook refuse an agent and see its token', async () => {
    const seen: string[] = [];
    const server = await startTunnelServer({
      authorize: ({ agentId, bearerToken }) => {
        seen.push(`${agentId}:${bearerToken}`);
        if (bearerToken !== 'good') throw new Error('bad token');
      },
    });
    cleanups.push(() => server.stop());
    const refused = await connectAgent(server.address, { authToken: () => 'forged' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HandshakeError);
    expect(refused).toMatchObject({ reason: 'unauthorized', message: expect.stringContaining('bad token') as unknown });
    const admitted = await connectAgent(server.address, { authToken: async () => 'good' });
    cleanups.push(() => admitted.close());
    expect(seen).toEqual(['agent-a:forged', 'agent-a:good']);
    expect(server.tunnel.agents()).toHaveLength(1);
  });

  it('indexes an admitted stream by the tags the authorize hook returns, and dials by tag', async () => {
    const server = await startTunnelServer({ authorize: ({ agentId }) => ({ tags: [`domain:${agentId === 'edge-1' ? 'gw/a' : 'gw/b'}`] }) });
    cleanups.push(() => server.stop());
    for (const agentId of ['edge-1', 'edge-2']) {
      const agent = await connectAgent(server.address, { agentId });
      cleanups.push(() => agent.close());
    }
    await waitFor('both agents', () => server.tunnel.agents().length === 2);
    expect(server.tunnel.agentsTagged('domain:gw/a').map((a) => [a.agentId, a.tags])).toEqual([['edge-1', ['domain:gw/a']]]);
    expect(server.tunnel.agentsTagged('domain:gw/c')).toEqual([]);
    const echo = await target((socket) => socket.pipe(socket));
    const stream = await server.tunnel.dial({ tag: 'domain:gw/b' }, `${LOCALHOST}:${echo.port}`);
    stream.write('b');
    expect((await readExactly(stream, 1)).toString()).toBe('b');
    stream.destroy();
    await expect(server.tunnel.dial({ tag: 'domain:gw/c' }, `${LOCALHOST}:${echo.port}`)).rejects.toMatchObject({ reason: 'no-agent' });
  });

  it('rejects a Connect without an agentID', async () => {
    const server = await startTunnelServer();
    cleanups.push(() => server.stop());
    const error = await connectAgent(server.address, { agentId: '' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'HandshakeError', reason: 'bad-metadata' });
  });
});

describe('dial and close', () => {
  it('carries bytes both ways and closes from the server side', async () => {
    const { server, agent } = await setup();
    const closedAtTarget: Promise<unknown[]>[] = [];
    const echo = await target((socket) => {
      closedAtTarget.push(once(socket, 'close'));
      socket.pipe(socket);
    });
    const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`);
    stream.write('hello, ');
    stream.write('edge');
    expect((await readExactly(stream, 11)).toString()).toBe('hello, edge');
    expect(server.tunnel.stats()).toMatchObject({ openStreams: 1, dials: 1, bytesToAgents: 11, bytesFromAgents: 11 });

    stream.resume();
    stream.end();
    await once(stream, 'close');
    await closedAtTarget[0];
    await waitFor('agent to forget the connection', () => agent.stats().connections === 0);
    expect(server.tunnel.stats().openStreams).toBe(0);
  });

  it('ends the stream when the target closes, after delivering its last bytes', async () => {
    const { server, agent } = await setup();
    const bye = await target((socket) => socket.end('last words'));
    const stream = await server.tunnel.dial({ agentId: 'agent-a' }, `${LOCALHOST}:${bye.port}`);
    expect((await readAll(stream)).toString()).toBe('last words');
    await waitFor('stream close', () => stream.destroyed);
    expect(agent.stats().connections).toBe(0);
    expect(server.tunnel.stats().openStreams).toBe(0);
  });

  it('surfaces refusals from the network and from the dialer policy', async () => {
    const closed = await tcpServer(() => undefined);
    await closed.close();
    const dialer = tcpDialer({ allow: (_host, port) => port !== 2 });
    const { server } = await setup({}, { dialer });

    const refused = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${closed.port}`).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DialError);
    expect(refused).toMatchObject({ reason: 'refused', message: expect.stringContaining(`dial tcp ${LOCALHOST}:${closed.port}: connect: connection refused`) as unknown });

    const forbidden = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:2`).catch((e: unknown) => e);
    expect(forbidden).toMatchObject({ reason: 'refused', message: expect.stringContaining('not allowed by agent policy') as unknown });
    expect(server.tunnel.stats().dialFailures.refused).toBe(2);
  });

  it('times out a dial and cancels it at the agent with DIAL_CLS', async () => {
    const signals: AbortSignal[] = [];
    const hanging: Dialer = (_address, { signal }) => {
      signals.push(signal);
      return new Promise(() => undefined);
    };
    const { server, agent } = await setup({ dialTimeoutMs: 150 }, { dialer: hanging, dialTimeoutMs: 60_000 });
    const error = await server.tunnel.dial({ host: 'node-a' }, '10.255.255.1:80').catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'DialError', reason: 'timeout' });
    await waitFor('the agent to abort its dialer', () => signals[0]?.aborted === true);
    expect(agent.stats().pendingDials).toBe(0);
    expect(server.tunnel.stats()).toMatchObject({ pendingDials: 0, dialFailures: { timeout: 1 } });
  });

  it('answers a dial the agent gave up on with a timeout error', async () => {
    const { server } = await setup({}, { dialer: () => new Promise(() => undefined), dialTimeoutMs: 100 });
    const error = await server.tunnel.dial({ host: 'node-a' }, '10.255.255.1:80').catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'refused', message: expect.stringContaining('i/o timeout') as unknown });
  });

  it('aborts a dial through its AbortSignal', async () => {
    const { server } = await setup({}, { dialer: () => new Promise(() => undefined) });
    const controller = new AbortController();
    const dial = server.tunnel.dial({ host: 'node-a' }, '10.255.255.1:80', { signal: controller.signal });
    controller.abort();
    await expect(dial).rejects.toMatchObject({ reason: 'aborted' });
  });

  it('closes a connection whose DIAL_RSP arrives after the server gave up', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const slow: Dialer = async (address, context) => {
      await sleep(300);
      return tcpDialer()(address, { ...context, signal: new AbortController().signal });
    };
    const { server, agent } = await setup({ dialTimeoutMs: 100 }, { dialer: slow });
    await expect(server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`)).rejects.toMatchObject({ reason: 'timeout' });
    await sleep(400);
    await waitFor('the late connection to be closed', () => agent.stats().connections === 0 && echo.sockets.size === 0);
  });

  it('fails open streams and pending dials when the agent goes away', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    let hang = false;
    const dialer: Dialer = (address, context) => (hang ? new Promise(() => undefined) : tcpDialer()(address, context));
    const { server, agent } = await setup({}, { dialer });
    const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`);
    hang = true;
    const pending = server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`).catch((e: unknown) => e);
    const streamError = errorOf(stream);
    await waitFor('the dial to reach the agent', () => agent.stats().pendingDials === 1);

    const disconnected = once(server.tunnel, 'agentDisconnected');
    agent.close();
    expect(await streamError).toMatchObject({ name: 'TunnelStreamError', reason: 'tunnel-lost' });
    expect(await pending).toMatchObject({ name: 'DialError', reason: 'agent-lost' });
    await disconnected;
    expect(server.tunnel.agents()).toEqual([]);
    await waitFor('target sockets to close', () => echo.sockets.size === 0);
  });

  it('closes every connection on the agent when the server ends the tunnel', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const { server, agent } = await setup();
    const streams = await Promise.all([1, 2, 3].map(() => server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`)));
    const errors = streams.map((s) => errorOf(s));
    await waitFor('three target sockets', () => echo.sockets.size === 3);
    server.tunnel.close();
    expect(await agent.closed).toBeUndefined();
    for (const error of await Promise.all(errors)) expect(error).toMatchObject({ reason: 'tunnel-lost' });
    await waitFor('target sockets to close', () => echo.sockets.size === 0);
    await expect(connectAgent(server.address)).rejects.toMatchObject({ reason: 'unavailable' });
  });

  it('fails writes made after the remote end closed', async () => {
    const { server } = await setup();
    const bye = await target((socket) => socket.end());
    const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${bye.port}`);
    stream.resume();
    await once(stream, 'end');
    const writeError = await new Promise((resolve) => stream.write('too late', resolve));
    expect(writeError).toBeInstanceOf(Error);
  });
});

describe('spliceStreams', () => {
  it('delivers every byte to the client when the remote end closes first', async () => {
    const payload = Buffer.concat(Array.from({ length: 32 }, (_, i) => patternChunk(i, 256 * 1024)));
    const source = await target((socket) => socket.end(payload));
    const { server } = await setup();
    // A plain TCP frontend, as a proxy server would run: client <-> TunnelStream.
    const spliced: Promise<Error | undefined>[] = [];
    const frontend = await tcpServer((client) => {
      void server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${source.port}`).then((stream) => spliced.push(spliceStreams(client, stream)));
    });
    cleanups.push(() => frontend.close());
    for (let round = 0; round < 5; round++) {
      const client = connect(frontend.port, LOCALHOST);
      const received = await readAll(client);
      expect(received.length).toBe(payload.length);
      expect(sha256(received)).toBe(sha256(payload));
    }
    expect(await Promise.all(spliced)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('tears down the tunnelled connection when the client vanishes', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const { server, agent } = await setup();
    const frontend = await tcpServer((client) => {
      void server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`).then((stream) => spliceStreams(client, stream));
    });
    cleanups.push(() => frontend.close());
    const client = connect(frontend.port, LOCALHOST);
    client.write('ping');
    expect((await readExactly(client, 4)).toString()).toBe('ping');
    client.resetAndDestroy();
    await waitFor('the agent to close the target connection', () => agent.stats().connections === 0 && echo.sockets.size === 0);
    expect(server.tunnel.stats().openStreams).toBe(0);
  });
});

describe('agent selection', () => {
  it('routes by agentID and identifiers and keeps dials away from draining agents', async () => {
    const server = await startTunnelServer();
    cleanups.push(() => server.stop());
    const tunnels: Record<string, AgentTunnel> = {};
    for (const [id, host, ipv4] of [['a', 'node-a', '10.0.0.1'], ['b', 'node-b', '10.0.0.2']] as const) {
      tunnels[id] = await connectAgent(server.address, { agentId: id, identifiers: { host: [host], ipv4: [ipv4], defaultRoute: id === 'b' } });
      cleanups.push(() => tunnels[id]?.close());
    }
    await waitFor('both agents', () => server.tunnel.agents().length === 2);
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const via = async (selector: Parameters<RunningTunnelServer['tunnel']['dial']>[0]) => {
      const stream = await server.tunnel.dial(selector, `${LOCALHOST}:${echo.port}`);
      const agentId = stream.agentId;
      stream.destroy();
      return agentId;
    };
    expect(await via({ agentId: 'a' })).toBe('a');
    expect(await via({ host: 'node-b' })).toBe('b');
    expect(await via({ ipv4: '10.0.0.1' })).toBe('a');
    expect(await via({ defaultRoute: true })).toBe('b');
    await expect(via({ host: 'node-c' })).rejects.toMatchObject({ name: 'DialError', reason: 'no-agent' });
    await expect(via({ hostname: 'node-a' } as unknown as { host: string })).rejects.toThrow(TypeError);

    const draining = once(server.tunnel, 'agentDraining');
    tunnels['b']!.drain();
    await draining;
    await expect(via({ host: 'node-b' })).rejects.toMatchObject({ reason: 'no-agent' });
    for (let i = 0; i < 5; i++) expect(await via({ any: true })).toBe('a');
    expect(server.tunnel.stats()).toMatchObject({ agents: 2, dialFailures: { 'no-agent': 2 } });
  });
});

describe('backpressure', () => {
  const TOTAL = 64 * 1024 * 1024;
  const CHUNK = 256 * 1024;
  // Loopback socket buffers, the HTTP/2 windows and stream buffers all hold data legitimately;
  // without backpressure the whole transfer would be in flight within the pause.
  const IN_FLIGHT_LIMIT = 24 * 1024 * 1024;

  it('stops the agent reading the target while the server-side reader is paused', async () => {
    let expected = '';
    const source = await target((socket) => {
      const chunks: Buffer[] = [];
      for (let i = 0; i < TOTAL / CHUNK; i++) chunks.push(patternChunk(i, CHUNK));
      expected = sha256(...chunks);
      (async () => {
        for (const chunk of chunks) if (!socket.write(chunk)) await once(socket, 'drain');
        socket.end();
      })().catch(() => undefined);
    });
    const { server } = await setup();
    const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${source.port}`);
    await sleep(700);
    const inFlight = server.tunnel.stats().bytesFromAgents;
    expect(inFlight).toBeGreaterThan(0);
    expect(inFlight).toBeLessThan(IN_FLIGHT_LIMIT);
    const received = await readAll(stream);
    expect(received.length).toBe(TOTAL);
    expect(sha256(received)).toBe(expected);
  });

  it('holds back server-side writes while the target is not reading', async () => {
    let targetSocket: Socket | undefined;
    const sink = await target((socket) => {
      targetSocket = socket;
      socket.pause();
    });
    const { server } = await setup();
    const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${sink.port}`);
    const chunks = Array.from({ length: TOTAL / CHUNK }, (_, i) => patternChunk(i, CHUNK));
    const writing = (async () => {
      for (const chunk of chunks) if (!stream.write(chunk)) await once(stream, 'drain');
      stream.end();
    })();
    await sleep(700);
    const inFlight = server.tunnel.stats().bytesToAgents;
    expect(inFlight).toBeGreaterThan(0);
    expect(inFlight).toBeLessThan(IN_FLIGHT_LIMIT);

    const socket = targetSocket!;
    const received: Buffer[] = [];
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      length += chunk.length;
    });
    socket.resume();
    await writing;
    await waitFor('all bytes at the target', () => length === TOTAL, 20_000);
    expect(sha256(...received)).toBe(sha256(...chunks));
  });

  it.each([
    ['Node\'s default 64 KiB', 0, 0, 4],
    ['a widened 8 MiB', 8, 6, Infinity],
  ])('lets the agent run ahead by about one HTTP/2 receive window, here %s', async (_label, windowMiB, minMiB, maxMiB) => {
    const source = await target((socket) => {
      const chunk = Buffer.alloc(CHUNK, 1);
      const pump = () => {
        while (socket.write(chunk));
      };
      socket.on('drain', pump);
      pump();
    });
    const { server, agent } = await setup({ receiveWindowBytes: windowMiB * 1024 * 1024 });
    const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${source.port}`);
    await sleep(700);
    // The server-side stream is never read: everything the agent sent sits in buffers bounded by the window.
    const sentMiB = agent.stats().bytesToServer / 1024 / 1024;
    expect(sentMiB).toBeGreaterThan(minMiB);
    expect(sentMiB).toBeLessThan(maxMiB);
    stream.destroy();
  });

  it('keeps other connections of the tunnel correct while many transfer at once', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const { server } = await setup();
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const stream = await server.tunnel.dial({ host: 'node-a' }, `${LOCALHOST}:${echo.port}`);
        const payload = patternChunk(i, 96 * 1024);
        stream.write(payload);
        const back = await readExactly(stream, payload.length);
        stream.destroy();
        return back.equals(payload);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
  });
});
