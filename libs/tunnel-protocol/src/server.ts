import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import type { PeerCertificate } from 'node:tls';
import { DialError, HandshakeError, type DialFailureReason } from './errors.ts';
import { GrpcStatus, MAX_AGENT_MESSAGE_BYTES, serveAgentService, type AgentServiceHandle, type AgentServiceOptions, type IncomingCall } from './grpc.ts';
import { parseAgentIdentifiers, emptyIdentifiers, type AgentIdentifiers } from './identifiers.ts';
import { PacketLink } from './link.ts';
import { silentLogger, type Logger } from './logger.ts';
import { PacketType, UNRECOGNIZED, packetTypeName, type ReceivedPacket } from './packet.ts';
import { BEARER_PREFIX, MetadataKey } from './service.ts';
import { TunnelStream, type StreamCarrier } from './tunnel-stream.ts';

/** What the authorize hook sees about an agent before it is admitted. */
export interface AgentAdmission {
  agentId: string;
  identifiers: AgentIdentifiers;
  /** Verified client certificate when the server uses mTLS, else undefined. */
  peerCertificate: PeerCertificate | undefined;
  /** Token from `authorization: Bearer <token>`, sent by agents using service-account auth. */
  bearerToken: string | undefined;
  peer: string;
  /** Every metadata header the agent sent. */
  metadata: Record<string, string | string[]>;
}

export interface AgentInfo {
  readonly agentId: string;
  readonly identifiers: AgentIdentifiers;
  readonly peer: string;
  readonly connectedAt: Date;
  /** The agent sent DRAIN: it is terminating and gets no new dials. */
  readonly draining: boolean;
  readonly openStreams: number;
  /** What the authorize hook tagged the stream with at admission (dials select by tag). */
  readonly tags: readonly string[];
}

/** What the authorize hook may return for an admitted agent: tags its stream is indexed (and dialled) by. */
export interface AgentTags {
  tags?: readonly string[];
}

/**
 * Which agent a dial goes to. Explicit keys pick the most recently connected matching stream;
 * `defaultRoute` and `any` pick a random one, like upstream's default strategies.
 */
export type AgentSelector =
  | { agentId: string }
  | { host: string }
  | { ipv4: string }
  | { ipv6: string }
  | { tag: string }
  | { defaultRoute: true }
  | { any: true };

export interface TunnelServerOptions {
  /** This replica's ID, sent as the serverID header. */
  serverId: string;
  /** Replica count sent as the serverCount header; a function is read at each agent connection. */
  serverCount: number | (() => number);
  /** Admission hook: throw (or reject) to refuse the agent with PERMISSION_DENIED; may tag the admitted stream. */
  authorize?: (agent: AgentAdmission) => void | AgentTags | Promise<void | AgentTags>;
  /** Default dial timeout; upstream agents give up on their own dial after 5 s. */
  dialTimeoutMs?: number;
  /** Per-direction buffer of each TunnelStream, in bytes. */
  streamHighWaterMark?: number;
  /** Bounds on what one agent may hold (see DEFAULT_LIMITS); a stream that exceeds them is ended. */
  limits?: Partial<AgentLimits>;
  logger?: Logger;
}

/** What one agent may cost a server. */
export interface AgentLimits {
  /** Concurrent Connect streams per agentID (our agents hold one per server; reconnects briefly overlap). */
  streamsPerAgent: number;
  /** Open connections plus pending dials per Connect stream. */
  connectionsPerStream: number;
  /** Largest message accepted from an agent. */
  messageBytes: number;
  /** Packets a server should never receive (DIAL_REQ, CLOSE_REQ, unknown types) before the stream is ended. */
  ignoredPackets: number;
  /** DATA packets for connections this server does not know, tolerated per stream (each costs a CLOSE_REQ). */
  unknownConnectionPackets: number;
}

export const DEFAULT_LIMITS: AgentLimits = {
  streamsPerAgent: 8,
  connectionsPerStream: 16_384,
  messageBytes: MAX_AGENT_MESSAGE_BYTES,
  ignoredPackets: 100,
  unknownConnectionPackets: 10_000,
};

/** At most one warning per this interval and stream for the same kind of misbehaviour; the rest are counted. */
const WARN_INTERVAL_MS = 10_000;

export interface DialOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface TunnelServerStats {
  agents: number;
  agentStreams: number;
  openStreams: number;
  pendingDials: number;
  dials: number;
  dialFailures: Record<DialFailureReason, number>;
  bytesToAgents: number;
  bytesFromAgents: number;
}

