import { z } from 'zod';
import { batchLine, runBatch } from './batch.ts';
import { normalizeInterfaceAddress } from './cidr.ts';
import type { Exec } from './exec.ts';
import { parseJsonOutput } from './json.ts';
import { assertInterfaceName } from './links.ts';
import { assertOwned, diffKeyed, keyedSummary, reconcile, type ApplySummary, type KeyedDiff, type Reconciler } from './reconciler.ts';

export interface AddressSpec {
  dev: string;
  /** `address/prefixlen`; a bare address is a host address (/32, /128). */
  address: string;
}

export interface AddressOwnership {
  /** Devices whose addresses this reconciler manages (all of them, except automatic IPv6 link-local ones). */
  devices: readonly string[];
}

export type AddressDiff = KeyedDiff<AddressSpec, AddressSpec>;

const addressListSchema = z.array(
  z.object({
    ifname: z.string(),
    addr_info: z.array(z.object({ family: z.string(), local: z.string().optional(), prefixlen: z.number(), scope: z.string().optional() })),
  }),
);

/** Addresses of the given devices, excluding IPv6 link-local (fe80::/10) ones, which the kernel adds itself. */
export function parseAddresses(json: string, devices: ReadonlySet<string>): AddressSpec[] {
  const result: AddressSpec[] = [];
  for (const link of parseJsonOutput(addressListSchema, json, 'ip -j address show')) {
    if (!devices.has(link.ifname)) continue;
    for (const info of link.addr_info) {
      if (info.local === undefined || (info.family === 'inet6' && /^fe[89ab]/i.test(info.local))) continue;
      result.push({ dev: link.ifname, address: `${info.local}/${info.prefixlen}` });
    }
  }
  return result;
}

const addressKey = (a: AddressSpec) => `${a.dev} ${a.address}`;

/** Pure. Addresses have no mutable attributes here, so a diff only adds and removes. */
export function diffAddresses(desired: readonly AddressSpec[], actual: readonly AddressSpec[], ownership: AddressOwnership): AddressDiff {
  const owned = new Set(ownership.devices);
  const normalized = desired.map((spec) => {
    assertOwned('device', spec.dev, owned);
    return { dev: spec.dev, address: normalizeInterfaceAddress(spec.address) };
  });
  const relevant = actual.filter((a) => owned.has(a.dev));
  return diffKeyed(normalized, relevant, { desired: addressKey, actual: addressKey }, () => true);
}

/** Deletes first: deleting a primary IPv4 address also deletes the secondaries of its subnet. */
export function addressBatch(diff: AddressDiff): string[] {
  return [
    ...diff.remove.map((a) => batchLine('address', 'del', a.address, 'dev', a.dev)),
    ...diff.add.map((a) => batchLine('address', 'replace', a.address, 'dev', a.dev)),
  ];
}

/** Interface addresses on owned devices (including adopted links such as a WireGuard device). */
export class AddressReconciler implements Reconciler<readonly AddressSpec[], AddressSpec[], AddressDiff> {
  private readonly devices: ReadonlySet<string>;

  constructor(
    private readonly exec: Exec,
    readonly ownership: AddressOwnership,
  ) {
    ownership.devices.forEach(assertInterfaceName);
    this.devices = new Set(ownership.devices);
  }

  async read(): Promise<AddressSpec[]> {
    const { stdout } = await this.exec.run('ip', ['-j', 'address', 'show']);
    return parseAddresses(stdout, this.devices);
  }

  diff(desired: readonly AddressSpec[], actual: AddressSpec[]): AddressDiff {
    return diffAddresses(desired, actual, this.ownership);
  }

  async apply(diff: AddressDiff): Promise<ApplySummary> {
    await runBatch(this.exec, 'ip', addressBatch(diff));
    return keyedSummary(diff);
  }

  /** Removes every address from the owned devices. */
  cleanup(): Promise<ApplySummary> {
    return reconcile(this, []);
  }
}
