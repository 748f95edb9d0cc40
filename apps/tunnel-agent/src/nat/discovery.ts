import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { NatType } from '@raven/api-types';
import type { Logger } from '@raven/controller-kit';

/**
 * NAT classification without public STUN: the central gateway runs an authenticated UDP responder on two ports,
 * and each NATed gateway classifies its own NAT against it (RFC 3489-style tests, on one responder address).
 *
 * Frame layout (big-endian):
 *   0  magic "RVND" (4)   4  version (1)   5  type (1): 1 bind, 2 bind answered from the other port, 3 reply
 *   6  nonce (12)         18 timestamp, ms since the epoch (u64)
 *   request: 26 zero padding up to ≥ 64 bytes in all
 *   reply:   26 observed source IPv4 (4)   30 observed source port (u16)   32 responder port that received it (u16)
 *   last 16 bytes: HMAC-SHA256 over all preceding bytes, truncated to 16
 * A reply (50 bytes) is always smaller than the smallest request (64): the responder never amplifies.
 */

export type RequestType = 'bind' | 'bindChangePort';
export type FrameType = RequestType | 'reply';
export interface Mapping {
  ip: string;
  port: number;
}
export interface RequestFrame {
  type: RequestType;
  nonce: Buffer;
  timestampMs: number;
}
export interface ReplyFrame {
  type: 'reply';
  nonce: Buffer;
  timestampMs: number;
  observed: Mapping;
  receivedOnPort: number;
}
export type DiscoveryFrame = RequestFrame | ReplyFrame;
export type DecodeErrorReason = 'badLength' | 'badMagic' | 'badVersion' | 'unknownType' | 'badMac' | 'staleTimestamp';
export type DecodeResult = { ok: true; frame: DiscoveryFrame } | { ok: false; reason: DecodeErrorReason };

export const FRAME = {
  magic: Buffer.from('RVND'),
  version: 1,
  nonceBytes: 12,
  tagBytes: 16,
  headerBytes: 26,
  replyBytes: 50,
  minRequestBytes: 64,
  maxFrameBytes: 512,
  maxClockSkewMs: 60_000,
} as const;

const TYPE_CODES: Record<FrameType, number> = { bind: 1, bindChangePort: 2, reply: 3 };
const TYPES_BY_CODE = new Map<number, FrameType>(Object.entries(TYPE_CODES).map(([type, code]) => [code, type as FrameType]));
const KEY_INFO = 'raven-ts nat-discovery v1';

/** The MAC key of discovery frames: derived from the cluster PSK, so the PSK itself never keys anything else. */
export function natDiscoveryKey(psk: string): Buffer {
  return Buffer.from(hkdfSync('sha256', psk, Buffer.alloc(0), KEY_INFO, 32));
}

function tag(key: Buffer, bytes: Buffer): Buffer {
  return createHmac('sha256', key).update(bytes).digest().subarray(0, FRAME.tagBytes);
}

function header(frame: DiscoveryFrame, size: number): Buffer {
  if (frame.nonce.length !== FRAME.nonceBytes) throw new RangeError(`a nonce has ${FRAME.nonceBytes} bytes, got ${frame.nonce.length}`);
  const bytes = Buffer.alloc(size);
  FRAME.magic.copy(bytes, 0);
  bytes[4] = FRAME.version;
  bytes[5] = TYPE_CODES[frame.type];
  frame.nonce.copy(bytes, 6);
  bytes.writeBigUInt64BE(BigInt(Math.trunc(frame.timestampMs)), 18);
  return bytes;
}

function seal(bytes: Buffer, key: Buffer): Buffer {
  const macAt = bytes.length - FRAME.tagBytes;
  tag(key, bytes.subarray(0, macAt)).copy(bytes, macAt);
  return bytes;
}

