import { formatIpv4, parseIpv4 } from '@raven/netlink';

/** An IPv4 prefix with its host bits cleared. */
export interface Ipv4Cidr {
  readonly base: number;
  readonly bits: number;
  /** Canonical text, `10.224.0.128/26`. */
  readonly text: string;
}

export class InvalidAddressError extends Error {
  override readonly name = 'InvalidAddressError';
}

export function parseAddress(text: string): number {
  const value = parseIpv4(text);
  if (value === undefined) throw new InvalidAddressError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return value;
}

export function parseCidr(text: string): Ipv4Cidr {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  const bits = Number(match?.[2]);
  if (!match || bits > 32) throw new InvalidAddressError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  const span = 2 ** (32 - bits);
  const address = parseAddress(match[1]!);
  const base = address - (address % span);
  return { base, bits, text: `${formatIpv4(base)}/${bits}` };
}

const size = (cidr: Ipv4Cidr) => 2 ** (32 - cidr.bits);

/** The n-th address of the prefix (1 = the first host address). */
export function cidrHost(cidr: Ipv4Cidr, n: number): string {
  if (n < 0 || n >= size(cidr)) throw new InvalidAddressError(`${cidr.text} has no address number ${n}`);
  return formatIpv4(cidr.base + n);
}

export function cidrContains(cidr: Ipv4Cidr, address: string): boolean {
  const value = parseAddress(address);
  return value >= cidr.base && value < cidr.base + size(cidr);
}

/** An address usable by a host: inside the prefix, neither its network nor its broadcast address. */
export function isHostAddress(cidr: Ipv4Cidr, address: string): boolean {
  const value = parseAddress(address);
  return value > cidr.base && value < cidr.base + size(cidr) - 1;
}

export function cidrsOverlap(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}
