import { randomBytes } from 'node:crypto';
import { ipFamily, normalizeIp, normalizePrefix, withHostPrefix } from './cidr.ts';
import { CommandError, InvalidSpecError, IpsetInUseError, IpsetTypeUnsupportedError } from './errors.ts';
import type { Exec } from './exec.ts';
import { NO_CHANGES, reconcile, type ApplySummary, type Reconciler } from './reconciler.ts';

export type IpsetType = 'hash:net' | 'hash:net,net' | 'hash:ip';
export type IpsetFamily = 'inet' | 'inet6';

export interface IpsetSpec {
  name: string;
  type: IpsetType;
  family: IpsetFamily;
  /** hash:net `10.0.0.0/24`; hash:net,net `10.0.0.0/24,10.1.0.0/16`; hash:ip `10.0.0.1`. Duplicates are fine. */
  members: Iterable<string>;
  /** Compared: a different value recreates the set (through a swap). */
  maxelem?: number;
  /** Initial hash size, used on creation only (the kernel grows it). */
  hashsize?: number;
}

export interface IpsetState {
  name: string;
  type: string;
  family: string;
  maxelem: number | undefined;
  /** Members in canonical form; entries with flags (e.g. `nomatch`) keep them, so they never equal a plain member. */
  members: Set<string>;
}

export interface IpsetOwnership {
  /** Set names this reconciler creates, fills and may destroy (at most 27 characters: a temp name adds 4). */
  sets: readonly string[];
}

interface NormalizedSet {
  name: string;
  type: IpsetType;
  family: IpsetFamily;
  maxelem: number | undefined;
  hashsize: number | undefined;
  members: Set<string>;
}

export interface IpsetDiff {
  /** Temp sets left behind by an interrupted swap. */
  destroyStale: string[];
  create: NormalizedSet[];
  update: Array<{ name: string; add: string[]; del: string[] }>;
  /** Same type and family, other options: filled temp set swapped in, so the set never disappears. */
  swap: Array<{ set: NormalizedSet; temp: string; added: number; removed: number }>;
  /** Other type or family: the kernel cannot swap these, so destroy and create (refused while referenced). */
  replace: NormalizedSet[];
  destroy: string[];
}

const MAX_NAME = 27;

export function tempSetName(name: string): string {
  return `${name}-tmp`;
}

function normalizeMember(type: IpsetType, family: IpsetFamily, member: string): string {
  const parts = type === 'hash:net,net' ? member.split(',') : [member];
  if (parts.length !== (type === 'hash:net,net' ? 2 : 1)) throw new InvalidSpecError(`ipset ${type} member ${JSON.stringify(member)}`);
  const normalized = parts.map((part) => (type === 'hash:ip' ? normalizeIp(part) : normalizePrefix(part)));
  const want = family === 'inet' ? 4 : 6;
  if (normalized.some((p) => ipFamily(p) !== want)) throw new InvalidSpecError(`ipset member ${member} is not ${family}`);
  return normalized.join(',');
}

/** The kernel prints host prefixes without /32 or /128; restore them so members compare with desired ones. */
function canonicalKernelMember(type: string, element: string): string {
  if (type === 'hash:ip') return element;
  const comma = element.indexOf(',');
  if (comma < 0) return withHostPrefix(element);
  return `${withHostPrefix(element.slice(0, comma))},${withHostPrefix(element.slice(comma + 1))}`;
}

