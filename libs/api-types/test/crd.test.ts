import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { GATEWAY_CRD_PATH, type gatewayCrd, gatewayCrdYaml } from '../src/index.ts';

const committed = readFileSync(new URL(`../../../${GATEWAY_CRD_PATH}`, import.meta.url), 'utf8');

describe('generated CRD', () => {
  it('matches the committed YAML (run `npm run gen` after changing the schemas)', () => {
    expect(committed).toBe(gatewayCrdYaml());
  });

  it('serves both versions, stores v1beta1, and has the status subresource, short name and category', () => {
    const crd = parse(committed) as ReturnType<typeof gatewayCrd> & {
      spec: { names: { shortNames: string[]; categories: string[] }; scope: string; versions: Array<{ name: string; served: boolean; storage: boolean; subresources: object }> };
    };
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.spec.names.shortNames).toEqual(['gw']);
    expect(crd.spec.names.categories).toEqual(['yurt']);
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, false], ['v1beta1', true, true]]);
    for (const v of crd.spec.versions) expect(v.subresources).toEqual({ status: {} });
  });

  it('keeps the upstream capital Replicas key', () => {
    expect(committed).toContain('Replicas:');
    expect(committed).not.toMatch(/\breplicas:/);
  });
});
