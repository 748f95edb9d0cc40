import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { Counter, type Registry } from 'prom-client';
import { loadCredentials, type Credentials } from './credentials.ts';
import { ApiError } from './errors.ts';

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  plural: string;
  namespaced: boolean;
}

export const RESOURCES = {
  nodes: { group: '', version: 'v1', plural: 'nodes', namespaced: false },
  namespaces: { group: '', version: 'v1', plural: 'namespaces', namespaced: false },
  serviceAccounts: { group: '', version: 'v1', plural: 'serviceaccounts', namespaced: true },
  pods: { group: '', version: 'v1', plural: 'pods', namespaced: true },
  configMaps: { group: '', version: 'v1', plural: 'configmaps', namespaced: true },
  secrets: { group: '', version: 'v1', plural: 'secrets', namespaced: true },
  services: { group: '', version: 'v1', plural: 'services', namespaced: true },
  endpoints: { group: '', version: 'v1', plural: 'endpoints', namespaced: true },
  events: { group: 'events.k8s.io', version: 'v1', plural: 'events', namespaced: true },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true },
  endpointSlices: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true },
  crds: { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', namespaced: false },
  csrs: { group: 'certificates.k8s.io', version: 'v1', plural: 'certificatesigningrequests', namespaced: false },
  gateways: { group: 'raven.openyurt.io', version: 'v1beta1', plural: 'gateways', namespaced: false },
  blockAffinities: { group: 'crd.projectcalico.org', version: 'v1', plural: 'blockaffinities', namespaced: false },
} as const satisfies Record<string, ResourceType>;

export interface ObjectRef {
  namespace?: string;
  name?: string;
  subresource?: string;
}

