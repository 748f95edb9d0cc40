import { ProtocolError } from './errors.ts';
import { PacketType, UNRECOGNIZED, packetTypeName, type Packet, type ReceivedPacket } from './packet.ts';

/**
 * Protobuf codec for the konnectivity `Packet`, equivalent to proto/agent.proto (checked against
 * protobufjs in test/codec.test.ts). Hand-written because this is the per-packet hot path: one
 * exact-size allocation per encode, no intermediate objects, int64 as bigint without string
 * round-trips, and DATA bytes decoded as a view into the received message instead of a copy.
 */

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const FIELD_TYPE = 1;
/** Field number of the oneof payload member, indexed by PacketType. */
const PAYLOAD_FIELD = [2, 3, 5, 6, 4, 7, 8] as const;
const PAYLOAD_NAME: Record<number, string> = {
  2: 'dialRequest', 3: 'dialResponse', 4: 'data', 5: 'closeRequest', 6: 'closeResponse', 7: 'closeDial', 8: 'drain',
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const EMPTY: Buffer = Buffer.alloc(0);

// ---------------------------------------------------------------- encoding

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function int64Size(v: bigint): number {
  if (v >= 0n && v <= MAX_SAFE) return varintSize(Number(v));
  let u = BigInt.asUintN(64, v);
  let size = 1;
  while (u >= 128n) {
    u >>= 7n;
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

function writeInt64(buf: Buffer, pos: number, v: bigint): number {
  if (v >= 0n && v <= MAX_SAFE) return writeVarint(buf, pos, Number(v));
  let u = BigInt.asUintN(64, v);
  while (u >= 128n) {
    buf[pos++] = Number(u & 127n) | 128;
    u >>= 7n;
  }
  buf[pos++] = Number(u);
  return pos;
}

// proto3 omits fields holding their default value; every field number here is < 16, so tags are one byte.
const int64FieldSize = (v: bigint): number => (v === 0n ? 0 : 1 + int64Size(v));
const lenFieldSize = (len: number): number => (len === 0 ? 0 : 1 + varintSize(len) + len);
const stringFieldSize = (s: string): number => (s === '' ? 0 : lenFieldSize(Buffer.byteLength(s)));

function writeInt64Field(buf: Buffer, pos: number, field: number, v: bigint): number {
  if (v === 0n) return pos;
  buf[pos++] = (field << 3) | WIRE_VARINT;
  return writeInt64(buf, pos, v);
}

function writeStringField(buf: Buffer, pos: number, field: number, s: string): number {
  if (s === '') return pos;
  const len = Buffer.byteLength(s);
  buf[pos++] = (field << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, len);
  return pos + buf.write(s, pos, len, 'utf8');
}

function writeBytesField(buf: Buffer, pos: number, field: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return pos;
  buf[pos++] = (field << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

function payloadSize(p: Packet): number {
  switch (p.type) {
    case PacketType.DIAL_REQ:
      return stringFieldSize(p.protocol) + stringFieldSize(p.address) + int64FieldSize(p.random);
    case PacketType.DIAL_RSP:
      return stringFieldSize(p.error) + int64FieldSize(p.connectId) + int64FieldSize(p.random);
    case PacketType.CLOSE_REQ:
      return int64FieldSize(p.connectId);
    case PacketType.CLOSE_RSP:
      return stringFieldSize(p.error) + int64FieldSize(p.connectId);
    case PacketType.DATA:
      return int64FieldSize(p.connectId) + stringFieldSize(p.error) + lenFieldSize(p.data.length);
    case PacketType.DIAL_CLS:
      return int64FieldSize(p.random);
    case PacketType.DRAIN:
      return 0;
  }
}

function writePayload(buf: Buffer, pos: number, p: Packet): number {
  switch (p.type) {
    case PacketType.DIAL_REQ:
      pos = writeStringField(buf, pos, 1, p.protocol);
      pos = writeStringField(buf, pos, 2, p.address);
      return writeInt64Field(buf, pos, 3, p.random);
    case PacketType.DIAL_RSP:
      pos = writeStringField(buf, pos, 1, p.error);
      pos = writeInt64Field(buf, pos, 2, p.connectId);
      return writeInt64Field(buf, pos, 3, p.random);
    case PacketType.CLOSE_REQ:
      return writeInt64Field(buf, pos, 1, p.connectId);
    case PacketType.CLOSE_RSP:
      pos = writeStringField(buf, pos, 1, p.error);
      return writeInt64Field(buf, pos, 2, p.connectId);
    case PacketType.DATA:
      pos = writeInt64Field(buf, pos, 1, p.connectId);
      pos = writeStringField(buf, pos, 2, p.error);
      return writeBytesField(buf, pos, 3, p.data);
    case PacketType.DIAL_CLS:
      return writeInt64Field(buf, pos, 1, p.random);
    case PacketType.DRAIN:
      return pos;
  }
}

/** Serializes a packet into one freshly allocated buffer of exactly the encoded size. */
export function encodePacket(p: Packet): Buffer {
  return encode(p, 0);
}

/**
 * Serializes a packet as one gRPC length-prefixed message (flag byte 0 = uncompressed, 4-byte big-endian length,
 * the packet), in a single allocation: the bytes that go on the HTTP/2 stream.
 */
export function encodePacketFrame(p: Packet): Buffer {
  const buf = encode(p, GRPC_PREFIX_BYTES);
  buf[0] = 0;
  buf.writeUInt32BE(buf.length - GRPC_PREFIX_BYTES, 1);
  return buf;
}

export const GRPC_PREFIX_BYTES = 5;

function encode(p: Packet, prefix: number): Buffer {
  const payload = payloadSize(p);
  const size = (p.type === PacketType.DIAL_REQ ? 0 : 2) + 1 + varintSize(payload) + payload;
  const buf = Buffer.allocUnsafe(prefix + size);
  let pos = prefix;
  if (p.type !== PacketType.DIAL_REQ) {
    buf[pos++] = (FIELD_TYPE << 3) | WIRE_VARINT;
    buf[pos++] = p.type;
  }
  buf[pos++] = (PAYLOAD_FIELD[p.type] << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, payload);
  writePayload(buf, pos, p);
  return buf;
}

// ---------------------------------------------------------------- decoding

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  private byte(): number {
    if (this.pos >= this.end) throw new ProtocolError('truncated varint');
    return this.buf[this.pos++]!;
  }

  /** A varint as a number; exact up to 2^53, which covers tags, lengths and enum values we act on. */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 127) * scale;
      if (b < 128) return result;
      scale *= 128;
    }
    throw new ProtocolError('varint longer than 10 bytes');
  }

  int64(): bigint {
    const start = this.pos;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      result += (b & 127) * scale;
      if (b < 128) return BigInt(result);
      scale *= 128;
    }
    // Beyond 49 bits: redo the whole varint exactly in bigint arithmetic.
    this.pos = start;
    let big = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      big |= BigInt(b & 127) << shift;
      if (b < 128) return BigInt.asIntN(64, big);
    }
    throw new ProtocolError('varint longer than 10 bytes');
  }

  /** Returns the end offset of a length-delimited field whose bytes start at the current position. */
  lengthDelimited(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.end) throw new ProtocolError('length-delimited field overruns its message');
    return end;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.pos = this.lengthDelimited();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        throw new ProtocolError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new ProtocolError('fixed-width field overruns its message');
  }
}

