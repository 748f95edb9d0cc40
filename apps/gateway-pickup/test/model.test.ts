import { describe, expect, it } from 'vitest';
import { HEARTBEAT } from '@raven/api-types';
import { toHeartbeat } from '../src/model.ts';

const lease = (name: string, holderIdentity: string, leaseDurationSeconds: number) => ({
  metadata: { name, namespace: HEARTBEAT.namespace, labels: { [HEARTBEAT.label]: 'tunnel' } },
  spec: { holderIdentity, leaseDurationSeconds, renewTime: '2026-01-01T00:00:00.000000Z' },
});

describe('the heartbeat Lease contract, as gateway-pickup reads it', () => {
  it('takes a Lease named after its holder, for the contract\'s duration whatever the Lease says', () => {
    expect(toHeartbeat(lease('raven-tunnel-node-a', 'node-a', 3_600))).toMatchObject({ node: 'node-a', component: 'tunnel', durationMs: HEARTBEAT.durationSeconds * 1_000 });
  });

  it('ignores a Lease that names another node as holder', () => {
    expect(toHeartbeat(lease('raven-tunnel-node-a', 'node-b', 2))).toBeUndefined();
    expect(toHeartbeat(lease('forged', 'node-b', 2))).toBeUndefined();
  });
});
