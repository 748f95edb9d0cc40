import { describe, expect, it } from 'vitest';
import { InvalidSpecError, diffRoutes, parseRoutes, routeBatch, type RouteSpec } from '../src/index.ts';

// `ip -d -j route show table 9027` output, trimmed to the fields that matter.
const V4 = JSON.stringify([
  { type: 'unicast', dst: '1.2.3.4', dev: 'd0', protocol: 'boot', scope: 'link', metric: 5, flags: [], metrics: [{ mtu: 1400 }] },
  { type: 'unicast', dst: '10.1.0.0/24', gateway: '198.18.0.2', dev: 'd0', protocol: 'boot', scope: 'global', flags: [] },
  { type: 'unicast', dst: '10.1.1.0/24', gateway: '10.99.0.1', dev: 'raven0', protocol: 'boot', scope: 'global', flags: ['onlink'] },
  { type: 'blackhole', dst: '10.5.0.0/16', protocol: 'boot', scope: 'global', flags: [] },
]);
const V6 = JSON.stringify([
  { type: 'unicast', dst: '2001:db8:1::/48', gateway: '2001:db8::2', dev: 'd0', protocol: 'boot', scope: 'global', metric: 1024, flags: [], pref: 'medium' },
  { type: 'unicast', dst: 'default', gateway: '2001:db8::2', dev: 'd0', protocol: 'boot', scope: 'global', metric: 1024, flags: [] },
]);
const ownership = { tables: [9027] };
const actual = [...parseRoutes(V4, 9027, 4), ...parseRoutes(V6, 9027, 6), ...parseRoutes(V4, 9999, 4)];
const matching: RouteSpec[] = [
  { table: 9027, dst: '1.2.3.4', dev: 'd0', metric: 5, mtu: 1400, scope: 'link' },
  { table: 9027, dst: '10.1.0.0/24', via: '198.18.0.2' },
  { table: 9027, dst: '10.1.1.7/24', via: '10.99.0.1', dev: 'raven0', onlink: true },
  { table: 9027, dst: '10.5.0.0/16', type: 'blackhole' },
  { table: 9027, dst: '2001:DB8:1::/48', via: '2001:db8:0::2' },
  { table: 9027, dst: '::/0', via: '2001:db8::2', dev: 'd0' },
];

describe('routes', () => {
  it('normalises kernel output (default, host prefixes, metrics)', () => {
    expect(actual.filter((r) => r.table === 9027).map((r) => `${r.dst}@${r.metric}`)).toEqual([
      '1.2.3.4/32@5', '10.1.0.0/24@0', '10.1.1.0/24@0', '10.5.0.0/16@0', '2001:db8:1::/48@1024', '::/0@1024',
    ]);
  });

  it('plans nothing when the owned table already matches, and never looks at other tables', () => {
    const diff = diffRoutes(matching, actual, ownership);
    expect(diff).toEqual({ add: [], remove: [], change: [] });
    expect(routeBatch(diff)).toEqual([]);
  });

  it('adds, changes (replace) and removes by identity (table, dst, metric)', () => {
    const desired: RouteSpec[] = [
      ...matching.slice(0, 1),
      { table: 9027, dst: '10.1.0.0/24', via: '198.18.0.3' },
      { table: 9027, dst: '10.7.0.0/16', via: '198.18.0.2', dev: 'd0', onlink: true },
      { table: 9027, dst: '10.5.0.0/16', type: 'blackhole', metric: 10 },
    ];
    const diff = diffRoutes(desired, actual, ownership);
    expect(routeBatch(diff)).toEqual([
      'route del 10.1.1.0/24 metric 0 table 9027',
      'route del 10.5.0.0/16 metric 0 table 9027',
      'route del 2001:db8:1::/48 metric 1024 table 9027',
      'route del ::/0 metric 1024 table 9027',
      'route replace 10.1.0.0/24 via 198.18.0.3 metric 0 table 9027',
      'route replace 10.7.0.0/16 via 198.18.0.2 dev d0 onlink metric 0 table 9027',
      'route replace blackhole 10.5.0.0/16 metric 10 table 9027',
    ]);
  });

  it('rejects routes outside owned tables and mixed families', () => {
    expect(() => diffRoutes([{ table: 254, dst: '10.0.0.0/8', dev: 'd0' }], [], ownership)).toThrow(InvalidSpecError);
    expect(() => diffRoutes([{ table: 9027, dst: '10.0.0.0/8', via: '2001:db8::1' }], [], ownership)).toThrow(InvalidSpecError);
    expect(() => diffRoutes([{ table: 9027, dst: '10.0.0.0/8' }, { table: 9027, dst: '10.0.0.0/8', type: 'blackhole' }], [], ownership)).toThrow(/duplicate/);
  });

  it('diffs 5,000 routes in linear time', () => {
    const desired: RouteSpec[] = Array.from({ length: 5000 }, (_, i) => ({ table: 9027, dst: `10.${i >> 8}.${i & 255}.0/24`, via: '10.250.0.2', dev: 'raven0', onlink: true }));
    const kernel = JSON.stringify(desired.map((r) => ({ type: 'unicast', dst: r.dst, gateway: r.via, dev: r.dev, protocol: 'boot', scope: 'global', flags: ['onlink'] })));
    const diff = diffRoutes(desired, parseRoutes(kernel, 9027, 4), ownership);
    expect(diff.add.length + diff.remove.length + diff.change.length).toBe(0);
  });
});