/** Parses `ipset save` output, keeping only the named sets. */
export function parseIpsetSave(text: string, names: ReadonlySet<string>): Map<string, IpsetState> {
  const sets = new Map<string, IpsetState>();
  for (const line of text.split('\n')) {
    if (line.startsWith('add ')) {
      const nameEnd = line.indexOf(' ', 4);
      const set = nameEnd > 0 ? sets.get(line.slice(4, nameEnd)) : undefined;
      if (!set) continue;
      const rest = line.slice(nameEnd + 1);
      const elementEnd = rest.indexOf(' ');
      const element = elementEnd < 0 ? rest : rest.slice(0, elementEnd);
      const flags = elementEnd < 0 ? '' : rest.slice(elementEnd);
      set.members.add(canonicalKernelMember(set.type, element) + flags);
    } else if (line.startsWith('create ')) {
      const tokens = line.split(' ');
      const name = tokens[1] ?? '';
      if (!names.has(name)) continue;
      const option = (key: string) => {
        const i = tokens.indexOf(key);
        return i > 0 ? tokens[i + 1] : undefined;
      };
      const maxelem = option('maxelem');
      sets.set(name, {
        name,
        type: tokens[2] ?? '',
        family: option('family') ?? '',
        maxelem: maxelem === undefined ? undefined : Number(maxelem),
        members: new Set(),
      });
    }
  }
  return sets;
}

function normalizeSet(spec: IpsetSpec): NormalizedSet {
  const members = new Set<string>();
  for (const member of spec.members) members.add(normalizeMember(spec.type, spec.family, member));
  return { name: spec.name, type: spec.type, family: spec.family, maxelem: spec.maxelem, hashsize: spec.hashsize, members };
}

