import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../src/workqueue.ts';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('processes a key added many times once', async () => {
    const q = new WorkQueue({ name: 't' });
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) q.add('a');
    q.add('b');
    const run = q.run(async (k) => void seen.push(k), 2);
    await tick(10);
    q.shutdown();
    await run;
    expect(seen.sort()).toEqual(['a', 'b']);
  });

  it('never runs one key on two workers at once, and re-runs a key re-added while it ran', async () => {
    const q = new WorkQueue({ name: 't' });
    let concurrent = 0;
    let maxConcurrent = 0;
    let runs = 0;
    q.add('k');
    const run = q.run(async () => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      runs++;
      if (runs === 1) {
        q.add('k');
        q.add('k');
      }
      await tick(5);
      concurrent--;
    }, 4);
    await tick(50);
    q.shutdown();
    await run;
    expect(maxConcurrent).toBe(1);
    expect(runs).toBe(2);
  });

  it('retries failures with growing per-key backoff and forgets on success', async () => {
    const q = new WorkQueue({ name: 't', retryBaseMs: 10 });
    const times: number[] = [];
    q.add('k');
    const run = q.run(async () => {
      times.push(performance.now());
      if (times.length < 4) throw new Error('boom');
    });
    await tick(200);
    q.shutdown();
    await run;
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps[0]!).toBeGreaterThanOrEqual(9);
    expect(gaps[1]!).toBeGreaterThanOrEqual(19);
    expect(gaps[2]!).toBeGreaterThanOrEqual(39);
    expect(q.retries('k')).toBe(0);
  });

  it('keeps the earliest of several delayed adds', async () => {
    const q = new WorkQueue({ name: 't' });
    const at: number[] = [];
    const start = performance.now();
    q.addAfter('k', 200);
    q.addAfter('k', 20);
    q.addAfter('k', 100);
    const run = q.run(async () => void at.push(performance.now() - start));
    await tick(300);
    q.shutdown();
    await run;
    expect(at).toHaveLength(1);
    expect(at[0]!).toBeLessThan(90);
  });

  it('drains in-flight work on shutdown and then rejects adds', async () => {
    const q = new WorkQueue({ name: 't' });
    let finished = false;
    q.add('slow');
    const run = q.run(async () => {
      await tick(30);
      finished = true;
    });
    await tick(5);
    q.shutdown();
    await run;
    expect(finished).toBe(true);
    q.add('late');
    expect(q.length).toBe(0);
  });
});
