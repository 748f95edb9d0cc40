import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VERSIONS, WORKSPACE_ROOT } from '@raven/testbed';
import { APPS, readManifests, type App, type Workload } from './support.ts';

/**
 * Acceptance 3, the static half (no Docker engine here): each app's Dockerfile is multi-stage, pinned to one exact
 * Node 22 LTS image, bundles that app, ships only the bundle directory, runs as the user its manifest expects, and
 * (tunnel-agent) installs a package for every program the agent runs, except wireguard-go, which a Go stage builds.
 */
interface Instruction { cmd: string; args: string }

function instructions(path: string): { lines: string[]; args: Record<string, string>; stages: Instruction[][] } {
  const lines = readFileSync(path, 'utf8').split('\n');
  const joined = lines.filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  const all = joined.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const m = /^([A-Z]+)\s+(.*)$/.exec(l);
    if (!m) throw new Error(`${path}: not an instruction: ${l}`);
    return { cmd: m[1]!, args: m[2]!.replace(/\s+/g, ' ') };
  });
  const stages: Instruction[][] = [];
  // ARGs before the first FROM: the base image references, which FROM lines may only name as ${ARG}.
  const args: Record<string, string> = {};
  const expand = (text: string) => text.replace(/\$\{(\w+)\}/g, (_, name: string) => {
    if (!(name in args)) throw new Error(`${path}: \${${name}} is not a global ARG`);
    return args[name]!;
  });
  for (const i of all) {
    if (i.cmd === 'FROM') stages.push([]);
    if (stages.length === 0 && i.cmd === 'ARG') {
      const [name, value] = i.args.split('=', 2);
      args[name!] = expand(value ?? '');
    }
    stages.at(-1)?.push(i);
  }
  return { lines, args, stages };
}

/** A stage's base image with the global ARGs' defaults substituted: what a plain `docker build` pulls. */
const baseImage = (stage: Instruction[], args: Record<string, string>) =>
  stage[0]!.args.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name]!);

const dockerfile = (app: App) => join(WORKSPACE_ROOT, 'apps', app, 'Dockerfile');
const NODE_IMAGE = /^node:(22)\.(\d+)\.(\d+)-bookworm-slim(@sha256:[0-9a-f]{64})?$/;
const GO_STAGE = / AS wireguard-go$/;
const WIREGUARD_GO_COPY = { cmd: 'COPY', args: '--from=wireguard-go /out/wireguard-go /usr/local/bin/wireguard-go' };

describe.each(APPS)('apps/%s/Dockerfile', (app) => {
  const { lines, args, stages: all } = instructions(dockerfile(app));
  const stages = all.filter((s) => !GO_STAGE.test(s[0]!.args));
  const [build, runtime] = stages;
  const manifest = readManifests(join(WORKSPACE_ROOT, 'k8s/base', `${app}.yaml`)).find((o): o is Workload => o.kind === 'Deployment' || o.kind === 'DaemonSet')!;

  it('is two Node stages on one exact Node 22 LTS image (tunnel-agent: and the wireguard-go stage)', () => {
    expect(lines[0]).toBe('# syntax=docker/dockerfile:1');
    expect(stages).toHaveLength(2);
    expect(all).toHaveLength(app === 'tunnel-agent' ? 3 : 2);
    const froms = stages.map((s) => baseImage(s, args));
    expect(froms[0]).toMatch(/ AS build$/);
    const images = froms.map((f) => f.replace(/ AS build$/, ''));
    for (const image of images) expect(image).toMatch(NODE_IMAGE);
    expect(images[1]).toBe(images[0]);
  });

  it('names its base images only through build arguments whose defaults are the public images', () => {
    expect(args).toEqual({
      NODE_IMAGE: expect.stringMatching(NODE_IMAGE), NODE_BUILD_IMAGE: args.NODE_IMAGE,
      ...(app === 'tunnel-agent' ? { GOLANG_IMAGE: expect.stringMatching(/^golang:1\.\d+\.\d+-bookworm(@sha256:[0-9a-f]{64})?$/) } : {}),
    });
    expect(all.map((s) => s[0]!.args)).toEqual([
      '${NODE_BUILD_IMAGE} AS build', ...(app === 'tunnel-agent' ? ['${GOLANG_IMAGE} AS wireguard-go'] : []), '${NODE_IMAGE}',
    ]);
    expect(lines.join('\n')).toContain('ARG NODE_BUILD_IMAGE=${NODE_IMAGE}');
  });

  it('bundles this app in the build stage, without running install scripts', () => {
    const runs = build!.filter((i) => i.cmd === 'RUN').map((i) => i.args).join(' && ');
    expect(runs).toContain('npm ci --ignore-scripts');
    expect(runs).toMatch(new RegExp(`node scripts/bundle\\.mjs ${app}(\\s|$)`));
  });

  it('copies only the bundle directory (tunnel-agent: and wireguard-go) into the runtime stage', () => {
    const copies = runtime!.filter((i) => i.cmd === 'COPY' || i.cmd === 'ADD');
    const bundle = { cmd: 'COPY', args: `--from=build /src/dist/apps/${app}/ /app/` };
    expect(copies).toEqual(app === 'tunnel-agent' ? [bundle, WIREGUARD_GO_COPY] : [bundle]);
    expect(all.at(-1)).toBe(runtime);
    expect(runtime!.find((i) => i.cmd === 'ENTRYPOINT')?.args).toBe('["node", "/app/main.js"]');
    const labels = runtime!.filter((i) => i.cmd === 'LABEL').map((i) => i.args).join(' ');
    expect(labels).toContain(`org.opencontainers.image.title="raven-${app}"`);
    expect(labels).toContain('org.opencontainers.image.version="${VERSION}"');
    expect(labels).toContain('org.opencontainers.image.description=');
  });

  it('runs as the user its manifest expects: non-root except tunnel-agent', () => {
    const user = runtime!.filter((i) => i.cmd === 'USER').at(-1)?.args;
    const pod = manifest.spec.template.spec;
    const uid = pod.containers[0]!.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
    expect(user).toBe(`${uid}:${uid}`);
    if (app === 'tunnel-agent') expect(uid).toBe(0);
    else expect(uid).toBe(65532);
  });
});

