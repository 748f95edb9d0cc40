import { beforeAll, describe, expect, inject, it } from 'vitest';
import { kubectl, KubectlError } from '@raven/testbed';
import {
  GATEWAY_CRD_FILE, OVERLAYS, find, readManifests, renderOverlay, type K8sObject, type Overlay, type Workload,
} from './support.ts';

/**
 * Acceptance 1: every overlay renders with `kubectl kustomize`, and the real apiserver accepts the result
 * (`kubectl apply --server-side --dry-run=server`, so admission and validation run but nothing is stored).
 *
 * The CRD is the exception, and is applied for real: the test bed installs that very file before any test runs
 * (then Gateways validate against it). It cannot be re-applied here because the test bed's webhook runs out of the
 * cluster and has swapped the CRD's conversion Service reference for a URL; so the rendered CRD is checked to be
 * that generated file, unchanged.
 */
const cluster = inject('cluster');
const rendered = new Map<Overlay, K8sObject[]>();

beforeAll(async () => {
  await Promise.all(OVERLAYS.map(async (o) => rendered.set(o, await renderOverlay(o))));
});

const asList = (items: readonly K8sObject[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });

function dryRun(items: readonly K8sObject[]): Promise<string> {
  // Objects earlier tests created (raven-cfg) have other field managers; validity, not ownership, is under test.
  return kubectl(cluster.kubeconfig, ['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', '-'], asList(items));
}

async function rejection(items: readonly K8sObject[]): Promise<string> {
  try {
    await dryRun(items);
  } catch (err) {
    if (err instanceof KubectlError) return err.stderr;
    throw err;
  }
  throw new Error('the apiserver accepted it');
}

describe('every overlay renders and the real apiserver accepts it', () => {
  it.each(OVERLAYS)('%s', async (overlay) => {
    const objects = rendered.get(overlay)!;
    const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
    const rest = objects.filter((o) => o.kind !== 'CustomResourceDefinition');
    expect(crds).toEqual(readManifests(GATEWAY_CRD_FILE));
    expect(rest.length).toBeGreaterThan(25);
    const out = await dryRun(rest);
    const accepted = out.split('\n').filter((line) => line.endsWith(' serverside-applied (server dry run)'));
    expect(accepted).toHaveLength(rest.length);
  });

  it('is a real validation: the apiserver rejects a broken copy', async () => {
    const objects = structuredClone(rendered.get('wireguard')!.filter((o) => o.kind !== 'CustomResourceDefinition'));
    const pickup = find<Workload>(objects, 'Deployment', 'raven-gateway-pickup')!;
    pickup.spec.template.spec.containers[0]!.ports![0]!.containerPort = 70_000;
    expect(await rejection(objects)).toMatch(/containerPort: Invalid value: 70000/);
  });
});

/**
 * Why tunnel-agent is privileged, shown by the apiserver itself. The agent writes net.* sysctls (ip_forward, the
 * rp_filter of devices it creates), and runtimes mount /proc/sys read-only in unprivileged containers. A container
 * with NET_ADMIN and NET_RAW is accepted; the one API way to an unmasked, writable /proc (procMount: Unmasked)
 * needs hostUsers: false, and that is refused for a host-network Pod, which the agent must be.
 */
describe('tunnel-agent: capabilities suffice except for /proc/sys, and no unprivileged way to it exists', () => {
  const unprivileged = (extra: { procMount?: string; hostUsers?: boolean }) => {
    const ds = structuredClone(find<Workload>(rendered.get('wireguard')!, 'DaemonSet', 'raven-tunnel-agent')!);
    ds.metadata.name = 'raven-tunnel-agent-unprivileged';
    const pod = ds.spec.template.spec;
    if (extra.hostUsers !== undefined) pod.hostUsers = extra.hostUsers;
    pod.containers[0]!.securityContext = {
      privileged: false, runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      ...(extra.procMount ? { procMount: extra.procMount } : {}),
    };
    return [ds];
  };

  it('the capability-only variant is valid', async () => {
    expect(await dryRun(unprivileged({}))).toMatch(/raven-tunnel-agent-unprivileged serverside-applied/);
  });

  it('procMount: Unmasked is refused without hostUsers: false', async () => {
    expect(await rejection(unprivileged({ procMount: 'Unmasked' }))).toMatch(/`hostUsers` must be false to use `Unmasked`/);
  });

  it('hostUsers: false is refused with hostNetwork', async () => {
    expect(await rejection(unprivileged({ procMount: 'Unmasked', hostUsers: false }))).toMatch(/hostNetwork: Forbidden: when `hostUsers` is false/);
  });
});