export function encodeRequest(frame: RequestFrame, key: Buffer, size: number = FRAME.minRequestBytes): Buffer {
  if (size < FRAME.minRequestBytes || size > FRAME.maxFrameBytes) throw new RangeError(`a request has ${FRAME.minRequestBytes}-${FRAME.maxFrameBytes} bytes, not ${size}`);
  return seal(header(frame, size), key);
}

export function encodeReply(frame: ReplyFrame, key: Buffer): Buffer {
  if (!isIPv4(frame.observed.ip)) throw new RangeError(`observed address ${frame.observed.ip} is not IPv4`);
  const bytes = header(frame, FRAME.replyBytes);
  frame.observed.ip.split('.').forEach((octet, i) => (bytes[26 + i] = Number(octet)));
  bytes.writeUInt16BE(frame.observed.port, 30);
  bytes.writeUInt16BE(frame.receivedOnPort, 32);
  return seal(bytes, key);
}

/** Parses untrusted bytes: never throws. Cheap structural checks first, then the MAC, then the (authenticated) clock. */
export function decodeFrame(bytes: Buffer, key: Buffer, nowMs: number): DecodeResult {
  const fail = (reason: DecodeErrorReason): DecodeResult => ({ ok: false, reason });
  if (bytes.length < FRAME.headerBytes + FRAME.tagBytes || bytes.length > FRAME.maxFrameBytes) return fail('badLength');
  if (!bytes.subarray(0, 4).equals(FRAME.magic)) return fail('badMagic');
  if (bytes[4] !== FRAME.version) return fail('badVersion');
  const type = TYPES_BY_CODE.get(bytes[5]!);
  if (!type) return fail('unknownType');
  if (type === 'reply' ? bytes.length !== FRAME.replyBytes : bytes.length < FRAME.minRequestBytes) return fail('badLength');
  const macAt = bytes.length - FRAME.tagBytes;
  if (!timingSafeEqual(tag(key, bytes.subarray(0, macAt)), bytes.subarray(macAt))) return fail('badMac');
  const timestampMs = Number(bytes.readBigUInt64BE(18));
  if (Math.abs(timestampMs - nowMs) > FRAME.maxClockSkewMs) return fail('staleTimestamp');
  const nonce = Buffer.from(bytes.subarray(6, 6 + FRAME.nonceBytes));
  if (type !== 'reply') return { ok: true, frame: { type, nonce, timestampMs } };
  const observed = { ip: [...bytes.subarray(26, 30)].join('.'), port: bytes.readUInt16BE(30) };
  return { ok: true, frame: { type, nonce, timestampMs, observed, receivedOnPort: bytes.readUInt16BE(32) } };
}

async function bindUdp4(port: number, host: string | undefined): Promise<Socket> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return socket;
  } catch (err) {
    closeQuietly(socket);
    throw err;
  }
}

function closeQuietly(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}

/** Per-source token buckets; idle (full) buckets are forgotten once there are many sources. */
class TokenBuckets {
  private static readonly maxSources = 10_000;
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(private readonly ratePerSec: number) {}