/** Payload fields of every oneof member, merged into one scratch record (decoding is synchronous). */
const scratch = { protocol: '', address: '', error: '', random: 0n, connectId: 0n, data: EMPTY };

function resetScratch(): void {
  scratch.protocol = '';
  scratch.address = '';
  scratch.error = '';
  scratch.random = 0n;
  scratch.connectId = 0n;
  scratch.data = EMPTY;
}

// Slot of each (payload field, member field) pair; anything absent is an unknown field and skipped.
const PROTOCOL = 1;
const ADDRESS = 2;
const ERROR = 3;
const RANDOM = 4;
const CONNECT_ID = 5;
const DATA = 6;
const SLOTS: Record<number, readonly number[]> = {
  2: [0, PROTOCOL, ADDRESS, RANDOM], // DialRequest
  3: [0, ERROR, CONNECT_ID, RANDOM], // DialResponse
  4: [0, CONNECT_ID, ERROR, DATA], // Data
  5: [0, CONNECT_ID], // CloseRequest
  6: [0, ERROR, CONNECT_ID], // CloseResponse
  7: [0, RANDOM], // CloseDial
  8: [], // Drain
};

function readPayload(r: Reader, slots: readonly number[]): void {
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    const slot = slots[field] ?? 0;
    const isBigInt = slot === RANDOM || slot === CONNECT_ID;
    if (slot === 0 || (isBigInt ? wireType !== WIRE_VARINT : wireType !== WIRE_LEN)) {
      r.skip(wireType);
      continue;
    }
    if (slot === RANDOM) {
      scratch.random = r.int64();
    } else if (slot === CONNECT_ID) {
      scratch.connectId = r.int64();
    } else {
      const end = r.lengthDelimited();
      if (slot === DATA) scratch.data = r.buf.subarray(r.pos, end);
      else if (slot === ERROR) scratch.error = r.buf.toString('utf8', r.pos, end);
      else if (slot === ADDRESS) scratch.address = r.buf.toString('utf8', r.pos, end);
      else scratch.protocol = r.buf.toString('utf8', r.pos, end);
      r.pos = end;
    }
  }
}

