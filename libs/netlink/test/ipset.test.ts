import { describe, expect, it } from 'vitest';
import { InvalidSpecError, diffIpsets, ipsetRestoreScript, parseIpsetSave, summarizeIpsetDiff, type IpsetSpec } from '../src/index.ts';

const SAVE = [
  'create raven-mark-set hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xd73cb1db',
  'add raven-mark-set 10.1.2.0/24 nomatch',
  'add raven-mark-set 10.2.0.0/16',
  'add raven-mark-set 10.1.2.3',
  'create kube-foreign hash:ip family inet hashsize 1024 maxelem 65536',
  'add kube-foreign 10.9.9.9',
  'create raven-skip-nat-set hash:net,net family inet hashsize 1024 maxelem 65536',
  'add raven-skip-nat-set 10.1.0.0/16,10.2.0.5',
  'create raven-old-set hash:net family inet6 hashsize 1024 maxelem 65536',
  'create raven-mark-set-tmp hash:net family inet hashsize 1024 maxelem 65536',
  '',
].join('\n');
const ownership = { sets: ['raven-mark-set', 'raven-skip-nat-set', 'raven-old-set', 'raven-v6'] };
const names = new Set(ownership.sets.flatMap((n) => [n, `${n}-tmp`]));
const actual = parseIpsetSave(SAVE, names);

describe('ipset save parsing', () => {
  it('keeps only owned sets (and their temp sets) with canonical members', () => {
    expect([...actual.keys()]).toEqual(['raven-mark-set', 'raven-skip-nat-set', 'raven-old-set', 'raven-mark-set-tmp']);
    expect([...(actual.get('raven-mark-set')?.members ?? [])]).toEqual(['10.1.2.0/24 nomatch', '10.2.0.0/16', '10.1.2.3/32']);
    expect([...(actual.get('raven-skip-nat-set')?.members ?? [])]).toEqual(['10.1.0.0/16,10.2.0.5/32']);
  });
});

describe('ipset diff', () => {
  const mark: IpsetSpec = { name: 'raven-mark-set', type: 'hash:net', family: 'inet', members: ['10.2.5.6/16', '10.1.2.3', '10.3.0.0/16', '10.3.0.0/16'] };
  const skip: IpsetSpec = { name: 'raven-skip-nat-set', type: 'hash:net,net', family: 'inet', members: ['10.1.0.0/16,10.2.0.5/32'] };

  it('adds and deletes members, destroys stale temp and undesired owned sets, never foreign ones', () => {
    const diff = diffIpsets([mark, skip], actual, ownership);
    expect(ipsetRestoreScript(diff)).toEqual([
      'destroy raven-mark-set-tmp',
      'del raven-mark-set 10.1.2.0/24',
      'add raven-mark-set 10.3.0.0/16',
      'destroy raven-old-set',
    ]);
    expect(summarizeIpsetDiff(diff)).toEqual({ added: 1, removed: 3, changed: 0 });
  });

  it('creates missing sets with their members', () => {
    const v6: IpsetSpec = { name: 'raven-v6', type: 'hash:net', family: 'inet6', members: ['2001:DB8::/32'], maxelem: 1000, hashsize: 64 };
    const diff = diffIpsets([v6], new Map(), ownership);
    expect(ipsetRestoreScript(diff)).toEqual(['create raven-v6 hash:net family inet6 hashsize 64 maxelem 1000', 'add raven-v6 2001:db8::/32']);
    expect(summarizeIpsetDiff(diff)).toEqual({ added: 2, removed: 0, changed: 0 });
  });

  it('swaps in a filled temp set when options change, and replaces a set of another type or family', () => {
    const diff = diffIpsets([{ ...skip, maxelem: 1024 }, { name: 'raven-old-set', type: 'hash:net', family: 'inet', members: ['10.0.0.0/8'] }], actual, ownership);
    expect(ipsetRestoreScript(diff)).toEqual([
      'destroy raven-mark-set-tmp',
      'create raven-skip-nat-set-tmp hash:net,net family inet maxelem 1024',
      'add raven-skip-nat-set-tmp 10.1.0.0/16,10.2.0.5/32',
      'swap raven-skip-nat-set-tmp raven-skip-nat-set',
      'destroy raven-skip-nat-set-tmp',
      'destroy raven-old-set',
      'create raven-old-set hash:net family inet',
      'add raven-old-set 10.0.0.0/8',
      'destroy raven-mark-set',
    ]);
    expect(summarizeIpsetDiff(diff)).toEqual({ added: 0, removed: 2, changed: 2 });
  });

  it('validates members and ownership', () => {
    expect(() => diffIpsets([{ ...mark, members: ['2001:db8::/32'] }], actual, ownership)).toThrow(InvalidSpecError);
    expect(() => diffIpsets([{ ...skip, members: ['10.0.0.0/8'] }], actual, ownership)).toThrow(InvalidSpecError);
    expect(() => diffIpsets([{ ...mark, name: 'kube-foreign' }], actual, ownership)).toThrow(InvalidSpecError);
  });

  it('diffs 5,000 members without quadratic work', () => {
    const members = Array.from({ length: 5000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const save = ['create raven-mark-set hash:net family inet hashsize 1024 maxelem 65536', ...members.map((m) => `add raven-mark-set ${m}`)].join('\n');
    const diff = diffIpsets([{ ...mark, members: [...members.slice(1), '10.200.0.0/24'] }], parseIpsetSave(save, names), ownership);
    expect(ipsetRestoreScript(diff)).toEqual(['del raven-mark-set 10.0.0.0/24', 'add raven-mark-set 10.200.0.0/24']);
  });
});
