import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { IncomingHttpHeaders } from 'node:http2';
import { describeDialError, type Dialer } from './dialer.ts';
import { HandshakeError } from './errors.ts';
import { GrpcStatus, GrpcStatusError, startConnectCall, type ConnectTls, type OutgoingCall } from './grpc.ts';
import { formatAgentIdentifiers, type AgentIdentifiers } from './identifiers.ts';
import { MAX_DATA_CHUNK, PacketLink } from './link.ts';
import { silentLogger, type Logger } from './logger.ts';
import { PacketType, UNRECOGNIZED, packetTypeName, type DialRequest, type ReceivedPacket } from './packet.ts';
import { BEARER_PREFIX, MetadataKey } from './service.ts';

export interface AgentTunnelOptions {
  /** host:port of the proxy server's agent endpoint (possibly a load balancer in front of replicas). */
  address: string;
  /** TLS (mTLS with `cert`/`key`) for each new connection, read at every connect so rotated certificates apply; undefined = plaintext h2c. */
  tls: (() => ConnectTls) | undefined;
  /** Keepalive pings; upstream servers refuse pings more frequent than every 30 s. */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  agentId: string;
  /** Sent as the agentIdentifiers header; a string is sent verbatim. */
  identifiers?: Partial<AgentIdentifiers> | string;
  dialer: Dialer;
  /** Upstream agents give a dial 5 s. */
  dialTimeoutMs?: number;
  /** Service-account token for servers that authenticate agents by token; read at every connect. */
  authToken?: () => string | Promise<string>;
  /** How long to wait for the server's response headers. */
  handshakeTimeoutMs?: number;
  /** After CLOSE_REQ, how long a remote socket may take to flush and close before it is destroyed. */
  closeLingerMs?: number;
  logger?: Logger;
}

export interface AgentTunnelStats {
  connections: number;
  pendingDials: number;
  dials: number;
  dialFailures: number;
  bytesToServer: number;
  bytesFromServer: number;
}

export interface AgentTunnelEvents {
  closed: [error: Error | undefined];
}

/** What an EndpointConnection needs from the tunnel carrying it. */
interface ConnectionHost {
  readonly link: PacketLink;
  readonly closeLingerMs: number;
  countBytesToServer(n: number): void;
  forget(connectId: bigint): void;
}

/**
 * One Connect stream from this agent to one proxy-server replica. The server dials through it;
 * every DIAL_REQ is handed to the caller's Dialer, and the resulting sockets are pumped as DATA.
 */
export class AgentTunnel extends EventEmitter<AgentTunnelEvents> {
  /** Resolves when the tunnel has ended, with the error that ended it if any. */
  readonly closed: Promise<Error | undefined>;
  private readonly link: PacketLink;
  private readonly host: ConnectionHost;
  private resolveClosed!: (error: Error | undefined) => void;
  private readonly connections = new Map<bigint, EndpointConnection>();
  private readonly pendingDials = new Map<bigint, PendingDial>();
  private nextConnectId = 0;
  private ended = false;
  private drainSent = false;
  private readonly log: Logger;
  private readonly dialTimeoutMs: number;
  private readonly counters = { dials: 0, dialFailures: 0, bytesToServer: 0, bytesFromServer: 0 };

  static async connect(options: AgentTunnelOptions): Promise<AgentTunnel> {
    const token = options.authToken ? await options.authToken() : undefined;
    const identifiers = options.identifiers ?? '';
    // HTTP/2 header names are lowercase; gRPC peers look metadata up case-insensitively.
    const metadata: Record<string, string> = {
      [MetadataKey.agentId.toLowerCase()]: options.agentId,
      [MetadataKey.agentIdentifiers.toLowerCase()]: typeof identifiers === 'string' ? identifiers : formatAgentIdentifiers(identifiers),
      ...(token !== undefined ? { [MetadataKey.authorization]: BEARER_PREFIX + token } : {}),
    };
    // Each tunnel is its own HTTP/2 connection, or a load balancer could never spread them over replicas.
    const call = startConnectCall(options.address, options.tls?.(), metadata, { intervalMs: options.keepaliveMs ?? 60_000, timeoutMs: options.keepaliveTimeoutMs ?? 20_000 });
    try {
      const headers = await responseHeaders(call, options.handshakeTimeoutMs ?? 15_000);
      const serverId = singleHeader(headers, MetadataKey.serverId);
      const serverCount = Number(singleHeader(headers, MetadataKey.serverCount));
      if (!Number.isSafeInteger(serverCount) || serverCount < 0) {
        throw new HandshakeError('bad-metadata', `serverCount header is not a count: ${String(headers[MetadataKey.serverCount.toLowerCase()])}`);
      }
      return new AgentTunnel(call, serverId, serverCount, options);
    } catch (error) {
      call.session.destroy();
      throw error;
    }
  }

