import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MissingBinaryError, VERSIONS, binaryPath } from '../src/binaries.ts';

let root: string;
const saved = { assets: process.env.KUBEBUILDER_ASSETS, cache: process.env.RAVEN_BIN_CACHE };
const touch = (...parts: string[]) => {
  mkdirSync(join(root, ...parts.slice(0, -1)), { recursive: true });
  writeFileSync(join(root, ...parts), '');
  return join(root, ...parts);
};
const K = VERSIONS.kubernetes;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'raven-binaries-'));
  process.env.RAVEN_BIN_CACHE = join(root, 'cache');
  process.env.KUBEBUILDER_ASSETS = join(root, 'assets');
  mkdirSync(process.env.KUBEBUILDER_ASSETS, { recursive: true });
});
afterEach(() => {
  for (const [k, v] of [['KUBEBUILDER_ASSETS', saved.assets], ['RAVEN_BIN_CACHE', saved.cache]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(root, { recursive: true, force: true });
});

describe('binaryPath with an ordinary envtest KUBEBUILDER_ASSETS (etcd, kube-apiserver, kubectl)', () => {
  it('takes those from it, and kube-controller-manager from its own build', () => {
    const etcd = touch('assets', 'etcd');
    const apiserver = touch('assets', 'kube-apiserver');
    const kubectl = touch('assets', 'kubectl');
    const kcm = touch('cache', `kube-controller-manager-${K}`, 'kube-controller-manager');
    expect([binaryPath('etcd'), binaryPath('kube-apiserver'), binaryPath('kubectl'), binaryPath('kube-controller-manager')]).toEqual([etcd, apiserver, kubectl, kcm]);
  });

  it('prefers the whole kubernetes build over a single one', () => {
    const whole = touch('cache', `kubernetes-${K}`, 'kube-controller-manager');
    touch('cache', `kube-controller-manager-${K}`, 'kube-controller-manager');
    expect(binaryPath('kube-controller-manager')).toBe(whole);
  });

  it('non-envtest binaries never come from the assets', () => {
    touch('assets', 'helm');
    expect(() => binaryPath('helm')).toThrow(MissingBinaryError);
  });

  it('says what to run when the assets lack a binary', () => {
    expect(() => binaryPath('kube-controller-manager')).toThrow(/not in KUBEBUILDER_ASSETS=.* either; run `node scripts\/bootstrap\.mjs --binaries`, which builds only what that directory lacks/);
  });
});
