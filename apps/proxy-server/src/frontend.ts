import { connect as netConnect, createServer as createNetServer, isIP, type Server as NetServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { checkServerIdentity, connect as tlsConnect, createServer as createTlsServer, type PeerCertificate, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from '@raven/controller-kit';
import { PROXY_HOST_HEADER } from '@raven/api-types';
import { DialError } from '@raven/tunnel-protocol';
import { callerOfCertificate, verbOfMethod, type NodeProxyAuthorizer } from './authz.ts';
import { HeadError, readHead, type RequestHead } from './head.ts';
import type { ProxyMetrics } from './metrics.ts';
import { RequestFramer, switchesProtocol, type Segment } from './requests.ts';
import { RouteError, refuseForbiddenTarget, routeRequest, type Frontend, type RouteTarget, type SelfFacts } from './routing.ts';
import type { ClusterView, DomainKey } from './cluster-view.ts';
import type { TunnelHub } from './tunnels.ts';

export interface TargetTls {
  /** CA bundle target certificates must chain to. */
  ca: string;
  /** Client certificate presented to targets (for example a kubelet client certificate), if configured. */
  cert?: string;
  key?: string;
  /** Skip verification: only by an explicit flag, and logged at start. */
  insecure: boolean;
}

export interface Timeouts {
  /** Opening a connection to a target (tunnel dial or TCP connect) and its TLS handshake. */
  dialMs: number;
  /** Receiving the first request head. */
  headMs: number;
  /** Closing a connection with no traffic either way; 0 = never. */
  idleMs: number;
  /** After the caller half-closed: how long the target may still answer before the connection is closed. */
  halfCloseMs: number;
}

export interface FrontendLimits {
  /** Open front-end connections in all; more are closed at once. */
  connections: number;
  /** Open connections from one source address. */
  connectionsPerSource: number;
  /**
   * Connections routed per second, counted at their first request head (a token bucket with one second of burst);
   * more get 429. Later requests on an admitted connection are not counted: they cost no handshake.
   */
  headsPerSecond: number;
}

export interface FrontendOptions {
  view: ClusterView;
  hub: TunnelHub;
  /** The domain this server sits in: its targets are dialed directly, not through a tunnel. */
  ownDomain: () => DomainKey | undefined;
  isActive: () => boolean;
  /** This server's node, addresses and listener ports (never dialled). */
  self: () => SelfFacts;
  podNode: (namespace: string, pod: string) => Promise<string | undefined>;
  targetTls: () => TargetTls;
  /** Authorizes HTTPS callers (client certificate identity) on nodes/proxy of the target; absent only by an insecure flag. */
  authorizer: NodeProxyAuthorizer | undefined;
  timeouts: Timeouts;
  limits: FrontendLimits;
  metrics: ProxyMetrics;
  log: Logger;
}

/** Why a connection was not relayed after routing; the error metric's reason label. */
type RelayFailure = 'rate-limited' | 'unauthenticated' | 'forbidden' | 'authz-error' | 'standby' | 'no-client' | 'dial-timeout' | 'dial-refused' | 'tunnel-lost' | 'tls-verify' | 'upstream-error';

class RelayError extends Error {
  override readonly name = 'RelayError';
  constructor(readonly status: number, readonly reason: RelayFailure, message: string) {
    super(message);
  }
}

const MAX_HEAD = 64 * 1024;
const TLS_VERIFY_CODES = /CERT|SIGNATURE|ISSUER|SELF_SIGNED|ALTNAME|UNABLE_TO_(GET|VERIFY)|ERR_TLS/;
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/**
 * The internal front ends (10264 HTTP, 10263 HTTPS). A connection is routed by its first request head (node and
 * port, see routeRequest); then one connection is opened to that target (through a proxy-client of the node's
 * domain, or directly within our own domain; with TLS re-originated and verified for the HTTPS front end) and the
 * two are relayed byte for byte with backpressure, as konnectivity relays a CONNECT. Keep-alive requests, chunked
 * log follows, websocket and SPDY upgrades (exec, attach, port-forward) therefore pass end to end unchanged, and
 * every request on the connection goes to the node the first one named (clients pool connections per node name).
 *
 * Half-close: the tunnel protocol cannot carry one, so a caller's EOF is not passed through a tunnel; the target's
 * answer still flows back until the target closes or `halfCloseMs` of silence passes. Direct connections pass it.
 */
export class Frontends {
  private readonly live = new Set<Socket>();
  private readonly perSource = new Map<string, number>();
  private readonly closedBytes = { toTargets: 0, fromTargets: 0 };
  private readonly heads: { tokens: number; at: number };
  private lastShedLog = 0;

  constructor(private readonly opts: FrontendOptions) {
    this.heads = { tokens: opts.limits.headsPerSecond, at: Date.now() };
  }

  createHttpServer(): NetServer {
    return createNetServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept('http', socket));
  }

  /** The certificate (and the client CA) come from the caller's serveCurrentCertificate, which follows rotation. */
  createHttpsServer(opts: { requireClientCert: boolean }): TlsServer {
    return createTlsServer({
      allowHalfOpen: true, ALPNProtocols: ['http/1.1'],
      ...(opts.requireClientCert ? { requestCert: true, rejectUnauthorized: true } : {}),
    }, (socket) => this.accept('https', socket));
  }

  /** Bytes relayed so far (callers' view: read from callers = sent to targets), live connections included. */
  bytes(): { toTargets: number; fromTargets: number } {
    let { toTargets, fromTargets } = this.closedBytes;
    for (const socket of this.live) {
      toTargets += socket.bytesRead;
      fromTargets += socket.bytesWritten;
    }
    return { toTargets, fromTargets };
  }

  /** Lets open connections finish for up to `graceMs` (the listeners are closed already), then closes the rest. */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.live.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    for (const socket of this.live) socket.destroy();
  }

  private accept(frontend: Frontend, socket: Socket): void {
    const { metrics, limits } = this.opts;
    socket.on('error', () => undefined);
    const source = socket.remoteAddress ?? '';
    const fromSource = this.perSource.get(source) ?? 0;
    if (this.live.size >= limits.connections || fromSource >= limits.connectionsPerSource) {
      metrics.errors.inc({ reason: 'too-many-connections' });
      const now = Date.now();
      if (now - this.lastShedLog > 10_000) {
        this.lastShedLog = now;
        this.opts.log.warn({ frontend, source, open: this.live.size, fromSource }, 'front-end connection limit reached: closing new connections');
      }
      socket.destroy();
      return;
    }
    this.perSource.set(source, fromSource + 1);
    socket.setNoDelay(true);
    this.live.add(socket);
    metrics.streams.inc({ frontend });
    socket.once('close', () => {
      this.live.delete(socket);
      const left = (this.perSource.get(source) ?? 1) - 1;
      if (left > 0) this.perSource.set(source, left);
      else this.perSource.delete(source);
      this.closedBytes.toTargets += socket.bytesRead;
      this.closedBytes.fromTargets += socket.bytesWritten;
      metrics.streams.dec({ frontend });
    });
    void this.serve(frontend, socket);
  }

  private async serve(frontend: Frontend, socket: Socket): Promise<void> {
    const { metrics, timeouts } = this.opts;
    let first;
    try {
      first = await readHead(socket, MAX_HEAD, timeouts.headMs);
    } catch (err) {
      return this.refuse(socket, frontend, err);
    }
    let target: RouteTarget;
    let upstream: Duplex;
    const framer = new RequestFramer(MAX_HEAD);
    try {
      if (!this.takeHeadToken()) throw new RelayError(429, 'rate-limited', 'raven proxy: too many requests; retry later');
      if (!this.opts.isActive()) throw new RelayError(503, 'standby', 'raven proxy: this proxy-server is on standby (not an elected proxy endpoint)');
      const { request } = first;
      framer.begin(request);
      target = await routeRequest(
        { frontend, host: request.host, proxyHost: request.headers.get(PROXY_HOST_HEADER), url: request.url, serverName: serverNameOf(socket) },
        this.opts.view, this.opts.podNode,
      );
      refuseForbiddenTarget(target, this.opts.self());
      await this.authorize(frontend, socket, request, target);
      upstream = await this.connect(target);
    } catch (err) {
      return this.refuse(socket, frontend, err, first.request.host, first.request.url);
    }
    if (socket.destroyed) return void upstream.destroy();
    metrics.requests.inc({ frontend, code: 'relayed' });
    upstream.write(first.head);
    this.relay(socket, upstream, target.domain === this.opts.ownDomain() && !target.tls, framer, first.rest, (request) => this.admitNext(frontend, socket, target, request));
  }

  /**
   * A further request on a keep-alive connection: it must name the same target as the first (else the connection
   * closes: clients pool connections per target) and be authorized for its own verb. Returns why not, if not.
   */
  private async admitNext(frontend: Frontend, socket: Socket, target: RouteTarget, request: RequestHead): Promise<string | undefined> {
    try {
      const next = await routeRequest(
        { frontend, host: request.host, proxyHost: request.headers.get(PROXY_HOST_HEADER), url: request.url, serverName: serverNameOf(socket) },
        this.opts.view, this.opts.podNode,
      );
      if (next.node !== target.node || next.port !== target.port) return `a later request names ${next.node}:${next.port}, not ${target.node}:${target.port}`;
      await this.authorize(frontend, socket, request, target);
      this.opts.metrics.requests.inc({ frontend, code: 'relayed' });
      return undefined;
    } catch (err) {
      const { status, reason, message } = classify(err);
      this.opts.metrics.errors.inc({ reason });
      this.opts.metrics.requests.inc({ frontend, code: String(status) });
      return message;
    }
  }

  private takeHeadToken(): boolean {
    const { headsPerSecond } = this.opts.limits;
    const now = Date.now();
    this.heads.tokens = Math.min(headsPerSecond, this.heads.tokens + ((now - this.heads.at) * headsPerSecond) / 1000);
    this.heads.at = now;
    if (this.heads.tokens < 1) return false;
    this.heads.tokens--;
    return true;
  }

  /** HTTPS callers need RBAC on nodes/proxy of the target node, as the kubelet requires of its own callers. */
  private async authorize(frontend: Frontend, socket: Socket, request: RequestHead, target: RouteTarget): Promise<void> {
    const { authorizer } = this.opts;
    if (!authorizer || frontend !== 'https') return;
    const caller = callerOfCertificate((socket as TLSSocket).getPeerCertificate?.());
    if (!caller) throw new RelayError(401, 'unauthenticated', 'raven proxy: a client certificate naming the caller is required');
    // A protocol switch (exec, attach, port-forward over websocket or SPDY) is a create, whatever its method.
    const verb = switchesProtocol(request) ? 'create' : verbOfMethod(request.method);
    let decision;
    try {
      decision = await authorizer.authorize(caller, verb, target.node);
    } catch (err) {
      throw new RelayError(503, 'authz-error', `raven proxy: could not authorize the request: ${(err as Error).message}`);
    }
    if (!decision.allowed) throw new RelayError(403, 'forbidden', `raven proxy: user ${JSON.stringify(caller.user)} may not ${verb} nodes/proxy of node ${target.node}: ${decision.reason}`);
  }

  /**
   * Both ways with backpressure; the target's EOF ends the caller's side; see the class comment for the caller's.
   * Caller bytes go through the framer, so every further request head is admitted (admitNext) before it is passed on;
   * one that is not closes the connection.
   */
  private relay(caller: Socket, upstream: Duplex, passHalfClose: boolean, framer: RequestFramer, rest: Buffer, admitNext: (request: RequestHead) => Promise<string | undefined>): void {
    const { idleMs, halfCloseMs } = this.opts.timeouts;
    upstream.on('error', () => caller.destroy());
    caller.on('error', () => upstream.destroy());
    upstream.once('close', () => {
      // Whatever the target sent is flushed to the caller before its socket closes.
      if (caller.writableEnded || caller.destroyed) return;
      caller.end();
      caller.setTimeout(halfCloseMs, () => caller.destroy());
    });
    caller.once('close', () => upstream.destroy());
    upstream.once('end', () => caller.end());
    let callerEnded = false;
    const queue: Segment[] = [];
    let pumping = false;
    const onCallerEnd = () => {
      if (passHalfClose) upstream.end();
      else caller.setTimeout(halfCloseMs, () => caller.destroy());
    };
    const close = (why: string) => {
      this.opts.log.info({ why }, 'keep-alive connection closed');
      caller.destroy();
      upstream.destroy();
    };
    const pump = async () => {
      if (pumping) return;
      pumping = true;
      caller.pause();
      while (queue.length > 0 && !caller.destroyed && !upstream.destroyed) {
        const segment = queue.shift()!;
        if (segment.kind === 'head') {
          const refused = await admitNext(segment.request);
          if (refused) return close(refused);
        }
        const data = segment.kind === 'head' ? segment.head : segment.data;
        if (!upstream.write(data)) await drained(upstream);
      }
      pumping = false;
      if (callerEnded) onCallerEnd();
      else caller.resume();
    };
    const feed = (chunk: Buffer) => {
      try {
        queue.push(...framer.push(chunk));
      } catch (err) {
        return close(`unparseable later request: ${(err as Error).message}`);
      }
      void pump();
    };
    caller.on('data', feed);
    caller.once('end', () => {
      callerEnded = true;
      if (!pumping) onCallerEnd();
    });
    if (idleMs > 0) caller.setTimeout(idleMs, () => caller.destroy());
    upstream.pipe(caller, { end: false });
    if (rest.length > 0) feed(rest);
    else caller.resume();
  }

  /** Opens a byte stream to the target: tunnel or direct, then TLS if the front end was HTTPS. */
  private async connect(target: RouteTarget): Promise<Duplex> {
    const { hub, metrics, timeouts } = this.opts;
    const address = `${isIP(target.ip) === 6 ? `[${target.ip}]` : target.ip}:${target.port}`;
    let raw: Duplex;
    if (target.domain === this.opts.ownDomain()) {
      const started = performance.now();
      raw = await tcpConnect(target.ip, target.port, timeouts.dialMs).catch((err: NodeJS.ErrnoException) => {
        metrics.dialSeconds.observe({ path: 'direct', result: err.code ?? 'error' }, (performance.now() - started) / 1000);
        throw err;
      });
      metrics.dialSeconds.observe({ path: 'direct', result: 'ok' }, (performance.now() - started) / 1000);
    } else {
      raw = await hub.dial(target.domain, address, { timeoutMs: timeouts.dialMs });
    }
    if (!target.tls) return raw;
    return this.startTls(raw, target);
  }

  private startTls(raw: Duplex, target: RouteTarget): Promise<TLSSocket> {
    const tls = this.opts.targetTls();
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        socket: raw, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure,
        servername: target.node, ALPNProtocols: ['http/1.1'],
        // The node name is required; its IP only when no other node (in any domain) has it: edge IPs repeat.
        checkServerIdentity: (_host, cert) => verifyTargetIdentity(target, cert),
      });
      const timer = setTimeout(() => socket.destroy(new RelayError(504, 'dial-timeout', `raven proxy: TLS handshake with ${target.node} timed out`)), this.opts.timeouts.dialMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        raw.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(socket);
      });
    });
  }

  private refuse(socket: Socket, frontend: Frontend, err: unknown, host?: string, url?: string): void {
    const { status, reason, message } = classify(err);
    this.opts.metrics.errors.inc({ reason });
    this.opts.metrics.requests.inc({ frontend, code: String(status) });
    this.opts.log.info({ frontend, status, reason, host: truncate(host), url: truncate(url), err: message }, 'request not relayed');
    if (socket.destroyed) return;
    const body = `${message}\n`;
    socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    socket.setTimeout(5_000, () => socket.destroy());
  }
}

