import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from './logger.ts';
import { WorkQueue } from './workqueue.ts';

export interface ControllerOptions {
  name: string;
  log: Logger;
  registry: Registry;
  metricPrefix: string;
  workers?: number;
  /** Every period, `resyncKeys()` is enqueued, so nothing stays stale even if an event was missed. */
  resyncMs?: number;
  resyncKeys?: () => string[];
  reconcile: (key: string, log: Logger) => Promise<void>;
}

type ControllerMetrics = { duration: Histogram<'controller' | 'result'>; errors: Counter<'controller'>; resync: Gauge<'controller'>; resyncs: Counter<'controller'> };
const metricsByRegistry = new WeakMap<Registry, ControllerMetrics>();

/** A named reconcile loop: keyed queue, N workers, periodic resync, duration/error metrics, one log line per failure. */
export class Controller {
  readonly queue: WorkQueue;
  private resyncTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly metrics: ControllerMetrics;
  /** Keys of the resync in progress, to time how long a full pass takes. */
  private resyncPending?: { keys: Set<string>; started: number };

  constructor(private readonly opts: ControllerOptions) {
    this.queue = new WorkQueue({ name: opts.name, registry: opts.registry });
    let m = metricsByRegistry.get(opts.registry);
    if (!m) {
      m = {
        duration: new Histogram({ name: `${opts.metricPrefix}_reconcile_duration_seconds`, help: 'Reconcile duration by controller and result', labelNames: ['controller', 'result'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [opts.registry] }),
        errors: new Counter({ name: `${opts.metricPrefix}_reconcile_errors_total`, help: 'Failed reconciles by controller', labelNames: ['controller'], registers: [opts.registry] }),
        resyncs: new Counter({ name: `${opts.metricPrefix}_resyncs_total`, help: 'Completed periodic resyncs', labelNames: ['controller'], registers: [opts.registry] }),
        resync: new Gauge({ name: `${opts.metricPrefix}_last_resync_duration_seconds`, help: 'Time the last periodic resync took to reconcile every key', labelNames: ['controller'], registers: [opts.registry] }),
      };
      metricsByRegistry.set(opts.registry, m);
    }
    this.metrics = m;
  }

  get name(): string {
    return this.opts.name;
  }

  enqueue(key: string | undefined): void {
    if (key) this.queue.add(key);
  }

  /** Starts the workers; resolves when `stop()` has drained them. */
  start(): void {
    const { log, reconcile, resyncMs, resyncKeys, name } = this.opts;
    for (const key of resyncKeys?.() ?? []) this.queue.add(key);
    if (resyncMs && resyncKeys) {
      this.resyncTimer = setInterval(() => {
        const keys = resyncKeys();
        this.resyncPending = { keys: new Set(keys), started: performance.now() };
        for (const key of keys) this.queue.add(key);
        this.resyncProgress();
      }, resyncMs);
      this.resyncTimer.unref();
    }
    this.running = this.queue.run(
      async (key) => {
        const end = this.metrics.duration.startTimer({ controller: name });
        try {
          await reconcile(key, log);
          end({ result: 'success' });
        } catch (err) {
          end({ result: 'error' });
          throw err;
        } finally {
          this.resyncProgress(key);
        }
      },
      this.opts.workers ?? 1,
      (key, err) => {
        this.metrics.errors.inc({ controller: name });
        log.warn({ key, err: err instanceof Error ? err.message : String(err), retries: this.queue.retries(key) }, 'reconcile failed; will retry');
      },
    );
  }

  private resyncProgress(done?: string): void {
    const pending = this.resyncPending;
    if (!pending) return;
    if (done) pending.keys.delete(done);
    if (pending.keys.size === 0) {
      this.metrics.resync.set({ controller: this.opts.name }, (performance.now() - pending.started) / 1_000);
      this.metrics.resyncs.inc({ controller: this.opts.name });
      this.resyncPending = undefined;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.queue.shutdown();
    await this.running;
  }
}
