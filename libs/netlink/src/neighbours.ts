import { z } from 'zod';
import { batchLine, runBatch } from './batch.ts';
import { normalizeIp } from './cidr.ts';
import type { Exec } from './exec.ts';
import { parseJsonOutput } from './json.ts';
import { assertInterfaceName, normalizeMac } from './links.ts';
import { assertOwned, diffKeyed, keyedSummary, reconcile, type ApplySummary, type KeyedDiff, type Reconciler } from './reconciler.ts';

/** A permanent neighbour (ARP/NDP) entry. */
export interface NeighbourSpec {
  dev: string;
  address: string;
  lladdr: string;
}

export interface NeighbourOwnership {
  /** Devices whose permanent neighbour entries this reconciler manages; dynamic entries are never touched. */
  devices: readonly string[];
}

export type NeighbourDiff = KeyedDiff<NeighbourSpec, NeighbourSpec>;

const neighbourListSchema = z.array(
  z.object({ dst: z.string(), dev: z.string(), lladdr: z.string().optional(), state: z.array(z.string()).optional() }),
);

/** Parses `ip -j neigh show nud permanent` (all devices, both families). */
export function parseNeighbours(json: string): NeighbourSpec[] {
  return parseJsonOutput(neighbourListSchema, json, 'ip -j neigh show nud permanent')
    .filter((n) => n.state?.includes('PERMANENT') && n.lladdr !== undefined)
    .map((n) => ({ dev: n.dev, address: n.dst, lladdr: n.lladdr ?? '' }));
}

const neighbourKey = (n: NeighbourSpec) => `${n.dev} ${n.address}`;

export function diffNeighbours(desired: readonly NeighbourSpec[], actual: readonly NeighbourSpec[], ownership: NeighbourOwnership): NeighbourDiff {
  const owned = new Set(ownership.devices);
  const wanted = desired.map((n) => {
    assertOwned('device', n.dev, owned);
    return { dev: n.dev, address: normalizeIp(n.address), lladdr: normalizeMac(n.lladdr) };
  });
  const relevant = actual.filter((n) => owned.has(n.dev));
  return diffKeyed(wanted, relevant, { desired: neighbourKey, actual: neighbourKey }, (d, a) => d.lladdr === a.lladdr);
}

/** Deletes go last: `ip neigh` aborts the whole batch on its first error, even with -force. */
export function neighbourBatch(diff: NeighbourDiff): string[] {
  const replace = (n: NeighbourSpec) => batchLine('neigh', 'replace', n.address, 'lladdr', n.lladdr, 'dev', n.dev, 'nud', 'permanent');
  return [
    ...diff.change.map(({ desired }) => replace(desired)),
    ...diff.add.map(replace),
    ...diff.remove.map((n) => batchLine('neigh', 'del', n.address, 'dev', n.dev)),
  ];
}

/** Permanent neighbour entries on owned devices. */
export class NeighbourReconciler implements Reconciler<readonly NeighbourSpec[], NeighbourSpec[], NeighbourDiff> {
  constructor(
    private readonly exec: Exec,
    readonly ownership: NeighbourOwnership,
  ) {
    ownership.devices.forEach(assertInterfaceName);
  }

  async read(): Promise<NeighbourSpec[]> {
    const { stdout } = await this.exec.run('ip', ['-j', 'neigh', 'show', 'nud', 'permanent']);
    return parseNeighbours(stdout);
  }

  diff(desired: readonly NeighbourSpec[], actual: NeighbourSpec[]): NeighbourDiff {
    return diffNeighbours(desired, actual, this.ownership);
  }

  async apply(diff: NeighbourDiff): Promise<ApplySummary> {
    await runBatch(this.exec, 'ip', neighbourBatch(diff));
    return keyedSummary(diff);
  }

  cleanup(): Promise<ApplySummary> {
    return reconcile(this, []);
  }
}
