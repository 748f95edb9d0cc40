import { InvalidSpecError } from './errors.ts';
import type { Exec } from './exec.ts';
import { NO_CHANGES, reconcile, type ApplySummary, type Reconciler } from './reconciler.ts';

export type IptablesTable = 'filter' | 'nat' | 'mangle' | 'raw';

/**
 * A chain we own, rewritten wholesale whenever its rules differ. Rules are written as `iptables-save` prints them
 * (without `-A CHAIN`), e.g. `-m set --match-set raven-mark-set dst -j MARK --set-xmark 0x40/0x40`; a rule in another
 * spelling (`--set-mark`) still works but makes every reconcile rewrite the chain.
 */
export interface IptablesChain {
  table: IptablesTable;
  name: string;
  rules: readonly string[];
}

/** A rule in a chain we do not own (usually a builtin one) that jumps to an owned chain. */
export interface IptablesJump {
  table: IptablesTable;
  /** The chain holding the jump, e.g. PREROUTING. */
  from: string;
  /** The owned chain jumped to. */
  to: string;
  /** `first`: at the top, in the order given (e.g. before any MASQUERADE); `last`: appended. */
  position: 'first' | 'last';
  /** Match arguments before `-j`, in iptables-save form. */
  matches?: string;
}

export interface IptablesDesired {
  chains: readonly IptablesChain[];
  jumps: readonly IptablesJump[];
}

export interface IptablesOwnership {
  /** Chains this reconciler owns; every rule that jumps to one of them is also owned. */
  chains: ReadonlyArray<{ table: IptablesTable; name: string }>;
}

/** One table of `iptables-save`: chains in declaration order with their rules (the text after `-A CHAIN `). */
export interface IptablesTableState {
  chains: Map<string, string[]>;
  builtin: Set<string>;
}

export type IptablesState = Map<string, IptablesTableState>;

export interface IptablesTablePlan {
  /** Owned chains to create or rewrite (declaring an existing chain in a --noflush restore flushes it). */
  write: Array<{ name: string; rules: readonly string[] }>;
  /** Owned jump rules to delete, by exact rule text, one entry per occurrence. */
  deleteJumps: Array<{ chain: string; rule: string }>;
  /** Jumps to insert at the top, already in the order they must be inserted (`-I chain 1`). */
  insertJumps: Array<{ chain: string; rule: string }>;
  appendJumps: Array<{ chain: string; rule: string }>;
  /** Owned chains that are no longer desired: flushed and deleted after their jumps are gone. */
  remove: string[];
}

export interface IptablesDiff {
  tables: Map<IptablesTable, IptablesTablePlan>;
  summary: ApplySummary;
}

const CHAIN_NAME = /^[A-Za-z0-9_.-]{1,28}$/;
const JUMP_TARGET = /(?:^| )-[jg] (\S+)$/;

export function parseIptablesSave(text: string): IptablesState {
  const tables: IptablesState = new Map();
  let current: IptablesTableState | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      current = { chains: new Map(), builtin: new Set() };
      tables.set(line.slice(1), current);
    } else if (!current || line === '' || line.startsWith('#') || line === 'COMMIT') {
      continue;
    } else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(' ');
      current.chains.set(name, []);
      if (policy !== '-') current.builtin.add(name);
    } else if (line.startsWith('-A ')) {
      const nameEnd = line.indexOf(' ', 3);
      const chain = line.slice(3, nameEnd < 0 ? undefined : nameEnd);
      const rule = nameEnd < 0 ? '' : line.slice(nameEnd + 1);
      const rules = current.chains.get(chain);
      if (rules) rules.push(rule);
      else current.chains.set(chain, [rule]);
    }
  }
  return tables;
}

const normalizeRule = (rule: string) => rule.trim().replace(/\s+/g, ' ');
const jumpRule = (jump: IptablesJump) => normalizeRule(`${jump.matches ?? ''} -j ${jump.to}`);

function emptyPlan(): IptablesTablePlan {
  return { write: [], deleteJumps: [], insertJumps: [], appendJumps: [], remove: [] };
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((rule, i) => rule === b[i]);
}

function validate(desired: IptablesDesired, ownedByTable: Map<string, Set<string>>): void {
  const declared = new Set<string>();
  for (const chain of desired.chains) {
    if (!ownedByTable.get(chain.table)?.has(chain.name)) throw new InvalidSpecError(`chain ${chain.table}/${chain.name} is not owned`);
    if (declared.has(`${chain.table}/${chain.name}`)) throw new InvalidSpecError(`chain ${chain.table}/${chain.name} is specified twice`);
    declared.add(`${chain.table}/${chain.name}`);
    if (chain.rules.some((r) => /[\n\r]/.test(r))) throw new InvalidSpecError(`chain ${chain.name}: a rule contains a line break`);
  }
  for (const jump of desired.jumps) {
    if (!declared.has(`${jump.table}/${jump.to}`)) throw new InvalidSpecError(`jump to ${jump.table}/${jump.to}: not a desired chain`);
    if (ownedByTable.get(jump.table)?.has(jump.from)) throw new InvalidSpecError(`jump from owned chain ${jump.from}: put it in the chain's rules`);
    if (!CHAIN_NAME.test(jump.from) || /[\n\r]/.test(jump.matches ?? '')) throw new InvalidSpecError(`invalid jump from ${jump.from}`);
  }
}

/**
 * Pure. Per table: rewrite owned chains whose rules differ; in every chain we do not own, make each desired jump exist
 * exactly once in its position (`first` jumps at the top in the given order), remove other jumps to owned chains;
 * delete owned chains that are no longer desired. Foreign rules are never part of the plan.
 */