  private constructor(
    private readonly call: OutgoingCall,
    readonly serverId: string,
    readonly serverCount: number,
    private readonly options: AgentTunnelOptions,
  ) {
    super();
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.log = options.logger ?? silentLogger;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5_000;
    this.link = new PacketLink(call.stream);
    this.host = {
      link: this.link,
      closeLingerMs: options.closeLingerMs ?? 10_000,
      countBytesToServer: (n) => (this.counters.bytesToServer += n),
      forget: (connectId) => this.connections.delete(connectId),
    };
    this.link.start(this.onPacket, (error) => this.teardown(error));
    void call.status.then((status) => this.teardown(status));
    this.log.info({ serverId, serverCount, address: options.address }, 'tunnel to proxy server established');
  }

  get isClosed(): boolean {
    return this.ended;
  }

  stats(): AgentTunnelStats {
    return { connections: this.connections.size, pendingDials: this.pendingDials.size, ...this.counters };
  }

  /** Tells the server this agent is terminating, so it stops sending dials (existing connections continue). */
  drain(): void {
    if (this.drainSent || this.ended) return;
    this.drainSent = true;
    this.link.send({ type: PacketType.DRAIN });
  }

  /** Cancels the stream and closes every tunnelled connection. */
  close(): void {
    if (this.ended) return;
    this.teardown(undefined);
  }

  private readonly onPacket = (packet: ReceivedPacket): void => {
    switch (packet.type) {
      case PacketType.DATA: {
        const connection = this.connections.get(packet.connectId);
        if (connection) {
          this.counters.bytesFromServer += packet.data.length;
          connection.write(packet.data);
        } else {
          this.link.send({ type: PacketType.CLOSE_RSP, connectId: packet.connectId, error: 'unrecognized connectID' });
        }
        return;
      }
      case PacketType.DIAL_REQ:
        return this.onDialRequest(packet);
      case PacketType.CLOSE_REQ: {
        const connection = this.connections.get(packet.connectId);
        if (connection) connection.closeByServer();
        else this.link.send({ type: PacketType.CLOSE_RSP, connectId: packet.connectId, error: 'Unknown connectID' });
        return;
      }
      case PacketType.DIAL_CLS:
        this.pendingDials.get(packet.random)?.cancelByServer();
        return;
      case PacketType.DIAL_RSP:
      case PacketType.CLOSE_RSP:
      case PacketType.DRAIN:
      case UNRECOGNIZED:
        this.log.debug({ type: packetTypeName(packet.type === UNRECOGNIZED ? packet.wireType : packet.type) }, 'ignoring packet not meant for an agent');
        return;
    }
  };

  private onDialRequest({ random, address, protocol }: DialRequest): void {
    const reply = (connectId: bigint, error: string) => this.link.send({ type: PacketType.DIAL_RSP, random, connectId, error });
    if (protocol !== 'tcp' && protocol !== 'tcp4' && protocol !== 'tcp6') {
      this.counters.dialFailures++;
      reply(0n, `dial ${protocol} ${address}: unsupported protocol`);
      return;
    }
    if (this.pendingDials.has(random)) {
      this.log.warn({ random, address }, 'duplicate DIAL_REQ ignored');
      return;
    }
    const pending = new PendingDial(this.dialTimeoutMs);
    this.pendingDials.set(random, pending);
    const started = performance.now();
    const fail = (error: unknown) => {
      if (!pending.settle()) return;
      this.pendingDials.delete(random);
      if (this.ended) return;
      this.counters.dialFailures++;
      this.log.debug({ address, random, err: error, cancelledByServer: pending.cancelledByServer }, 'dial failed');
      // After DIAL_CLS the server has forgotten the dial; there is nobody to answer.
      if (!pending.cancelledByServer) reply(0n, describeDialError(protocol, address, error));
    };
    pending.signal.addEventListener('abort', () => fail(pending.signal.reason), { once: true });
    Promise.resolve()
      .then(() => this.options.dialer(address, { protocol, signal: pending.signal }))
      .then((socket) => {
        if (socket.destroyed) return fail(new Error(`dial ${protocol} ${address}: dialer returned a closed socket`));
        if (!pending.settle() || this.ended) {
          socket.destroy();
          return;
        }
        this.pendingDials.delete(random);
        const connectId = BigInt(++this.nextConnectId);
        const connection = new EndpointConnection(connectId, socket, this.host);
        this.connections.set(connectId, connection);
        this.counters.dials++;
        this.log.debug({ address, random, connectId, latencyMs: performance.now() - started }, 'dialed');
        reply(connectId, '');
        connection.start();
      }, fail);
  }

  private teardown(error: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.link.close();
    for (const pending of this.pendingDials.values()) pending.abandon();
    this.pendingDials.clear();
    for (const connection of [...this.connections.values()]) connection.tunnelLost();
    this.connections.clear();
    this.call.session.destroy();
    this.log.info({ serverId: this.serverId, err: error }, 'tunnel to proxy server ended');
    this.resolveClosed(error);
    this.emit('closed', error);
  }
}

/** A DIAL_REQ being served: its abort signal reaches the Dialer on timeout, DIAL_CLS or tunnel loss. */
class PendingDial {
  cancelledByServer = false;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private settled = false;

