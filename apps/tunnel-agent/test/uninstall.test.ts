import { describe, expect, it } from 'vitest';
import { ConfigError } from '@raven/controller-kit';
import { parseOwnerFlag, removesStateOnStop, type OwnerState } from '../src/uninstall.ts';

describe('uninstall detection', () => {
  it.each(['kube-system/raven-tunnel-agent', 'a/b'])('accepts %j', (flag) => {
    expect(parseOwnerFlag(flag)).toEqual({ namespace: flag.split('/')[0], name: flag.split('/')[1] });
  });

  it.each(['raven-tunnel-agent', 'kube-system/', '/x', 'a/b/c', 'Kube/x', 'a/b?watch=1', 'a/../b'])('refuses %j', (flag) => {
    expect(() => parseOwnerFlag(flag)).toThrow(ConfigError);
  });

  it.each<[OwnerState, boolean]>([['gone', true], ['deleting', true], ['refused', true], ['present', false], ['unknown', false]])('DaemonSet %s: removes the kernel state %s', (state, removes) => {
    expect(removesStateOnStop(state)).toBe(removes);
  });
});