  take(source: string, nowMs: number): boolean {
    const bucket = this.buckets.get(source) ?? { tokens: this.ratePerSec, atMs: nowMs };
    bucket.tokens = Math.min(this.ratePerSec, bucket.tokens + (Math.max(0, nowMs - bucket.atMs) * this.ratePerSec) / 1000);
    bucket.atMs = nowMs;
    if (!this.buckets.has(source)) {
      if (this.buckets.size >= TokenBuckets.maxSources) this.forgetIdle(nowMs);
      this.buckets.set(source, bucket);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private forgetIdle(nowMs: number): void {
    for (const [source, { tokens, atMs }] of this.buckets) {
      if (tokens + ((nowMs - atMs) * this.ratePerSec) / 1000 >= this.ratePerSec) this.buckets.delete(source);
    }
    // Under a flood of distinct sources, drop the oldest half rather than grow without bound.
    let excess = this.buckets.size - TokenBuckets.maxSources / 2;
    for (const source of this.buckets.keys()) {
      if (excess-- <= 0) break;
      this.buckets.delete(source);
    }
  }
}

export type ResponderDropReason = DecodeErrorReason | 'noKey' | 'notARequest' | 'rateLimited' | 'notIPv4' | 'sendFailed';

export interface NatDiscoveryResponderOptions {
  ports: readonly [number, number];
  host?: string;
  /** The discovery key (natDiscoveryKey of the PSK); undefined while there is no PSK: everything is dropped. */
  key: () => Buffer | undefined;
  log: Logger;
  now?: () => number;
  ratePerSourcePerSec?: number;
}

/** The central gateway's side: answers bind requests from the receiving port, change-port requests from the other. */
export class NatDiscoveryResponder {
  private sockets?: [Socket, Socket];
  private ports?: [number, number];
  private answered = 0;
  private readonly dropped: Partial<Record<ResponderDropReason, number>> = {};
  private readonly buckets: TokenBuckets;
  private readonly now: () => number;

  constructor(private readonly opts: NatDiscoveryResponderOptions) {
    this.buckets = new TokenBuckets(opts.ratePerSourcePerSec ?? 20);
    this.now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.sockets) return;
    const first = await bindUdp4(this.opts.ports[0], this.opts.host);
    let second: Socket;
    try {
      second = await bindUdp4(this.opts.ports[1], this.opts.host);
    } catch (err) {
      closeQuietly(first);
      throw err;
    }
    this.sockets = [first, second];
    this.ports = [first.address().port, second.address().port];
    this.sockets.forEach((socket, index) => {
      const port = this.ports![index];
      socket.on('message', (msg, rinfo) => this.onMessage(index === 0 ? 0 : 1, msg, rinfo));
      socket.on('error', (err) => this.opts.log.warn({ err, port }, 'NAT discovery socket error'));
    });
    this.opts.log.info({ ports: this.ports }, 'NAT discovery responder listening');
  }

  /** The ports actually bound (differs from the options when they asked for port 0). */
  boundPorts(): [number, number] {
    if (!this.ports) throw new Error('NAT discovery responder is not started');
    return [...this.ports];
  }

  stats(): { answered: number; dropped: Record<string, number> } {
    return { answered: this.answered, dropped: { ...this.dropped } };
  }

  close(): void {
    this.sockets?.forEach(closeQuietly);
    this.sockets = undefined;
    this.ports = undefined;
  }

  private onMessage(index: 0 | 1, msg: Buffer, rinfo: RemoteInfo): void {
    const key = this.opts.key();
    if (!key) return this.drop('noKey', rinfo);
    const now = this.now();
    const decoded = decodeFrame(msg, key, now);
    if (!decoded.ok) return this.drop(decoded.reason, rinfo);
    const request = decoded.frame;
    if (request.type === 'reply') return this.drop('notARequest', rinfo);
    if (!isIPv4(rinfo.address)) return this.drop('notIPv4', rinfo);
    if (!this.buckets.take(rinfo.address, now)) return this.drop('rateLimited', rinfo);
    const [sockets, ports] = [this.sockets!, this.ports!];
    const reply = encodeReply(
      { type: 'reply', nonce: request.nonce, timestampMs: now, observed: { ip: rinfo.address, port: rinfo.port }, receivedOnPort: ports[index] },
      key,
    );
    const from = request.type === 'bindChangePort' ? sockets[1 - index]! : sockets[index];
    from.send(reply, rinfo.port, rinfo.address, (err) => {
      if (err) this.drop('sendFailed', rinfo);
      else this.answered++;
    });
  }

  private drop(reason: ResponderDropReason, rinfo: RemoteInfo): void {
    const count = (this.dropped[reason] ?? 0) + 1;
    this.dropped[reason] = count;
    // Powers of two only: a flood of junk must not become a flood of log lines, even at debug.
    if ((count & (count - 1)) === 0) this.opts.log.debug({ reason, count, source: `${rinfo.address}:${rinfo.port}` }, 'dropped NAT discovery frame');
  }
}

export interface ClassifyNatOptions {
  /** Host name or IPv4 address of the discovery responder (the central gateway). */
  server: string;
  ports: readonly [number, number];
  key: Buffer;
  bindAddress?: string;
  /** Per test phase; default 2000. */
  timeoutMs?: number;
}

export interface NatClassification {
  natType: NatType;
  /** This node's address as the responder saw it. */
  mapping?: Mapping;
  detail: string;
}

const RESEND_MS = 200;

interface Answer {
  reply: ReplyFrame;
  request: { type: RequestType; port: number };
  fromPort: number;
}

/** One fresh client socket; accepts only authenticated replies to nonces it sent. */
class DiscoveryClient {
  private readonly sent = new Map<string, { type: RequestType; port: number }>();
  private onAnswer?: (answer: Answer) => void;
  lastError?: Error;