  constructor(timeoutMs: number) {
    this.timer = setTimeout(() => this.controller.abort(Object.assign(new Error('dial timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Returns true the first time only: the outcome (socket, error, timeout, cancel) that wins. */
  settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    return true;
  }

  cancelByServer(): void {
    this.cancelledByServer = true;
    this.controller.abort(new Error('dial cancelled by server (DIAL_CLS)'));
  }

  abandon(): void {
    this.controller.abort(new Error('tunnel closed'));
  }
}

/**
 * One TCP connection opened for the server. Socket bytes flow as 'data' events (one call per read, without the
 * 'readable' + read() round trip through process.nextTick) while the tunnel has room; once it is congested the
 * socket is paused until the link drains, so a congested tunnel leaves data in the kernel and TCP pushes back on the
 * target. The protocol has no half-close: the target's EOF closes the connection (CLOSE_RSP).
 */
class EndpointConnection {
  private open = true;

  constructor(
    readonly connectId: bigint,
    private readonly socket: Socket,
    private readonly host: ConnectionHost,
  ) {}

  start(): void {
    const socket = this.socket;
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    socket.on('drain', this.onSocketDrain);
    socket.on('end', () => this.closeByRemote(undefined));
    socket.on('error', (error) => this.closeByRemote(error));
    socket.on('close', () => this.closeByRemote(undefined));
    socket.on('data', this.onData);
    if (this.host.link.congested) this.pause();
  }

  write(data: Buffer): void {
    if (!this.open || data.length === 0) return;
    if (!this.socket.write(data)) this.host.link.hold(this);
  }

  /** CLOSE_REQ: flush what the server sent, then close; answer at once as upstream agents do. */
  closeByServer(): void {
    if (!this.open) return;
    this.finish('');
    const socket = this.socket;
    socket.removeListener('data', this.onData);
    socket.resume(); // discard further input so the target's FIN is seen and the socket can close
    this.endSocket();
  }

  tunnelLost(): void {
    if (!this.open) return;
    this.open = false;
    this.socket.destroy();
  }

  /** EOF, error or close of the target socket. Data the server already sent is still flushed after an EOF. */
  private closeByRemote(error: Error | undefined): void {
    if (!this.open) return;
    this.finish(error?.message ?? '');
    if (error) this.socket.destroy();
    else this.endSocket();
  }

  private endSocket(): void {
    const socket = this.socket;
    socket.end();
    socket.setTimeout(this.host.closeLingerMs, () => socket.destroy());
  }

  private finish(error: string): void {
    this.open = false;
    const link = this.host.link;
    link.cancelWhenWritable(this.resume);
    link.release(this);
    this.host.forget(this.connectId);
    link.send({ type: PacketType.CLOSE_RSP, connectId: this.connectId, error });
  }

  private readonly onSocketDrain = (): void => {
    this.host.link.release(this);
  };

  private readonly onData = (chunk: Buffer): void => {
    if (!this.open) return;
    const link = this.host.link;
    for (let offset = 0; offset < chunk.length; offset += MAX_DATA_CHUNK) {
      const data = chunk.length <= MAX_DATA_CHUNK ? chunk : chunk.subarray(offset, offset + MAX_DATA_CHUNK);
      link.send({ type: PacketType.DATA, connectId: this.connectId, data, error: '' });
    }
    this.host.countBytesToServer(chunk.length);
    if (link.congested) this.pause();
  };

  /** Stops taking the target's bytes until the link drains (the socket reads at most its high-water mark ahead). */
  private pause(): void {
    this.socket.pause();
    this.host.link.whenWritable(this.resume);
  }

  /**
   * Runs inside the link's drain, which wakes waiters only while the link has room: what the socket buffered while
   * paused is sent now (read() emits it as 'data'), not on a later tick, so one drain cannot wake thousands of
   * connections into overfilling the link.
   */
  private readonly resume = (): void => {
    const socket = this.socket;
    if (!this.open) return;
    socket.resume();
    while (this.open && !this.host.link.congested && socket.readableLength > 0 && socket.read() !== null);
  };
}

async function responseHeaders(call: OutgoingCall, timeoutMs: number): Promise<IncomingHttpHeaders> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandshakeError('timeout', `no response headers within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([call.headers, timeout]);
  } catch (error) {
    if (!(error instanceof GrpcStatusError)) throw error;
    const unauthorized = error.code === GrpcStatus.UNAUTHENTICATED || error.code === GrpcStatus.PERMISSION_DENIED;
    const reason = unauthorized ? 'unauthorized' : error.code === GrpcStatus.INVALID_ARGUMENT ? 'bad-metadata' : 'unavailable';
    throw new HandshakeError(reason, `Connect refused: ${error.details}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

function singleHeader(headers: IncomingHttpHeaders, key: string): string {
  const value = headers[key.toLowerCase()];
  const values = value === undefined ? [] : Array.isArray(value) ? value : [value];
  if (values.length !== 1 || typeof values[0] !== 'string') {
    throw new HandshakeError('bad-metadata', `expected exactly one ${key} response header, got ${values.length}`);
  }
  return values[0];
}