const LOGGED_CHARS = 256;

/** Caller-supplied text goes into logs at most LOGGED_CHARS long. */
function truncate(text: string | undefined): string | undefined {
  return text !== undefined && text.length > LOGGED_CHARS ? `${text.slice(0, LOGGED_CHARS)}... (${text.length} chars)` : text;
}

function classify(err: unknown): { status: number; reason: string; message: string } {
  if (err instanceof RouteError || err instanceof RelayError) return { status: err.status, reason: err.reason, message: err.message };
  if (err instanceof HeadError) return { status: err.status, reason: 'bad-request', message: `raven proxy: ${err.message}` };
  if (err instanceof DialError) {
    switch (err.reason) {
      case 'no-agent': return { status: 502, reason: 'no-client', message: `raven proxy: ${err.message}` };
      case 'timeout': return { status: 504, reason: 'dial-timeout', message: `raven proxy: ${err.message}` };
      case 'refused': return { status: 502, reason: 'dial-refused', message: `raven proxy: ${err.message}` };
      default: return { status: 502, reason: 'tunnel-lost', message: `raven proxy: ${err.message}` };
    }
  }
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code && TLS_VERIFY_CODES.test(e.code)) return { status: 502, reason: 'tls-verify', message: `raven proxy: the target's TLS certificate failed verification: ${e.message}` };
  if (e?.code === 'ETIMEDOUT') return { status: 504, reason: 'dial-timeout', message: `raven proxy: ${e.message}` };
  if (e?.code === 'ECONNREFUSED') return { status: 502, reason: 'dial-refused', message: `raven proxy: ${e.message}` };
  return { status: 502, reason: 'upstream-error', message: `raven proxy: ${e?.message ?? String(err)}` };
}

export function verifyTargetIdentity(target: Pick<RouteTarget, 'node' | 'ip' | 'ipUnique'>, cert: PeerCertificate): Error | undefined {
  const byName = checkServerIdentity(target.node, cert);
  if (!byName) return undefined;
  if (target.ipUnique && !checkServerIdentity(target.ip, cert)) return undefined;
  return target.ipUnique ? byName : new Error(`${byName.message}; its IP ${target.ip} is not unique across domains, so only the node name identifies it`);
}

/** Resolves on the stream's next 'drain' (or its close), leaving no listener behind. */
function drained(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`connect ${host}:${port} timed out`), { code: 'ETIMEDOUT' })), timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
  });
}

/** The SNI of a TLS front-end connection (Node sets `servername` on server-side TLSSockets); none on plain HTTP. */
function serverNameOf(socket: Socket): string | undefined {
  const name = (socket as Partial<TLSSocket>).servername;
  return typeof name === 'string' && name !== '' ? name : undefined;
}