  private constructor(private readonly socket: Socket, private readonly key: Buffer, private readonly serverIp: string) {
    socket.on('error', (err) => (this.lastError = err));
    socket.on('message', (msg, rinfo) => {
      const decoded = decodeFrame(msg, this.key, Date.now());
      if (!decoded.ok || decoded.frame.type !== 'reply') return;
      const request = this.sent.get(decoded.frame.nonce.toString('hex'));
      if (request) this.onAnswer?.({ reply: decoded.frame, request, fromPort: rinfo.port });
    });
  }

  static async open(key: Buffer, serverIp: string, bindAddress: string | undefined): Promise<DiscoveryClient> {
    return new DiscoveryClient(await bindUdp4(0, bindAddress), key, serverIp);
  }

  local(): { address: string; port: number } {
    return this.socket.address();
  }

  /** Sends what `due()` lists now and every RESEND_MS until `accept` returns a value; undefined after timeoutMs. */
  exchange<T>(due: () => Array<{ type: RequestType; port: number }>, accept: (answer: Answer) => T | undefined, timeoutMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const finish = (value: T | undefined): void => {
        clearInterval(resend);
        clearTimeout(deadline);
        this.onAnswer = undefined;
        resolve(value);
      };
      this.onAnswer = (answer) => {
        const value = accept(answer);
        if (value !== undefined) finish(value);
      };
      const sendDue = (): void => due().forEach((request) => this.send(request));
      const resend = setInterval(sendDue, RESEND_MS);
      const deadline = setTimeout(() => finish(undefined), timeoutMs);
      sendDue();
    });
  }

  close(): void {
    this.onAnswer = undefined;
    closeQuietly(this.socket);
  }

  private send(request: { type: RequestType; port: number }): void {
    const nonce = randomBytes(FRAME.nonceBytes);
    this.sent.set(nonce.toString('hex'), request);
    try {
      this.socket.send(encodeRequest({ type: request.type, nonce, timestampMs: Date.now() }, this.key), request.port, this.serverIp, (err) => {
        if (err) this.lastError = err;
      });
    } catch (err) {
      this.lastError = err instanceof Error ? err : new Error(String(err));
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isOwnAddress(mapping: Mapping, local: { address: string; port: number }): boolean {
  if (mapping.port !== local.port) return false;
  if (local.address !== '0.0.0.0') return mapping.ip === local.address;
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv4' && a.address === mapping.ip));
}

const show = (m: Mapping): string => `${m.ip}:${m.port}`;

/**
 * Classifies the NAT between this node and the discovery responder. Never throws: network problems give 'Unknown'
 * with the reason. Takes up to 3 × timeoutMs (the PortRestricted verdict is the absence of a reply).
 */
export async function classifyNat(opts: ClassifyNatOptions): Promise<NatClassification> {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const [firstPort, secondPort] = opts.ports;
  const responder = `${opts.server} (UDP ${firstPort}, ${secondPort})`;
  const valid = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65_535;
  if (!valid(firstPort) || !valid(secondPort) || firstPort === secondPort) {
    return { natType: 'Unknown', detail: `NAT discovery needs two distinct ports on ${opts.server}, got ${firstPort} and ${secondPort}` };
  }
  let serverIp: string;
  try {
    serverIp = isIPv4(opts.server) ? opts.server : (await lookup(opts.server, { family: 4 })).address;
  } catch (err) {
    return { natType: 'Unknown', detail: `cannot resolve the NAT discovery responder ${opts.server}: ${errorText(err)}` };
  }
  const because = (client: DiscoveryClient): string => (client.lastError ? ` (last error: ${client.lastError.message})` : '');

  try {
    const mappings = new Map<number, Mapping>();
    const first = await DiscoveryClient.open(opts.key, serverIp, opts.bindAddress);
    const local = first.local();
    try {
      await first.exchange(
        () => opts.ports.filter((port) => !mappings.has(port)).map((port) => ({ type: 'bind' as const, port })),
        (answer) => {
          if (answer.request.type === 'bind') mappings.set(answer.request.port, answer.reply.observed);
          return mappings.size === 2 ? true : undefined;
        },
        timeoutMs,
      );
      if (mappings.size === 0) return { natType: 'Unknown', detail: `no reply from the NAT discovery responder ${responder} within ${timeoutMs} ms${because(first)}` };
    } finally {
      first.close();
    }
    const viaFirst = mappings.get(firstPort);
    const viaSecond = mappings.get(secondPort);
    if (!viaFirst || !viaSecond) {
      const silent = viaFirst ? secondPort : firstPort;
      return { natType: 'Unknown', mapping: viaFirst ?? viaSecond, detail: `NAT discovery responder ${opts.server} did not answer on port ${silent} within ${timeoutMs} ms` };
    }
    if (viaFirst.ip !== viaSecond.ip || viaFirst.port !== viaSecond.port) {
      return { natType: 'Symmetric', mapping: viaFirst, detail: `the NAT maps one socket to ${show(viaFirst)} towards port ${firstPort} and ${show(viaSecond)} towards port ${secondPort}` };
    }
    if (isOwnAddress(viaFirst, local)) return { natType: 'FullCone', mapping: viaFirst, detail: 'no NAT between this node and the discovery responder' };

    // A second socket that only ever talks to the first port: does the NAT let the second port's reply in?
    const second = await DiscoveryClient.open(opts.key, serverIp, opts.bindAddress);
    try {
      const pathProven = await second.exchange(
        () => [{ type: 'bind', port: firstPort }],
        (answer) => (answer.request.type === 'bind' && answer.fromPort === firstPort ? true : undefined),
        timeoutMs,
      );
      if (!pathProven) return { natType: 'Unknown', mapping: viaFirst, detail: `a second socket got no reply from ${opts.server}:${firstPort} within ${timeoutMs} ms${because(second)}` };
      const otherPortGotIn = await second.exchange(
        () => [{ type: 'bindChangePort', port: firstPort }],
        (answer) => (answer.request.type === 'bindChangePort' && answer.fromPort === secondPort ? true : undefined),
        timeoutMs,
      );
      return otherPortGotIn
        ? {
            natType: 'Restricted', mapping: viaFirst,
            detail: `mapping ${show(viaFirst)} is kept across destination ports and a reply from port ${secondPort} got in: the NAT filters by address only `
              + '(one responder address cannot tell FullCone from Restricted)',
          }
        : {
            natType: 'PortRestricted', mapping: viaFirst,
            detail: `mapping ${show(viaFirst)} is kept across destination ports, but no reply from port ${secondPort} got in within ${timeoutMs} ms: the NAT filters by address and port`,
          };
    } finally {
      second.close();
    }
  } catch (err) {
    return { natType: 'Unknown', detail: `NAT discovery against ${responder} failed: ${errorText(err)}` };
  }
}
