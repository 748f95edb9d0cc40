import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WorkQueueOptions {
  name: string;
  /** Per-key retry backoff: base * 2^failures, capped. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  registry?: Registry;
  metricPrefix?: string;
}

interface QueueMetrics {
  depth: Gauge<'name'>;
  adds: Counter<'name'>;
  retries: Counter<'name'>;
  latency: Histogram<'name'>;
}

const metricsByRegistry = new WeakMap<Registry, QueueMetrics>();

function queueMetrics(registry: Registry, prefix: string): QueueMetrics {
  let m = metricsByRegistry.get(registry);
  if (!m) {
    m = {
      depth: new Gauge({ name: `${prefix}_workqueue_depth`, help: 'Keys waiting in the work queue', labelNames: ['name'], registers: [registry] }),
      adds: new Counter({ name: `${prefix}_workqueue_adds_total`, help: 'Keys added to the work queue', labelNames: ['name'], registers: [registry] }),
      retries: new Counter({ name: `${prefix}_workqueue_retries_total`, help: 'Keys re-queued after a failed reconcile', labelNames: ['name'], registers: [registry] }),
      latency: new Histogram({ name: `${prefix}_workqueue_queue_duration_seconds`, help: 'Time a key waits before being processed', labelNames: ['name'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] }),
    };
    metricsByRegistry.set(registry, m);
  }
  return m;
}

/**
 * A keyed work queue in the manner of client-go's: a key queued many times is processed once; a key is never
 * processed by two workers at once (re-adds while it runs mark it dirty and it runs again afterwards); failures
 * retry with per-key exponential backoff; delayed adds keep only the earliest due time per key.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  private readonly addedAt = new Map<string, number>();
  private waiters: Array<() => void> = [];
  private shuttingDown = false;
  private readonly metrics?: QueueMetrics;

  constructor(private readonly opts: WorkQueueOptions) {
    if (opts.registry) this.metrics = queueMetrics(opts.registry, opts.metricPrefix ?? 'raven');
  }

  get name(): string {
    return this.opts.name;
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    this.metrics?.adds.inc({ name: this.opts.name });
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.addedAt.set(key, performance.now());
    this.metrics?.depth.set({ name: this.opts.name }, this.queue.length);
    this.waiters.shift()?.();
  }

  /** Adds `key` after `ms`; an earlier pending delay for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const due = Date.now() + ms;
    const pending = this.delayed.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.delayed.set(key, { due, timer });
  }

  addRateLimited(key: string): void {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.metrics?.retries.inc({ name: this.opts.name });
    const base = this.opts.retryBaseMs ?? 5;
    this.addAfter(key, Math.min(this.opts.retryMaxMs ?? 60_000, base * 2 ** failures));
  }

  /** Clears the retry history of `key` (after it reconciled successfully). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  private async get(): Promise<string | undefined> {
    while (this.queue.length === 0) {
      if (this.shuttingDown) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const key = this.queue.shift()!;
    this.queued.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics?.latency.observe({ name: this.opts.name }, (performance.now() - added) / 1_000);
    this.metrics?.depth.set({ name: this.opts.name }, this.queue.length);
    return key;
  }

  private done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /**
   * Runs `workers` loops that take keys and call `handle`. A throw re-queues the key with backoff; success forgets
   * its failures. Resolves when `shutdown()` has been called and in-flight work has finished.
   */
  async run(handle: (key: string) => Promise<void>, workers = 1, onError?: (key: string, err: unknown) => void): Promise<void> {
    const loop = async () => {
      for (;;) {
        const key = await this.get();
        if (key === undefined) return;
        try {
          await handle(key);
          this.forget(key);
        } catch (err) {
          onError?.(key, err);
          if (!this.shuttingDown) this.addRateLimited(key);
        } finally {
          this.done(key);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, loop));
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.queued.clear();
    for (const wake of this.waiters.splice(0)) wake();
  }
}
