import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS } from '@raven/api-types';
import type { KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, kubectl, registerNode, WORKSPACE_ROOT } from '@raven/testbed';
import { applyRavenConfig, startPickup, waitForGateway, type PickupProcess } from './support.ts';

const cluster = inject('cluster');
const walkthrough = `${WORKSPACE_ROOT}k8s/examples/walkthrough`;
const { nodes } = JSON.parse(readFileSync(`${walkthrough}/nodes.json`, 'utf8')) as { nodes: Array<{ name: string; gateway: string; internalIP: string; podCIDR: string }> };
let kube: KubeClient;
let pickup: PickupProcess;

beforeAll(async () => {
  kube = await adminClient(cluster);
  for (const n of nodes) await registerNode(kube, { name: n.name, internalIP: n.internalIP, podCIDRs: [n.podCIDR], labels: { [LABELS.gateway]: n.gateway } });
  await applyRavenConfig(kube, { l3: true, l7: true });
  await kubectl(cluster.kubeconfig, ['apply', '-f', `${walkthrough}/gateways.yaml`]);
  pickup = await startPickup(cluster);
});

afterAll(async () => {
  await pickup?.stop();
  await kubectl(cluster.kubeconfig, ['delete', '-f', `${walkthrough}/gateways.yaml`, '--ignore-not-found']);
  for (const n of nodes) await deleteNode(kube, n.name);
  kube.close();
});

describe("the walkthrough's six nodes and three Gateways", () => {
  it('gw-cloud gets the status the walkthrough shows', async () => {
    const { gateway } = await waitForGateway(kube, 'gw-cloud', 'two active endpoints', (g) => (g.status?.activeEndpoints ?? []).length === 2);
    expect(gateway.status?.activeEndpoints).toEqual([
      { nodeName: 'izwz9dohcv74iegqecp4axz', type: 'proxy', port: 10262, underNAT: false, publicIP: '198.18.0.11', config: { 'enable-l7-proxy': 'true' } },
      { nodeName: 'izwz9dohcv74iegqecp4axz', type: 'tunnel', port: 4500, underNAT: false, publicIP: '198.18.0.11', config: { 'enable-l3-tunnel': 'true' } },
    ]);
    expect(gateway.status?.nodes).toEqual([
      { nodeName: 'izwz9dohcv74iegqecp4axz', privateIP: '192.168.0.195', subnets: ['10.224.0.128/26'] },
      { nodeName: 'izwz9ey0js5z7mornclpd6z', privateIP: '192.168.0.196', subnets: ['10.224.0.0/26'] },
    ]);
  });

  it('gw-hangzhou elects its one node for both modes', async () => {
    const { gateway } = await waitForGateway(kube, 'gw-hangzhou', 'two active endpoints', (g) => (g.status?.activeEndpoints ?? []).length === 2);
    expect(gateway.status?.activeEndpoints?.map((e) => [e.nodeName, e.type, e.port, e.config])).toEqual([
      ['izbp15inok0kbfkg3in52rz', 'proxy', 10262, { 'enable-l7-proxy': 'true' }],
      ['izbp15inok0kbfkg3in52rz', 'tunnel', 4500, { 'enable-l3-tunnel': 'true' }],
    ]);
    expect(gateway.status?.nodes).toEqual([
      { nodeName: 'izbp15inok0kbfkg3in52rz', privateIP: '172.16.2.103', subnets: ['10.224.1.128/26'] },
      { nodeName: 'izbp15inok0kbfkg3in52sz', privateIP: '172.16.2.104', subnets: ['10.224.1.0/26'] },
    ]);
    expect(gateway.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'EndpointsElected' });
  });

  it('gw-qingdao elects a different node per mode, sorted by node name', async () => {
    const { gateway } = await waitForGateway(kube, 'gw-qingdao', 'two active endpoints', (g) => (g.status?.activeEndpoints ?? []).length === 2);
    expect(gateway.status?.activeEndpoints?.map((e) => `${e.type}/${e.nodeName}`)).toEqual(['proxy/izm5eb24dmjfimuaybpnqzz', 'tunnel/izm5eb24dmjfimuaybpnr0z']);
  });

  it('kubectl get gateways shows the elected nodes, and v1alpha1 readers see activeEndpoint', async () => {
    const table = await kubectl(cluster.kubeconfig, ['get', 'gateways.v1beta1.raven.openyurt.io']);
    expect(table).toMatch(/gw-cloud\s+izwz9dohcv74iegqecp4axz\s+izwz9dohcv74iegqecp4axz\s+PublicIP/);
    const alpha = JSON.parse(await kubectl(cluster.kubeconfig, ['get', 'gateways.v1alpha1.raven.openyurt.io', 'gw-qingdao', '-o', 'json'])) as { status: { activeEndpoint: { nodeName: string } } };
    expect(alpha.status.activeEndpoint.nodeName).toBe('izm5eb24dmjfimuaybpnr0z');
  });
});
