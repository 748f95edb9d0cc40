import { describe, expect, it } from 'vitest';
import { planBinaries } from '../scripts/envtest-assets.mjs';

const TARGETS = ['etcd', 'kubernetes', 'kubernetes-node', 'helm'];
const ENVTEST = ['etcd', 'kube-apiserver', 'kubectl'];

describe('KUBEBUILDER_ASSETS: take what is there, build only what is missing', () => {
  it.each<{ name: string; files?: string[]; built?: string[]; fromAssets: string[]; fromCache?: string[]; build: string[]; message?: RegExp }>([
    { name: 'no KUBEBUILDER_ASSETS: every target not yet cached', built: ['helm'], fromAssets: [], build: ['etcd', 'kubernetes', 'kubernetes-node'] },
    {
      name: 'an ordinary envtest directory: kube-controller-manager alone is built',
      files: ENVTEST, fromAssets: ENVTEST, build: ['kube-controller-manager', 'kubernetes-node', 'helm'],
      message: /^KUBEBUILDER_ASSETS=\/assets: etcd, kube-apiserver, kubectl from it; building kube-controller-manager, which it lacks$/,
    },
    { name: 'an envtest directory, kube-controller-manager already built alone', files: ENVTEST, built: ['kube-controller-manager'], fromAssets: ENVTEST, fromCache: ['kube-controller-manager'], build: ['kubernetes-node', 'helm'], message: /; kube-controller-manager from the cache$/ },
    { name: 'an envtest directory, the whole kubernetes target cached', files: ENVTEST, built: ['kubernetes'], fromAssets: ENVTEST, fromCache: ['kube-controller-manager'], build: ['kubernetes-node', 'helm'] },
    { name: 'a complete directory builds none of its binaries', files: [...ENVTEST, 'kube-controller-manager', 'README'], fromAssets: ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl'], build: ['kubernetes-node', 'helm'], message: /from it$/ },
    { name: 'etcd only: the kubernetes target whole', files: ['etcd'], fromAssets: ['etcd'], build: ['kubernetes', 'kubernetes-node', 'helm'], message: /building kubernetes \(kube-apiserver, kube-controller-manager, kubectl\), which it lacks$/ },
    { name: 'an empty directory', files: [], fromAssets: [], build: ['etcd', 'kubernetes', 'kubernetes-node', 'helm'], message: /none of the envtest binaries in it; building etcd, kubernetes/ },
    { name: 'kube-apiserver and kubectl missing', files: ['etcd', 'kube-controller-manager'], fromAssets: ['etcd', 'kube-controller-manager'], build: ['kube-apiserver', 'kubectl', 'kubernetes-node', 'helm'] },
  ])('$name', ({ files, built = [], fromAssets, fromCache = [], build, message }) => {
    const plan = planBinaries(TARGETS, { assets: files ? { dir: '/assets', files } : undefined, built: new Set(built) });
    expect(plan.fromAssets.sort()).toEqual([...fromAssets].sort());
    expect(plan.fromCache).toEqual(fromCache);
    expect(plan.build).toEqual(build);
    if (message) expect(plan.message).toMatch(message);
    if (!files) expect(plan.message).toBeUndefined();
  });
});
