import { describe, expect, it } from 'vitest';
import {
  InvalidSpecError, addressBatch, diffAddresses, diffFdb, diffLinks, diffNeighbours, diffSysctls, fdbBatch, linkBatch, neighbourBatch,
  parseAddresses, parseFdb, parseLinks, type LinkSpec,
} from '../src/index.ts';

// `ip -d -j link show`, trimmed.
const LINKS = JSON.stringify([
  { ifname: 'lo', mtu: 65536, flags: ['LOOPBACK', 'UP'] },
  { ifname: 'eth0', mtu: 1500, flags: ['UP'], linkinfo: { info_kind: 'veth' } },
  { ifname: 'raven0', mtu: 1450, flags: ['BROADCAST'], linkinfo: { info_kind: 'vxlan', info_data: { id: 200, local: '198.18.0.1', link: 'eth0', port: 4472, learning: false } } },
  { ifname: 'raven-wg0', mtu: 1420, flags: ['UP'], linkinfo: { info_kind: 'wireguard' } },
  { ifname: 'old0', mtu: 1500, flags: [], linkinfo: { info_kind: 'bridge' } },
]);
const links = parseLinks(LINKS);
const vxlan: LinkSpec = { name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: '198.18.0.1', dev: 'eth0', mtu: 1450 };

describe('links', () => {
  it('updates mutable attributes in place and adopts foreign links without owning them', () => {
    const diff = diffLinks([{ ...vxlan, up: true }, { name: 'raven-wg0', kind: 'adopt', mtu: 1380, up: true }], links, { owned: ['raven0'] });
    expect(diff).toEqual({ create: [], recreate: [], remove: [], missingAdopted: [], update: [{ name: 'raven0', up: true }, { name: 'raven-wg0', mtu: 1380 }] });
    expect(linkBatch(diff)).toEqual(['link set dev raven0 up', 'link set dev raven-wg0 mtu 1380']);
  });

  it('recreates a vxlan whose immutable attributes differ and deletes only owned, undesired links', () => {
    const diff = diffLinks([{ ...vxlan, vni: 201, up: true }], links, { owned: ['raven0', 'old0', 'gone0'] });
    expect(diff.recreate.map((l) => l.name)).toEqual(['raven0']);
    expect(diff.remove).toEqual(['old0']);
    expect(linkBatch(diff)).toEqual([
      'link del dev old0',
      'link del dev raven0',
      'link add name raven0 mtu 1450 type vxlan id 201 dstport 4472 local 198.18.0.1 dev eth0 nolearning',
      'link set dev raven0 up',
    ]);
  });

  it('reports missing adopted links and refuses to create links it does not own', () => {
    expect(diffLinks([{ name: 'raven-wg1', kind: 'adopt' }], links, { owned: [] }).missingAdopted).toEqual(['raven-wg1']);
    expect(() => diffLinks([{ name: 'eth0', kind: 'bridge' }], links, { owned: [] })).toThrow(InvalidSpecError);
    expect(() => diffLinks([{ name: 'a-very-long-name0', kind: 'bridge' }], links, { owned: ['a-very-long-name0'] })).toThrow(InvalidSpecError);
  });
});

