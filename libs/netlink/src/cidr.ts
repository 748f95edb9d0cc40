import { InvalidSpecError } from './errors.ts';

/**
 * IP address and prefix normalisation. The kernel reports addresses in one canonical text form
 * (inet_ntop: RFC 5952 for IPv6); desired state is normalised to the same form so diffs compare strings.
 */

export type IpFamily = 4 | 6;

export function ipFamily(address: string): IpFamily {
  return address.includes(':') ? 6 : 4;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(text: string): number | undefined {
  const match = IPV4.exec(text);
  if (!match) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(match[i]);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** Eight 16-bit groups, or undefined when `text` is not an IPv6 address (zones are not accepted). */
export function parseIpv6(text: string): number[] | undefined {
  let head = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const group of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      groups.push(parseInt(group, 16));
    }
    return groups;
  };
  const left = parseGroups(halves[0] ?? '');
  const right = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  if (!left || !right) return undefined;
  const explicit = left.length + right.length + tail.length;
  if (halves.length === 2 ? explicit > 7 : explicit !== 8) return undefined;
  return [...left, ...new Array<number>(8 - explicit).fill(0), ...right, ...tail];
}

/** Formats like glibc inet_ntop, which is what iproute2 and ipset print. */
export function formatIpv6(words: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j += 1;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  if (bestLength < 2) bestStart = -1;
  const hex = (i: number) => (words[i] ?? 0).toString(16);
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff))) {
    const v4 = formatIpv4((words[6] ?? 0) * 0x10000 + (words[7] ?? 0));
    return bestLength === 6 ? `::${v4}` : `::ffff:${v4}`;
  }
  if (bestStart < 0) return words.map((_, i) => hex(i)).join(':');
  const before = words.slice(0, bestStart).map((_, i) => hex(i));
  const after = words.slice(bestStart + bestLength).map((_, i) => hex(bestStart + bestLength + i));
  return `${before.join(':')}::${after.join(':')}`;
}

/** Canonical text of an IPv4 or IPv6 address. */
export function normalizeIp(text: string): string {
  if (!text.includes(':')) {
    const v4 = parseIpv4(text);
    if (v4 === undefined) throw new InvalidSpecError(`invalid IP address: ${JSON.stringify(text)}`);
    return formatIpv4(v4);
  }
  const v6 = parseIpv6(text);
  if (!v6) throw new InvalidSpecError(`invalid IP address: ${JSON.stringify(text)}`);
  return formatIpv6(v6);
}

function splitPrefix(text: string): { address: string; length: number | undefined } {
  const slash = text.indexOf('/');
  if (slash < 0) return { address: text, length: undefined };
  const lengthText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText)) throw new InvalidSpecError(`invalid prefix length in ${JSON.stringify(text)}`);
  return { address: text.slice(0, slash), length: Number(lengthText) };
}

/**
 * Canonical network prefix `address/length`: host bits cleared, a bare address becomes a host prefix (/32, /128).
 * `10.1.2.3/16` → `10.1.0.0/16`; `2001:DB8::1` → `2001:db8::1/128`.
 */
export function normalizePrefix(text: string): string {
  const { address, length } = splitPrefix(text);
  if (!address.includes(':')) {
    const v4 = parseIpv4(address);
    const bits = length ?? 32;
    if (v4 === undefined || bits > 32) throw new InvalidSpecError(`invalid IPv4 prefix: ${JSON.stringify(text)}`);
    const hostSpan = 2 ** (32 - bits);
    return `${formatIpv4(v4 - (v4 % hostSpan))}/${bits}`;
  }
  const v6 = parseIpv6(address);
  const bits = length ?? 128;
  if (!v6 || bits > 128) throw new InvalidSpecError(`invalid IPv6 prefix: ${JSON.stringify(text)}`);
  const masked = v6.map((word, i) => {
    const keep = Math.min(16, Math.max(0, bits - i * 16));
    return keep === 16 ? word : word & ~((1 << (16 - keep)) - 1) & 0xffff;
  });
  return `${formatIpv6(masked)}/${bits}`;
}

/** Canonical interface address `address/length` (host bits kept); a bare address gets a host prefix. */
export function normalizeInterfaceAddress(text: string): string {
  const { address, length } = splitPrefix(text);
  const family = ipFamily(address);
  const bits = length ?? (family === 4 ? 32 : 128);
  if (bits > (family === 4 ? 32 : 128)) throw new InvalidSpecError(`invalid address: ${JSON.stringify(text)}`);
  return `${normalizeIp(address)}/${bits}`;
}

/** Adds the host prefix length that the kernel omits when printing a /32 or /128. */
export function withHostPrefix(kernelText: string): string {
  if (kernelText.includes('/')) return kernelText;
  return `${kernelText}/${kernelText.includes(':') ? 128 : 32}`;
}
