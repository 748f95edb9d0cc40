import { CommandError, parseIptablesSave, type Exec } from '@raven/netlink';
import { parseAddress, parseCidr } from './ipv4.ts';
import { IFACES, routerIptables } from './network.ts';
import type { ResolvedDomain } from './topology.ts';

/**
 * Runtime controls of a running box (router NAT mode, WAN delay, UDP blackout, WAN readdressing, forwarding counters),
 * rendered here as commands by pure functions and run by the Box inside a router's or node's namespace.
 */

/** One command run inside a namespace. */
export interface BoxCommand {
  cmd: string;
  args: string[];
  input?: string;
  /** Stderr that means there was nothing to undo: not a failure. */
  tolerate?: RegExp;
}

export class BoxControlError extends Error {
  override readonly name = 'BoxControlError';
}

/** The filter chain counting forwarded bytes per (source, destination) prefix, jumped to from the top of FORWARD. */
export const BOX_COUNT_CHAIN = 'BOX-COUNT';
/** Comment of the router rule that drops forwarded UDP. */
export const UDP_BLOCK_COMMENT = 'box-udp-block';
/** Longest WAN delay setRouterWanDelay accepts. */
export const MAX_WAN_DELAY_MS = 60_000;

export const CONNTRACK_FLUSH: BoxCommand = { cmd: 'conntrack', args: ['-F'] };
const NO_QDISC = /handle of zero|No such file or directory|Cannot find specified qdisc/i;
const UDP_BLOCK_RULE = ['-p', 'udp', '-m', 'comment', '--comment', UDP_BLOCK_COMMENT, '-j', 'DROP'];
const COUNT_JUMP = ['-j', BOX_COUNT_CHAIN];

const iptables = (...args: string[]): BoxCommand => ({ cmd: 'iptables', args: ['-w', '-t', 'filter', ...args] });

export async function runBoxCommands(exec: Exec, commands: readonly BoxCommand[]): Promise<void> {
  for (const command of commands) {
    try {
      await exec.run(command.cmd, command.args, command.input === undefined ? undefined : { input: command.input });
    } catch (error) {
      if (!(command.tolerate && error instanceof CommandError && command.tolerate.test(error.stderr))) throw error;
    }
  }
}

/** `10.0.0.5` or `10.0.0.0/24` in the form iptables prints and matches (host bits cleared, /32 explicit). */
export function canonicalPrefix(text: string): string {
  try {
    return parseCidr(text.includes('/') ? text : `${text}/32`).text;
  } catch {
    throw new BoxControlError(`not an IPv4 address or prefix: ${JSON.stringify(text)}`);
  }
}

/**
 * An `iptables-restore --noflush` script that swaps the box's router rules for `previous` with those for `next` in
 * one transaction per table, leaving any other rule (the UDP block, a test's own) where it is.
 */
export function routerRulesSwap(previous: ResolvedDomain, next: ResolvedDomain): string {
  const before = rulesByTable(routerIptables(previous));
  const after = rulesByTable(routerIptables(next));
  const tables = [...new Set([...before.keys(), ...after.keys()])];
  return [
    ...tables.flatMap((table) => [
      `*${table}`,
      ...(before.get(table) ?? []).map((rule) => rule.replace(/^-A /, '-D ')),
      ...(after.get(table) ?? []),
      'COMMIT',
    ]),
    '',
  ].join('\n');
}

function rulesByTable(script: string): Map<string, string[]> {
  const tables = new Map<string, string[]>();
  let rules: string[] | undefined;
  for (const line of script.split('\n')) {
    if (line.startsWith('*')) tables.set(line.slice(1), (rules = []));
    else if (line.startsWith('-A ')) rules?.push(line);
  }
  return tables;
}

/** Router rules of `previous` replaced by those of `next`, then the conntrack table flushed (no old mapping survives). */
export function routerNatCommands(previous: ResolvedDomain, next: ResolvedDomain): BoxCommand[] {
  return [{ cmd: 'iptables-restore', args: ['--noflush'], input: routerRulesSwap(previous, next) }, CONNTRACK_FLUSH];
}

/** Netem delay on the router's WAN egress; 0 removes the qdisc (none being there is fine). */
export function wanDelayCommands(ms: number): BoxCommand[] {
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_WAN_DELAY_MS) throw new BoxControlError(`WAN delay must be 0..${MAX_WAN_DELAY_MS} ms, got ${ms}`);
  const dev = IFACES.routerWan;
  if (ms === 0) return [{ cmd: 'tc', args: ['qdisc', 'del', 'dev', dev, 'root'], tolerate: NO_QDISC }];
  return [{ cmd: 'tc', args: ['qdisc', 'replace', 'dev', dev, 'root', 'netem', 'delay', `${ms}ms`] }];
}

const forwardRules = (filterSave: string): string[] => parseIptablesSave(filterSave).get('filter')?.chains.get('FORWARD') ?? [];
const isUdpBlock = (rule: string) => new RegExp(`(^| )--comment "?${UDP_BLOCK_COMMENT}"?( |$)`).test(rule);

/**
 * From the router's `iptables-save -t filter`: blocked, the UDP drop rules at the top of FORWARD and the conntrack
 * table flushed; unblocked, none. Without `peer` one rule drops all forwarded UDP (it matches both directions); with
 * it, two rules drop only UDP from and to that address, so the router's other paths (the relay) keep working.
 */