describe('addresses', () => {
  const json = JSON.stringify([
    { ifname: 'raven0', addr_info: [
      { family: 'inet', local: '10.250.0.1', prefixlen: 32, scope: 'global' },
      { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      { family: 'inet6', local: '2001:db8::1', prefixlen: 64, scope: 'global' },
    ] },
    { ifname: 'eth0', addr_info: [{ family: 'inet', local: '198.18.0.1', prefixlen: 24, scope: 'global' }] },
  ]);
  const actual = parseAddresses(json, new Set(['raven0']));

  it('ignores other devices and kernel link-local addresses', () => {
    expect(actual).toEqual([{ dev: 'raven0', address: '10.250.0.1/32' }, { dev: 'raven0', address: '2001:db8::1/64' }]);
  });

  it('deletes before adding', () => {
    const diff = diffAddresses([{ dev: 'raven0', address: '10.250.0.1' }, { dev: 'raven0', address: '2001:DB8::2/64' }], actual, { devices: ['raven0'] });
    expect(addressBatch(diff)).toEqual(['address del 2001:db8::1/64 dev raven0', 'address replace 2001:db8::2/64 dev raven0']);
    expect(() => diffAddresses([{ dev: 'eth0', address: '1.1.1.1' }], actual, { devices: ['raven0'] })).toThrow(InvalidSpecError);
  });
});

describe('neighbours and fdb', () => {
  it('replaces changed neighbours and deletes last', () => {
    const actual = [
      { dev: 'raven0', address: '10.250.0.2', lladdr: 'aa:bb:cc:dd:ee:02' },
      { dev: 'raven0', address: '10.250.0.3', lladdr: 'aa:bb:cc:dd:ee:03' },
      { dev: 'eth0', address: '198.18.0.9', lladdr: 'aa:bb:cc:dd:ee:09' },
    ];
    const diff = diffNeighbours([{ dev: 'raven0', address: '10.250.0.2', lladdr: 'AA:BB:CC:DD:EE:22' }], actual, { devices: ['raven0'] });
    expect(neighbourBatch(diff)).toEqual([
      'neigh replace 10.250.0.2 lladdr aa:bb:cc:dd:ee:22 dev raven0 nud permanent',
      'neigh del 10.250.0.3 dev raven0',
    ]);
  });

  it('keeps one remote per unicast MAC and many per flood MAC', () => {
    const json = JSON.stringify([
      { mac: '00:00:00:00:00:00', dst: '198.18.0.8', flags: ['self'], state: 'permanent' },
      { mac: 'aa:bb:cc:dd:ee:01', dst: '198.18.0.7', flags: ['self'], state: 'permanent' },
      { mac: '33:33:00:00:00:01', flags: ['self'], state: 'permanent' },
      { mac: 'aa:bb:cc:dd:ee:05', dst: '198.18.0.5', flags: ['self'] },
    ]);
    const actual = parseFdb(json, 'raven0');
    expect(actual).toHaveLength(2);
    const diff = diffFdb(
      [
        { dev: 'raven0', mac: '00:00:00:00:00:00', dst: '198.18.0.8' },
        { dev: 'raven0', mac: '00:00:00:00:00:00', dst: '198.18.0.9' },
        { dev: 'raven0', mac: 'aa:bb:cc:dd:ee:01', dst: '198.18.0.6' },
      ],
      actual,
      { devices: ['raven0'] },
    );
    expect(fdbBatch(diff)).toEqual([
      'fdb replace aa:bb:cc:dd:ee:01 dev raven0 dst 198.18.0.6 self permanent',
      'fdb append 00:00:00:00:00:00 dev raven0 dst 198.18.0.9 self permanent',
    ]);
    expect(() => diffFdb([{ dev: 'raven0', mac: 'aa:bb:cc:dd:ee:01', dst: '1.1.1.1' }, { dev: 'raven0', mac: 'aa:bb:cc:dd:ee:01', dst: '1.1.1.2' }], [], { devices: ['raven0'] })).toThrow(/duplicate/);
  });
});

describe('sysctls', () => {
  it('compares with whitespace collapsed and only writes what differs', () => {
    const actual = new Map([['net.ipv4.ip_forward', '0'], ['net.ipv4.ip_local_port_range', '32768 60999']]);
    const ownership = { keys: [...actual.keys()] };
    expect(diffSysctls({ 'net.ipv4.ip_forward': 1, 'net.ipv4.ip_local_port_range': '32768\t60999' }, actual, ownership).set).toEqual([
      { key: 'net.ipv4.ip_forward', value: '1', previous: '0' },
    ]);
    expect(() => diffSysctls({ 'net.ipv4.conf.all.rp_filter': 0 }, actual, ownership)).toThrow(InvalidSpecError);
  });
});