export interface TunnelServerEvents {
  agentConnected: [agent: AgentInfo];
  agentDisconnected: [agent: AgentInfo, error: Error | undefined];
  agentRejected: [rejection: { agentId: string | undefined; peer: string; error: Error }];
  agentDraining: [agent: AgentInfo];
  dialSucceeded: [dial: { agent: AgentInfo; address: string; connectId: bigint; latencyMs: number }];
  dialFailed: [dial: { agent: AgentInfo | undefined; address: string; error: DialError }];
}

interface PendingDial {
  readonly address: string;
  readonly startedAt: number;
  readonly resolve: (stream: TunnelStream) => void;
  readonly reject: (error: DialError) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

const DIAL_ID_MASK = (1n << 63n) - 1n;

type Counters = Pick<TunnelServerStats, 'dials' | 'dialFailures' | 'bytesToAgents' | 'bytesFromAgents'>;

/** What an AgentStream reports back to its TunnelServer. */
interface ServerHooks {
  readonly counters: Counters;
  dialFailed(agent: AgentInfo | undefined, address: string, error: DialError): void;
  dialSucceeded(agent: AgentInfo, address: string, connectId: bigint, latencyMs: number): void;
  draining(stream: AgentStream): void;
  ended(stream: AgentStream, error: Error | undefined): void;
}

/**
 * The cloud side of the tunnel: konnectivity's AgentService on an HTTP/2 server. Agents connect
 * in, and `dial` opens TCP connections from an agent to a target, returned as Duplex streams.
 */
export class TunnelServer extends EventEmitter<TunnelServerEvents> {
  private readonly log: Logger;
  private readonly dialTimeoutMs: number;
  private readonly streamHighWaterMark: number;
  private readonly limits: AgentLimits;
  /** Index key (`agent:<id>`, `host:<name>`, `ipv4:<ip>`, `ipv6:<ip>`, `tag:<tag>`, `default-route`, `any`) -> streams. */
  private readonly index = new Map<string, Set<AgentStream>>();
  private readonly streams = new Set<AgentStream>();
  private closing = false;
  private readonly counters: Counters = {
    dials: 0,
    dialFailures: { 'no-agent': 0, timeout: 0, refused: 0, 'agent-lost': 0, 'cancelled-by-agent': 0, aborted: 0 },
    bytesToAgents: 0,
    bytesFromAgents: 0,
  };
  private readonly hooks: ServerHooks = {
    counters: this.counters,
    dialFailed: (agent, address, error) => this.dialFailed(agent, address, error),
    dialSucceeded: (agent, address, connectId, latencyMs) => {
      this.counters.dials++;
      this.emit('dialSucceeded', { agent, address, connectId, latencyMs });
    },
    draining: (stream) => {
      this.log.info({ agentId: stream.agentId }, 'agent draining');
      this.emit('agentDraining', stream.info());
    },
    ended: (stream, error) => this.unregister(stream, error),
  };

  constructor(private readonly options: TunnelServerOptions) {
    super();
    this.log = options.logger ?? silentLogger;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 10_000;
    this.streamHighWaterMark = options.streamHighWaterMark ?? 64 * 1024;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
  }

  /** Serves AgentService on an HTTP/2 server (whose options decide TLS/mTLS; see agentServerSettings). */
  attach(server: Http2Server | Http2SecureServer, options?: AgentServiceOptions): AgentServiceHandle {
    return serveAgentService(server, this.handleConnect, options);
  }

  /** The Connect handler, for callers that route calls themselves. */
  readonly handleConnect = (call: IncomingCall): void => {
    call.stream.on('error', (error) => this.log.debug({ err: error, peer: call.peer }, 'agent stream error'));
    this.admit(call).catch((error: unknown) => this.log.error({ err: error }, 'agent admission crashed'));
  };

  async dial(selector: AgentSelector, address: string, options: DialOptions = {}): Promise<TunnelStream> {
    const agent = this.pick(selector);
    if (!agent) {
      const error = new DialError('no-agent', `no connected agent matches ${JSON.stringify(selector)}`);
      this.dialFailed(undefined, address, error);
      throw error;
    }
    return agent.dial(address, options.timeoutMs ?? this.dialTimeoutMs, options.signal);
  }

  agents(): AgentInfo[] {
    return [...this.streams].map((s) => s.info());
  }

  /** The live streams the authorize hook tagged with `tag`, oldest first. */
  agentsTagged(tag: string): AgentInfo[] {
    return [...(this.index.get(`tag:${tag}`) ?? [])].filter((s) => s.isUsable).map((s) => s.info());
  }