function assertSetName(name: string): void {
  if (!/^[^\s"'\\#]+$/.test(name) || name.length > MAX_NAME) throw new InvalidSpecError(`invalid ipset name: ${JSON.stringify(name)}`);
}

/** Pure. Member diffs are O(n) set lookups. */
export function diffIpsets(desired: readonly IpsetSpec[], actual: ReadonlyMap<string, IpsetState>, ownership: IpsetOwnership): IpsetDiff {
  const owned = new Set(ownership.sets);
  const diff: IpsetDiff = { destroyStale: [], create: [], update: [], swap: [], replace: [], destroy: [] };
  const desiredNames = new Set<string>();
  for (const name of owned) if (actual.has(tempSetName(name))) diff.destroyStale.push(tempSetName(name));
  for (const spec of desired) {
    if (!owned.has(spec.name)) throw new InvalidSpecError(`ipset ${spec.name} is not owned by this reconciler`);
    if (desiredNames.has(spec.name)) throw new InvalidSpecError(`ipset ${spec.name} is specified twice`);
    desiredNames.add(spec.name);
    const set = normalizeSet(spec);
    const current = actual.get(spec.name);
    if (!current) {
      diff.create.push(set);
      continue;
    }
    if (current.type !== set.type || current.family !== set.family) {
      diff.replace.push(set);
      continue;
    }
    const add = [...set.members].filter((m) => !current.members.has(m));
    const del = [...current.members].filter((m) => !set.members.has(m));
    if (set.maxelem !== undefined && set.maxelem !== current.maxelem) {
      diff.swap.push({ set, temp: tempSetName(set.name), added: add.length, removed: del.length });
    } else if (add.length > 0 || del.length > 0) {
      diff.update.push({ name: set.name, add, del });
    }
  }
  for (const name of owned) if (!desiredNames.has(name) && actual.has(name)) diff.destroy.push(name);
  return diff;
}

export function summarizeIpsetDiff(diff: IpsetDiff): ApplySummary {
  let added = diff.create.reduce((n, s) => n + 1 + s.members.size, 0);
  let removed = diff.destroyStale.length + diff.destroy.length;
  for (const u of diff.update) {
    added += u.add.length;
    removed += u.del.length;
  }
  for (const s of diff.swap) {
    added += s.added;
    removed += s.removed;
  }
  return { added, removed, changed: diff.swap.length + diff.replace.length };
}

function createLine(set: NormalizedSet, name = set.name): string {
  const options = [
    ...(set.hashsize === undefined ? [] : ['hashsize', set.hashsize]),
    ...(set.maxelem === undefined ? [] : ['maxelem', set.maxelem]),
  ];
  return ['create', name, set.type, 'family', set.family, ...options].join(' ');
}

function addLines(script: string[], name: string, members: Iterable<string>): void {
  for (const member of members) script.push(`add ${name} ${member}`);
}

/**
 * Pure: the `ipset -exist restore` script. Destroys come last because restore stops at the first error and the kernel
 * refuses to destroy a referenced set.
 */
export function ipsetRestoreScript(diff: IpsetDiff): string[] {
  const script: string[] = diff.destroyStale.map((name) => `destroy ${name}`);
  for (const set of diff.create) {
    script.push(createLine(set));
    addLines(script, set.name, set.members);
  }
  for (const { name, add, del } of diff.update) {
    for (const member of del) script.push(`del ${name} ${member.split(' ')[0]}`);
    addLines(script, name, add);
  }
  for (const { set, temp } of diff.swap) {
    script.push(createLine(set, temp));
    addLines(script, temp, set.members);
    script.push(`swap ${temp} ${set.name}`, `destroy ${temp}`);
  }
  for (const set of diff.replace) {
    script.push(`destroy ${set.name}`, createLine(set));
    addLines(script, set.name, set.members);
  }
  for (const name of diff.destroy) script.push(`destroy ${name}`);
  return script;
}

/** Maps an `ipset restore` failure to a typed error using the failing line of the script. */
function restoreError(error: CommandError, script: readonly string[]): Error {
  const lineNumber = /Error in line (\d+)/.exec(error.stderr)?.[1];
  const line = lineNumber === undefined ? '' : (script[Number(lineNumber) - 1] ?? '');
  const [verb, name = '', type = ''] = line.split(' ');
  if (/in use by a kernel component/.test(error.stderr)) return new IpsetInUseError(name, { cause: error });
  if (verb === 'create' && /set type not supported/i.test(error.stderr)) return new IpsetTypeUnsupportedError(name, type, { cause: error });
  return error;
}

/** ipsets by name: created, filled with member diffs and destroyed in one `ipset restore`. */
export class IpsetReconciler implements Reconciler<readonly IpsetSpec[], Map<string, IpsetState>, IpsetDiff> {
  private readonly relevantNames: ReadonlySet<string>;

  constructor(
    private readonly exec: Exec,
    readonly ownership: IpsetOwnership,
  ) {
    ownership.sets.forEach(assertSetName);
    this.relevantNames = new Set(ownership.sets.flatMap((name) => [name, tempSetName(name)]));
  }

  async read(): Promise<Map<string, IpsetState>> {
    const { stdout } = await this.exec.run('ipset', ['save']);
    return parseIpsetSave(stdout, this.relevantNames);
  }

  diff(desired: readonly IpsetSpec[], actual: Map<string, IpsetState>): IpsetDiff {
    return diffIpsets(desired, actual, this.ownership);
  }

  assumed(desired: readonly IpsetSpec[]): Map<string, IpsetState> {
    return new Map(desired.map(normalizeSet).map(({ name, type, family, maxelem, members }) => [name, { name, type, family, maxelem, members }]));
  }

  async apply(diff: IpsetDiff): Promise<ApplySummary> {
    const script = ipsetRestoreScript(diff);
    if (script.length === 0) return NO_CHANGES;
    try {
      await this.exec.run('ipset', ['-exist', 'restore'], { input: `${script.join('\n')}\n` });
    } catch (error) {
      throw error instanceof CommandError ? restoreError(error, script) : error;
    }
    return summarizeIpsetDiff(diff);
  }

  /** Destroys every owned set; throws IpsetInUseError while an iptables rule still references one (clean iptables first). */
  cleanup(): Promise<ApplySummary> {
    return reconcile(this, []);
  }
}

/** Whether the kernel behind `exec` supports an ipset type, found by creating and destroying a throw-away set. */
export async function ipsetTypeSupported(exec: Exec, type: IpsetType, family: IpsetFamily): Promise<boolean> {
  const probe = `raven-probe-${randomBytes(4).toString('hex')}`;
  try {
    await exec.run('ipset', ['create', probe, type, 'family', family]);
  } catch (error) {
    if (error instanceof CommandError && /set type not supported/i.test(error.stderr)) return false;
    throw error;
  }
  await exec.run('ipset', ['destroy', probe]);
  return true;
}
