import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcStatus, PacketType, encodePacketFrame, type Logger, type Packet } from '../src/index.ts';
import { startConnectCall } from '../src/grpc.ts';
import { connectAgent, startTunnelServer, waitFor } from './support.ts';

/**
 * A proxy-client is an untrusted peer once admitted: what it sends must never grow the server without bound. These
 * tests speak the wire directly, as a hostile agent would.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function capturingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const logger = {
    warnings,
    debug: () => undefined, info: () => undefined, error: () => undefined,
    warn: (_fields: object, message?: string) => void warnings.push(message ?? ''),
    child: () => logger,
  };
  return logger as unknown as Logger & { warnings: string[] };
}

async function hostileAgent(address: string, agentId = 'mallory') {
  const call = startConnectCall(address, undefined, { agentid: agentId, agentidentifiers: 'host=node-m' }, { intervalMs: 0, timeoutMs: 0 });
  cleanups.push(() => call.session.destroy());
  await call.headers;
  return {
    call,
    send: (packet: Packet) => call.stream.write(encodePacketFrame(packet)),
  };
}

describe('a hostile agent is bounded', () => {
  it('DATA for unknown connections while not reading: one CLOSE_REQ per connection, and past the bound the stream ends', async () => {
    const server = await startTunnelServer({ limits: { unknownConnectionPackets: 2_000 } });
    cleanups.push(() => server.stop());
    const agent = await hostileAgent(server.address);
    agent.call.stream.pause(); // never reads the CLOSE_REQs
    for (let i = 1; i <= 500; i++) agent.send({ type: PacketType.DATA, connectId: 7n, data: Buffer.from('x'), error: '' });
    await sleep(100);
    expect(server.tunnel.agents()).toHaveLength(1);
    for (let i = 1; i <= 3_000; i++) agent.send({ type: PacketType.DATA, connectId: BigInt(1000 + i), data: Buffer.from('x'), error: '' });
    agent.call.stream.resume();
    const status = await agent.call.status;
    expect(status?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(status?.details).toMatch(/DATA packets for unknown connections/);
    await waitFor('the stream to be gone', () => server.tunnel.agents().length === 0);
  });

  it('a message larger than the agent limit (256 KiB, not 16 MiB) ends the stream', async () => {
    const server = await startTunnelServer();
    cleanups.push(() => server.stop());
    const agent = await hostileAgent(server.address);
    agent.send({ type: PacketType.DATA, connectId: 9n, data: Buffer.alloc(1024 * 1024, 1), error: '' });
    const status = await agent.call.status;
    expect(status?.code).toBe(GrpcStatus.INTERNAL);
    expect(status?.details).toMatch(/exceeds the 262144-byte limit/);
  });

  it('packets not meant for a server: a few warnings at most, and past the bound the stream ends', async () => {
    const logger = capturingLogger();
    const server = await startTunnelServer({ logger });
    cleanups.push(() => server.stop());
    const agent = await hostileAgent(server.address);
    for (let i = 1; i <= 1_000; i++) agent.send({ type: PacketType.DIAL_REQ, protocol: 'tcp', address: '127.0.0.1:1', random: BigInt(i) });
    const status = await agent.call.status;
    expect(status?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(logger.warnings.filter((w) => w === 'ignoring packet not meant for a server')).toHaveLength(1);
  });

  it('concurrent streams per agentID are capped; other agents still connect', async () => {
    const server = await startTunnelServer({ limits: { streamsPerAgent: 3 } });
    cleanups.push(() => server.stop());
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => connectAgent(server.address, { agentId: 'greedy' })));
    for (const r of results) if (r.status === 'fulfilled') cleanups.push(() => r.value.close());
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(String(refused.reason)).toMatch(/already holds 3 streams/);
    const other = await connectAgent(server.address, { agentId: 'honest' });
    cleanups.push(() => other.close());
    await waitFor('both agents', () => new Set(server.tunnel.agents().map((a) => a.agentId)).size === 2);
  });

  it('a refused Connect closes its HTTP/2 connection, so refusals cannot pile up idle connections', async () => {
    const server = await startTunnelServer({ limits: { streamsPerAgent: 1 } });
    cleanups.push(() => server.stop());
    await hostileAgent(server.address, 'twice');
    const call = startConnectCall(server.address, undefined, { agentid: 'twice', agentidentifiers: 'host=node-m' }, { intervalMs: 0, timeoutMs: 0 });
    cleanups.push(() => call.session.destroy());
    expect((await call.status)?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    await waitFor('the refused connection to close', () => call.session.closed || call.session.destroyed);
  });

  it('an HTTP/2 connection may carry only a few concurrent streams', async () => {
    const server = await startTunnelServer();
    cleanups.push(() => server.stop());
    const first = await hostileAgent(server.address, 'many');
    await waitFor('remote settings', () => first.call.session.remoteSettings.maxConcurrentStreams !== undefined && first.call.session.remoteSettings.maxConcurrentStreams < 100);
    expect(first.call.session.remoteSettings.maxConcurrentStreams).toBe(16);
  });
});

describe('PacketLink.sendControl', () => {
  it('queues control packets past congestion, up to CONTROL_BACKLOG_BYTES, then refuses', async () => {
    const { PassThrough } = await import('node:stream');
    const { PacketLink, CONTROL_BACKLOG_BYTES } = await import('../src/link.ts');
    const pipe = new PassThrough({ highWaterMark: 16 * 1024 });
    const link = new PacketLink(pipe);
    pipe.write(Buffer.alloc(CONTROL_BACKLOG_BYTES - 64));
    expect(link.congested).toBe(true);
    expect(link.sendControl({ type: PacketType.CLOSE_REQ, connectId: 1n })).toBe(true);
    let sent = 1;
    while (link.sendControl({ type: PacketType.CLOSE_REQ, connectId: BigInt(++sent) })) if (sent > 100) break;
    expect(sent).toBeLessThan(100);
    expect(pipe.writableLength).toBeLessThan(CONTROL_BACKLOG_BYTES + 64);
  });
});