export function resourcePath(type: ResourceType, ref: ObjectRef = {}): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const ns = type.namespaced && ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : '';
  const name = ref.name ? `/${encodeURIComponent(ref.name)}` : '';
  const sub = ref.subresource ? `/${ref.subresource}` : '';
  return `${base}${ns}/${type.plural}${name}${sub}`;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RequestInit {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ListResult<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

const CREDENTIAL_REFRESH_MS = 60_000;
/** Default bound on concurrent requests (watches excluded); each keeps its TLS connection for the next one. */
export const DEFAULT_MAX_CONNECTIONS = 32;
/** Objects per list page: two pages for 10,000 Nodes, each small enough to decode without a long pause. */
export const LIST_PAGE_SIZE = 5_000;

export interface KubeClientOptions {
  kubeconfig?: string | readonly string[];
  userAgent: string;
  /** Connections for requests other than watches; more concurrent requests wait for a free one. */
  maxConnections?: number;
}

/**
 * A lean JSON client for the Kubernetes API on node:https. Requests share a bounded pool of keep-alive connections
 * (a burst queues for a connection instead of opening, and TLS-handshaking, one per request and closing the excess);
 * watches, which hold a connection for minutes, have their own agent so they never take a slot from requests. Credentials come from
 * `--kubeconfig`, then $KUBECONFIG, then the in-cluster ServiceAccount (see credentials.ts); headers (bearer tokens)
 * are re-read periodically so that rotated projected ServiceAccount tokens keep working.
 */
export class KubeClient {
  private readonly agent: Agent;
  private readonly watchAgent: Agent;
  private headers: Record<string, string> = {};
  private headersAt = 0;
  private requests?: Counter<'verb' | 'code'>;
  readonly server: URL;
  /** The cluster CA (PEM) of the configuration, when it names one. */
  readonly caPem?: string;

  private constructor(private readonly credentials: Credentials, readonly userAgent: string, maxConnections: number) {
    this.server = credentials.server;
    this.caPem = credentials.caPem;
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new RangeError(`maxConnections must be a positive integer, not ${maxConnections}`);
    this.agent = new Agent({ keepAlive: true, maxSockets: maxConnections, maxFreeSockets: maxConnections, scheduling: 'lifo', ...credentials.tls });
    this.watchAgent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4, ...credentials.tls });
  }

  static async load(opts: KubeClientOptions): Promise<KubeClient> {
    const client = new KubeClient(await loadCredentials(opts.kubeconfig), opts.userAgent, opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
    await client.refreshHeaders();
    return client;
  }

  /** Counts API requests by verb and status code in `<prefix>_api_requests_total` (writes per resync, error rates). */
  instrument(registry: Registry, prefix: string): void {
    this.requests = new Counter({ name: `${prefix}_api_requests_total`, help: 'Kubernetes API requests by verb and HTTP status', labelNames: ['verb', 'code'], registers: [registry] });
  }

  private async refreshHeaders(): Promise<void> {
    this.headers = await this.credentials.headers();
    this.headersAt = Date.now();
  }

  private async send(method: string, path: string, init: RequestInit): Promise<IncomingMessage> {
    if (Date.now() - this.headersAt > CREDENTIAL_REFRESH_MS) await this.refreshHeaders();
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(init.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const payload = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        agent: init.query?.watch ? this.watchAgent : this.agent,
        headers: {
          ...this.headers,
          Accept: 'application/json',
          'User-Agent': this.userAgent,
          ...(payload !== undefined ? { 'Content-Type': init.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        },
        signal: init.signal,
        timeout: init.timeoutMs ?? 30_000,
      }, (res) => {
        this.requests?.inc({ verb: init.query?.watch ? 'WATCH' : method, code: String(res.statusCode ?? 0) });
        resolve(res);
      });
      req.on('error', (err) => {
        this.requests?.inc({ verb: method, code: 'error' });
        reject(err);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: request timed out`)));
      req.end(payload);
    });
  }

  async request<T>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.send(method, path, init);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
    throw toApiError(status, text, method, path);
  }

  /** A request whose answer is not JSON (logs, the node proxy), returned as text. */
  async requestText(method: string, path: string, init: RequestInit = {}): Promise<string> {
    const res = await this.send(method, path, init);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return text;
    throw toApiError(status, text, method, path);
  }

  get<T>(type: ResourceType, ref: ObjectRef): Promise<T> {
    return this.request('GET', resourcePath(type, ref));
  }

  list<T>(type: ResourceType, opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number; continue?: string; resourceVersion?: string } = {}): Promise<ListResult<T>> {
    const { namespace, ...query } = opts;
    return this.request('GET', resourcePath(type, { namespace }), { query, timeoutMs: 120_000 });
  }

  /**
   * Yields every page of a chunked list (`limit`/`continue`). The next page is already being fetched while the
   * caller works on the current one, so decoding a large list overlaps with the apiserver producing it.
   */
  async *listPages<T>(type: ResourceType, opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number } = {}): AsyncGenerator<ListResult<T>> {
    const query = { ...opts, limit: opts.limit ?? LIST_PAGE_SIZE };
    let next: Promise<ListResult<T>> | undefined = this.list<T>(type, query);
    try {
      while (next) {
        const page: ListResult<T> = await next;
        const cont = page.metadata.continue || undefined;
        next = cont ? this.list<T>(type, { ...query, continue: cont }) : undefined;
        yield page;
      }
    } finally {
      // A caller that stops early leaves a prefetch in flight: its failure is nobody's business.
      next?.catch(() => undefined);
    }
  }

  /** Lists every page, returning all items and the list's resourceVersion. */
  async listAll<T>(type: ResourceType, opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number } = {}): Promise<ListResult<T>> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    for await (const page of this.listPages<T>(type, opts)) {
      for (const item of page.items) items.push(item);
      resourceVersion = page.metadata.resourceVersion;
    }
    return { items, metadata: { resourceVersion } };
  }

  create<T>(type: ResourceType, body: { metadata?: { namespace?: string; [key: string]: unknown }; [key: string]: unknown }, opts: { fieldManager?: string } = {}): Promise<T> {
    return this.request('POST', resourcePath(type, { namespace: body.metadata?.namespace }), { body, query: { fieldManager: opts.fieldManager } });
  }

  replace<T>(type: ResourceType, ref: ObjectRef, body: object, opts: { fieldManager?: string } = {}): Promise<T> {
    return this.request('PUT', resourcePath(type, ref), { body, query: { fieldManager: opts.fieldManager } });
  }

  patch<T>(type: ResourceType, ref: ObjectRef, patch: unknown, patchType: PatchType, opts: { fieldManager?: string; force?: boolean } = {}): Promise<T> {
    return this.request('PATCH', resourcePath(type, ref), {
      body: patch,
      contentType: PATCH_CONTENT_TYPE[patchType],
      query: { fieldManager: opts.fieldManager, force: opts.force },
    });
  }

  delete(type: ResourceType, ref: ObjectRef, opts: { preconditionUid?: string; propagationPolicy?: string } = {}): Promise<unknown> {
    const body = { apiVersion: 'v1', kind: 'DeleteOptions', ...(opts.preconditionUid ? { preconditions: { uid: opts.preconditionUid } } : {}), ...(opts.propagationPolicy ? { propagationPolicy: opts.propagationPolicy } : {}) };
    return this.request('DELETE', resourcePath(type, ref), { body });
  }

  /**
   * Streams watch events until the server ends the watch (resolves) or it fails (rejects; an in-band
   * ERROR event with a Status becomes an ApiError, e.g. 410 Gone when the resourceVersion is too old).
   */
  async watch<T>(
    type: ResourceType,
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; resourceVersion?: string; timeoutSeconds?: number },
    onEvent: (event: WatchEvent<T>) => void,
    signal?: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    const { namespace, ...query } = opts;
    const path = resourcePath(type, { namespace });
    const res = await this.send('GET', path, {
      query: { ...query, watch: true, allowWatchBookmarks: true },
      signal,
      timeoutMs: ((opts.timeoutSeconds ?? 300) + 30) * 1_000,
    });
    if ((res.statusCode ?? 0) !== 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      throw toApiError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), 'WATCH', path);
    }
    res.socket.setKeepAlive(true, 30_000);
    onOpen?.();
    const lines = new LineDecoder();
    for await (const chunk of res) {
      for (const line of lines.push(chunk as Buffer)) {
        const event = JSON.parse(line) as WatchEvent<T>;
        if (event.type === 'ERROR') {
          const status = event.object as { code?: number; reason?: string; message?: string };
          throw new ApiError(status.code ?? 500, status.reason ?? 'WatchError', status.message ?? 'watch error', 'WATCH', path);
        }
        onEvent(event);
      }
    }
  }

  /** Open connections of the request pool (busy or idle), never more than `maxConnections`. */
  pooledConnections(): number {
    const count = (m: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(m).reduce((n, list) => n + (list?.length ?? 0), 0);
    return count(this.agent.sockets) + count(this.agent.freeSockets);
  }

  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}

/**
 * Splits a byte stream into its non-empty lines. Bytes are decoded as one UTF-8 stream, so a character whose bytes
 * arrive in two chunks is decoded whole (a per-chunk toString would turn both halves into U+FFFD).
 */
export class LineDecoder {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  push(chunk: Buffer): string[] {
    this.pending += this.decoder.write(chunk);
    const parts = this.pending.split('\n');
    this.pending = parts.pop()!;
    return parts.filter((line) => line.trim() !== '');
  }
}

function toApiError(status: number, text: string, method: string, path: string): ApiError {
  let reason = String(status);
  let message = text.slice(0, 2_000);
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    reason = parsed.reason ?? reason;
    message = parsed.message ?? message;
  } catch {
    // not a Status object; keep the raw text
  }
  return new ApiError(status, reason, message, method, path);
}
