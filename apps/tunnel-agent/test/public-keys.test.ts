import { describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { KnownKeys, natTypePatch, publicKeyPatch } from '../src/public-keys.ts';

const KEY = `${'K'.repeat(42)}A=`;
const OLD = `${'O'.repeat(42)}A=`;
const gw = (endpoints: object[], active: object[] = []): Gateway =>
  gatewayV1beta1Schema.parse({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw' }, spec: { endpoints }, status: { activeEndpoints: active } });

describe('publicKeyPatch', () => {
  it.each<[string, Gateway, unknown]>([
    ['no endpoint of this node', gw([{ nodeName: 'other', type: 'tunnel' }]), undefined],
    ['only a proxy endpoint of this node', gw([{ nodeName: 'me', type: 'proxy' }]), undefined],
    ['the key is already there', gw([{ nodeName: 'me', type: 'tunnel', config: { publicKey: KEY } }]), undefined],
    ['an endpoint without config', gw([{ nodeName: 'other', type: 'tunnel' }, { nodeName: 'me', type: 'tunnel' }]), [
      { op: 'test', path: '/spec/endpoints/1/nodeName', value: 'me' },
      { op: 'add', path: '/spec/endpoints/1/config', value: { publicKey: KEY } },
    ]],
    ['an endpoint with another key', gw([{ nodeName: 'me', type: 'tunnel', config: { publicKey: OLD, x: 'y' } }]), [
      { op: 'test', path: '/spec/endpoints/0/nodeName', value: 'me' },
      { op: 'add', path: '/spec/endpoints/0/config/publicKey', value: KEY },
    ]],
  ])('%s', (_what, gateway, want) => {
    expect(publicKeyPatch(gateway, 'me', KEY)).toEqual(want);
  });
});

describe('natTypePatch', () => {
  it.each<[string, Gateway, unknown]>([
    ['no tunnel endpoint of this node', gw([{ nodeName: 'me', type: 'proxy' }]), undefined],
    ['already recorded', gw([{ nodeName: 'me', type: 'tunnel', natType: 'PortRestricted' }]), undefined],
    ['unset', gw([{ nodeName: 'other', type: 'tunnel' }, { nodeName: 'me', type: 'tunnel' }]), [
      { op: 'test', path: '/spec/endpoints/1/nodeName', value: 'me' },
      { op: 'add', path: '/spec/endpoints/1/natType', value: 'PortRestricted' },
    ]],
    ['another value (the NAT changed)', gw([{ nodeName: 'me', type: 'tunnel', natType: 'Symmetric' }]), [
      { op: 'test', path: '/spec/endpoints/0/nodeName', value: 'me' },
      { op: 'add', path: '/spec/endpoints/0/natType', value: 'PortRestricted' },
    ]],
  ])('%s', (_what, gateway, want) => {
    expect(natTypePatch(gateway, 'me', 'PortRestricted')).toEqual(want);
  });
});

describe('KnownKeys', () => {
  it('fills a wiped key with the last one seen, in spec and status, and keeps a present key', () => {
    const known = new KnownKeys();
    known.fill([gw([{ nodeName: 'a', type: 'tunnel', config: { publicKey: KEY } }], [{ nodeName: 'a', type: 'tunnel', config: { publicKey: KEY } }])]);
    const [filled] = known.fill([gw([{ nodeName: 'a', type: 'tunnel' }, { nodeName: 'b', type: 'tunnel' }], [{ nodeName: 'a', type: 'tunnel', config: {} }])]);
    expect(filled!.spec?.endpoints?.map((e) => e.config?.publicKey)).toEqual([KEY, undefined]);
    expect(filled!.status?.activeEndpoints?.[0]?.config?.publicKey).toBe(KEY);
    const [updated] = known.fill([gw([{ nodeName: 'a', type: 'tunnel', config: { publicKey: OLD } }])]);
    expect(updated!.spec?.endpoints?.[0]?.config?.publicKey).toBe(OLD);
  });
});
