import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WorkQueueOptions {
  name: string;
  /** Per-key retry backoff: base * 2^failures, capped. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  registry?: Registry;
}

interface QueueMetrics {
  depth: Gauge<'name'>;
  adds: Counter<'name'>;
  retries: Counter<'name'>;
  latency: Histogram<'name'>;
  work: Histogram<'name'>;
  /** Queues whose in-flight work the scrape-time gauges read. */
  queues: Set<WorkQueue>;
}

const metricsByRegistry = new WeakMap<Registry, QueueMetrics>();
const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

/** client-go's workqueue metric names and meanings, so existing dashboards and alerts apply unchanged. */
function queueMetrics(registry: Registry): QueueMetrics {
  let m = metricsByRegistry.get(registry);
  if (!m) {
    const queues = new Set<WorkQueue>();
    const inFlight = (pick: (q: WorkQueue) => number) => function (this: Gauge<'name'>) {
      this.reset();
      for (const q of queues) this.set({ name: q.name }, pick(q));
    };
    m = {
      queues,
      depth: new Gauge({ name: 'workqueue_depth', help: 'Current depth of the work queue', labelNames: ['name'], registers: [registry] }),
      adds: new Counter({ name: 'workqueue_adds_total', help: 'Adds handled by the work queue', labelNames: ['name'], registers: [registry] }),
      retries: new Counter({ name: 'workqueue_retries_total', help: 'Retries (re-queues after a failed reconcile) handled by the work queue', labelNames: ['name'], registers: [registry] }),
      latency: new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long a key stays in the work queue before being processed', labelNames: ['name'], buckets: BUCKETS, registers: [registry] }),
      work: new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long processing a key takes', labelNames: ['name'], buckets: BUCKETS, registers: [registry] }),
    };
    new Gauge({ name: 'workqueue_unfinished_work_seconds', help: 'Seconds of work in progress not yet observed by work_duration', labelNames: ['name'], registers: [registry], collect: inFlight((q) => q.unfinishedSeconds()) });
    new Gauge({ name: 'workqueue_longest_running_processor_seconds', help: 'Seconds the longest-running processor of the queue has been running', labelNames: ['name'], registers: [registry], collect: inFlight((q) => q.longestRunningSeconds()) });
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
  private readonly startedAt = new Map<string, number>();
  private waiters: Array<() => void> = [];
  private shuttingDown = false;
  private readonly metrics?: QueueMetrics;

  constructor(private readonly opts: WorkQueueOptions) {
    if (opts.registry) {
      this.metrics = queueMetrics(opts.registry);
      this.metrics.queues.add(this);
    }
  }

  unfinishedSeconds(): number {
    const now = performance.now();
    let total = 0;
    for (const started of this.startedAt.values()) total += now - started;
    return total / 1_000;
  }

  longestRunningSeconds(): number {
    const oldest = Math.min(...this.startedAt.values());
    return Number.isFinite(oldest) ? (performance.now() - oldest) / 1_000 : 0;
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
    this.startedAt.set(key, performance.now());
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics?.latency.observe({ name: this.opts.name }, (performance.now() - added) / 1_000);
    this.metrics?.depth.set({ name: this.opts.name }, this.queue.length);
    return key;
  }

  private done(key: string): void {
    this.processing.delete(key);
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.metrics?.work.observe({ name: this.opts.name }, (performance.now() - started) / 1_000);
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
    this.metrics?.queues.delete(this);
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.queued.clear();
    for (const wake of this.waiters.splice(0)) wake();
  }
}