  stats(): TunnelServerStats {
    let openStreams = 0;
    let pendingDials = 0;
    const agentIds = new Set<string>();
    for (const s of this.streams) {
      openStreams += s.openStreams;
      pendingDials += s.pendingDialCount;
      agentIds.add(s.agentId);
    }
    const c = this.counters;
    return {
      agents: agentIds.size, agentStreams: this.streams.size, openStreams, pendingDials,
      dials: c.dials, dialFailures: { ...c.dialFailures }, bytesToAgents: c.bytesToAgents, bytesFromAgents: c.bytesFromAgents,
    };
  }

  /** Ends every stream of one agent with PERMISSION_DENIED (its admission no longer holds); its connections are lost. */
  disconnect(agentId: string, message: string): number {
    const streams = [...(this.index.get(`agent:${agentId}`) ?? [])];
    for (const stream of streams) stream.shutdown(GrpcStatus.PERMISSION_DENIED, message);
    return streams.length;
  }

  /** Ends every agent stream (agents reconnect elsewhere) and refuses new ones. The HTTP/2 server is the caller's. */
  close(): void {
    this.closing = true;
    for (const stream of [...this.streams]) stream.shutdown();
  }

  private dialFailed(agent: AgentInfo | undefined, address: string, error: DialError): void {
    this.counters.dialFailures[error.reason]++;
    this.emit('dialFailed', { agent, address, error });
  }

  private unregister(stream: AgentStream, error: Error | undefined): void {
    if (!this.streams.delete(stream)) return;
    for (const key of stream.indexKeys) {
      const set = this.index.get(key);
      set?.delete(stream);
      if (set?.size === 0) this.index.delete(key);
    }
    this.log.info({ agentId: stream.agentId, peer: stream.peer, err: error }, 'agent disconnected');
    this.emit('agentDisconnected', stream.info(), error);
  }

  private async admit(call: IncomingCall): Promise<void> {
    const peer = call.peer;
    let agentId: string | undefined;
    try {
      if (this.closing) throw new StatusError(GrpcStatus.UNAVAILABLE, 'server is shutting down');
      agentId = singleHeader(call, MetadataKey.agentId, true);
      const identifiersHeader = singleHeader(call, MetadataKey.agentIdentifiers, false);
      const identifiers = identifiersHeader ? parseAgentIdentifiers(identifiersHeader) : emptyIdentifiers();
      const authorization = singleHeader(call, MetadataKey.authorization, false);
      const admission: AgentAdmission = {
        agentId,
        identifiers,
        peerCertificate: call.peerCertificate,
        bearerToken: authorization?.startsWith(BEARER_PREFIX) ? authorization.slice(BEARER_PREFIX.length) : undefined,
        peer,
        metadata: call.allMetadata(),
      };
      let tags: readonly string[] = [];
      if (this.options.authorize) {
        try {
          tags = (await this.options.authorize(admission))?.tags ?? [];
        } catch (error) {
          throw new StatusError(GrpcStatus.PERMISSION_DENIED, `agent refused: ${errorMessage(error)}`);
        }
      }
      if (call.gone) return;
      if (this.closing) throw new StatusError(GrpcStatus.UNAVAILABLE, 'server is shutting down');
      const held = this.index.get(`agent:${agentId}`)?.size ?? 0;
      if (held >= this.limits.streamsPerAgent) throw new StatusError(GrpcStatus.RESOURCE_EXHAUSTED, `agent ${agentId} already holds ${held} streams (the limit)`);
      this.register(call, admission, tags);
    } catch (error) {
      const rejection = error instanceof StatusError ? error
        : error instanceof HandshakeError ? new StatusError(GrpcStatus.INVALID_ARGUMENT, error.message)
        : new StatusError(GrpcStatus.INTERNAL, errorMessage(error));
      this.log.warn({ agentId, peer, err: rejection }, 'agent rejected');
      this.emit('agentRejected', { agentId, peer, error: rejection });
      call.finish(rejection.code, rejection.message);
      // Agents open one connection per tunnel: a refused one is closed too, so refusals cannot pile up idle connections.
      call.stream.session?.close();
    }
  }

