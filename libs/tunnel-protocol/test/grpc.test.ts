import { once } from 'node:events';
import { connect as http2Connect, createServer as createHttp2Server, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  GrpcStatus, MessageDeframer, keepAlive, PacketType, ProtocolError, decodeGrpcMessage, decodePacket, encodeGrpcMessage, encodePacketFrame, serveAgentService,
} from '../src/index.ts';
import { LOCALHOST } from './support.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const frame = (body: Buffer, flag = 0) => Buffer.concat([Buffer.from([flag]), Buffer.from([0, 0, 0, 0].map((_, i) => (body.length >>> (24 - 8 * i)) & 255)), body]);

/** Messages as base64 (vitest compares long Buffers element by element, which is slow). */
function collect(deframer: MessageDeframer, chunks: Buffer[]): string[] {
  const out: string[] = [];
  for (const chunk of chunks) deframer.push(chunk, (m) => out.push(m.toString('base64')));
  return out;
}
const b64 = (list: Buffer[]) => list.map((m) => m.toString('base64'));

describe('MessageDeframer', () => {
  const messages = [Buffer.from('alpha'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('omega')];
  const wire = Buffer.concat(messages.map((m) => frame(m)));

  it('yields the same messages however the stream is cut: whole, byte by byte, and at every split point of a prefix', () => {
    expect(collect(new MessageDeframer(), [wire])).toEqual(b64(messages));
    const small = [Buffer.from('alpha'), Buffer.alloc(0), Buffer.alloc(300, 7)];
    expect(collect(new MessageDeframer(), [...Buffer.concat(small.map((m) => frame(m)))].map((b) => Buffer.from([b])))).toEqual(b64(small));
    for (let cut = 1; cut < 12; cut++) expect(collect(new MessageDeframer(), [wire.subarray(0, cut), wire.subarray(cut)])).toEqual(b64(messages));
    const thirds = [wire.subarray(0, 30_000), wire.subarray(30_000, 60_000), wire.subarray(60_000)];
    expect(collect(new MessageDeframer(), thirds)).toEqual(b64(messages));
  });

  it('refuses a compressed message (none is negotiated), an unknown flag, and a message over the limit', () => {
    expect(() => collect(new MessageDeframer(), [frame(Buffer.from('x'), 1)])).toThrow(ProtocolError);
    expect(() => collect(new MessageDeframer(), [frame(Buffer.from('x'), 2)])).toThrow(/bad message flag/);
    expect(() => collect(new MessageDeframer(1024), [frame(Buffer.alloc(1025))])).toThrow(/exceeds the 1024-byte limit/);
    // The limit applies as soon as the prefix is in, before the body has arrived.
    expect(() => collect(new MessageDeframer(1024), [frame(Buffer.alloc(2048)).subarray(0, 7)])).toThrow(/exceeds/);
  });

  it('copies a small message out of a large shared buffer instead of pinning it', () => {
    const shared = Buffer.concat([frame(Buffer.from('tiny')), Buffer.alloc(64 * 1024)]);
    let seen: Buffer | undefined;
    new MessageDeframer().push(shared.subarray(0, 9), (m) => (seen = m));
    expect(seen?.toString()).toBe('tiny');
    expect(seen!.buffer.byteLength).toBeLessThan(shared.buffer.byteLength);
  });

  it('decodes packets framed by encodePacketFrame', () => {
    const packet = { type: PacketType.DATA, connectId: 42n, data: Buffer.from('payload'), error: '' } as const;
    const [message] = collect(new MessageDeframer(), [encodePacketFrame(packet)]);
    expect(decodePacket(Buffer.from(message!, 'base64'))).toMatchObject({ type: PacketType.DATA, connectId: 42n, data: Buffer.from('payload') });
  });
});

describe('grpc-message', () => {
  it('percent-encodes what gRPC requires and round-trips UTF-8', () => {
    expect(encodeGrpcMessage('plain text ok')).toBe('plain text ok');
    expect(encodeGrpcMessage('100% sure\nnext')).toBe('100%25 sure%0Anext');
    for (const message of ['agent refused: node édge-1 ≠ gw-a', '%41 stays literal', '']) expect(decodeGrpcMessage(encodeGrpcMessage(message))).toBe(message);
  });
});

describe('serveAgentService', () => {
  async function request(headers: Record<string, string>): Promise<{ response: IncomingHttpHeaders; trailers: IncomingHttpHeaders | undefined }> {
    const server = createHttp2Server();
    const service = serveAgentService(server, (call) => call.finish(GrpcStatus.OK));
    server.listen(0, LOCALHOST);
    await once(server, 'listening');
    cleanups.push(() => service.close());
    const client = http2Connect(`http://${LOCALHOST}:${(server.address() as AddressInfo).port}`);
    cleanups.push(() => client.destroy());
    const stream = client.request({ ':method': 'POST', ...headers });
    stream.end();
    const [response] = (await once(stream, 'response')) as [IncomingHttpHeaders];
    let trailers: IncomingHttpHeaders | undefined;
    stream.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
    stream.resume();
    await once(stream, 'close');
    return { response, trailers };
  }

  it('answers another method with UNIMPLEMENTED, in a trailers-only response', async () => {
    const { response } = await request({ ':path': '/AgentService/Other', 'content-type': 'application/grpc' });
    expect(response).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(GrpcStatus.UNIMPLEMENTED) });
    expect(decodeGrpcMessage(String(response['grpc-message']))).toContain('/AgentService/Other');
  });

  it('refuses a request that is not gRPC (415) and a compressed call (UNIMPLEMENTED)', async () => {
    expect((await request({ ':path': '/AgentService/Connect', 'content-type': 'text/plain' })).response[':status']).toBe(415);
    const compressed = await request({ ':path': '/AgentService/Connect', 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' });
    expect(compressed.response['grpc-status']).toBe(String(GrpcStatus.UNIMPLEMENTED));
  });

  it('hands a Connect call to the handler, whose finish ends it with a status', async () => {
    const { response } = await request({ ':path': '/AgentService/Connect', 'content-type': 'application/grpc+proto' });
    expect(response['grpc-status']).toBe('0');
  });
});

describe('keepAlive', () => {
  it('destroys a session whose pings stop being acknowledged (a silently dead link), and not a healthy one', async () => {
    const server = createHttp2Server();
    const service = serveAgentService(server, () => undefined, { keepaliveMs: 0 }); // only the client pings here
    server.listen(0, LOCALHOST);
    await once(server, 'listening');
    // A relay that can turn into a black hole, as a vanished NAT mapping does.
    let blackhole = false;
    const relays = new Set<Socket>();
    const relay = createNetServer((inbound) => {
      const outbound = netConnect((server.address() as AddressInfo).port, LOCALHOST);
      for (const s of [inbound, outbound]) {
        relays.add(s);
        s.on('error', () => undefined);
      }
      inbound.on('data', (d: Buffer) => blackhole || outbound.write(d));
      outbound.on('data', (d: Buffer) => blackhole || inbound.write(d));
    });
    relay.listen(0, LOCALHOST);
    await once(relay, 'listening');
    cleanups.push(() => {
      for (const s of relays) s.destroy();
      relay.close();
      return service.close();
    });
    const client = http2Connect(`http://${LOCALHOST}:${(relay.address() as AddressInfo).port}`);
    client.on('error', () => undefined);
    cleanups.push(() => client.destroy());
    await once(client, 'connect');
    keepAlive(client, 100, 200);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(client.destroyed).toBe(false);
    blackhole = true;
    const started = Date.now();
    await new Promise((resolve) => client.once('close', resolve)); // events.once would reject on the 'error' that precedes it
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
