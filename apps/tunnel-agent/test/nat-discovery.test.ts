import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@raven/controller-kit';
import {
  FRAME, NatDiscoveryResponder, classifyNat, decodeFrame, encodeReply, encodeRequest, natDiscoveryKey,
  type DecodeErrorReason, type DiscoveryFrame, type ReplyFrame, type RequestFrame,
} from '../src/nat/discovery.ts';

const log = createLogger('t', { level: 'silent' });
const key = natDiscoveryKey('cluster-psk');
const otherKey = natDiscoveryKey('another-psk');
const NOW = 1_765_000_000_000;
const nonce = Buffer.from('000102030405060708090a0b', 'hex');
const bind: RequestFrame = { type: 'bind', nonce, timestampMs: NOW };
const reply: ReplyFrame = { type: 'reply', nonce, timestampMs: NOW, observed: { ip: '203.0.113.7', port: 40_123 }, receivedOnPort: 10_269 };

const cleanup: Array<() => void> = [];
afterEach(() => cleanup.splice(0).forEach((close) => close()));

async function udp(onMessage?: (msg: Buffer, rinfo: RemoteInfo, socket: Socket) => void): Promise<Socket> {
  const socket = createSocket('udp4');
  if (onMessage) socket.on('message', (msg, rinfo) => onMessage(msg, rinfo, socket));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanup.push(() => {
    try {
      socket.close();
    } catch {
      // closed by the test
    }
  });
  return socket;
}

async function responder(opts: { key?: () => Buffer | undefined; now?: () => number; ratePerSourcePerSec?: number } = {}): Promise<NatDiscoveryResponder> {
  const r = new NatDiscoveryResponder({ ports: [0, 0], host: '127.0.0.1', key: opts.key ?? (() => key), log, now: opts.now, ratePerSourcePerSec: opts.ratePerSourcePerSec });
  await r.start();
  cleanup.push(() => r.close());
  return r;
}

/** Collects what one client socket receives, with the responder port each datagram came from. */
async function client(): Promise<{ socket: Socket; received: Array<{ msg: Buffer; fromPort: number }> }> {
  const received: Array<{ msg: Buffer; fromPort: number }> = [];
  const socket = await udp((msg, rinfo) => received.push({ msg, fromPort: rinfo.port }));
  return { socket, received };
}

const openUdpSockets = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'UDPWrap').length;
const settle = (ms = 100): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const flip = (bytes: Buffer, at: number): Buffer => {
  const copy = Buffer.from(bytes);
  copy[at]! ^= 0x01;
  return copy;
};
const withByte = (bytes: Buffer, at: number, value: number): Buffer => {
  const copy = Buffer.from(bytes);
  copy[at] = value;
  return copy;
};

describe('natDiscoveryKey', () => {
  it('is a 32-byte HKDF of the PSK, stable, per cluster, and neither the PSK nor the WireGuard key', () => {
    expect(key).toHaveLength(32);
    expect(natDiscoveryKey('cluster-psk').equals(key)).toBe(true);
    expect(otherKey.equals(key)).toBe(false);
    expect(key.equals(createHash('sha256').update('cluster-psk').digest())).toBe(false);
    expect(key.toString('utf8')).not.toContain('cluster-psk');
  });
});