  private register(call: IncomingCall, admission: AgentAdmission, tags: readonly string[]): void {
    const serverCount = typeof this.options.serverCount === 'function' ? this.options.serverCount() : this.options.serverCount;
    // HTTP/2 header names are lowercase; gRPC peers look metadata up case-insensitively.
    call.respond({ [MetadataKey.serverId.toLowerCase()]: this.options.serverId, [MetadataKey.serverCount.toLowerCase()]: String(serverCount) });

    const stream = new AgentStream(call, admission, tags, this.hooks, this.log, this.streamHighWaterMark, this.limits);
    this.streams.add(stream);
    for (const key of stream.indexKeys) {
      let set = this.index.get(key);
      if (!set) this.index.set(key, (set = new Set()));
      set.add(stream);
    }
    this.log.info({ agentId: admission.agentId, peer: admission.peer, identifiers: admission.identifiers }, 'agent connected');
    this.emit('agentConnected', stream.info());
    stream.start();
  }

  private pick(selector: AgentSelector): AgentStream | undefined {
    const [key, random] = selectorKey(selector);
    const set = this.index.get(key);
    if (!set) return undefined;
    const candidates: AgentStream[] = [];
    for (const stream of set) if (!stream.isDraining && stream.isUsable) candidates.push(stream);
    if (candidates.length === 0) return undefined;
    return random ? candidates[Math.floor(Math.random() * candidates.length)] : candidates[candidates.length - 1];
  }
}

function selectorKey(selector: AgentSelector): [key: string, random: boolean] {
  if ('agentId' in selector) return [`agent:${selector.agentId}`, false];
  if ('host' in selector) return [`host:${selector.host}`, false];
  if ('ipv4' in selector) return [`ipv4:${selector.ipv4}`, false];
  if ('ipv6' in selector) return [`ipv6:${selector.ipv6}`, false];
  if ('tag' in selector) return [`tag:${selector.tag}`, false];
  if ('defaultRoute' in selector && selector.defaultRoute) return ['default-route', true];
  if ('any' in selector && selector.any) return ['any', true];
  // A misspelt selector must never widen into "any agent".
  throw new TypeError(`unsupported agent selector ${JSON.stringify(selector)}`);
}

/**
 * One agent's Connect stream on the server: pending dials keyed by dial ID ("random") and open
 * connections keyed by connectID, both local to this stream as the IDs are only unique per agent.
 */
class AgentStream implements StreamCarrier {
  readonly link: PacketLink;
  readonly agentId: string;
  readonly peer: string;
  readonly indexKeys: string[];
  private readonly identifiers: AgentIdentifiers;
  private readonly tags: readonly string[];
  private readonly connectedAt = new Date();
  private readonly pendingDials = new Map<bigint, PendingDial>();
  private readonly connections = new Map<bigint, TunnelStream>();
  private drainingFlag = false;
  private ended = false;
  /** Unknown connectIDs already answered with CLOSE_REQ (bounded), so a flood of DATA for one costs one answer. */
  private readonly refusedConnectIds = new Set<bigint>();
  private readonly misbehaviour = { ignored: 0, unknownConnection: 0 };
  private readonly warned = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly call: IncomingCall,
    admission: AgentAdmission,
    tags: readonly string[],
    private readonly hooks: ServerHooks,
    private readonly log: Logger,
    private readonly streamHighWaterMark: number,
    private readonly limits: AgentLimits,
  ) {
    this.link = new PacketLink(call.stream, limits.messageBytes);
    this.agentId = admission.agentId;
    this.peer = admission.peer;
    this.identifiers = admission.identifiers;
    this.tags = tags;
    const ids = admission.identifiers;
    this.indexKeys = [
      `agent:${admission.agentId}`,
      ...ids.host.map((h) => `host:${h}`),
      ...ids.ipv4.map((ip) => `ipv4:${ip}`),
      ...ids.ipv6.map((ip) => `ipv6:${ip}`),
      ...tags.map((t) => `tag:${t}`),
      ...(ids.defaultRoute ? ['default-route'] : []),
      'any',
    ];
  }

  get isDraining(): boolean {
    return this.drainingFlag;
  }

  get isUsable(): boolean {
    return !this.ended;
  }

  get openStreams(): number {
    return this.connections.size;
  }

  get pendingDialCount(): number {
    return this.pendingDials.size;
  }

  info(): AgentInfo {
    return {
      agentId: this.agentId, identifiers: this.identifiers, peer: this.peer, connectedAt: this.connectedAt,
      draining: this.drainingFlag, openStreams: this.connections.size, tags: this.tags,
    };
  }

