import { fileURLToPath } from 'node:url';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import {
  PacketType, ProtocolError, UNRECOGNIZED, decodePacket, encodePacket, formatAgentIdentifiers, parseAgentIdentifiers,
  type Packet,
} from '../src/index.ts';

// protobufjs, driven by our own .proto, is the reference codec the hand-written one must agree with.
const protoPath = fileURLToPath(new URL('../proto/agent.proto', import.meta.url));
const definition = loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true });
const connect = (definition['AgentService'] as Record<string, MethodDefinition<object, object>>)['Connect']!;
const reference = {
  encode: (message: object): Buffer => connect.requestSerialize(message),
  decode: (bytes: Buffer): Record<string, unknown> => connect.requestDeserialize(bytes) as Record<string, unknown>,
};

const MAX_INT64 = (1n << 63n) - 1n;
const MIN_INT64 = -(1n << 63n);

/** The same packets as protobufjs objects, with proto3 defaults left out as a canonical encoder does. */
const samples: Array<[Packet, object]> = [
  [{ type: PacketType.DIAL_REQ, protocol: 'tcp', address: '10.0.0.5:10250', random: 7459843214823456123n },
    { dialRequest: { protocol: 'tcp', address: '10.0.0.5:10250', random: '7459843214823456123' } }],
  [{ type: PacketType.DIAL_REQ, protocol: '', address: '', random: 0n }, { dialRequest: {} }],
  [{ type: PacketType.DIAL_RSP, random: MAX_INT64, connectId: 1n, error: '' },
    { type: 'DIAL_RSP', dialResponse: { connectID: '1', random: MAX_INT64.toString() } }],
  [{ type: PacketType.DIAL_RSP, random: 3n, connectId: 0n, error: 'dial tcp 10.0.0.5:1: connect: connection refused' },
    { type: 'DIAL_RSP', dialResponse: { error: 'dial tcp 10.0.0.5:1: connect: connection refused', random: '3' } }],
  [{ type: PacketType.CLOSE_REQ, connectId: MIN_INT64 }, { type: 'CLOSE_REQ', closeRequest: { connectID: MIN_INT64.toString() } }],
  [{ type: PacketType.CLOSE_RSP, connectId: 42n, error: 'unrecognized connectID' },
    { type: 'CLOSE_RSP', closeResponse: { error: 'unrecognized connectID', connectID: '42' } }],
  [{ type: PacketType.DATA, connectId: 9_007_199_254_740_993n, data: Buffer.from('héllo\0world'), error: '' },
    { type: 'DATA', data: { connectID: '9007199254740993', data: Buffer.from('héllo\0world') } }],
  [{ type: PacketType.DATA, connectId: -1n, data: Buffer.alloc(70_000, 0xab), error: 'ünïcode' },
    { type: 'DATA', data: { connectID: '-1', error: 'ünïcode', data: Buffer.alloc(70_000, 0xab) } }],
  [{ type: PacketType.DIAL_CLS, random: 128n }, { type: 'DIAL_CLS', closeDial: { random: '128' } }],
  [{ type: PacketType.DRAIN }, { type: 'DRAIN', drain: {} }],
];