describe('frame codec', () => {
  it.each<[string, DiscoveryFrame, Buffer, number]>([
    ['bind request, minimum size', bind, encodeRequest(bind, key), 64],
    ['change-port request, padded to 200 bytes', { ...bind, type: 'bindChangePort' }, encodeRequest({ ...bind, type: 'bindChangePort' }, key, 200), 200],
    ['reply', reply, encodeReply(reply, key), 50],
    ['reply with extreme address and port', { ...reply, observed: { ip: '255.0.0.1', port: 65_535 }, receivedOnPort: 1 },
      encodeReply({ ...reply, observed: { ip: '255.0.0.1', port: 65_535 }, receivedOnPort: 1 }, key), 50],
  ])('round-trips a %s', (_name, frame, bytes, size) => {
    expect(bytes).toHaveLength(size);
    expect(bytes.subarray(0, 6)).toEqual(Buffer.from([0x52, 0x56, 0x4e, 0x44, 1, { bind: 1, bindChangePort: 2, reply: 3 }[frame.type]]));
    expect(decodeFrame(bytes, key, NOW)).toEqual({ ok: true, frame });
  });

  it('keeps requests zero-padded and the reply smaller than the smallest request (no amplification)', () => {
    const request = encodeRequest(bind, key, 100);
    expect(request.subarray(FRAME.headerBytes, 100 - FRAME.tagBytes).every((b) => b === 0)).toBe(true);
    expect(encodeReply(reply, key).length).toBeLessThan(encodeRequest(bind, key).length);
    expect(() => encodeRequest(bind, key, 63)).toThrow(RangeError);
    expect(() => encodeRequest(bind, key, FRAME.maxFrameBytes + 1)).toThrow(RangeError);
  });

  const request = encodeRequest(bind, key);
  const replyBytes = encodeReply(reply, key);
  it.each<[string, Buffer, DecodeErrorReason, number?]>([
    ['a tampered nonce byte', flip(request, 7), 'badMac'],
    ['a tampered timestamp byte', flip(request, 25), 'badMac'],
    ['a tampered padding byte', flip(request, 40), 'badMac'],
    ['a tampered tag byte', flip(request, 63), 'badMac'],
    ['a tampered observed port', flip(replyBytes, 31), 'badMac'],
    ['a request sealed with another key', encodeRequest(bind, otherKey), 'badMac'],
    ['a reply sealed with another key', encodeReply(reply, otherKey), 'badMac'],
    ['a timestamp 61 s old', request, 'staleTimestamp', NOW + 61_000],
    ['a timestamp 61 s in the future', request, 'staleTimestamp', NOW - 61_000],
    ['an empty datagram', Buffer.alloc(0), 'badLength'],
    ['a 41-byte datagram', request.subarray(0, 41), 'badLength'],
    ['a request cut to 63 bytes', request.subarray(0, 63), 'badLength'],
    ['a reply one byte long', Buffer.concat([replyBytes, Buffer.alloc(1)]), 'badLength'],
    ['an oversized datagram', Buffer.concat([request, Buffer.alloc(FRAME.maxFrameBytes)]), 'badLength'],
    ['another magic', withByte(request, 0, 0x58), 'badMagic'],
    ['version 2', withByte(request, 4, 2), 'badVersion'],
    ['type 0', withByte(request, 5, 0), 'unknownType'],
    ['type 9', withByte(request, 5, 9), 'unknownType'],
  ])('rejects %s', (_name, bytes, reason, now = NOW) => {
    expect(decodeFrame(bytes, key, now)).toEqual({ ok: false, reason });
  });

  it('accepts clock skew within 60 s either way', () => {
    expect(decodeFrame(request, key, NOW + 59_000).ok).toBe(true);
    expect(decodeFrame(request, key, NOW - 59_000).ok).toBe(true);
  });

  it('never throws on random bytes and never accepts them', () => {
    for (let i = 0; i < 2_000; i++) {
      const bytes = randomBytes(i % 600);
      if (i % 2 === 0 && bytes.length >= 6) {
        // Past the structural checks, so the MAC is what rejects them.
        FRAME.magic.copy(bytes, 0);
        bytes[4] = FRAME.version;
        bytes[5] = 1 + (i % 3);
      }
      expect(decodeFrame(bytes, key, NOW).ok).toBe(false);
    }
  });
});

