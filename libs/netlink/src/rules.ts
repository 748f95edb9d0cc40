import { z } from 'zod';
import { batchLine, runBatch } from './batch.ts';
import { ipFamily, normalizePrefix, type IpFamily } from './cidr.ts';
import { InvalidSpecError } from './errors.ts';
import type { Exec } from './exec.ts';
import { parseJsonOutput } from './json.ts';
import { assertInterfaceName } from './links.ts';
import { diffKeyed, keyedSummary, reconcile, type ApplySummary, type KeyedDiff, type Reconciler } from './reconciler.ts';

/** A policy routing rule that looks up a table (`ip rule add prio P [selectors] lookup T`). */
export interface RuleSpec {
  priority: number;
  table: number;
  /** Inferred from `from`/`to` when omitted; otherwise 4. */
  family?: IpFamily;
  fwmark?: number;
  /** Defaults to all bits (0xffffffff). */
  fwmask?: number;
  from?: string;
  to?: string;
  iif?: string;
  oif?: string;
}

export interface RuleState {
  family: IpFamily;
  priority: number;
  /** Undefined when the rule's action is not a lookup in a numbered table. */
  table: number | undefined;
  /** Canonical text of every selector and the action; two rules with equal keys are the same rule. */
  key: string;
  /** Selector arguments that reproduce the rule on the command line (for deletion). */
  selectors: string[];
}

export interface RuleOwnership {
  /** A rule is owned when its priority is one of these and it looks up one of `tables`. */
  priorities: readonly number[];
  tables: readonly number[];
}

export type RuleDiff = KeyedDiff<RuleState, RuleState>;

const ALL_BITS = 0xffffffff;
const MODELLED = new Set(['priority', 'src', 'srclen', 'dst', 'dstlen', 'fwmark', 'fwmask', 'iif', 'oif', 'table', 'iif_detached', 'oif_detached']);
const ruleListSchema = z.array(
  z
    .object({
      priority: z.number(),
      src: z.string().optional(),
      srclen: z.number().optional(),
      dst: z.string().optional(),
      dstlen: z.number().optional(),
      fwmark: z.string().optional(),
      fwmask: z.string().optional(),
      iif: z.string().optional(),
      oif: z.string().optional(),
      table: z.string().optional(),
    })
    .catchall(z.unknown()),
);

interface RuleFields {
  family: IpFamily;
  priority: number;
  table: number | undefined;
  from: string | undefined;
  to: string | undefined;
  fwmark: number | undefined;
  fwmask: number;
  iif: string | undefined;
  oif: string | undefined;
  /** Selectors/actions not modelled here, e.g. `not`, `ipproto`, `uidrange`. */
  extra: string;
}

function toState(f: RuleFields): RuleState {
  const selectors = [
    ...(f.from === undefined ? [] : ['from', f.from]),
    ...(f.to === undefined ? [] : ['to', f.to]),
    ...(f.fwmark === undefined ? [] : ['fwmark', `0x${f.fwmark.toString(16)}/0x${f.fwmask.toString(16)}`]),
    ...(f.iif === undefined ? [] : ['iif', f.iif]),
    ...(f.oif === undefined ? [] : ['oif', f.oif]),
  ];
  const key = [`ipv${f.family}`, `prio ${f.priority}`, ...selectors, `lookup ${f.table ?? '?'}`, f.extra].join(' ').trim();
  return { family: f.family, priority: f.priority, table: f.table, key, selectors };
}

function prefixOrAll(address: string | undefined, length: number | undefined): string | undefined {
  if (address === undefined || address === 'all') return undefined;
  return normalizePrefix(length === undefined ? address : `${address}/${length}`);
}

/** Parses `ip -N -j -4|-6 rule show` (numeric table ids). */
export function parseRules(json: string, family: IpFamily): RuleState[] {
  return parseJsonOutput(ruleListSchema, json, `ip -N -j -${family} rule show`).map((row) => {
    const extra = Object.keys(row)
      .filter((k) => !MODELLED.has(k))
      .sort()
      .map((k) => `${k}=${JSON.stringify(row[k])}`)
      .join(' ');
    const table = row.table !== undefined && /^\d+$/.test(row.table) ? Number(row.table) : undefined;
    return toState({
      family,
      priority: row.priority,
      table,
      from: prefixOrAll(row.src, row.srclen),
      to: prefixOrAll(row.dst, row.dstlen),
      fwmark: row.fwmark === undefined ? undefined : Number(row.fwmark),
      fwmask: row.fwmask === undefined ? ALL_BITS : Number(row.fwmask),
      iif: row.iif,
      oif: row.oif,
      extra,
    });
  });
}

