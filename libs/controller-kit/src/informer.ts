import { Counter, type Registry } from 'prom-client';
import { Backoff, delay } from './backoff.ts';
import { isGone } from './errors.ts';
import type { KubeClient, ResourceType, WatchEvent } from './kube-client.ts';
import type { Logger } from './logger.ts';

export interface ObjectWithMeta {
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string };
}

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T> {
  kube: KubeClient;
  type: ResourceType;
  log: Logger;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Turns a raw API object into what the cache keeps (validated, and projected to the fields the controller uses,
   * which keeps memory small with many objects). Returning undefined drops the object (logged).
   */
  transform: (raw: unknown) => T | undefined;
  registry?: Registry;
  metricPrefix?: string;
}

export const objectKey = (obj: ObjectWithMeta): string =>
  obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;

const restartCounters = new WeakMap<Registry, Counter<'resource' | 'reason'>>();

/**
 * List-then-watch cache of one resource type. Unlike @kubernetes/client-node's informer, which stops on any error
 * other than 410, this one never gives up: a failed list or watch is retried with backoff, a 410 Gone relists,
 * and a watch that ends normally resumes from the last resourceVersion (bookmarks keep it fresh).
 */
export class Informer<T extends ObjectWithMeta> {
  private readonly store = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private resourceVersion = '';
  private synced = false;
  private abort = new AbortController();
  private loop?: Promise<void>;
  private readonly restarts?: Counter<'resource' | 'reason'>;
  private syncWaiters: Array<() => void> = [];
  private connectedSince = 0;
  private readonly indexers = new Map<string, (obj: T) => string[]>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  constructor(private readonly opts: InformerOptions<T>) {
    if (opts.registry) {
      let counter = restartCounters.get(opts.registry);
      if (!counter) {
        counter = new Counter({ name: `${opts.metricPrefix ?? 'raven'}_informer_restarts_total`, help: 'List/watch restarts by resource and reason', labelNames: ['resource', 'reason'], registers: [opts.registry] });
        restartCounters.set(opts.registry, counter);
      }
      this.restarts = counter;
    }
  }

  get resource(): string {
    return this.opts.type.plural;
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /**
   * When the current list/watch session started (ms epoch): after an outage, what the cache says about the time in
   * between is not known to be fresh, so time-based judgements (lease expiry) should not reach back before this.
   */
  get sessionStartedAt(): number {
    return this.connectedSince;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => {
      this.syncWaiters.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Adds a secondary index (for example Nodes by gateway label); call before `start()`. */
  addIndex(name: string, indexFn: (obj: T) => string[]): void {
    this.indexers.set(name, indexFn);
    this.indices.set(name, new Map());
  }

  /** Objects whose index `name` includes `value`. */
  byIndex(name: string, value: string): T[] {
    const keys = this.indices.get(name)?.get(value);
    if (!keys) return [];
    return [...keys].map((k) => this.store.get(k)).filter((o): o is T => o !== undefined);
  }

  indexValues(name: string): string[] {
    return [...(this.indices.get(name)?.keys() ?? [])];
  }

  private setObject(key: string, obj: T | undefined): T | undefined {
    const old = this.store.get(key);
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name)!;
      if (old) for (const v of fn(old)) {
        const set = index.get(v);
        set?.delete(key);
        if (set?.size === 0) index.delete(v);
      }
      if (obj) for (const v of fn(obj)) {
        let set = index.get(v);
        if (!set) index.set(v, (set = new Set()));
        set.add(key);
      }
    }
    if (obj) this.store.set(key, obj);
    else this.store.delete(key);
    return old;
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  start(): void {
    if (this.loop) return;
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    this.loop = undefined;
  }

  private emit<K extends keyof InformerHandlers<T>>(kind: K, ...args: Parameters<NonNullable<InformerHandlers<T>[K]>>): void {
    for (const h of this.handlers) {
      try {
        (h[kind] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch (err) {
        this.opts.log.error({ err, resource: this.resource }, 'informer handler threw');
      }
    }
  }

  private parse(raw: unknown): T | undefined {
    try {
      const obj = this.opts.transform(raw);
      if (!obj) this.opts.log.warn({ resource: this.resource }, 'dropped an object that failed validation');
      return obj;
    } catch (err) {
      this.opts.log.warn({ resource: this.resource, err }, 'dropped an object that failed validation');
      return undefined;
    }
  }

  private async relist(): Promise<void> {
    const { kube, type, namespace, labelSelector, fieldSelector } = this.opts;
    const started = performance.now();
    const fresh = new Map<string, T>();
    let resourceVersion = '';
    // Each page is validated while the next one is fetched.
    for await (const page of kube.listPages<unknown>(type, { namespace, labelSelector, fieldSelector })) {
      for (const raw of page.items) {
        const obj = this.parse(raw);
        if (obj) fresh.set(objectKey(obj), obj);
      }
      resourceVersion = page.metadata.resourceVersion ?? '';
    }
    const listedMs = performance.now() - started;
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.setObject(key, undefined);
        this.emit('delete', old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.setObject(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', old, obj);
    }
    this.resourceVersion = resourceVersion;
    if (!this.synced) {
      this.opts.log.info({ resource: this.resource, items: this.store.size, listMs: Math.round(listedMs), totalMs: Math.round(performance.now() - started) }, 'cache synced');
      this.synced = true;
      for (const wake of this.syncWaiters.splice(0)) wake();
    }
  }

  private onEvent(event: WatchEvent<unknown>): void {
    const meta = (event.object as { metadata?: { resourceVersion?: string } }).metadata;
    if (meta?.resourceVersion) this.resourceVersion = meta.resourceVersion;
    if (event.type === 'BOOKMARK') return;
    const obj = this.parse(event.object);
    if (!obj) return;
    const key = objectKey(obj);
    if (event.type === 'DELETED') {
      const old = this.setObject(key, undefined);
      this.emit('delete', old ?? obj);
    } else {
      const old = this.setObject(key, obj);
      if (old) this.emit('update', old, obj);
      else this.emit('add', obj);
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(200, 10_000);
    let needList = true;
    let healthy = false;
    const opened = () => {
      if (!healthy) this.connectedSince = Date.now();
      healthy = true;
    };
    const { kube, type, namespace, labelSelector, fieldSelector, log } = this.opts;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          opened();
          needList = false;
        }
        // Randomised timeouts spread watch renewals, as client-go does.
        const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
        await kube.watch(type, { namespace, labelSelector, fieldSelector, resourceVersion: this.resourceVersion, timeoutSeconds }, (e) => this.onEvent(e), signal, opened);
        backoff.reset();
      } catch (err) {
        if (signal.aborted) break;
        healthy = false;
        if (isGone(err)) {
          this.restarts?.inc({ resource: this.resource, reason: 'gone' });
          log.info({ resource: this.resource }, 'watch expired (410); relisting');
          needList = true;
          continue;
        }
        this.restarts?.inc({ resource: this.resource, reason: 'error' });
        const wait = backoff.next();
        log.warn({ resource: this.resource, err, retryInMs: Math.round(wait) }, 'list/watch failed; restarting');
        await delay(wait, signal);
      }
    }
  }
}