  start(): void {
    const stream = this.call.stream;
    this.link.start(this.onPacket, (error) => {
      this.log.warn({ agentId: this.agentId, err: error }, 'malformed message from agent; ending its stream');
      this.call.finish(GrpcStatus.INTERNAL, error.message);
      this.teardown(error);
    });
    // The agent half-closed: finish our side with OK, as upstream does on EOF.
    stream.on('end', () => {
      this.call.finish(GrpcStatus.OK);
      this.teardown(undefined);
    });
    stream.on('close', () => this.teardown(new Error('agent stream closed')));
    stream.on('aborted', () => this.teardown(new Error('agent stream cancelled')));
    stream.on('error', (error) => this.teardown(error));
  }

  shutdown(code: GrpcStatus = GrpcStatus.OK, message = ''): void {
    this.call.finish(code, message);
    this.teardown(new Error(message || 'tunnel server closing'));
  }

  /** The agent exceeded a bound: end its stream (its connections are lost) rather than let it grow. */
  private exceeded(message: string): void {
    if (this.ended) return;
    this.log.warn({ agentId: this.agentId, peer: this.peer }, `agent exceeded its bounds: ${message}; ending its stream`);
    this.shutdown(GrpcStatus.RESOURCE_EXHAUSTED, message);
  }

  /** A control packet, whatever the congestion, unless the agent stopped reading them: then the stream ends. */
  private control(packet: Parameters<PacketLink['send']>[0]): void {
    if (!this.link.sendControl(packet)) this.exceeded('the agent does not read its control packets');
  }

