import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT, resolveKubeconfig } from '../src/cli.ts';
import { ravenctl } from './support.ts';

describe('ravenctl command line (nothing here reaches a cluster)', () => {
  it.each([
    { args: [], code: EXIT.usage, out: /^Usage: ravenctl <command>/ },
    { args: ['help'], code: EXIT.healthy, out: /show .*\n {2}graph .*\n {2}diagnose .*\n {2}gather .*\n {2}verify .*\n {2}benchmark .*/ },
    { args: ['version'], code: EXIT.healthy, out: /^ravenctl 0\.1\.0\n$/ },
    { args: ['diagnose', '--help'], code: EXIT.healthy, out: /--max-clock-skew=VALUE/ },
  ])('$args', async ({ args, code, out }) => {
    const r = await ravenctl(args);
    expect(r.code).toBe(code);
    expect(r.stdout).toMatch(out);
  });

  it.each([
    [['verify', '--image=busybox;id'], /--image must be an image reference/],
    [['benchmark', '--streams=65'], /--streams must be an integer in 1\.\.64/],
    [['benchmark', '--size', 'lots'], /--size must be an integer/],
    [['show', 'extra'], /unexpected argument "extra"/],
    [['show', '-o', 'xml'], /--output must be table, json or yaml; got "xml"/],
    [['graph', '--format=png'], /--format must be dot or svg/],
    [['graph', '--layout=neato'], /--layout must be auto, builtin or graphviz/],
    [['graph', '-f', 'svg', '--layout=graphviz'], /no `dot` on the PATH/],
    [['gather', '--tail-lines=0'], /--tail-lines must be a positive integer/],
    [['diagnose', '--max-clock-skew=soon'], /--max-clock-skew must be a non-negative duration such as 90, 90s or 1m30s; got "soon"/],
    [['verify', '--timeout=0'], /--timeout must be a positive duration/],
    [['benchmark', '--timeout=-1m'], /--timeout must be a positive duration/],
    [['show', '--leader-elect', 'false'], /Unknown option '--leader-elect'/],
  ])('%j is a usage error', async (args, message) => {
    const r = await ravenctl(args, { PATH: '/nonexistent', KUBECONFIG: '/nonexistent/kubeconfig' });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(message);
  });

  it('a missing kubeconfig is "cannot read the cluster", not a crash', async () => {
    const r = await ravenctl(['show'], { KUBECONFIG: '/nonexistent/kubeconfig' });
    expect(r).toMatchObject({ code: EXIT.unreachable, stdout: '' });
    expect(r.stderr).toBe('error: cannot read the cluster: none of the kubeconfig files in KUBECONFIG exists: /nonexistent/kubeconfig\n');
  });

  it('reads $KUBECONFIG as a list of files, as kubectl does, not as one path', async () => {
    const second = join(mkdtempSync(join(tmpdir(), 'ravenctl-kc-')), 'config');
    writeFileSync(second, 'clusters: 7\n');
    const r = await ravenctl(['show'], { KUBECONFIG: `/nonexistent/kubeconfig:${second}` });
    expect(r.code).toBe(EXIT.unreachable);
    expect(r.stderr).toContain(`kubeconfig ${second} is not a valid kubeconfig`);
  });

  it.each([['--version'], ['version'], ['show', '--version'], ['verify', '--version']])('%j prints the version and reaches no cluster', async (...args) => {
    const r = await ravenctl(args, { KUBECONFIG: '/nonexistent/kubeconfig' });
    expect(r).toMatchObject({ code: EXIT.healthy, stderr: '' });
    expect(r.stdout).toMatch(/^ravenctl \S+\n$/);
  });

  it('calls itself "kubectl raven" when run as the kubectl plugin', async () => {
    const r = await ravenctl(['help'], { RAVENCTL_ARGV0: '/usr/local/bin/kubectl-raven' });
    expect(r.stdout).toMatch(/^Usage: kubectl raven <command>/);
  });

  it('finds the kubeconfig as kubectl does: flag, $KUBECONFIG, ~/.kube/config', () => {
    const home = mkdtempSync(join(tmpdir(), 'ravenctl-home-'));
    expect(resolveKubeconfig(undefined, { HOME: home })).toBeUndefined();
    mkdirSync(join(home, '.kube'));
    writeFileSync(join(home, '.kube/config'), '');
    expect(resolveKubeconfig(undefined, { HOME: home })).toBe(join(home, '.kube/config'));
    expect(resolveKubeconfig(undefined, { HOME: home, KUBECONFIG: '/k' })).toEqual(['/k']);
    expect(resolveKubeconfig(undefined, { HOME: home, KUBECONFIG: '/a::/b' })).toEqual(['/a', '/b']);
    expect(resolveKubeconfig('/f', { HOME: home, KUBECONFIG: '/k' })).toBe('/f');
  });
});
