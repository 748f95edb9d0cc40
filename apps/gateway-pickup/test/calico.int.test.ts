import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, kubectl, registerNode, uniqueName, waitFor, waitForCrdEstablished } from '@raven/testbed';
import { createGateway, deleteGateway, startPickup, waitForGateway, type PickupProcess } from './support.ts';

const cluster = inject('cluster');
let kube: KubeClient;
let pickup: PickupProcess;
const gw = uniqueName('gw-calico');
const calicoNode = uniqueName('calico');
const plainNode = uniqueName('plain');

// The shape of Calico's BlockAffinity CRD that matters here (spec.node, spec.cidr, spec.state, spec.deleted).
const blockAffinityCrd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: blockaffinities.crd.projectcalico.org
spec:
  group: crd.projectcalico.org
  names: { kind: BlockAffinity, listKind: BlockAffinityList, plural: blockaffinities, singular: blockaffinity }
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              node: { type: string }
              cidr: { type: string }
              state: { type: string }
              deleted: { type: string }
`;

const block = (name: string, node: string, cidr: string, state: string) => ({
  apiVersion: 'crd.projectcalico.org/v1', kind: 'BlockAffinity', metadata: { name }, spec: { node, cidr, state, deleted: 'false' },
});

beforeAll(async () => {
  kube = await adminClient(cluster);
  await kubectl(cluster.kubeconfig, ['apply', '-f', '-'], blockAffinityCrd);
  await waitForCrdEstablished(cluster.kubeconfig, 'blockaffinities.crd.projectcalico.org');
  await registerNode(kube, { name: calicoNode, internalIP: '10.95.0.1', podCIDRs: ['10.250.0.0/24'], labels: { [LABELS.gateway]: gw }, annotations: { 'projectcalico.org/IPv4Address': '10.95.0.1/24' } });
  await registerNode(kube, { name: plainNode, internalIP: '10.95.0.2', podCIDRs: ['10.250.1.0/24'], labels: { [LABELS.gateway]: gw } });
  for (const b of [block(`${calicoNode}-a`, calicoNode, '10.244.7.64/26', 'confirmed'), block(`${calicoNode}-b`, calicoNode, '10.244.7.0/26', 'confirmed'), block(`${calicoNode}-c`, calicoNode, '10.244.8.0/26', 'pending')]) {
    await kube.create(RESOURCES.blockAffinities, b);
  }
  await createGateway(kube, gw, { tunnelConfig: { Replicas: 0 }, proxyConfig: { Replicas: 0 } });
  pickup = await startPickup(cluster);
});

afterAll(async () => {
  await pickup?.stop();
  await deleteGateway(kube, gw);
  for (const n of [calicoNode, plainNode]) await deleteNode(kube, n);
  await kubectl(cluster.kubeconfig, ['delete', 'crd', 'blockaffinities.crd.projectcalico.org', '--ignore-not-found']);
  kube.close();
});

describe('Calico BlockAffinities', () => {
  it('give the subnets of Calico nodes (confirmed blocks only); other nodes keep their podCIDRs', async () => {
    const { gateway } = await waitForGateway(kube, gw, 'two nodes', (g) => (g.status?.nodes ?? []).length === 2);
    const byName = Object.fromEntries((gateway.status?.nodes ?? []).map((n) => [n.nodeName, n.subnets]));
    expect(byName[calicoNode]).toEqual(['10.244.7.0/26', '10.244.7.64/26']);
    expect(byName[plainNode]).toEqual(['10.250.1.0/24']);
  });

  it('follow a block being confirmed', async () => {
    await kube.patch(RESOURCES.blockAffinities, { name: `${calicoNode}-c` }, { spec: { state: 'confirmed' } }, 'merge');
    await waitFor('third block', async () => {
      const g = await kube.get<{ status?: { nodes?: Array<{ nodeName: string; subnets?: string[] }> } }>(RESOURCES.gateways, { name: gw });
      return g.status?.nodes?.find((n) => n.nodeName === calicoNode)?.subnets?.length === 3;
    }, 10_000);
  });
});