/**
 * Parses one serialized Packet. Unknown fields are skipped and an unknown packet type yields an
 * UnrecognizedPacket (proto3 semantics); a payload that contradicts the type or broken framing
 * throws ProtocolError. The returned DATA bytes share memory with `buf`.
 */
export function decodePacket(buf: Buffer): ReceivedPacket {
  const r = new Reader(buf, 0, buf.length);
  let type = 0;
  let payloadField = 0;
  resetScratch();
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === FIELD_TYPE && wireType === WIRE_VARINT) {
      type = r.varint();
      continue;
    }
    const slots = wireType === WIRE_LEN ? SLOTS[field] : undefined;
    if (!slots) {
      r.skip(wireType);
      continue;
    }
    // oneof: a different member replaces the previous one, a repeated member merges into it.
    if (payloadField !== field) resetScratch();
    payloadField = field;
    const end = r.lengthDelimited();
    readPayload(new Reader(buf, r.pos, end), slots);
    r.pos = end;
  }

  if (type > PacketType.DRAIN) return { type: UNRECOGNIZED, wireType: type };
  const packetType = type as PacketType;
  if (payloadField !== 0 && payloadField !== PAYLOAD_FIELD[packetType]) {
    throw new ProtocolError(`${packetTypeName(type)} packet carries a ${PAYLOAD_NAME[payloadField]} payload`);
  }
  const s = scratch;
  switch (packetType) {
    case PacketType.DIAL_REQ:
      return { type: packetType, protocol: s.protocol, address: s.address, random: s.random };
    case PacketType.DIAL_RSP:
      return { type: packetType, random: s.random, connectId: s.connectId, error: s.error };
    case PacketType.CLOSE_REQ:
      return { type: packetType, connectId: s.connectId };
    case PacketType.CLOSE_RSP:
      return { type: packetType, connectId: s.connectId, error: s.error };
    case PacketType.DATA:
      return { type: packetType, connectId: s.connectId, data: s.data, error: s.error };
    case PacketType.DIAL_CLS:
      return { type: packetType, random: s.random };
    case PacketType.DRAIN:
      return { type: packetType };
  }
}
