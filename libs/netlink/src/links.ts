import { z } from 'zod';
import { batchLine, runBatch } from './batch.ts';
import { normalizeIp } from './cidr.ts';
import { InvalidSpecError, LinkNotFoundError } from './errors.ts';
import type { Exec } from './exec.ts';
import { parseJsonOutput } from './json.ts';
import { NO_CHANGES, reconcile, type ApplySummary, type Reconciler } from './reconciler.ts';

interface LinkCommon {
  /** Interface name, at most 15 characters. */
  name: string;
  /** Left as is when undefined. */
  mtu?: number;
  /** Hardware address; left as is when undefined. */
  mac?: string;
  /** Administrative state; left as is when undefined. */
  up?: boolean;
}

export interface VxlanLinkSpec extends LinkCommon {
  kind: 'vxlan';
  vni: number;
  /** UDP destination port (`dstport`). */
  port: number;
  /** Source address of the tunnel. */
  local?: string;
  /** Underlying device. */
  dev?: string;
  /** MAC learning; false (`nolearning`) unless set. */
  learning?: boolean;
}

export interface SimpleLinkSpec extends LinkCommon {
  kind: 'bridge' | 'dummy';
}

/** A link created by someone else (e.g. a WireGuard device): configured (MTU, up) but never created or deleted. */
export interface AdoptedLinkSpec extends LinkCommon {
  kind: 'adopt';
}

export type LinkSpec = VxlanLinkSpec | SimpleLinkSpec | AdoptedLinkSpec;
export type CreatableLinkSpec = VxlanLinkSpec | SimpleLinkSpec;

export interface VxlanAttributes {
  vni: number;
  port: number;
  local: string | undefined;
  dev: string | undefined;
  learning: boolean;
}

export interface LinkState {
  name: string;
  /** `info_kind` (vxlan, bridge, veth, wireguard...); undefined for plain devices such as loopback. */
  kind: string | undefined;
  mtu: number;
  mac: string | undefined;
  up: boolean;
  vxlan: VxlanAttributes | undefined;
}

export interface LinkUpdate {
  name: string;
  mtu?: number;
  mac?: string;
  up?: boolean;
}

export interface LinkDiff {
  create: CreatableLinkSpec[];
  /** Owned links of the wrong kind or with immutable attributes (VNI, port, local, dev) that differ: deleted and created. */
  recreate: CreatableLinkSpec[];
  update: LinkUpdate[];
  /** Owned links that are no longer desired. */
  remove: string[];
  /** Adopted links that do not exist (yet). */
  missingAdopted: string[];
}

