import { Counter, type Registry } from 'prom-client';

/**
 * A Prometheus Counter that mirrors a cumulative count kept elsewhere (WireGuard's per-peer rx/tx bytes): each
 * `update` adds the growth since the last one. A source that went backwards was reset (a recreated device), so its
 * new total is all growth; the exported counter never decreases, as the Counter contract requires.
 */
export class MirroredCounter<L extends string> {
  private readonly counter: Counter<L>;
  private readonly last = new Map<string, number>();

  constructor(opts: { name: string; help: string; labelNames: readonly L[]; registry: Registry }) {
    this.counter = new Counter({ name: opts.name, help: opts.help, labelNames: opts.labelNames, registers: [opts.registry] });
  }

  update(labels: Record<L, string>, total: number): void {
    if (!Number.isFinite(total) || total < 0) return;
    const key = JSON.stringify(Object.entries(labels).sort());
    const previous = this.last.get(key);
    this.last.set(key, total);
    const growth = previous === undefined || total < previous ? total : total - previous;
    if (growth > 0) this.counter.inc(labels as never, growth);
    else if (previous === undefined) this.counter.inc(labels as never, 0);
  }

  remove(labels: Record<L, string>): void {
    this.last.delete(JSON.stringify(Object.entries(labels).sort()));
    this.counter.remove(labels as never);
  }
}
