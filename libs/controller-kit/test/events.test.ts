import { describe, expect, it } from 'vitest';
import { EventRecorder, createLogger, type KubeClient } from '../src/index.ts';

const log = createLogger('test', { level: 'silent' });
const target = { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', name: 'gw' };
const event = { type: 'Normal' as const, reason: 'Test', action: 'Test', note: 'n' };

/** A fake API whose creates finish only when released, recording how many ran at once. */
function fakeKube(fail?: (n: number) => boolean) {
  const state = { inFlight: 0, peak: 0, created: 0, release: [] as Array<() => void> };
  const kube: Pick<KubeClient, 'create'> = {
    create: async <T>() => {
      state.inFlight++;
      state.peak = Math.max(state.peak, state.inFlight);
      await new Promise<void>((resolve) => state.release.push(resolve));
      state.inFlight--;
      state.created++;
      if (fail?.(state.created)) throw new Error('apiserver said no');
      return undefined as T;
    },
  };
  return { kube, state };
}

async function drain(state: { release: Array<() => void> }, until: () => boolean): Promise<void> {
  while (!until()) {
    for (const r of state.release.splice(0)) r();
    await new Promise((r) => setImmediate(r));
  }
}

describe('EventRecorder limits', () => {
  it.each([
    // [concurrency, maxPending, recorded, created, dropped]
    [1, 100, 10, 10, 0],
    [4, 100, 50, 50, 0],
    [4, 6, 20, 10, 10],
    [2, 0, 5, 2, 3],
  ])('concurrency %i, backlog %i: %i recorded -> %i created, %i dropped, never more than the bound at once', async (concurrency, maxPending, recorded, created, dropped) => {
    const { kube, state } = fakeKube();
    const recorder = new EventRecorder(kube as KubeClient, log, 'c', 'i', { concurrency, maxPending });
    const all = Promise.all(Array.from({ length: recorded }, () => recorder.record(target, event)));
    await drain(state, () => state.created + recorder.droppedCount >= recorded);
    await all;
    expect(state.peak).toBeLessThanOrEqual(concurrency);
    expect(state.created).toBe(created);
    expect(recorder.droppedCount).toBe(dropped);
  });

  it('keeps going after failed creates (logged, never thrown)', async () => {
    const { kube, state } = fakeKube((n) => n % 2 === 0);
    const recorder = new EventRecorder(kube as KubeClient, log, 'c', 'i', { concurrency: 2 });
    const all = Promise.all(Array.from({ length: 8 }, () => recorder.record(target, event)));
    await drain(state, () => state.created >= 8);
    await expect(all).resolves.toHaveLength(8);
    expect(state.peak).toBe(2);
  });
});