describe('packet codec', () => {
  it.each(samples.map(([packet, object]) => [packet.type, packet, object] as const))('encodes type %i byte for byte like protobufjs', (_type, packet, object) => {
    expect(encodePacket(packet).toString('hex')).toBe(reference.encode(object).toString('hex'));
  });

  it.each(samples.map(([packet, object]) => [packet.type, packet, object] as const))('decodes protobufjs output of type %i', (_type, packet, object) => {
    expect(decodePacket(reference.encode(object))).toEqual(packet);
  });

  it('round-trips int64 IDs at every varint length boundary', () => {
    for (let bits = 0n; bits < 64n; bits++) {
      for (const id of [(1n << bits) - 1n, 1n << bits, -(1n << bits)]) {
        const connectId = BigInt.asIntN(64, id);
        const decoded = decodePacket(encodePacket({ type: PacketType.CLOSE_REQ, connectId }));
        expect(decoded).toEqual({ type: PacketType.CLOSE_REQ, connectId });
        const { closeRequest } = reference.decode(encodePacket({ type: PacketType.CLOSE_REQ, connectId })) as { closeRequest: { connectID?: string } };
        expect(closeRequest.connectID ?? '0').toBe(connectId.toString());
      }
    }
  });

  it('returns DATA bytes as a view of the received message, not a copy', () => {
    const wire = encodePacket({ type: PacketType.DATA, connectId: 1n, data: Buffer.from('abc'), error: '' });
    const decoded = decodePacket(wire);
    expect(decoded.type === PacketType.DATA && decoded.data.buffer).toBe(wire.buffer);
  });

  it('skips unknown fields, as proto3 requires', () => {
    const known = encodePacket({ type: PacketType.CLOSE_RSP, connectId: 5n, error: '' });
    // field 15 varint, field 14 fixed64, field 13 bytes, field 12 fixed32 — then the real packet.
    const unknown = Buffer.from([15 << 3, 0x96, 0x01, (14 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8, (13 << 3) | 2, 2, 0xff, 0xff, (12 << 3) | 5, 1, 2, 3, 4]);
    expect(decodePacket(Buffer.concat([unknown, known]))).toEqual({ type: PacketType.CLOSE_RSP, connectId: 5n, error: '' });
  });

  it('merges a repeated payload member and lets a different member replace it', () => {
    const idOnly = reference.encode({ type: 'DATA', data: { connectID: '7' } });
    const bytesOnly = reference.encode({ type: 'DATA', data: { data: Buffer.from('x') } });
    expect(decodePacket(Buffer.concat([idOnly, bytesOnly]))).toEqual({ type: PacketType.DATA, connectId: 7n, data: Buffer.from('x'), error: '' });
    const closeDial = reference.encode({ type: 'DATA', closeDial: { random: '9' } });
    expect(() => decodePacket(Buffer.concat([idOnly, closeDial]))).toThrow(/DATA packet carries a closeDial payload/);
  });

  it('reports packet types it does not know instead of failing the stream', () => {
    expect(decodePacket(Buffer.from([0x08, 0x2a]))).toEqual({ type: UNRECOGNIZED, wireType: 42 });
  });

  it.each([
    ['a truncated varint', Buffer.from([0x08, 0x80])],
    ['a length past the end', Buffer.from([0x22, 0x05, 0x08])],
    ['a varint longer than 10 bytes', Buffer.from([0x08, ...Array<number>(10).fill(0xff), 0x01])],
    ['a group wire type', Buffer.from([0x0b])],
    ['a payload that contradicts the type', reference.encode({ type: 'DATA', closeRequest: { connectID: '1' } })],
  ])('rejects %s with ProtocolError', (_what, bytes) => {
    expect(() => decodePacket(bytes)).toThrow(ProtocolError);
  });
});

describe('agent identifiers', () => {
  it('formats the query string upstream agents send', () => {
    expect(formatAgentIdentifiers({ host: ['node-a', 'node-a.edge'], ipv4: ['10.0.0.5'], ipv6: ['fd00::5'], defaultRoute: true }))
      .toBe('host=node-a&host=node-a.edge&ipv4=10.0.0.5&ipv6=fd00%3A%3A5&default-route=true');
  });

  it('parses like upstream: repeated keys, unknown keys ignored, first default-route wins', () => {
    expect(parseAgentIdentifiers('host=localhost&host=node1&cidr=10.0.0.0%2F8&ipv6=100::1&uid=x&default-route=true&default-route=false')).toEqual({
      host: ['localhost', 'node1'], ipv4: [], ipv6: ['100::1'], cidr: ['10.0.0.0/8'], defaultRoute: true,
    });
    expect(parseAgentIdentifiers('default-route=invalid').defaultRoute).toBe(false);
    expect(parseAgentIdentifiers('')).toEqual({ host: [], ipv4: [], ipv6: [], cidr: [], defaultRoute: false });
  });

  it.each([';', 'host=a;host=b', 'host=%zz'])('refuses %j like Go url.ParseQuery', (header) => {
    expect(() => parseAgentIdentifiers(header)).toThrow(/agentIdentifiers/);
  });
});
