import {
  connect as http2Connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream, type Http2Server, type Http2Session,
  type Http2SecureServer, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream,
} from 'node:http2';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { GRPC_PREFIX_BYTES } from './codec.ts';
import { ProtocolError } from './errors.ts';
import { CONNECT_METHOD_PATH } from './service.ts';

/**
 * The gRPC-over-HTTP/2 wire for the one method the tunnel uses (AgentService.Connect, a bidirectional stream), on
 * node:http2 directly. A general gRPC runtime costs several times more CPU per message than the framing itself
 * (measured: about 25 µs against 3.5 µs per small message and side), and the tunnel carries every request and
 * response chunk as a message. What gRPC peers (grpc-go's konnectivity server and agent) rely on is kept: POST with
 * `application/grpc` and `te: trailers`, metadata as headers, length-prefixed messages, `grpc-status` and
 * percent-encoded `grpc-message` in trailers (or a trailers-only response), and keepalive pings.
 */

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatus = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** A call ended with a non-OK grpc-status (or the transport failed, as UNAVAILABLE). */
export class GrpcStatusError extends Error {
  override readonly name = 'GrpcStatusError';
  constructor(readonly code: number, readonly details: string, options?: ErrorOptions) {
    super(`grpc status ${code}: ${details}`, options);
  }
}

/** Largest message an agent accepts from a server: gRPC's default receive limit (upstream servers relay callers' writes). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * Largest message a server accepts from an agent: agents send DATA of at most 64 KiB (ours) or 32 KiB (upstream's), so
 * anything much larger is an attack on the server's memory.
 */
export const MAX_AGENT_MESSAGE_BYTES = 256 * 1024;
/** HTTP/2 receive window per stream and per connection: one tunnel is one stream, so it bounds a tunnel's throughput per RTT. */
export const RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;
/**
 * Request metadata we send: agentIdentifiers lists every member of a domain in one header. grpc-go servers take up to
 * 16 MiB; a Node (nghttp2) server takes at most 64 KiB per header field, some 1,000-1,800 members.
 */
const MAX_SEND_HEADER_BYTES = 1024 * 1024;
/** Largest HTTP/2 frame we accept: a whole 64 KiB DATA message fits in one frame, so it arrives as one chunk. */
const MAX_FRAME_BYTES = 128 * 1024;

const GRPC_CONTENT_TYPE = 'application/grpc';

/**
 * Splits an HTTP/2 byte stream into gRPC messages. A message that fits in one received chunk is passed as a view of
 * it, unless the view would pin a much larger buffer (Node hands out DATA as slices of a shared read buffer, and a
 * slow consumer holding small views could keep many of them alive); a message spanning chunks is joined once.
 */
export class MessageDeframer {
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Prefix plus body of the message being joined, once its prefix has arrived. */
  private needed = 0;

  constructor(private readonly maxMessageBytes = MAX_MESSAGE_BYTES) {}

  /** Calls `onMessage` for every message completed by `chunk`; throws ProtocolError on a bad prefix. */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): void {
    let buf = chunk;
    if (this.partsBytes > 0) {
      this.parts.push(chunk);
      this.partsBytes += chunk.length;
      if (this.needed === 0 && this.partsBytes >= GRPC_PREFIX_BYTES) this.needed = this.messageEnd(Buffer.concat(this.parts, GRPC_PREFIX_BYTES), 0);
      if (this.needed === 0 || this.partsBytes < this.needed) return;
      buf = Buffer.concat(this.parts, this.partsBytes);
      this.parts = [];
      this.partsBytes = 0;
      this.needed = 0;
    }
    let pos = 0;
    while (buf.length - pos >= GRPC_PREFIX_BYTES) {
      const end = this.messageEnd(buf, pos);
      if (end > buf.length) break;
      const message = buf.subarray(pos + GRPC_PREFIX_BYTES, end);
      onMessage(message.length * 2 < message.buffer.byteLength ? Buffer.from(message) : message);
      pos = end;
    }
    if (pos < buf.length) {
      const rest = buf.subarray(pos);
      this.parts.push(rest);
      this.partsBytes = rest.length;
      this.needed = rest.length >= GRPC_PREFIX_BYTES ? this.messageEnd(rest, 0) : 0;
    }
  }

  private messageEnd(buf: Buffer, pos: number): number {
    const flag = buf[pos]!;
    if (flag !== 0) throw new ProtocolError(flag === 1 ? 'compressed message, but no compression was negotiated' : `bad message flag ${flag}`);
    const length = buf.readUInt32BE(pos + 1);
    if (length > this.maxMessageBytes) throw new ProtocolError(`message of ${length} bytes exceeds the ${this.maxMessageBytes}-byte limit`);
    return pos + GRPC_PREFIX_BYTES + length;
  }
}

