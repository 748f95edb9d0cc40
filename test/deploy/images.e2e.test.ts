import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_TOOLS, CRI_NAMESPACE, ensureRavenImages, extractRootfs, importRavenImages, ManagedProcess, openOciArchive, RAVEN_APPS,
  runInRoot, waitFor, WORKSPACE_ROOT, type AppName, type OpenedOciArchive, type RavenImage,
} from '@raven/testbed';
import { readManifests, run, type Workload } from './support.ts';

/**
 * Acceptance 3, the built half: `npm run images` (ensureRavenImages) builds each app's image from its Dockerfile, and
 * each archive holds what the Dockerfile and the manifests promise. Everything is read from the OCI archive itself:
 * its config, and its layers applied to a scratch root whose programs run under chroot. First run about 4 minutes
 * (progress every 30 s), then cached.
 */
const MAX_APP_IMAGE_BYTES = 250e6;
const BUNDLE_FILES = ['main.js', 'main.js.LEGAL.txt', 'main.js.map', 'package.json'];
const TOOL_OUTPUT: Record<string, RegExp> = {
  wg: /^wireguard-tools v1\./,
  'wireguard-go': /^wireguard-go v0\.0\.\d{8}$/,
  ip: /^ip utility, iproute2-\d/,
  iptables: /^iptables v1\.8\.\d+ \(nf_tables\)$/,
  ipset: /^ipset v7\.\d+/,
  ipsec: /^Libreswan \d+\.\d+/,
};

const pinnedNode = /^ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-/m.exec(readFileSync(join(WORKSPACE_ROOT, 'apps/gateway-pickup/Dockerfile'), 'utf8'))![1]!;
const manifestImage = (app: AppName) => readManifests(join(WORKSPACE_ROOT, 'k8s/base', `${app}.yaml`))
  .find((o): o is Workload => o.kind === 'Deployment' || o.kind === 'DaemonSet')!.spec.template.spec.containers[0]!.image;

