import { z } from 'zod';
import { batchLine, runBatch } from './batch.ts';
import { ipFamily, normalizeIp, normalizePrefix, withHostPrefix, type IpFamily } from './cidr.ts';
import { CommandError, InvalidSpecError } from './errors.ts';
import type { Exec } from './exec.ts';
import { parseJsonOutput } from './json.ts';
import { assertInterfaceName } from './links.ts';
import { assertOwned, diffKeyed, keyedSummary, reconcile, type ApplySummary, type KeyedDiff, type Reconciler } from './reconciler.ts';

export type RouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';

export interface RouteSpec {
  table: number;
  /** Destination prefix; `0.0.0.0/0` or `::/0` for a default route. */
  dst: string;
  /** Defaults to unicast. */
  type?: RouteType;
  via?: string;
  /** Compared only when set (the kernel fills in the device of a gateway route). */
  dev?: string;
  onlink?: boolean;
  /** Preferred source address. */
  src?: string;
  /** Part of the route's identity; defaults to 0 (IPv4) / 1024 (IPv6) as in the kernel. */
  metric?: number;
  mtu?: number;
  /** Compared only when set. */
  scope?: 'global' | 'link' | 'host';
  /** Compared only when set. */
  protocol?: string;
}

/** A route as read from the kernel, normalised like a desired one. */
export interface RouteState {
  table: number;
  family: IpFamily;
  dst: string;
  type: string;
  via: string | undefined;
  dev: string | undefined;
  onlink: boolean;
  src: string | undefined;
  metric: number;
  mtu: number | undefined;
  scope: string | undefined;
  protocol: string | undefined;
  /** Multipath routes and other shapes this library does not model; they never equal a desired route. */
  unmodelled: boolean;
}

export interface RouteOwnership {
  /** Routing tables this reconciler owns entirely (both address families). */
  tables: readonly number[];
}

export type RouteDiff = KeyedDiff<RouteState, RouteState>;

const routeListSchema = z.array(
  z.object({
    type: z.string().optional(),
    dst: z.string(),
    gateway: z.string().optional(),
    dev: z.string().optional(),
    protocol: z.string().optional(),
    scope: z.string().optional(),
    prefsrc: z.string().optional(),
    metric: z.number().optional(),
    flags: z.array(z.string()).optional(),
    metrics: z.array(z.object({ mtu: z.number().optional() })).optional(),
    nexthops: z.unknown().optional(),
    via: z.unknown().optional(),
  }),
);

const defaultMetric = (family: IpFamily) => (family === 4 ? 0 : 1024);

export function parseRoutes(json: string, table: number, family: IpFamily): RouteState[] {
  return parseJsonOutput(routeListSchema, json, `ip -${family} -d -j route show table ${table}`).map((row) => ({
    table,
    family,
    dst: row.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : withHostPrefix(row.dst),
    type: row.type ?? 'unicast',
    via: row.gateway,
    dev: row.dev,
    onlink: row.flags?.includes('onlink') ?? false,
    src: row.prefsrc,
    metric: row.metric ?? defaultMetric(family),
    mtu: row.metrics?.find((m) => m.mtu !== undefined)?.mtu,
    scope: row.scope,
    protocol: row.protocol,
    unmodelled: row.nexthops !== undefined || row.via !== undefined,
  }));
}

/** Normalises a desired route to the form the kernel reports. */
export function normalizeRoute(spec: RouteSpec): RouteState {
  const dst = normalizePrefix(spec.dst);
  const family = ipFamily(dst);
  const via = spec.via === undefined ? undefined : normalizeIp(spec.via);
  const src = spec.src === undefined ? undefined : normalizeIp(spec.src);
  if ((via && ipFamily(via) !== family) || (src && ipFamily(src) !== family)) {
    throw new InvalidSpecError(`route ${spec.dst}: gateway/source family differs from the destination's`);
  }
  if (spec.dev !== undefined) assertInterfaceName(spec.dev);
  return {
    table: spec.table,
    family,
    dst,
    type: spec.type ?? 'unicast',
    via,
    dev: spec.dev,
    onlink: spec.onlink ?? false,
    src,
    metric: spec.metric ?? defaultMetric(family),
    mtu: spec.mtu,
    scope: spec.scope,
    protocol: spec.protocol,
    unmodelled: false,
  };
}