/** grpc-message is percent-encoded UTF-8 (bytes outside 0x20-0x7E, and '%'). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeGrpcMessage(encoded: string): string {
  if (!encoded.includes('%')) return encoded;
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const hex = encoded.slice(i + 1, i + 3);
    if (encoded[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(encoded[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Header names gRPC reserves; everything else a peer sends is metadata. */
const RESERVED_HEADERS = new Set(['content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'user-agent']);

/** Pings an idle-or-not session every `intervalMs` and destroys it when an ack takes longer than `timeoutMs`. */
export function keepAlive(session: Http2Session, intervalMs: number, timeoutMs: number): void {
  if (intervalMs <= 0) return;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) return clearInterval(timer);
    const deadline = setTimeout(() => session.destroy(new Error(`keepalive ping not acknowledged within ${timeoutMs} ms`)), timeoutMs);
    deadline.unref();
    const sent = session.ping((error) => {
      clearTimeout(deadline);
      if (error && !session.destroyed) session.destroy(error);
    });
    if (!sent) clearTimeout(deadline); // too many pings in flight: the earlier one's deadline still applies
  }, intervalMs);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}

// ---------------------------------------------------------------- server side

/** One incoming Connect call on the server. */
export class IncomingCall {
  private finalStatus: { code: number; message: string } = { code: GrpcStatus.OK, message: '' };
  private responded = false;

  constructor(
    readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly rawHeaders: readonly string[],
  ) {}

  /** Every value the peer sent for a metadata key (keys are case-insensitive). */
  metadata(key: string): string[] {
    const name = key.toLowerCase();
    const values: string[] = [];
    for (let i = 0; i + 1 < this.rawHeaders.length; i += 2) if (this.rawHeaders[i]!.toLowerCase() === name) values.push(this.rawHeaders[i + 1]!);
    if (values.length > 0 || this.rawHeaders.length > 0) return values;
    const value = this.headers[name];
    return value === undefined ? [] : Array.isArray(value) ? value : [value];
  }

  /** The peer's metadata, without pseudo-headers and gRPC's own headers. */
  allMetadata(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(this.headers)) if (value !== undefined && !name.startsWith(':') && !RESERVED_HEADERS.has(name)) out[name] = value;
    return out;
  }

  get peer(): string {
    const socket = this.stream.session?.socket;
    return socket ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown';
  }

  /** The verified client certificate on an mTLS connection. */
  get peerCertificate(): PeerCertificate | undefined {
    const socket = this.stream.session?.socket as Partial<TLSSocket> | undefined;
    if (!socket?.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
    const cert = socket.getPeerCertificate();
    return cert && Object.keys(cert).length > 0 ? cert : undefined;
  }

  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  /** Sends the response headers (with metadata); messages may follow, and `finish` sends the trailers. */
  respond(metadata: Record<string, string>): void {
    if (this.responded || this.gone) return;
    this.responded = true;
    this.stream.once('wantTrailers', () => {
      const { code, message } = this.finalStatus;
      this.stream.sendTrailers({ 'grpc-status': String(code), ...(message ? { 'grpc-message': encodeGrpcMessage(message) } : {}) });
    });
    this.stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200, 'content-type': GRPC_CONTENT_TYPE, ...metadata }, { waitForTrailers: true });
  }

  /** Ends the call with a status: trailers after the messages, or a trailers-only response if nothing was sent. */
  finish(code: number = GrpcStatus.OK, message = ''): void {
    if (this.gone) return;
    if (!this.responded) {
      this.responded = true;
      const trailersOnly: OutgoingHttpHeaders = { [h2.HTTP2_HEADER_STATUS]: 200, 'content-type': GRPC_CONTENT_TYPE, 'grpc-status': String(code) };
      if (message) trailersOnly['grpc-message'] = encodeGrpcMessage(message);
      this.stream.respond(trailersOnly, { endStream: true });
      return;
    }
    this.finalStatus = { code, message };
    if (!this.stream.writableEnded) this.stream.end();
  }
}