describe('the images together', () => {
  it('share one Node version, an LTS line', () => {
    const images = new Set(APPS.map((app) => {
      const { args, stages } = instructions(dockerfile(app));
      return baseImage(stages.at(-1)!, args);
    }));
    expect(images.size).toBe(1);
    const [, major] = NODE_IMAGE.exec([...images][0]!)!;
    expect(Number(major) % 2).toBe(0);
  });

  it('tunnel-agent installs a package for every program the agent runs', () => {
    const sources = [join(WORKSPACE_ROOT, 'apps/tunnel-agent/src'), join(WORKSPACE_ROOT, 'libs/netlink/src')].flatMap((dir) =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(dir, f), 'utf8')));
    const programs = new Set(sources.flatMap((s) => [...s.matchAll(/\.run\('([\w./-]+)'/g)].map((m) => m[1]!)));
    // Named from a variable: libs/netlink/src/iptables.ts (`${prefix}-save`) and batch.ts (ip, bridge).
    for (const p of ['iptables-save', 'iptables-restore', 'ip6tables-save', 'ip6tables-restore', 'ip', 'bridge']) programs.add(p);
    const packageOf: Record<string, string> = {
      ip: 'iproute2', bridge: 'iproute2', ipset: 'ipset', sysctl: 'procps', wg: 'wireguard-tools',
      ipsec: 'libreswan', '/usr/libexec/ipsec/pluto': 'libreswan',
      'iptables-save': 'iptables', 'iptables-restore': 'iptables', 'ip6tables-save': 'iptables', 'ip6tables-restore': 'iptables',
    };
    const { stages } = instructions(dockerfile('tunnel-agent'));
    const install = stages.at(-1)!.filter((i) => i.cmd === 'RUN').map((i) => i.args).join(' ');
    const packages = new Set(/apt-get install -y --no-install-recommends ([a-z0-9 .+-]+?) &&/.exec(install)?.[1]?.split(' '));
    expect(programs.size).toBeGreaterThanOrEqual(10);
    for (const program of programs) {
      expect(packageOf[program], `no package known for ${program}`).toBeDefined();
      expect(packages, program).toContain(packageOf[program]);
    }
    expect(install).toContain('update-alternatives --set iptables /usr/sbin/iptables-nft');
    // One wireguard-go on PATH: the one the Go stage built, not Debian's 0.0.20220316 (no TUN offloads).
    expect(packages).not.toContain('wireguard-go');
  });

  it('tunnel-agent builds wireguard-go in a Go stage at the version the test bed and scripts/go-binaries.sh pin', () => {
    const { args, stages } = instructions(dockerfile('tunnel-agent'));
    const go = stages.find((s) => GO_STAGE.test(s[0]!.args))!;
    expect(baseImage(go, args)).toMatch(/^golang:1\.\d+\.\d+-bookworm(@sha256:[0-9a-f]{64})? AS wireguard-go$/);
    const pinned = VERSIONS['wireguard-go'];
    expect(go.find((i) => i.cmd === 'ARG')?.args).toBe(`WIREGUARD_GO_VERSION=${pinned}`);
    const script = readFileSync(join(WORKSPACE_ROOT, 'scripts/go-binaries.sh'), 'utf8');
    expect(script).toContain(`WIREGUARD_GO_VERSION="\${WIREGUARD_GO_VERSION:-${pinned}}"`);
    const run = go.filter((i) => i.cmd === 'RUN').map((i) => i.args).join(' && ');
    expect(run).toContain('CGO_ENABLED=0'); // static: the runtime stage is another image
    expect(run).toContain('go install -trimpath');
    expect(run).toContain('"golang.zx2c4.com/wireguard@${WIREGUARD_GO_VERSION}"');
    expect(stages.at(-1)).toContainEqual(WIREGUARD_GO_COPY);
  });

  it('.dockerignore keeps node_modules, build output and git out, and the build inputs in', () => {
    const ignored = readFileSync(join(WORKSPACE_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['**/node_modules', '**/dist', '.git', '.cluster']) expect(ignored).toContain(p);
    const { stages } = instructions(dockerfile('gateway-pickup'));
    const inputs = stages[0]!.filter((i) => i.cmd === 'COPY').flatMap((i) => i.args.split(' ').slice(0, -1));
    expect(inputs).toEqual(['package.json', 'package-lock.json', 'tsconfig.base.json', 'libs/', 'apps/', 'scripts/bundle.mjs']);
    for (const input of inputs) expect(ignored.some((p) => p === input.replace(/\/$/, '') || input.startsWith(`${p}/`)), input).toBe(false);
  });
});

// The design card keeps one Dockerfile per app; their build stages are one rule written four times, so they must not drift.
describe('the apps\' build stages', () => {
  it('are the same instructions, apart from the app they bundle', () => {
    const generic = (app: App) => instructions(dockerfile(app)).stages.filter((s) => !GO_STAGE.test(s[0]!.args))[0]!
      .map((i) => `${i.cmd} ${i.args.replaceAll(app, '<app>')}`);
    const [first, ...rest] = APPS;
    for (const app of rest) expect(generic(app), app).toEqual(generic(first!));
    expect(generic(first!).join('\n')).toContain('node scripts/bundle.mjs <app>');
  });
});