describe('NatDiscoveryResponder', () => {
  it('answers a bind request from the receiving port and a change-port request from the other, never with more bytes', async () => {
    const r = await responder();
    const [first, second] = r.boundPorts();
    const c = await client();
    const requests = [
      encodeRequest({ type: 'bind', nonce: randomBytes(12), timestampMs: Date.now() }, key),
      encodeRequest({ type: 'bindChangePort', nonce: randomBytes(12), timestampMs: Date.now() }, key),
    ];
    requests.forEach((request) => c.socket.send(request, first, '127.0.0.1'));
    await settle();
    expect(c.received).toHaveLength(2);
    const byNonce = new Map(c.received.map(({ msg, fromPort }) => {
      const decoded = decodeFrame(msg, key, Date.now());
      if (!decoded.ok || decoded.frame.type !== 'reply') throw new Error(`not a reply: ${JSON.stringify(decoded)}`);
      expect(msg.length).toBeLessThanOrEqual(FRAME.minRequestBytes);
      return [decoded.frame.nonce.toString('hex'), { reply: decoded.frame, fromPort }];
    }));
    const own = { ip: '127.0.0.1', port: c.socket.address().port };
    expect(byNonce.get(requests[0]!.subarray(6, 18).toString('hex'))).toMatchObject({ fromPort: first, reply: { observed: own, receivedOnPort: first } });
    expect(byNonce.get(requests[1]!.subarray(6, 18).toString('hex'))).toMatchObject({ fromPort: second, reply: { observed: own, receivedOnPort: first } });
    expect(r.stats()).toEqual({ answered: 2, dropped: {} });
  });

  it('drops junk, replies and everything while there is no key, counting each reason', async () => {
    let current: Buffer | undefined = undefined;
    const r = await responder({ key: () => current });
    const [first] = r.boundPorts();
    const c = await client();
    c.socket.send(encodeRequest({ ...bind, timestampMs: Date.now() }, key), first, '127.0.0.1');
    await settle();
    current = key;
    c.socket.send(Buffer.from('hello'), first, '127.0.0.1');
    c.socket.send(encodeRequest({ ...bind, timestampMs: Date.now() }, otherKey), first, '127.0.0.1');
    c.socket.send(encodeRequest({ ...bind, timestampMs: Date.now() - 120_000 }, key), first, '127.0.0.1');
    c.socket.send(encodeReply({ ...reply, timestampMs: Date.now() }, key), first, '127.0.0.1');
    await settle();
    expect(c.received).toHaveLength(0);
    c.socket.send(encodeRequest({ ...bind, timestampMs: Date.now() }, key), first, '127.0.0.1');
    await settle();
    expect(c.received).toHaveLength(1);
    expect(r.stats()).toEqual({ answered: 1, dropped: { noKey: 1, badLength: 1, badMac: 1, staleTimestamp: 1, notARequest: 1 } });
  });

  it('rate-limits one source with a token bucket', async () => {
    let now = NOW;
    const r = await responder({ now: () => now, ratePerSourcePerSec: 5 });
    const [first] = r.boundPorts();
    const c = await client();
    const burst = (): void => {
      for (let i = 0; i < 20; i++) c.socket.send(encodeRequest({ type: 'bind', nonce: randomBytes(12), timestampMs: now }, key), first, '127.0.0.1');
    };
    burst();
    await settle(150);
    expect(c.received).toHaveLength(5);
    expect(r.stats()).toEqual({ answered: 5, dropped: { rateLimited: 15 } });
    now += 400; // refills 2 tokens
    burst();
    await settle(150);
    expect(r.stats()).toEqual({ answered: 7, dropped: { rateLimited: 33 } });
  });
});

describe('classifyNat', () => {
  it('reports FullCone with the no-NAT detail when nothing translates (127.0.0.1)', async () => {
    const r = await responder();
    await settle(20); // sockets the previous test closed
    const socketsBefore = openUdpSockets();
    for (const bindAddress of ['127.0.0.1', undefined]) {
      const result = await classifyNat({ server: '127.0.0.1', ports: r.boundPorts(), key, bindAddress, timeoutMs: 1_000 });
      expect(result).toEqual({ natType: 'FullCone', mapping: { ip: '127.0.0.1', port: expect.any(Number) }, detail: 'no NAT between this node and the discovery responder' });
      expect(r.boundPorts()).not.toContain(result.mapping!.port);
    }
    expect(r.stats().answered).toBeGreaterThanOrEqual(4);
    await settle(20);
    expect(openUdpSockets()).toBe(socketsBefore);
  });

  it('reports Unknown with a wrong key, and the responder counts the MAC failures', async () => {
    const r = await responder();
    const result = await classifyNat({ server: '127.0.0.1', ports: r.boundPorts(), key: otherKey, timeoutMs: 300 });
    expect(result.natType).toBe('Unknown');
    expect(result.mapping).toBeUndefined();
    expect(result.detail).toMatch(/^no reply from the NAT discovery responder 127\.0\.0\.1 \(UDP \d+, \d+\) within 300 ms/);
    expect(r.stats().answered).toBe(0);
    expect(r.stats().dropped.badMac).toBeGreaterThanOrEqual(2);
  });

  it('reports Unknown within the timeout when nothing listens', async () => {
    const [a, b] = [await udp(), await udp()];
    const ports = [a.address().port, b.address().port] as const;
    a.close();
    b.close();
    await settle(20);
    const socketsBefore = openUdpSockets();
    const started = Date.now();
    const result = await classifyNat({ server: '127.0.0.1', ports, key, timeoutMs: 400 });
    expect(Date.now() - started).toBeLessThan(1_000);
    await settle(20);
    expect(openUdpSockets()).toBe(socketsBefore);
    expect(result.natType).toBe('Unknown');
    expect(result.detail).toContain(`127.0.0.1 (UDP ${ports[0]}, ${ports[1]})`);
  });

  it('ignores authentic replies to nonces it never sent', async () => {
    let forged = 0;
    const rogue = await udp((msg, rinfo, socket) => {
      const decoded = decodeFrame(msg, key, Date.now());
      if (!decoded.ok) return;
      forged++;
      const unasked = encodeReply({ type: 'reply', nonce: randomBytes(12), timestampMs: Date.now(), observed: { ip: rinfo.address, port: rinfo.port }, receivedOnPort: 1 }, key);
      socket.send(unasked, rinfo.port, rinfo.address);
    });
    const port = rogue.address().port;
    const result = await classifyNat({ server: '127.0.0.1', ports: [port, port === 65_535 ? 1 : port + 1], key, timeoutMs: 300 });
    expect(forged).toBeGreaterThan(0);
    expect(result.natType).toBe('Unknown');
  });

  it.each<[string, readonly [number, number]]>([
    ['the same port twice', [10_269, 10_269]],
    ['port 0', [0, 10_270]],
  ])('reports Unknown for %s', async (_name, ports) => {
    expect(await classifyNat({ server: '127.0.0.1', ports, key, timeoutMs: 100 })).toMatchObject({ natType: 'Unknown', detail: expect.stringContaining('two distinct ports') });
  });

  it.each<[string, string, NatBehaviour, RegExp]>([
    ['one mapping per destination', 'Symmetric', { mapping: 'perDestination', filtering: 'addressAndPort' }, /maps one socket to 127\.0\.0\.1:\d+ towards port \d+ and 127\.0\.0\.1:\d+ towards/],
    ['endpoint-independent mapping, address filtering', 'Restricted', { mapping: 'endpointIndependent', filtering: 'address' }, /cannot tell FullCone from Restricted/],
    ['endpoint-independent mapping, address and port filtering', 'PortRestricted', { mapping: 'endpointIndependent', filtering: 'addressAndPort' }, /no reply from port \d+ got in within 300 ms/],
  ])('classifies a simulated NAT with %s as %s', async (_name, natType, behaviour, detail) => {
    const r = await responder();
    const nat = await FakeNat.start(r.boundPorts(), behaviour);
    const result = await classifyNat({ server: '127.0.0.1', ports: nat.publicPorts(), key, bindAddress: '127.0.0.1', timeoutMs: 300 });
    expect(result.natType).toBe(natType);
    expect(result.detail).toMatch(detail);
    // The mapping is the NAT's outbound socket the first classifier socket used towards the first port.
    expect(result.mapping).toEqual({ ip: '127.0.0.1', port: nat.firstOutboundPort() });
  });
});

