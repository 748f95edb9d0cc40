import { once } from 'node:events';
import { connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@raven/controller-kit';
import { Frontends, type FrontendLimits } from '../src/frontend.ts';
import { proxyMetrics } from '../src/metrics.ts';
import { StaticClusterView } from '../src/cluster-view.ts';
import type { TunnelHub } from '../src/tunnels.ts';

/**
 * The HTTP front end on loopback, on standby (every routed request answers 503 without dialling), to see what the
 * connection and head limits do to a flood from one source while another source is served.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function frontend(limits: FrontendLimits): Promise<number> {
  const registry = new Registry();
  const frontends: Frontends = new Frontends({
    view: new StaticClusterView([], []), hub: undefined as unknown as TunnelHub, ownDomain: () => undefined, isActive: () => false,
    self: () => ({ node: 'self', domain: undefined, ips: [], ports: [], allowLoopback: false }),
    podNode: async () => undefined, targetTls: () => ({ ca: '', insecure: false }), authorizer: undefined,
    timeouts: { dialMs: 1_000, headMs: 5_000, idleMs: 0, halfCloseMs: 1_000 }, limits,
    metrics: proxyMetrics(registry, () => frontends.bytes()), log: createLogger('test', { level: 'silent' }),
  });
  const server: Server = frontends.createHttpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    await frontends.drain(0);
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

/** Opens a connection from `localAddress`; resolves once it is either accepted and idle, or closed by the server. */
async function open(port: number, localAddress: string): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

async function get(port: number, localAddress: string): Promise<string> {
  const socket = await open(port, localAddress);
  socket.write('GET / HTTP/1.1\r\nHost: n:10255\r\n\r\n');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  await Promise.race([once(socket, 'close'), sleep(2_000)]);
  return text.split('\r\n')[0] ?? '';
}

describe('front-end limits', () => {
  it('idle connections from one source beyond its cap are closed at once; another source is still served', async () => {
    const port = await frontend({ connections: 1_000, connectionsPerSource: 20, headsPerSecond: 1_000 });
    const flood = await Promise.all(Array.from({ length: 60 }, () => open(port, '127.0.0.1')));
    await sleep(200);
    expect(flood.filter((s) => !s.destroyed && !s.readableEnded).length).toBeLessThanOrEqual(20);
    expect(await get(port, '127.0.0.2')).toBe('HTTP/1.1 503 Service Unavailable');
  });

  it('new connections beyond the per-second budget get 429 at their first request', async () => {
    const port = await frontend({ connections: 1_000, connectionsPerSource: 1_000, headsPerSecond: 5 });
    const lines = await Promise.all(Array.from({ length: 10 }, () => get(port, '127.0.0.1')));
    expect(lines.filter((l) => l.includes(' 429 ')).length).toBeGreaterThanOrEqual(4);
    expect(lines.filter((l) => l.includes(' 503 ')).length).toBeGreaterThanOrEqual(1);
  });
});