export interface LinkOwnership {
  /** Links this reconciler creates and may delete. Adopted links need not (and usually should not) be listed. */
  owned: readonly string[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function normalizeMac(mac: string): string {
  const lower = mac.toLowerCase();
  if (!MAC.test(lower)) throw new InvalidSpecError(`invalid MAC address: ${JSON.stringify(mac)}`);
  return lower;
}

const IFNAME = /^[^\s/:"'\\#]{1,15}$/;

export function assertInterfaceName(name: string): void {
  if (!IFNAME.test(name)) throw new InvalidSpecError(`invalid interface name: ${JSON.stringify(name)}`);
}

const linkListSchema = z.array(
  z.object({
    ifname: z.string(),
    mtu: z.number(),
    address: z.string().optional(),
    flags: z.array(z.string()),
    linkinfo: z
      .object({
        info_kind: z.string().optional(),
        info_data: z
          .object({
            id: z.number().optional(),
            port: z.number().optional(),
            local: z.string().optional(),
            local6: z.string().optional(),
            link: z.string().optional(),
            learning: z.boolean().optional(),
          })
          .optional(),
      })
      .optional(),
  }),
);

export function parseLinks(json: string): Map<string, LinkState> {
  const links = new Map<string, LinkState>();
  for (const row of parseJsonOutput(linkListSchema, json, 'ip -d -j link show')) {
    const kind = row.linkinfo?.info_kind;
    const data = row.linkinfo?.info_data;
    const local = data?.local ?? data?.local6;
    links.set(row.ifname, {
      name: row.ifname,
      kind,
      mtu: row.mtu,
      mac: row.address,
      up: row.flags.includes('UP'),
      vxlan:
        kind === 'vxlan' && data
          ? { vni: data.id ?? 0, port: data.port ?? 0, local: local === undefined ? undefined : normalizeIp(local), dev: data.link, learning: data.learning ?? true }
          : undefined,
    });
  }
  return links;
}

function sameVxlan(spec: VxlanLinkSpec, actual: VxlanAttributes | undefined): boolean {
  return (
    actual !== undefined &&
    actual.vni === spec.vni &&
    actual.port === spec.port &&
    actual.local === (spec.local === undefined ? undefined : normalizeIp(spec.local)) &&
    actual.dev === spec.dev &&
    actual.learning === (spec.learning ?? false)
  );
}

function needsRecreate(spec: CreatableLinkSpec, actual: LinkState): boolean {
  if (actual.kind !== spec.kind) return true;
  return spec.kind === 'vxlan' && !sameVxlan(spec, actual.vxlan);
}

/** Pure: the link operations that turn `actual` into `desired` without touching links outside `ownership`. */
export function diffLinks(desired: readonly LinkSpec[], actual: ReadonlyMap<string, LinkState>, ownership: LinkOwnership): LinkDiff {
  const owned = new Set(ownership.owned);
  const diff: LinkDiff = { create: [], recreate: [], update: [], remove: [], missingAdopted: [] };
  const desiredNames = new Set<string>();
  for (const spec of desired) {
    assertInterfaceName(spec.name);
    if (desiredNames.has(spec.name)) throw new InvalidSpecError(`link ${spec.name} is specified twice`);
    desiredNames.add(spec.name);
    const current = actual.get(spec.name);
    if (spec.kind === 'adopt') {
      if (!current) diff.missingAdopted.push(spec.name);
      else pushUpdate(diff, spec, current);
      continue;
    }
    if (!owned.has(spec.name)) throw new InvalidSpecError(`link ${spec.name} is not owned by this reconciler`);
    if (spec.kind === 'vxlan' && spec.dev !== undefined) assertInterfaceName(spec.dev);
    if (!current) diff.create.push(spec);
    else if (needsRecreate(spec, current)) diff.recreate.push(spec);
    else pushUpdate(diff, spec, current);
  }
  for (const name of owned) if (!desiredNames.has(name) && actual.has(name)) diff.remove.push(name);
  return diff;
}

function pushUpdate(diff: LinkDiff, spec: LinkSpec, current: LinkState): void {
  const update: LinkUpdate = { name: spec.name };
  if (spec.mtu !== undefined && spec.mtu !== current.mtu) update.mtu = spec.mtu;
  if (spec.mac !== undefined && normalizeMac(spec.mac) !== current.mac) update.mac = normalizeMac(spec.mac);
  if (spec.up !== undefined && spec.up !== current.up) update.up = spec.up;
  if (update.mtu !== undefined || update.mac !== undefined || update.up !== undefined) diff.update.push(update);
}

function createLine(spec: CreatableLinkSpec): string {
  const common = [
    ...(spec.mac === undefined ? [] : ['address', normalizeMac(spec.mac)]),
    ...(spec.mtu === undefined ? [] : ['mtu', spec.mtu]),
  ];
  if (spec.kind !== 'vxlan') return batchLine('link', 'add', 'name', spec.name, ...common, 'type', spec.kind);
  return batchLine(
    'link', 'add', 'name', spec.name, ...common, 'type', 'vxlan', 'id', spec.vni, 'dstport', spec.port,
    ...(spec.local === undefined ? [] : ['local', normalizeIp(spec.local)]),
    ...(spec.dev === undefined ? [] : ['dev', spec.dev]),
    spec.learning ? 'learning' : 'nolearning',
  );
}

/** Pure: the `ip -batch` script for a link diff (deletes, then creates with vxlan last as it may sit on a new link, then updates). */
export function linkBatch(diff: LinkDiff): string[] {
  const script = [...diff.remove, ...diff.recreate.map((s) => s.name)].map((name) => batchLine('link', 'del', 'dev', name));
  const creates = [...diff.create, ...diff.recreate].sort((a, b) => Number(a.kind === 'vxlan') - Number(b.kind === 'vxlan'));
  for (const spec of creates) {
    script.push(createLine(spec));
    if (spec.up) script.push(batchLine('link', 'set', 'dev', spec.name, 'up'));
  }
  for (const update of diff.update) {
    const mtu = update.mtu === undefined ? [] : ['mtu', update.mtu];
    const mac = update.mac === undefined ? [] : ['address', update.mac];
    const state = update.up === undefined ? [] : [update.up ? 'up' : 'down'];
    script.push(batchLine('link', 'set', 'dev', update.name, ...mtu, ...mac, ...state));
  }
  return script;
}

/** Network interfaces: creates/updates/deletes owned links (vxlan, bridge, dummy) and configures adopted ones. */
export class LinkReconciler implements Reconciler<readonly LinkSpec[], Map<string, LinkState>, LinkDiff> {
  constructor(
    private readonly exec: Exec,
    readonly ownership: LinkOwnership,
  ) {}

  async read(): Promise<Map<string, LinkState>> {
    const { stdout } = await this.exec.run('ip', ['-d', '-j', 'link', 'show']);
    return parseLinks(stdout);
  }

  diff(desired: readonly LinkSpec[], actual: Map<string, LinkState>): LinkDiff {
    return diffLinks(desired, actual, this.ownership);
  }

  /** Applies everything it can, then throws LinkNotFoundError if adopted links are missing. */
  async apply(diff: LinkDiff): Promise<ApplySummary> {
    await runBatch(this.exec, 'ip', linkBatch(diff));
    if (diff.missingAdopted.length > 0) throw new LinkNotFoundError(diff.missingAdopted);
    return { added: diff.create.length, removed: diff.remove.length, changed: diff.recreate.length + diff.update.length };
  }

  /** Deletes every owned link that exists. */
  cleanup(): Promise<ApplySummary> {
    return this.ownership.owned.length === 0 ? Promise.resolve(NO_CHANGES) : reconcile(this, []);
  }
}
