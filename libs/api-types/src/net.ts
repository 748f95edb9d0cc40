import { isIP } from 'node:net';

/**
 * Typed network values. Everything that reaches a kernel object or a tunnel config is one of these, made only by the
 * parsers below, so a string from the API can never be rendered unchecked (the brands make that a type error).
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A WireGuard (X25519) key: base64 of exactly 32 bytes. */
export type WireguardKey = Brand<string, 'WireguardKey'>;
/** An IPv4 or IPv6 address in its usual text form. */
export type IpAddress = Brand<string, 'IpAddress'>;
/** A prefix whose address is the network address (no host bits set), e.g. `10.0.0.0/8`. */
export type Cidr = Brand<string, 'Cidr'>;

/** 43 base64 characters then `=`: the last character carries 4 bits, so only 16 characters are possible there. */
export const WIREGUARD_KEY_PATTERN = '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$';
const wireguardKeyRe = new RegExp(WIREGUARD_KEY_PATTERN);

/** A DNS-1123 subdomain, as Node names are. */
export const DNS1123_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const dnsSubdomainRe = new RegExp(DNS1123_SUBDOMAIN_PATTERN);

export const isDnsSubdomain = (s: string): boolean => s.length >= 1 && s.length <= 253 && dnsSubdomainRe.test(s);

export function parseWireguardKey(s: string | undefined): WireguardKey | undefined {
  return s !== undefined && wireguardKeyRe.test(s) ? (s as WireguardKey) : undefined;
}

export function parseIp(s: string | undefined): IpAddress | undefined {
  // No IPv6 zone (`%eth0`): a zone is free text, and no address we render needs one.
  return s !== undefined && !s.includes('%') && isIP(s) !== 0 ? (s as IpAddress) : undefined;
}

export interface ParsedCidr {
  cidr: Cidr;
  family: 4 | 6;
  prefixLength: number;
  /** The network address as a big integer (IPv4 in 32 bits, IPv6 in 128). */
  network: bigint;
}

const bits = (family: 4 | 6) => (family === 4 ? 32 : 128);

/** The address as an integer; undefined when it is not an IP literal. */
export function ipToBigInt(ip: string): { family: 4 | 6; value: bigint } | undefined {
  if (!parseIp(ip)) return undefined;
  const family = isIP(ip);
  if (family === 4) return { family, value: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  if (family !== 6) return undefined;
  let text = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipToBigInt(v4[1]!)!.value;
    text = `${text.slice(0, -v4[1]!.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return { family, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** Parses `addr/len`; undefined unless the address is an IP literal, the length fits the family and no host bit is set. */
export function parseCidr(s: string | undefined): ParsedCidr | undefined {
  if (s === undefined || s.length > 64) return undefined;
  const match = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!match) return undefined;
  const ip = ipToBigInt(match[1]!);
  const prefixLength = Number(match[2]);
  if (!ip || prefixLength > bits(ip.family)) return undefined;
  const hostBits = BigInt(bits(ip.family) - prefixLength);
  if (ip.value & ((1n << hostBits) - 1n)) return undefined;
  return { cidr: s as Cidr, family: ip.family, prefixLength, network: ip.value };
}

/** Why `s` is not a CIDR, as a sentence fragment; undefined when it is one. */
export function cidrProblem(s: string): string | undefined {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!match) return `"${s}" is not a CIDR (address/prefix-length)`;
  const ip = ipToBigInt(match[1]!);
  if (!ip) return `"${match[1]}" is not an IP address`;
  if (Number(match[2]) > bits(ip.family)) return `the prefix length of "${s}" exceeds ${bits(ip.family)}`;
  if (!parseCidr(s)) return `"${s}" has host bits set`;
  return undefined;
}

/** True when the two prefixes share at least one address. */
export function cidrsOverlap(a: ParsedCidr, b: ParsedCidr): boolean {
  if (a.family !== b.family) return false;
  const shorter = Math.min(a.prefixLength, b.prefixLength);
  const shift = BigInt(bits(a.family) - shorter);
  return a.network >> shift === b.network >> shift;
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains(cidr: ParsedCidr, ip: string): boolean {
  const addr = ipToBigInt(ip);
  if (!addr || addr.family !== cidr.family) return false;
  const shift = BigInt(bits(cidr.family) - cidr.prefixLength);
  return addr.value >> shift === cidr.network >> shift;
}

/**
 * Addresses parsed once and sorted, for "which of them lies in this CIDR" in O(log n) per question: screening 5,000
 * subnets against 1,000 protected addresses one by one re-parsed every address 5 million times.
 */
export class AddressIndex {
  private readonly sorted: { family: 4 | 6; value: bigint; ip: string }[];

  constructor(ips: Iterable<string>) {
    this.sorted = [...ips].flatMap((ip) => {
      const parsed = ipToBigInt(ip);
      return parsed ? [{ ...parsed, ip }] : [];
    }).sort((a, b) => a.family - b.family || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  }

  /** The lowest indexed address inside `cidr`, if any. */
  firstIn(cidr: ParsedCidr): string | undefined {
    const hostBits = BigInt(bits(cidr.family) - cidr.prefixLength);
    const start = (cidr.network >> hostBits) << hostBits;
    const end = start + (1n << hostBits) - 1n;
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const a = this.sorted[mid]!;
      if (a.family < cidr.family || (a.family === cidr.family && a.value < start)) lo = mid + 1;
      else hi = mid;
    }
    const hit = this.sorted[lo];
    return hit && hit.family === cidr.family && hit.value <= end ? hit.ip : undefined;
  }
}

/** An `ip:port` (IPv6 bracketed) as formatEndpoint writes it, from untrusted text; undefined when it is anything else. */
export function parseEndpoint(s: string | undefined): { ip: IpAddress; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s ?? '');
  if (!m) return undefined;
  const ip = parseIp(m[1] ?? m[2]);
  const port = Number(m[3]);
  return ip && isIP(ip) === (m[1] ? 6 : 4) && port >= 1 && port <= 65535 ? { ip, port } : undefined;
}

/** `host:port`, bracketing IPv6, from a validated address and a port in 1-65535. */
export function formatEndpoint(ip: IpAddress, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
