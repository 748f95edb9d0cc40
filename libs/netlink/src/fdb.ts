import { z } from 'zod';
import { batchLine, runBatch } from './batch.ts';
import { normalizeIp } from './cidr.ts';
import { CommandError } from './errors.ts';
import type { Exec } from './exec.ts';
import { parseJsonOutput } from './json.ts';
import { assertInterfaceName, normalizeMac } from './links.ts';
import { assertOwned, diffKeyed, keyedSummary, reconcile, type ApplySummary, type KeyedDiff, type Reconciler } from './reconciler.ts';

/** A permanent forwarding entry of a tunnel device (e.g. vxlan): frames for `mac` go to the remote `dst`. */
export interface FdbSpec {
  dev: string;
  mac: string;
  dst: string;
}

export interface FdbOwnership {
  /** Devices whose permanent remote entries (those with a `dst`) this reconciler manages. */
  devices: readonly string[];
}

export type FdbDiff = KeyedDiff<FdbSpec, FdbSpec>;

const fdbListSchema = z.array(z.object({ mac: z.string(), dst: z.string().optional(), state: z.string().optional() }));

/** Parses `bridge -j fdb show dev <dev>`, keeping permanent entries with a remote destination. */
export function parseFdb(json: string, dev: string): FdbSpec[] {
  return parseJsonOutput(fdbListSchema, json, `bridge -j fdb show dev ${dev}`).flatMap((e) =>
    e.state === 'permanent' && e.dst !== undefined ? [{ dev, mac: e.mac, dst: e.dst }] : [],
  );
}

/** The all-zeros and multicast MACs may have several remotes (flooding); a unicast MAC has exactly one. */
function isFloodMac(mac: string): boolean {
  return mac === '00:00:00:00:00:00' || (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

const fdbKey = (e: FdbSpec) => (isFloodMac(e.mac) ? `${e.dev} ${e.mac} ${e.dst}` : `${e.dev} ${e.mac}`);

export function diffFdb(desired: readonly FdbSpec[], actual: readonly FdbSpec[], ownership: FdbOwnership): FdbDiff {
  const owned = new Set(ownership.devices);
  const wanted = desired.map((e) => {
    assertOwned('device', e.dev, owned);
    return { dev: e.dev, mac: normalizeMac(e.mac), dst: normalizeIp(e.dst) };
  });
  const relevant = actual.filter((e) => owned.has(e.dev));
  return diffKeyed(wanted, relevant, { desired: fdbKey, actual: fdbKey }, (d, a) => d.dst === a.dst);
}

export function fdbBatch(diff: FdbDiff): string[] {
  const add = (e: FdbSpec) => batchLine('fdb', isFloodMac(e.mac) ? 'append' : 'replace', e.mac, 'dev', e.dev, 'dst', e.dst, 'self', 'permanent');
  return [
    ...diff.remove.map((e) => batchLine('fdb', 'del', e.mac, 'dev', e.dev, 'dst', e.dst, 'self')),
    ...diff.change.map(({ desired }) => add(desired)),
    ...diff.add.map(add),
  ];
}

/** Permanent remote FDB entries on owned tunnel devices, applied with one `bridge -batch`. */
export class FdbReconciler implements Reconciler<readonly FdbSpec[], FdbSpec[], FdbDiff> {
  constructor(
    private readonly exec: Exec,
    readonly ownership: FdbOwnership,
  ) {
    ownership.devices.forEach(assertInterfaceName);
  }

  async read(): Promise<FdbSpec[]> {
    const perDevice = this.ownership.devices.map(async (dev) => {
      try {
        const { stdout } = await this.exec.run('bridge', ['-j', 'fdb', 'show', 'dev', dev]);
        return parseFdb(stdout, dev);
      } catch (error) {
        if (error instanceof CommandError && /Cannot find device|does not exist/.test(error.stderr)) return [];
        throw error;
      }
    });
    return (await Promise.all(perDevice)).flat();
  }

  diff(desired: readonly FdbSpec[], actual: FdbSpec[]): FdbDiff {
    return diffFdb(desired, actual, this.ownership);
  }

  async apply(diff: FdbDiff): Promise<ApplySummary> {
    await runBatch(this.exec, 'bridge', fdbBatch(diff));
    return keyedSummary(diff);
  }

  cleanup(): Promise<ApplySummary> {
    return reconcile(this, []);
  }
}