export interface AgentServiceOptions {
  /** Server keepalive pings (upstream: 30 s / 10 s); 0 disables them. */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * HTTP/2 receive window per agent connection and stream (default 4 MiB; 0 keeps Node's 64 KiB). A tunnel is one
   * stream, so agent->server throughput is at most one window per round trip: 64 KiB is 1.3 MB/s over a 50 ms link.
   */
  receiveWindowBytes?: number;
  /** Concurrent HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS); an agent needs one. Default 16. */
  maxConcurrentStreams?: number;
}

export interface AgentServiceHandle {
  /** Stops accepting connections; open sessions get `graceMs` to end their streams, then are destroyed. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves AgentService.Connect on an HTTP/2 server (TLS or not: the server's options decide); other paths and
 * malformed requests get the status a gRPC server would give.
 */
export function serveAgentService(server: Http2Server | Http2SecureServer, onConnect: (call: IncomingCall) => void, options: AgentServiceOptions = {}): AgentServiceHandle {
  const window = options.receiveWindowBytes ?? RECEIVE_WINDOW_BYTES;
  const sessions = new Set<Http2Session>();
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', () => undefined);
    if (window > 0) session.setLocalWindowSize(window);
    session.settings({ maxFrameSize: MAX_FRAME_BYTES, maxConcurrentStreams: options.maxConcurrentStreams ?? 16, ...(window > 0 ? { initialWindowSize: window } : {}) });
    keepAlive(session, options.keepaliveMs ?? 30_000, options.keepaliveTimeoutMs ?? 10_000);
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders?: string[]) => {
    stream.on('error', () => undefined);
    const call = new IncomingCall(stream, headers, rawHeaders ?? []);
    const contentType = String(headers['content-type'] ?? '');
    if (headers[h2.HTTP2_HEADER_METHOD] !== 'POST' || !/^application\/grpc(\+proto)?(;|$)/.test(contentType)) {
      stream.respond({ [h2.HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
      return;
    }
    if (headers[h2.HTTP2_HEADER_PATH] !== CONNECT_METHOD_PATH) {
      call.finish(GrpcStatus.UNIMPLEMENTED, `unknown method ${String(headers[h2.HTTP2_HEADER_PATH])}`);
      return;
    }
    if (headers['grpc-encoding'] && headers['grpc-encoding'] !== 'identity') {
      call.finish(GrpcStatus.UNIMPLEMENTED, `grpc-encoding ${String(headers['grpc-encoding'])} is not supported`);
      return;
    }
    onConnect(call);
  });
  return {
    close: async (graceMs = 0) => {
      server.close();
      for (const session of sessions) session.close();
      const deadline = Date.now() + graceMs;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      for (const session of sessions) session.destroy();
    },
  };
}

// ---------------------------------------------------------------- client side

export interface ConnectTls {
  ca: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name the server's certificate is verified against (and SNI), when it differs from the address's host. */
  servername?: string;
  checkServerIdentity?: (hostname: string, cert: PeerCertificate) => Error | undefined;
}

export interface OutgoingCall {
  session: ClientHttp2Session;
  stream: ClientHttp2Stream;
  /** Response headers (metadata), or the status that refused the call. */
  headers: Promise<IncomingHttpHeaders>;
  /** The call's final status: OK, the trailers' status, or UNAVAILABLE when the transport failed. */
  status: Promise<GrpcStatusError | undefined>;
}

/**
 * Opens an HTTP/2 connection of its own (so that a load balancer spreads tunnels over replicas) and starts a
 * Connect call with `metadata` as request headers. No TLS means plaintext HTTP/2 (h2c), for tests only.
 */
export function startConnectCall(address: string, tls: ConnectTls | undefined, metadata: Record<string, string>, keepalive: { intervalMs: number; timeoutMs: number }): OutgoingCall {
  const session = http2Connect(`${tls ? 'https' : 'http'}://${address}`, {
    settings: { initialWindowSize: RECEIVE_WINDOW_BYTES, maxFrameSize: MAX_FRAME_BYTES, enablePush: false },
    maxSessionMemory: 64,
    maxSendHeaderBlockLength: MAX_SEND_HEADER_BYTES,
    ...(tls ? {
      ca: tls.ca, cert: tls.cert, key: tls.key, ALPNProtocols: ['h2'],
      ...(tls.servername ? { servername: tls.servername } : {}),
      ...(tls.checkServerIdentity ? { checkServerIdentity: tls.checkServerIdentity } : {}),
    } : {}),
  });
  session.on('error', () => undefined);
  session.once('connect', () => session.setLocalWindowSize(RECEIVE_WINDOW_BYTES));
  keepAlive(session, keepalive.intervalMs, keepalive.timeoutMs);
  const stream = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: CONNECT_METHOD_PATH, [h2.HTTP2_HEADER_SCHEME]: tls ? 'https' : 'http',
    ...(tls?.servername ? { [h2.HTTP2_HEADER_AUTHORITY]: `${tls.servername}:${address.slice(address.lastIndexOf(':') + 1)}` } : {}),
    'content-type': GRPC_CONTENT_TYPE, te: 'trailers', 'user-agent': 'raven-ts-tunnel', ...metadata,
  });
  let transportError: Error | undefined;
  stream.on('error', (error) => (transportError ??= error));
  session.once('error', (error) => (transportError ??= error));
  const status = new Promise<GrpcStatusError | undefined>((resolve) => {
    let settled = false;
    const settle = (result: GrpcStatusError | undefined) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const fromHeaders = (h: IncomingHttpHeaders) => {
      const code = Number(h['grpc-status']);
      return code === GrpcStatus.OK ? undefined : new GrpcStatusError(Number.isInteger(code) ? code : GrpcStatus.UNKNOWN, decodeGrpcMessage(String(h['grpc-message'] ?? '')));
    };
    stream.once('response', (h) => {
      if (h['grpc-status'] !== undefined) settle(fromHeaders(h)); // trailers-only
      else if (Number(h[h2.HTTP2_HEADER_STATUS]) !== 200) settle(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `HTTP status ${String(h[h2.HTTP2_HEADER_STATUS])}`));
    });
    stream.once('trailers', (h) => settle(fromHeaders(h)));
    stream.once('close', () => settle(new GrpcStatusError(
      stream.rstCode === h2.NGHTTP2_CANCEL ? GrpcStatus.CANCELLED : GrpcStatus.UNAVAILABLE,
      transportError?.message ?? `stream closed without a status (code ${stream.rstCode})`, { cause: transportError },
    )));
  });
  const headers = new Promise<IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', (h) => {
      if (h['grpc-status'] !== undefined || Number(h[h2.HTTP2_HEADER_STATUS]) !== 200) void status.then((s) => reject(s ?? new GrpcStatusError(GrpcStatus.INTERNAL, 'call ended before its headers')));
      else resolve(h);
    });
    void status.then((s) => reject(s ?? new GrpcStatusError(GrpcStatus.INTERNAL, 'call ended before its headers')));
  });
  headers.catch(() => undefined);
  return { session, stream, headers, status };
}