interface NatBehaviour {
  mapping: 'endpointIndependent' | 'perDestination';
  filtering: 'address' | 'addressAndPort';
}

/**
 * A NAT in user space on 127.0.0.1: the classifier sends to the NAT's two "public" ports, which stand for the
 * responder's ports; the NAT forwards from an outbound socket per client (or per client and destination), and
 * delivers a responder datagram back through the matching public port only if its filtering lets it in.
 */
class FakeNat {
  private readonly outbound = new Map<string, Promise<{ socket: Socket; contacted: Set<number> }>>();
  private readonly outboundPorts: number[] = [];

  private constructor(private readonly responderPorts: readonly [number, number], private readonly behaviour: NatBehaviour, private readonly fronts: Socket[]) {}

  static async start(responderPorts: readonly [number, number], behaviour: NatBehaviour): Promise<FakeNat> {
    const fronts: Socket[] = [];
    const nat = new FakeNat(responderPorts, behaviour, fronts);
    for (const index of [0, 1]) fronts.push(await udp((msg, rinfo) => void nat.forward(index, msg, rinfo)));
    return nat;
  }

  publicPorts(): [number, number] {
    return [this.fronts[0]!.address().port, this.fronts[1]!.address().port];
  }

  firstOutboundPort(): number | undefined {
    return this.outboundPorts[0];
  }

  private async forward(index: number, msg: Buffer, client: RemoteInfo): Promise<void> {
    const id = this.behaviour.mapping === 'perDestination' ? `${client.port}/${index}` : `${client.port}`;
    let entry = this.outbound.get(id);
    if (!entry) {
      entry = (async () => {
        const contacted = new Set<number>();
        const socket = await udp((reply, from) => {
          const back = this.responderPorts.indexOf(from.port);
          if (back < 0 || (this.behaviour.filtering === 'addressAndPort' && !contacted.has(from.port))) return;
          this.fronts[back]!.send(reply, client.port, client.address);
        });
        this.outboundPorts.push(socket.address().port);
        return { socket, contacted };
      })();
      this.outbound.set(id, entry);
    }
    const { socket, contacted } = await entry;
    const port = this.responderPorts[index]!;
    contacted.add(port);
    socket.send(msg, port, '127.0.0.1');
  }
}