  /** Logs a kind of misbehaviour at most once per WARN_INTERVAL_MS, with how many were not logged. */
  private warnOnce(kind: string, fields: object, message: string): void {
    const now = Date.now();
    const last = this.warned.get(kind);
    if (last && now - last.at < WARN_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    this.warned.set(kind, { at: now, suppressed: 0 });
    this.log.warn({ agentId: this.agentId, ...fields, ...(last?.suppressed ? { suppressed: last.suppressed } : {}) }, message);
  }

  dial(address: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<TunnelStream> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        const error = new DialError('aborted', `dial to ${address} aborted`, { cause: signal.reason });
        this.hooks.dialFailed(this.info(), address, error);
        reject(error);
        return;
      }
      if (this.connections.size + this.pendingDials.size >= this.limits.connectionsPerStream) {
        const error = new DialError('refused', `agent ${this.agentId} already carries ${this.limits.connectionsPerStream} connections (the limit)`);
        this.hooks.dialFailed(this.info(), address, error);
        reject(error);
        return;
      }
      const random = this.newDialId();
      const pending: PendingDial = {
        address,
        startedAt: performance.now(),
        resolve,
        reject,
        signal,
        timer: setTimeout(() => this.abandonDial(random, new DialError('timeout', `dial to ${address} via agent ${this.agentId} timed out after ${timeoutMs} ms`)), timeoutMs),
        onAbort: () => this.abandonDial(random, new DialError('aborted', `dial to ${address} aborted`, { cause: signal?.reason })),
      };
      signal?.addEventListener('abort', pending.onAbort, { once: true });
      this.pendingDials.set(random, pending);
      this.link.send({ type: PacketType.DIAL_REQ, protocol: 'tcp', address, random });
    });
  }

  forget(connectId: bigint): void {
    this.connections.delete(connectId);
  }

  countBytesToAgent(n: number): void {
    this.hooks.counters.bytesToAgents += n;
  }

  countBytesFromAgent(n: number): void {
    this.hooks.counters.bytesFromAgents += n;
  }

  private newDialId(): bigint {
    for (;;) {
      const id = randomBytes(8).readBigUInt64BE() & DIAL_ID_MASK;
      if (id !== 0n && !this.pendingDials.has(id)) return id;
    }
  }

  private takePending(random: bigint): PendingDial | undefined {
    const pending = this.pendingDials.get(random);
    if (!pending) return undefined;
    this.pendingDials.delete(random);
    clearTimeout(pending.timer);
    pending.signal?.removeEventListener('abort', pending.onAbort);
    return pending;
  }

  private failDial(pending: PendingDial, error: DialError): void {
    this.hooks.dialFailed(this.info(), pending.address, error);
    pending.reject(error);
  }

  /** Timeout or caller abort: tell the agent (our agents cancel the dial; upstream ones ignore it). */
  private abandonDial(random: bigint, error: DialError): void {
    const pending = this.takePending(random);
    if (!pending) return;
    this.control({ type: PacketType.DIAL_CLS, random });
    this.failDial(pending, error);
  }

  private readonly onPacket = (packet: ReceivedPacket): void => {
    switch (packet.type) {
      case PacketType.DATA: {
        const connection = this.connections.get(packet.connectId);
        if (!connection) {
          if (++this.misbehaviour.unknownConnection > this.limits.unknownConnectionPackets) return this.exceeded(`more than ${this.limits.unknownConnectionPackets} DATA packets for unknown connections`);
          if (this.refusedConnectIds.has(packet.connectId)) return;
          if (this.refusedConnectIds.size >= 4096) this.refusedConnectIds.delete(this.refusedConnectIds.values().next().value!);
          this.refusedConnectIds.add(packet.connectId);
          this.log.debug({ agentId: this.agentId, connectId: packet.connectId }, 'DATA for unknown connection; closing it');
          this.control({ type: PacketType.CLOSE_REQ, connectId: packet.connectId });
        } else if (packet.error) {
          connection.remoteFailed(packet.error);
        } else {
          connection.receive(packet.data);
        }
        return;
      }
      case PacketType.DIAL_RSP:
        return this.onDialResponse(packet.random, packet.connectId, packet.error);
      case PacketType.CLOSE_RSP: {
        const connection = this.connections.get(packet.connectId);
        if (connection) connection.remoteClosed(packet.error);
        else this.log.debug({ agentId: this.agentId, connectId: packet.connectId }, 'CLOSE_RSP for unknown connection');
        return;
      }
      case PacketType.DIAL_CLS: {
        const pending = this.takePending(packet.random);
        if (pending) this.failDial(pending, new DialError('cancelled-by-agent', `agent ${this.agentId} cancelled the dial to ${pending.address}`));
        return;
      }
      case PacketType.DRAIN:
        if (!this.drainingFlag) {
          this.drainingFlag = true;
          this.hooks.draining(this);
        }
        return;
      case PacketType.DIAL_REQ:
      case PacketType.CLOSE_REQ:
      case UNRECOGNIZED:
        if (++this.misbehaviour.ignored > this.limits.ignoredPackets) return this.exceeded(`more than ${this.limits.ignoredPackets} packets not meant for a server`);
        this.warnOnce('ignored', { type: packetTypeName(packet.type === UNRECOGNIZED ? packet.wireType : packet.type) }, 'ignoring packet not meant for a server');
        return;
    }
  };

  private onDialResponse(random: bigint, connectId: bigint, error: string): void {
    const pending = this.takePending(random);
    if (!pending) {
      // A late answer to a dial we abandoned: do not leak the agent's connection.
      if (!error && connectId !== 0n) this.control({ type: PacketType.CLOSE_REQ, connectId });
      return;
    }
    if (error) {
      this.failDial(pending, new DialError('refused', `agent ${this.agentId} could not dial ${pending.address}: ${error}`));
      return;
    }
    if (connectId === 0n || this.connections.has(connectId)) {
      if (connectId !== 0n) this.log.warn({ agentId: this.agentId, connectId }, 'agent reused a live connectID');
      this.failDial(pending, new DialError('refused', `agent ${this.agentId} answered with an unusable connectID ${connectId}`));
      return;
    }
    const stream = new TunnelStream(connectId, pending.address, this, this.streamHighWaterMark);
    this.connections.set(connectId, stream);
    this.hooks.dialSucceeded(this.info(), pending.address, connectId, performance.now() - pending.startedAt);
    pending.resolve(stream);
  }

  private teardown(error: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.link.close();
    for (const random of [...this.pendingDials.keys()]) {
      const pending = this.takePending(random);
      if (pending) this.failDial(pending, new DialError('agent-lost', `tunnel to agent ${this.agentId} ended before it answered the dial to ${pending.address}`, { cause: error }));
    }
    for (const connection of [...this.connections.values()]) connection.tunnelLost(error);
    this.connections.clear();
    this.hooks.ended(this, error);
  }
}

class StatusError extends Error {
  override readonly name = 'StatusError';
  constructor(
    readonly code: GrpcStatus,
    message: string,
  ) {
    super(message);
  }
}

function singleHeader(call: IncomingCall, key: string, required: true): string;
function singleHeader(call: IncomingCall, key: string, required: false): string | undefined;
function singleHeader(call: IncomingCall, key: string, required: boolean): string | undefined {
  const values = call.metadata(key);
  if (values.length === 0 && !required) return undefined;
  const [value] = values;
  if (values.length !== 1 || typeof value !== 'string' || (required && value === '')) {
    throw new HandshakeError('bad-metadata', `expected exactly one ${key} header, got ${values.length}`);
  }
  return value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
