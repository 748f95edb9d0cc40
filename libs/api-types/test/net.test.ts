import { describe, expect, it } from 'vitest';
import {
  AddressIndex, cidrContains, cidrProblem, cidrsOverlap, gatewayV1beta1Schema, isDnsSubdomain, isValidPortList, parseCidr, parseIp, parseWireguardKey,
} from '../src/index.ts';

const key = Buffer.alloc(32, 7).toString('base64');

describe('WireGuard keys', () => {
  it.each<[string, string, boolean]>([
    ['a 32-byte key', key, true],
    ['a key with a newline and a second directive', `${key}\nAllowedIPs = 10.0.0.0/8`, false],
    ['a 31-byte key', Buffer.alloc(31, 7).toString('base64'), false],
    ['a 33-byte key', Buffer.alloc(33, 7).toString('base64'), false],
    ['a key whose last character carries bits a 32-byte key cannot have', `${'A'.repeat(42)}B=`, false],
    ['the empty string', '', false],
  ])('%s', (_d, value, ok) => expect(!!parseWireguardKey(value)).toBe(ok));
});

describe('IPs and CIDRs', () => {
  it.each<[string, boolean]>([
    ['10.0.0.1', true], ['2001:db8::1', true], ['::ffff:10.0.0.1', true], ['fe80::1%eth0', false], ['10.0.0.1\n', false], ['1.2.3', false], ['', false],
  ])('parseIp(%j) is %s', (value, ok) => expect(!!parseIp(value)).toBe(ok));

  it.each<[string, string | undefined]>([
    ['10.244.0.0/16', undefined],
    ['fd00:10::/64', undefined],
    ['0.0.0.0/0', undefined],
    ['10.244.0.1/16', 'has host bits set'],
    ['10.244.0.0/33', 'exceeds 32'],
    ['abc', 'is not a CIDR'],
    ['10.0.0.0/8\nAllowedIPs', 'is not a CIDR'],
    ['300.0.0.0/8', 'is not an IP address'],
  ])('cidrProblem(%j)', (value, problem) => {
    if (problem) expect(cidrProblem(value)).toContain(problem);
    else expect(cidrProblem(value)).toBeUndefined();
    expect(!!parseCidr(value)).toBe(problem === undefined);
  });

  it('detects overlaps and containment in both families', () => {
    const c = (s: string) => parseCidr(s)!;
    expect(cidrsOverlap(c('0.0.0.0/1'), c('10.0.0.0/8'))).toBe(true);
    expect(cidrsOverlap(c('128.0.0.0/1'), c('10.0.0.0/8'))).toBe(false);
    expect(cidrsOverlap(c('10.1.0.0/16'), c('10.1.2.0/24'))).toBe(true);
    expect(cidrsOverlap(c('fd00::/8'), c('10.0.0.0/8'))).toBe(false);
    expect(cidrsOverlap(c('fd00::/16'), c('fd00:1::/32'))).toBe(true);
    expect(cidrContains(c('0.0.0.0/1'), '10.0.0.1')).toBe(true);
    expect(cidrContains(c('fd00::/16'), 'fd00::1')).toBe(true);
    expect(cidrContains(c('fd00::/16'), 'fd01::1')).toBe(false);
  });
});

describe('node names and port lists', () => {
  it.each<[string, boolean]>([['node-a', true], ['a.b.c', true], ['Not_A_Valid_Node!', false], ['-a', false], ['a-', false], ['', false], ['n'.repeat(254), false]])(
    'isDnsSubdomain(%j) is %s', (value, ok) => expect(isDnsSubdomain(value)).toBe(ok),
  );
  it.each<[string, boolean]>([['', true], ['10255', true], ['10255,9445', true], ['10255,abc', false], ['0', false], ['70000', false], [' 80', false], ['80,', false]])(
    'isValidPortList(%j) is %s', (value, ok) => expect(isValidPortList(value)).toBe(ok),
  );
});

describe('the Gateway schema applies the same checks as the CRD', () => {
  const parse = (spec: object) => gatewayV1beta1Schema.safeParse({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'g' }, spec });
  it.each<[string, object, string | undefined]>([
    ['a valid tunnel endpoint with its key', { endpoints: [{ nodeName: 'a', type: 'tunnel', config: { publicKey: key } }] }, undefined],
    ['a publicKey that injects config lines', { endpoints: [{ nodeName: 'a', type: 'tunnel', config: { publicKey: `${key}\nAllowedIPs = 10.0.0.0/8` } }] }, 'WireGuard public key'],
    ['an invalid node name', { endpoints: [{ nodeName: 'Not_A_Valid_Node!', type: 'tunnel' }] }, 'valid node name'],
    ['an invalid publicIP', { endpoints: [{ nodeName: 'a', type: 'tunnel', publicIP: '1.2.3' }] }, 'valid IPv4 or IPv6'],
    ['an empty port list (no ports)', { proxyConfig: { Replicas: 0, proxyHTTPPort: '' } }, undefined],
    ['a port list with a word', { proxyConfig: { Replicas: 0, proxyHTTPPort: '10255,abc' } }, 'comma-separated list'],
  ])('%s', (_d, spec, message) => {
    const result = parse(spec);
    expect(result.success).toBe(message === undefined);
    if (message) expect(result.error!.issues[0]!.message).toContain(message);
  });
});

describe('AddressIndex', () => {
  const index = new AddressIndex(['10.0.0.5', '10.0.1.255', '192.168.1.1', 'fd00::1', '2001:db8::ffff', 'not-an-ip', '']);
  it.each<[string, string | undefined]>([
    ['10.0.0.0/24', '10.0.0.5'],
    ['10.0.0.0/31', undefined],
    ['10.0.0.4/31', '10.0.0.5'],
    ['10.0.0.0/16', '10.0.0.5'],
    ['10.0.1.0/24', '10.0.1.255'],
    ['10.0.2.0/24', undefined],
    ['192.168.1.1/32', '192.168.1.1'],
    ['0.0.0.0/0', '10.0.0.5'],
    ['fd00::/64', 'fd00::1'],
    ['2001:db8::/112', '2001:db8::ffff'],
    ['2001:db8:1::/48', undefined],
    ['::/0', '2001:db8::ffff'],
  ])('%s holds %s', (cidr, want) => {
    expect(index.firstIn(parseCidr(cidr)!)).toBe(want);
  });

  it('answers as a scan with cidrContains does, on many addresses and subnets', () => {
    const ips = Array.from({ length: 600 }, (_, i) => `10.${(i * 7) % 256}.${(i * 13) % 256}.${(i * 29) % 256}`);
    const idx = new AddressIndex(ips);
    // The subnet of length `len` around an address: masked, so parseCidr accepts it.
    const around = (n: number, len: number) => {
      const base = Math.floor(n / 2 ** (32 - len)) * 2 ** (32 - len);
      return `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.')}/${len}`;
    };
    let hits = 0;
    let misses = 0;
    for (let i = 0; i < 500; i++) {
      const n = 10 * 2 ** 24 + ((i * 2_654_435_761) % 2 ** 24);
      const cidr = parseCidr(around(n, 8 + (i % 23)))!;
      const scan = ips.filter((ip) => cidrContains(cidr, ip));
      const hit = idx.firstIn(cidr);
      expect(hit === undefined, cidr.cidr).toBe(scan.length === 0);
      if (hit) expect(scan, cidr.cidr).toContain(hit);
      if (hit) hits++;
      else misses++;
    }
    // Both answers occur, so the comparison says something.
    expect(hits).toBeGreaterThan(50);
    expect(misses).toBeGreaterThan(50);
  });
});
