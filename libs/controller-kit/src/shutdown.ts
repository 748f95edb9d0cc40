import type { Logger } from './logger.ts';

/**
 * SIGTERM/SIGINT drain: runs the registered stoppers in reverse order of registration (last started, first stopped),
 * each bounded by the grace period, then exits. A second signal exits at once.
 */
export class Shutdown {
  private readonly stoppers: Array<{ name: string; stop: () => Promise<void> | void }> = [];
  private stopping = false;
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();

  constructor(private readonly log: Logger, private readonly graceMs = 10_000) {
    this.signal = this.controller.signal;
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.on(sig, () => {
        if (this.stopping) process.exit(1);
        void this.run(sig).then(() => process.exit(0));
      });
    }
  }

  onStop(name: string, stop: () => Promise<void> | void): void {
    this.stoppers.push({ name, stop });
  }

  async run(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ reason }, 'shutting down');
    this.controller.abort();
    for (const { name, stop } of [...this.stoppers].reverse()) {
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.graceMs).unref());
      try {
        const result = await Promise.race([Promise.resolve(stop()).then(() => 'done' as const), timer]);
        if (result === 'timeout') this.log.warn({ stopper: name }, 'stop timed out');
      } catch (err) {
        this.log.error({ stopper: name, err }, 'stop failed');
      }
    }
    this.log.info('stopped');
  }
}
