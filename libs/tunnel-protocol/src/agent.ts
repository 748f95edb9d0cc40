import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  Client, Metadata, status,
  type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type ServiceError,
} from '@grpc/grpc-js';
import { decodePacket, encodePacket } from './codec.ts';
import { describeDialError, type Dialer } from './dialer.ts';
import { HandshakeError } from './errors.ts';
import { formatAgentIdentifiers, type AgentIdentifiers } from './identifiers.ts';
import { MAX_DATA_CHUNK, PacketLink } from './link.ts';
import { silentLogger, type Logger } from './logger.ts';
import { PacketType, UNRECOGNIZED, packetTypeName, type DialRequest, type Packet, type ReceivedPacket } from './packet.ts';
import { BEARER_PREFIX, CONNECT_METHOD_PATH, MetadataKey } from './service.ts';

export interface AgentTunnelOptions {
  /** host:port of the proxy server's agent endpoint (possibly a load balancer in front of replicas). */
  address: string;
  credentials: ChannelCredentials;
  /** Merged over our defaults (own subchannel per tunnel, no retries, 60 s keepalive). */
  channelOptions?: ChannelOptions;
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

type ConnectCall = ClientDuplexStream<Packet, ReceivedPacket>;

/** What an EndpointConnection needs from the tunnel carrying it. */
interface ConnectionHost {
  readonly link: PacketLink;
  readonly closeLingerMs: number;
  countBytesToServer(n: number): void;
  forget(connectId: bigint): void;
}

const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  // Each tunnel must be its own HTTP/2 connection, or a load balancer can never spread them over replicas.
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
  // Upstream servers refuse pings more frequent than every 30 s.
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc-node.flow_control_window': 4 * 1024 * 1024,
};

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
    const client = new Client(options.address, options.credentials, { ...DEFAULT_CHANNEL_OPTIONS, ...options.channelOptions });
    const metadata = new Metadata();
    metadata.set(MetadataKey.agentId, options.agentId);
    const identifiers = options.identifiers ?? '';
    metadata.set(MetadataKey.agentIdentifiers, typeof identifiers === 'string' ? identifiers : formatAgentIdentifiers(identifiers));
    if (token !== undefined) metadata.set(MetadataKey.authorization, BEARER_PREFIX + token);
    const call: ConnectCall = client.makeBidiStreamRequest(CONNECT_METHOD_PATH, encodePacket, decodePacket, metadata);
    try {
      const headers = await responseHeaders(call, options.handshakeTimeoutMs ?? 15_000);
      const serverId = singleHeader(headers, MetadataKey.serverId);
      const serverCount = Number(singleHeader(headers, MetadataKey.serverCount));
      if (!Number.isSafeInteger(serverCount) || serverCount < 0) {
        throw new HandshakeError('bad-metadata', `serverCount header is not a count: ${String(headers.get(MetadataKey.serverCount)[0])}`);
      }
      return new AgentTunnel(client, call, serverId, serverCount, options);
    } catch (error) {
      call.on('error', () => undefined); // cancel() reports CANCELLED as an error event
      call.cancel();
      client.close();
      throw error;
    }
  }

  private constructor(
    private readonly client: Client,
    private readonly call: ConnectCall,
    readonly serverId: string,
    readonly serverCount: number,
    private readonly options: AgentTunnelOptions,
  ) {
    super();
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.log = options.logger ?? silentLogger;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5_000;
    this.link = new PacketLink(call);
    this.host = {
      link: this.link,
      closeLingerMs: options.closeLingerMs ?? 10_000,
      countBytesToServer: (n) => (this.counters.bytesToServer += n),
      forget: (connectId) => this.connections.delete(connectId),
    };
    call.on('data', this.onPacket);
    call.on('end', () => this.teardown(undefined));
    call.on('error', (error: ServiceError) => this.teardown(error));
    call.on('close', () => this.teardown(undefined));
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
    this.call.cancel();
    this.client.close();
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
 * One TCP connection opened for the server. Socket bytes are pulled with read() only while the
 * tunnel has room, so a congested tunnel leaves data in the kernel and TCP pushes back on the
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
    socket.on('readable', this.pump);
    socket.on('drain', this.onSocketDrain);
    socket.on('end', () => this.closeByRemote(undefined));
    socket.on('error', (error) => this.closeByRemote(error));
    socket.on('close', () => this.closeByRemote(undefined));
    this.pump();
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
    socket.removeListener('readable', this.pump);
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
    link.cancelWhenWritable(this.pump);
    link.release(this);
    this.host.forget(this.connectId);
    link.send({ type: PacketType.CLOSE_RSP, connectId: this.connectId, error });
  }

  private readonly onSocketDrain = (): void => {
    this.host.link.release(this);
  };

  private readonly pump = (): void => {
    const link = this.host.link;
    while (this.open) {
      if (link.congested) {
        link.whenWritable(this.pump);
        return;
      }
      const chunk = this.socket.read() as Buffer | null;
      if (chunk === null) return;
      for (let offset = 0; offset < chunk.length; offset += MAX_DATA_CHUNK) {
        const data = chunk.length <= MAX_DATA_CHUNK ? chunk : chunk.subarray(offset, offset + MAX_DATA_CHUNK);
        link.send({ type: PacketType.DATA, connectId: this.connectId, data, error: '' });
      }
      this.host.countBytesToServer(chunk.length);
    }
  };
}

function responseHeaders(call: ConnectCall, timeoutMs: number): Promise<Metadata> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      call.removeListener('metadata', onMetadata);
      call.removeListener('error', onError);
      call.removeListener('end', onEnd);
    };
    const onMetadata = (headers: Metadata) => {
      cleanup();
      resolve(headers);
    };
    const onError = (error: ServiceError) => {
      cleanup();
      const unauthorized = error.code === status.UNAUTHENTICATED || error.code === status.PERMISSION_DENIED;
      const reason = unauthorized ? 'unauthorized' : error.code === status.INVALID_ARGUMENT ? 'bad-metadata' : 'unavailable';
      reject(new HandshakeError(reason, `Connect refused: ${error.details || error.message}`, { cause: error }));
    };
    const onEnd = () => {
      cleanup();
      reject(new HandshakeError('unavailable', 'Connect stream ended before the server sent its headers'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new HandshakeError('timeout', `no response headers within ${timeoutMs} ms`));
    }, timeoutMs);
    call.on('metadata', onMetadata);
    call.on('error', onError);
    call.on('end', onEnd);
  });
}

function singleHeader(headers: Metadata, key: string): string {
  const values = headers.get(key);
  const [value] = values;
  if (values.length !== 1 || typeof value !== 'string') {
    throw new HandshakeError('bad-metadata', `expected exactly one ${key} response header, got ${values.length}`);
  }
  return value;
}