export function normalizeRule(spec: RuleSpec): RuleState {
  const from = spec.from === undefined ? undefined : normalizePrefix(spec.from);
  const to = spec.to === undefined ? undefined : normalizePrefix(spec.to);
  const family = spec.family ?? (from ? ipFamily(from) : to ? ipFamily(to) : 4);
  if ((from && ipFamily(from) !== family) || (to && ipFamily(to) !== family)) {
    throw new InvalidSpecError(`rule prio ${spec.priority}: address family mismatch`);
  }
  if (spec.iif !== undefined) assertInterfaceName(spec.iif);
  if (spec.oif !== undefined) assertInterfaceName(spec.oif);
  const fwmask = spec.fwmask ?? ALL_BITS;
  return toState({
    family,
    priority: spec.priority,
    table: spec.table,
    from: from === '0.0.0.0/0' || from === '::/0' ? undefined : from,
    to: to === '0.0.0.0/0' || to === '::/0' ? undefined : to,
    // The kernel reports fwmark 0 with a full mask as "no fwmark selector".
    fwmark: spec.fwmark === 0 && fwmask === ALL_BITS ? undefined : spec.fwmark,
    fwmask,
    iif: spec.iif,
    oif: spec.oif,
    extra: '',
  });
}

export function ownsRule(rule: RuleState, ownership: RuleOwnership): boolean {
  return ownership.priorities.includes(rule.priority) && rule.table !== undefined && ownership.tables.includes(rule.table);
}

/** Pure. Identical duplicate rules in the kernel are reduced to one. */
export function diffRules(desired: readonly RuleSpec[], actual: readonly RuleState[], ownership: RuleOwnership): RuleDiff {
  const wanted = desired.map((spec) => {
    const rule = normalizeRule(spec);
    if (!ownsRule(rule, ownership)) throw new InvalidSpecError(`rule "${rule.key}" is outside the owned priorities/tables`);
    return rule;
  });
  const relevant = actual.filter((r) => ownsRule(r, ownership));
  const key = (r: RuleState) => r.key;
  return diffKeyed(wanted, relevant, { desired: key, actual: key }, () => true);
}

/** Pure: the batch script for one family (rules cannot name their family per line). */
export function ruleBatch(diff: RuleDiff, family: IpFamily): string[] {
  const line = (verb: string, r: RuleState) => batchLine('rule', verb, 'priority', r.priority, ...r.selectors, 'lookup', r.table ?? 0);
  return [
    ...diff.remove.filter((r) => r.family === family).map((r) => line('del', r)),
    ...diff.add.filter((r) => r.family === family).map((r) => line('add', r)),
  ];
}

/** Policy routing rules at owned priorities that look up owned tables, IPv4 and IPv6. */
export class RuleReconciler implements Reconciler<readonly RuleSpec[], RuleState[], RuleDiff> {
  constructor(
    private readonly exec: Exec,
    readonly ownership: RuleOwnership,
  ) {}

  async read(): Promise<RuleState[]> {
    const reads = ([4, 6] as const).map(async (family) => {
      const { stdout } = await this.exec.run('ip', ['-N', '-j', `-${family}`, 'rule', 'show']);
      return parseRules(stdout, family);
    });
    return (await Promise.all(reads)).flat();
  }

  diff(desired: readonly RuleSpec[], actual: RuleState[]): RuleDiff {
    return diffRules(desired, actual, this.ownership);
  }

  async apply(diff: RuleDiff): Promise<ApplySummary> {
    for (const family of [4, 6] as const) {
      const script = ruleBatch(diff, family);
      if (script.length > 0) await runBatch(this.exec, 'ip', script, family);
    }
    return keyedSummary(diff);
  }

  cleanup(): Promise<ApplySummary> {
    return reconcile(this, []);
  }
}