export function diffIptables(desired: IptablesDesired, actual: IptablesState, ownership: IptablesOwnership): IptablesDiff {
  const ownedByTable = new Map<string, Set<string>>();
  for (const { table, name } of ownership.chains) {
    if (!CHAIN_NAME.test(name)) throw new InvalidSpecError(`invalid chain name: ${JSON.stringify(name)}`);
    ownedByTable.set(table, (ownedByTable.get(table) ?? new Set()).add(name));
  }
  validate(desired, ownedByTable);
  const plans = new Map<IptablesTable, IptablesTablePlan>();
  let added = 0;
  let removed = 0;
  let changed = 0;
  for (const [table, owned] of ownedByTable as Map<IptablesTable, Set<string>>) {
    const state = actual.get(table) ?? { chains: new Map<string, string[]>(), builtin: new Set<string>() };
    const plan = emptyPlan();
    const desiredChains = desired.chains.filter((c) => c.table === table);
    const desiredNames = new Set(desiredChains.map((c) => c.name));
    for (const chain of desiredChains) {
      const rules = chain.rules.map(normalizeRule);
      const current = state.chains.get(chain.name);
      if (current && sameRules(current, rules)) continue;
      plan.write.push({ name: chain.name, rules });
      if (current) changed += 1;
      else added += 1;
    }
    for (const name of owned) {
      if (!desiredNames.has(name) && state.chains.has(name)) {
        plan.remove.push(name);
        removed += 1;
      }
    }
    const jumps = desired.jumps.filter((j) => j.table === table);
    const holders = new Set([...state.chains.keys()].filter((c) => !owned.has(c)));
    for (const jump of jumps) holders.add(jump.from);
    for (const chain of holders) {
      const rules = state.chains.get(chain) ?? [];
      const ours = rules.flatMap((rule, index) => {
        const target = JUMP_TARGET.exec(rule)?.[1];
        return target !== undefined && owned.has(target) ? [{ rule, index }] : [];
      });
      const wanted = jumps.filter((j) => j.from === chain);
      const first = wanted.filter((j) => j.position === 'first').map(jumpRule);
      const last = wanted.filter((j) => j.position === 'last').map(jumpRule);
      const inPlace =
        ours.length === first.length + last.length &&
        first.every((rule, i) => rules[i] === rule) &&
        sameRules(ours.slice(first.length).map((o) => o.rule), last);
      if (inPlace) continue;
      const present = new Map<string, number>();
      for (const { rule } of ours) present.set(rule, (present.get(rule) ?? 0) + 1);
      for (const rule of [...first, ...last]) {
        const count = present.get(rule) ?? 0;
        if (count > 0) {
          present.set(rule, count - 1);
          changed += 1;
        } else added += 1;
      }
      for (const count of present.values()) removed += count;
      plan.deleteJumps.push(...ours.map(({ rule }) => ({ chain, rule })));
      plan.insertJumps.push(...[...first].reverse().map((rule) => ({ chain, rule })));
      plan.appendJumps.push(...last.map((rule) => ({ chain, rule })));
    }
    const empty = plan.write.length + plan.deleteJumps.length + plan.insertJumps.length + plan.appendJumps.length + plan.remove.length === 0;
    if (!empty) plans.set(table, plan);
  }
  return { tables: plans, summary: { added, removed, changed } };
}

/** Pure: the `iptables-restore --noflush` input for a diff, one transaction per table. */
export function iptablesRestoreScript(diff: IptablesDiff): string {
  const lines: string[] = [];
  for (const [table, plan] of diff.tables) {
    lines.push(`*${table}`);
    for (const { name } of plan.write) lines.push(`:${name} - [0:0]`);
    for (const { chain, rule } of plan.deleteJumps) lines.push(`-D ${chain} ${rule}`);
    for (const { name, rules } of plan.write) for (const rule of rules) lines.push(`-A ${name} ${rule}`);
    for (const { chain, rule } of plan.insertJumps) lines.push(`-I ${chain} 1 ${rule}`);
    for (const { chain, rule } of plan.appendJumps) lines.push(`-A ${chain} ${rule}`);
    for (const name of plan.remove) lines.push(`-F ${name}`, `-X ${name}`);
    lines.push('COMMIT');
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/**
 * Owned iptables (family 4) or ip6tables (family 6) chains and the jumps into them, via the installed backend's
 * `iptables-save` and one `iptables-restore --noflush`.
 */
export class IptablesReconciler implements Reconciler<IptablesDesired, IptablesState, IptablesDiff> {
  private readonly save: string;
  private readonly restore: string;

  constructor(
    private readonly exec: Exec,
    readonly family: 4 | 6,
    readonly ownership: IptablesOwnership,
  ) {
    const prefix = family === 4 ? 'iptables' : 'ip6tables';
    this.save = `${prefix}-save`;
    this.restore = `${prefix}-restore`;
  }

  async read(): Promise<IptablesState> {
    const { stdout } = await this.exec.run(this.save, []);
    return parseIptablesSave(stdout);
  }

  diff(desired: IptablesDesired, actual: IptablesState): IptablesDiff {
    return diffIptables(desired, actual, this.ownership);
  }

  async apply(diff: IptablesDiff): Promise<ApplySummary> {
    const script = iptablesRestoreScript(diff);
    if (script === '') return NO_CHANGES;
    await this.exec.run(this.restore, ['-w', '5', '--noflush'], { input: script });
    return diff.summary;
  }

  /** Removes the jumps to owned chains, then the chains. */
  cleanup(): Promise<ApplySummary> {
    return reconcile(this, { chains: [], jumps: [] });
  }
}