const routeKey = (r: RouteState) => `${r.table} ${r.dst} ${r.metric}`;

function sameRoute(want: RouteState, have: RouteState): boolean {
  return (
    !have.unmodelled &&
    want.type === have.type &&
    want.via === have.via &&
    want.onlink === have.onlink &&
    want.src === have.src &&
    want.mtu === have.mtu &&
    (want.dev === undefined || want.dev === have.dev) &&
    (want.scope === undefined || want.scope === have.scope) &&
    (want.protocol === undefined || want.protocol === have.protocol)
  );
}

/** Pure. `actual` may contain routes of other tables; only owned tables are considered. */
export function diffRoutes(desired: readonly RouteSpec[], actual: readonly RouteState[], ownership: RouteOwnership): RouteDiff {
  const owned = new Set(ownership.tables);
  const wanted = desired.map((spec) => {
    assertOwned('routing table', spec.table, owned);
    return normalizeRoute(spec);
  });
  const relevant = actual.filter((r) => owned.has(r.table));
  return diffKeyed(wanted, relevant, { desired: routeKey, actual: routeKey }, sameRoute);
}

function replaceLine(r: RouteState): string {
  return batchLine(
    'route', 'replace', ...(r.type === 'unicast' ? [] : [r.type]), r.dst,
    ...(r.via === undefined ? [] : ['via', r.via]),
    ...(r.dev === undefined ? [] : ['dev', r.dev]),
    ...(r.onlink ? ['onlink'] : []),
    ...(r.src === undefined ? [] : ['src', r.src]),
    'metric', r.metric,
    ...(r.mtu === undefined ? [] : ['mtu', r.mtu]),
    ...(r.scope === undefined ? [] : ['scope', r.scope]),
    ...(r.protocol === undefined ? [] : ['proto', r.protocol]),
    'table', r.table,
  );
}

/** Pure: one `ip -batch` script; the family of each line follows from its destination. */
export function routeBatch(diff: RouteDiff): string[] {
  return [
    ...diff.remove.map((r) => batchLine('route', 'del', r.dst, 'metric', r.metric, 'table', r.table)),
    ...diff.change.map(({ desired }) => replaceLine(desired)),
    ...diff.add.map(replaceLine),
  ];
}

/** Routes in owned tables, IPv4 and IPv6. */
export class RouteReconciler implements Reconciler<readonly RouteSpec[], RouteState[], RouteDiff> {
  constructor(
    private readonly exec: Exec,
    readonly ownership: RouteOwnership,
  ) {}

  async read(): Promise<RouteState[]> {
    const reads = this.ownership.tables.flatMap((table) => ([4, 6] as const).map((family) => this.readTable(table, family)));
    return (await Promise.all(reads)).flat();
  }

  private async readTable(table: number, family: IpFamily): Promise<RouteState[]> {
    try {
      const { stdout } = await this.exec.run('ip', [`-${family}`, '-d', '-j', 'route', 'show', 'table', String(table)]);
      return parseRoutes(stdout, table, family);
    } catch (error) {
      // IPv6 reports a table without routes as missing instead of empty.
      if (error instanceof CommandError && /FIB table does not exist/.test(error.stderr)) return [];
      throw error;
    }
  }

  diff(desired: readonly RouteSpec[], actual: RouteState[]): RouteDiff {
    return diffRoutes(desired, actual, this.ownership);
  }

  assumed(desired: readonly RouteSpec[]): RouteState[] {
    return desired.map(normalizeRoute);
  }

  async apply(diff: RouteDiff): Promise<ApplySummary> {
    await runBatch(this.exec, 'ip', routeBatch(diff));
    return keyedSummary(diff);
  }

  /** Empties the owned tables. */
  cleanup(): Promise<ApplySummary> {
    return reconcile(this, []);
  }
}