export function udpBlockCommands(blocked: boolean, filterSave: string, peer?: string): BoxCommand[] {
  if (peer !== undefined) parseAddress(peer);
  const wanted = peer ? [['-s', `${peer}/32`, ...UDP_BLOCK_RULE], ['-d', `${peer}/32`, ...UDP_BLOCK_RULE]] : [UDP_BLOCK_RULE];
  const rules = forwardRules(filterSave);
  const present = rules.filter(isUdpBlock);
  const inPlace = present.length === wanted.length && wanted.every((rule, i) => rules[i] === rule.join(' '));
  if (blocked && inPlace) return [CONNTRACK_FLUSH];
  const deletes = present.map((rule) => iptables('-D', 'FORWARD', ...rule.replace(/"/g, '').split(' ')));
  return blocked ? [...deletes, ...[...wanted].reverse().map((rule) => iptables('-I', 'FORWARD', '1', ...rule)), CONNTRACK_FLUSH] : deletes;
}

/**
 * Moves the router's WAN address. The new address is added first and the old one deleted with secondaries promoted,
 * so the internet prefix never leaves wan0 and routes through it stay; then the conntrack table is flushed.
 */
export function wanReaddressCommands(oldIP: string, newIP: string, internetBits: number): BoxCommand[] {
  const dev = IFACES.routerWan;
  return [
    { cmd: 'sysctl', args: ['-q', '-w', `net.ipv4.conf.${dev}.promote_secondaries=1`] },
    { cmd: 'ip', args: ['address', 'add', `${newIP}/${internetBits}`, 'dev', dev] },
    { cmd: 'ip', args: ['address', 'del', `${oldIP}/${internetBits}`, 'dev', dev] },
    CONNTRACK_FLUSH,
  ];
}

/** Source and destination of a rule in iptables-save form (`-s 10.0.0.0/24 -d 10.0.1.5/32`). */
function ruleEnds(rule: string): { source: string; destination: string } {
  const source = /(?:^| )-s (\S+)/.exec(rule)?.[1] ?? '0.0.0.0/0';
  const destination = /(?:^| )-d (\S+)/.exec(rule)?.[1] ?? '0.0.0.0/0';
  return { source: canonicalPrefix(source), destination: canonicalPrefix(destination) };
}

/**
 * From a node's `iptables-save -t filter`: what makes BOX-COUNT exist with a counting rule (no target, so traffic
 * just passes on) for src to dst, and makes its jump the first FORWARD rule again if something was inserted above it.
 * The rule's counters live in BOX-COUNT, so moving the jump keeps them.
 */
export function countSetupCommands(filterSave: string, src: string, dst: string): BoxCommand[] {
  const source = canonicalPrefix(src);
  const destination = canonicalPrefix(dst);
  const filter = parseIptablesSave(filterSave).get('filter');
  const chain = filter?.chains.get(BOX_COUNT_CHAIN);
  const commands: BoxCommand[] = [];
  if (!chain) commands.push(iptables('-N', BOX_COUNT_CHAIN));
  const counted = (chain ?? []).some((rule) => {
    const ends = ruleEnds(rule);
    return ends.source === source && ends.destination === destination;
  });
  if (!counted) commands.push(iptables('-A', BOX_COUNT_CHAIN, '-s', source, '-d', destination));
  const forward = filter?.chains.get('FORWARD') ?? [];
  const isJump = (rule: string) => rule.trim() === COUNT_JUMP.join(' ');
  const jumps = forward.filter(isJump).length;
  if (jumps !== 1 || !isJump(forward[0] ?? '')) {
    for (let i = 0; i < jumps; i++) commands.push(iptables('-D', 'FORWARD', ...COUNT_JUMP));
    commands.push(iptables('-I', 'FORWARD', '1', ...COUNT_JUMP));
  }
  return commands;
}

export function countListingCommand(): BoxCommand {
  return iptables('-nvxL', BOX_COUNT_CHAIN);
}

export interface ForwardCounter {
  source: string;
  destination: string;
  packets: number;
  bytes: number;
}

const ADDRESS_COLUMN = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;

/**
 * The rules of `iptables -nvxL <chain>` with their exact counters. Columns are found by shape rather than position:
 * iptables versions differ in the prot (`all` or `0`) and opt (`--` or blank) columns, and a rule without a target
 * leaves that column empty.
 */
export function parseCountListing(listing: string): ForwardCounter[] {
  return listing.split('\n').flatMap((line): ForwardCounter[] => {
    const fields = line.trim().split(/\s+/);
    if (!/^\d+$/.test(fields[0] ?? '') || !/^\d+$/.test(fields[1] ?? '')) return [];
    const [source, destination] = fields.slice(2).filter((field) => ADDRESS_COLUMN.test(field));
    if (!source || !destination) return [];
    return [{ packets: Number(fields[0]), bytes: Number(fields[1]), source: canonicalPrefix(source), destination: canonicalPrefix(destination) }];
  });
}

/** The bytes counted from src to dst in a BOX-COUNT listing; undefined when no rule counts that pair. */
export function countedBytes(listing: string, src: string, dst: string): number | undefined {
  const source = canonicalPrefix(src);
  const destination = canonicalPrefix(dst);
  return parseCountListing(listing).find((counter) => counter.source === source && counter.destination === destination)?.bytes;
}
