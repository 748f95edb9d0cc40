import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HealthServer, MirroredCounter, WorkQueue } from '../src/index.ts';

const valueOf = async (registry: Registry, name: string, labels: Record<string, string> = {}) => {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
};

describe('MirroredCounter', () => {
  it.each([
    { name: 'grows with the source', totals: [0, 100, 250], expected: 250 },
    { name: 'counts a reset source as new growth, never decreasing', totals: [100, 300, 50, 80], expected: 380 },
    { name: 'ignores nonsense totals', totals: [10, NaN, -5, 20], expected: 20 },
  ])('$name', async ({ totals, expected }) => {
    const registry = new Registry();
    const counter = new MirroredCounter({ name: 'x_bytes_total', help: 'h', labelNames: ['peer'], registry });
    for (const t of totals) counter.update({ peer: 'a' }, t);
    expect(await valueOf(registry, 'x_bytes_total', { peer: 'a' })).toBe(expected);
    expect((await registry.getMetricsAsJSON())[0]!.type).toBe('counter');
  });
});

describe('work queue metrics', () => {
  it("use client-go's names and count adds, retries and work", async () => {
    const registry = new Registry();
    const queue = new WorkQueue({ name: 'q', registry, retryBaseMs: 1 });
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const running = queue.run(async () => {
      calls++;
      if (calls === 1) throw new Error('first attempt fails');
      await blocked;
    });
    queue.add('k');
    await expect.poll(() => calls, { timeout: 5_000 }).toBe(2);
    expect(await valueOf(registry, 'workqueue_adds_total', { name: 'q' })).toBe(2);
    expect(await valueOf(registry, 'workqueue_retries_total', { name: 'q' })).toBe(1);
    expect(await valueOf(registry, 'workqueue_longest_running_processor_seconds', { name: 'q' })).toBeGreaterThan(0);
    expect(await valueOf(registry, 'workqueue_unfinished_work_seconds', { name: 'q' })).toBeGreaterThan(0);
    release();
    await expect.poll(async () => valueOf(registry, 'workqueue_longest_running_processor_seconds', { name: 'q' })).toBe(0);
    queue.shutdown();
    await running;
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['workqueue_depth', 'workqueue_queue_duration_seconds', 'workqueue_work_duration_seconds']));
  });
});

describe('HealthServer', () => {
  it('exports the default process metrics unprefixed', async () => {
    const health = new HealthServer('raven_test');
    const names = (await health.registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']));
    expect(names.filter((n) => n.startsWith('raven_test'))).toEqual([]);
  });
});
