import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DATAPATH } from '@raven/api-types';
import { WORKSPACE_ROOT, type AppName } from '@raven/testbed';
import { runApp } from './apps.ts';

/**
 * The two operator pages stay true: every flag, chart value, overlay, controller, diagnose check, file and kernel
 * name they mention exists under that name in this tree.
 */
const APPS: AppName[] = ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'];
const read = (path: string) => readFileSync(join(WORKSPACE_ROOT, path), 'utf8');
const migrating = read('docs/migrating-from-openyurt-raven.md');
const troubleshooting = read('docs/troubleshooting.md');
const help = new Map<AppName, string>();

beforeAll(async () => {
  await Promise.all(APPS.map(async (app) => {
    const { code, out, err } = await runApp(app, ['--help']);
    expect(code, err).toBe(0);
    help.set(app, out + err);
  }));
}, 180_000);

/** The rows of the first Markdown table under a heading, as cells. */
function tableUnder(page: string, heading: string): string[][] {
  const section = page.slice(page.indexOf(heading));
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  return lines.slice(2).map((l) => l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
}

const backticked = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
const hasFlag = (app: AppName, flag: string) => new RegExp(`(^|\\s)${flag}(=|\\s|$)`, 'm').test(help.get(app)!);

/** Every source file under a directory, recursively (for names the pages quote from the code). */
function sources(dir: string): string {
  return readdirSync(join(WORKSPACE_ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8')).join('\n');
}

describe('docs/migrating-from-openyurt-raven.md', () => {
  const rows = tableUnder(migrating, '## 3. Flag mapping');

  it('has a flag mapping table', () => {
    expect(rows.length).toBeGreaterThanOrEqual(8);
  });

  it('names only flags the named app has: "<app> `--flag`", every app for "every app", else at least one', () => {
    const wrong: string[] = [];
    for (const [, raven] of rows) {
      // Each flag belongs to the app named last before it in the cell.
      let owner: AppName | 'every' | undefined;
      for (const token of raven!.split(/(`[^`]+`)/)) {
        const named = APPS.find((a) => token.includes(a));
        if (named) owner = named;
        if (/every app/.test(token)) owner = 'every';
        for (const flag of token.startsWith('`') ? backticked(token).filter((t) => t.startsWith('--')).map((t) => t.split('=')[0]!) : []) {
          const apps = owner === 'every' ? APPS : owner ? [owner] : APPS;
          const ok = owner === 'every' ? apps.every((a) => hasFlag(a, flag)) : apps.some((a) => hasFlag(a, flag));
          if (!ok) wrong.push(`${flag} (${owner ?? 'any app'})`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('names chart values and overlays that exist', () => {
    const values = parse(read('charts/raven/values.yaml')) as Record<string, unknown>;
    const chartKeys = rows.flatMap(([, raven]) => [...raven!.matchAll(/chart `([^`]+)`/g)].map((m) => m[1]!));
    expect(chartKeys.length).toBeGreaterThan(0);
    for (const key of chartKeys) {
      const value = key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], values);
      expect(value, `chart value ${key}`).not.toBeUndefined();
    }
    const overlays = rows.flatMap(([, raven]) => [...raven!.matchAll(/overlays ([^;)]+)/g)].flatMap((m) => backticked(m[1]!)));
    expect(overlays.length).toBeGreaterThan(0);
    for (const overlay of overlays) expect(existsSync(join(WORKSPACE_ROOT, 'k8s/overlays', overlay, 'kustomization.yaml')), overlay).toBe(true);
  });

  it('maps every upstream yurt-manager controller to a gateway-pickup controller of the same name', () => {
    const row = rows.find(([upstream]) => upstream!.startsWith('yurt-manager'))!;
    const names = backticked(row[0]!).filter((n) => n.startsWith('gateway'));
    expect(names).toEqual(['gatewaypickup', 'gatewaydns', 'gatewayinternalservice', 'gatewaypublicservice']);
    for (const name of names) expect(help.get('gateway-pickup')).toContain(name);
  });

  it('quotes the CRD file and the tunnel-agent cleanup command that exist', () => {
    expect(existsSync(join(WORKSPACE_ROOT, 'k8s/base/crds/gateways.raven.openyurt.io.yaml'))).toBe(true);
    expect(migrating).toContain('k8s/base/crds/gateways.raven.openyurt.io.yaml');
    expect(help.get('tunnel-agent')).toMatch(/^\s+cleanup\s/m);
  });
});

describe('docs/troubleshooting.md', () => {
  const ravenctl = sources('apps/ravenctl/src');
  const checks = new Set([...ravenctl.matchAll(/check: '([a-z-]+)'/g)].map((m) => m[1]!));
  const topics = new Set([...ravenctl.matchAll(/topic: '([a-z-]+)'/g)].map((m) => m[1]!));

  it('names diagnose findings by check names ravenctl really reports', () => {
    const named = tableUnder(troubleshooting, '| symptom').flatMap(([symptom]) => [...symptom!.matchAll(/^`([a-z-]+)`:/g)].map((m) => m[1]!));
    expect(named).toEqual(['kernel-drift', 'handshake', 'psk']);
    for (const check of named) expect(checks, check).toContain(check);
  });

  it('names INFO lines by topics ravenctl really prints', () => {
    const named = [...troubleshooting.matchAll(/the `([a-z-]+)`(?: and `([a-z-]+)`)? INFO lines/g)].flatMap((m) => [m[1], m[2]]).filter((t): t is string => !!t);
    expect(named.sort()).toEqual(['cni', 'firewall', 'kube-proxy', 'mtu']);
    for (const topic of named) expect(topics, topic).toContain(topic);
  });

  it('quotes the data path names and MTU overheads the agent uses', () => {
    expect(troubleshooting).toContain(`wg show ${DATAPATH.wireguardDevice}`);
    expect(troubleshooting).toContain(`ip link show ${DATAPATH.vxlanDevice}`);
    expect(troubleshooting).toContain(`${DATAPATH.routeTableVxlan}/${DATAPATH.routeTableVpn}`);
    const { wireguard, ipsec, vxlan } = DATAPATH.mtuOverhead;
    expect(troubleshooting).toContain(`WireGuard -${wireguard}, IPsec -${ipsec}, vxlan -${vxlan}`);
  });

  it('points at files that exist', () => {
    const paths = backticked(troubleshooting).filter((t) => /^[\w.-]+\/[\w./-]+\.\w+$/.test(t));
    expect(paths).toContain('k8s/components/monitoring/files/raven-rules.yaml');
    for (const path of paths) expect(existsSync(join(WORKSPACE_ROOT, path)), path).toBe(true);
  });
});

it('the README links both pages', () => {
  const readme = read('README.md');
  expect(readme).toContain('(docs/migrating-from-openyurt-raven.md)');
  expect(readme).toContain('(docs/troubleshooting.md)');
});