let images: Record<AppName, RavenImage>;
const scratch = mkdtempSync(join(tmpdir(), 'raven-images-test-'));
beforeAll(async () => {
  images = await ensureRavenImages();
}, 20 * 60_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe.each(RAVEN_APPS)('the %s image', (app) => {
  const agent = app === 'tunnel-agent';
  let image: OpenedOciArchive;
  let root: string;
  beforeAll(async () => {
    image = await openOciArchive(images[app].archive);
    root = join(scratch, app);
    await extractRootfs(image, root);
  }, 120_000);
  afterAll(() => image?.close());

  it('carries the reference k8s/base deploys', () => {
    expect(images[app].reference).toBe(manifestImage(app));
    expect(image.reference).toBe(manifestImage(app));
  });

  it('runs node /app/main.js as the user its Dockerfile declares: 65532, or root for tunnel-agent', () => {
    expect(image.config.config.User).toBe(agent ? '0:0' : '65532:65532');
    expect(image.config.config.Entrypoint).toEqual(['node', '/app/main.js']);
    expect(image.config.config.WorkingDir).toBe('/app');
    expect(image.config.config.Labels?.['org.opencontainers.image.title']).toBe(`raven-${app}`);
  });

  it.skipIf(agent)('is at most 250 MB uncompressed', () => {
    expect(image.sizeBytes).toBeLessThanOrEqual(MAX_APP_IMAGE_BYTES);
    expect(images[app].sizeBytes).toBe(image.sizeBytes);
  });

  it('holds the bundle in /app and no package manager', () => {
    const files = readdirSync(join(root, 'app'));
    expect(files).toContain('main.js');
    for (const f of files) expect(BUNDLE_FILES, f).toContain(f);
    expect(statSync(join(root, 'app/main.js')).size).toBeGreaterThan(1e6);
    expect(readFileSync(join(root, 'app/package.json'), 'utf8')).toContain(`"name": "raven-${app}"`);
    for (const gone of ['usr/local/bin/npm', 'usr/local/bin/npx', 'usr/local/lib/node_modules']) {
      expect(() => lstatSync(join(root, gone)), gone).toThrow();
    }
  });

  it(`ships Node ${pinnedNode}, which the image's user can run the bundle with`, () => {
    const version = runInRoot(root, ['node', '--version']);
    expect(version).toEqual({ status: 0, output: `v${pinnedNode}` });
    expect(version.output).toMatch(/^v22\./);
    const user = image.config.config.User!;
    const readable = runInRoot(root, ['node', '-e', "require('node:fs').accessSync('/app/main.js', 4); console.log(process.getuid())"], user);
    expect(readable).toEqual({ status: 0, output: user.split(':')[0] });
  });

  it.runIf(agent)('has wg, wireguard-go, iproute2, iptables in nft mode, ipset and libreswan', () => {
    for (const tool of AGENT_TOOLS) {
      const r = runInRoot(root, tool.version);
      expect(r.status, `${tool.program}: ${r.output}`).toBe(0);
      expect(r.output.split('\n')[0], tool.program).toMatch(TOOL_OUTPUT[tool.program]!);
      expect(images[app].contents.join('\n'), tool.program).toContain(`${tool.program} [${tool.origin}]`);
    }
    expect(readlinkSync(join(root, 'etc/alternatives/iptables'))).toBe('/usr/sbin/iptables-nft');
    expect(readlinkSync(join(root, 'etc/alternatives/ip6tables'))).toBe('/usr/sbin/ip6tables-nft');
    // The Go stage's build, not Debian's wireguard-go package.
    expect(existsSync(join(root, 'usr/local/bin/wireguard-go'))).toBe(true);
    expect(existsSync(join(root, 'usr/bin/wireguard-go'))).toBe(false);
    expect(existsSync(join(root, 'usr/libexec/ipsec/pluto'))).toBe(true);
  });

  it.skipIf(agent)('has none of the agent\'s tools', () => {
    for (const p of ['usr/sbin/ip', 'usr/bin/wg', 'usr/sbin/iptables', 'usr/local/bin/wireguard-go']) expect(existsSync(join(root, p)), p).toBe(false);
  });
});

/**
 * What the box will do on every node: `ctr -n k8s.io images import`. A throwaway containerd (no CRI, its root, state
 * and socket in a temporary directory, a private tmpfs over /run for its shims) is started and stopped here by PID.
 */
describe('the archives imported into containerd', () => {
  const dir = join(scratch, 'containerd');
  const socket = join(dir, 'containerd.sock');
  let containerd: ManagedProcess;
  const ctr = (args: string[]) => run('nsenter', ['-t', String(containerd.pid), '-m', 'ctr', ...args]);

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.toml'), [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]', `  address = "${socket}"`, '[ttrpc]', `  address = "${socket}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]', `  path = "${dir}/opt"`, '',
    ].join('\n'));
    containerd = ManagedProcess.start({
      name: 'containerd', command: 'unshare', logFile: join(dir, 'containerd.log'),
      args: ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs tmpfs /run && exec containerd --config ${dir}/config.toml --log-level warn`],
    });
    await waitFor('the throwaway containerd', async () => {
      containerd.assertRunning();
      return existsSync(socket) && (await ctr(['--address', socket, 'version'])).includes('Server');
    }, 30_000, 200);
  }, 60_000);
  afterAll(async () => {
    await containerd?.stop(10_000);
  });

  it('has each image under its reference in k8s.io, unpacked into a root that runs its Node', async () => {
    await importRavenImages(RAVEN_APPS.map((app) => images[app]), socket, ctr);
    const names = (await ctr(['--address', socket, '-n', CRI_NAMESPACE, 'images', 'ls', '-q'])).split('\n');
    for (const app of RAVEN_APPS) expect(names, app).toContain(images[app].reference);
    for (const app of ['gateway-pickup', 'tunnel-agent'] as const) {
      const target = join(dir, `mnt-${app}`);
      mkdirSync(target);
      await ctr(['--address', socket, '-n', CRI_NAMESPACE, 'images', 'mount', images[app].reference, target]);
      try {
        const inside = await run('nsenter', ['-t', String(containerd.pid), '-m', 'chroot', target, 'node', '-e',
          "console.log(process.version, require('node:fs').statSync('/app/main.js').size > 0)"]);
        expect(inside.trim(), app).toBe(`v${pinnedNode} true`);
      } finally {
        await ctr(['--address', socket, '-n', CRI_NAMESPACE, 'images', 'unmount', '--rm', target]);
      }
    }
  }, 180_000);
});
