import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startCluster, type Cluster } from './cluster.ts';
import type {} from './vitest-context.ts';

/**
 * One real control plane per vitest run, shared by every project that lists this file as globalSetup.
 * Vitest runs each project's globalSetup in the same main process, so a global singleton de-duplicates them.
 */
const KEY = Symbol.for('raven.testbed.cluster');
type Shared = { cluster: Promise<Cluster>; users: number };
const registry = globalThis as unknown as Record<symbol, Shared | undefined>;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let shared = registry[KEY];
  if (!shared) {
    const dir = mkdtempSync(join(tmpdir(), 'raven-cp-'));
    shared = { cluster: startCluster({ dir }), users: 0 };
    registry[KEY] = shared;
    const cleanup = () => void shared?.cluster.then((c) => c.destroy());
    process.once('exit', cleanup);
  }
  shared.users += 1;
  const cluster = await shared.cluster;
  project.provide('cluster', cluster.info());
  return async () => {
    shared.users -= 1;
    if (shared.users === 0) {
      registry[KEY] = undefined;
      await cluster.destroy();
    }
  };
}
