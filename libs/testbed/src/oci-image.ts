import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * OCI images written by hand, so the box's containerds have `busybox` and a sandbox image without any registry:
 * one uncompressed layer tar, a config, a manifest and an index, in an OCI image layout tarball that
 * `ctr -n k8s.io images import` loads under the name the index annotates.
 */

export const BUSYBOX_IMAGE = 'docker.io/library/busybox:latest';
export const SANDBOX_IMAGE = 'registry.k8s.io/pause:raven-box';
/** The image k8s/base's raven-proxy-dns runs; the box builds it from the CoreDNS binary of the same release. */
export const COREDNS_IMAGE = 'registry.k8s.io/coredns/coredns:v1.12.1';
/** Debian's busybox-static. */
export const BUSYBOX_BINARY = '/bin/busybox';
/** Bump when the layout written here changes, so cached tarballs are rebuilt. */
const FORMAT = 1;

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export type TarEntry =
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string };

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageSpec {
  /** Full reference, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  layer: Buffer;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
}

export class TarEntryError extends Error {
  override readonly name = 'TarEntryError';
}

const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar header block (512 bytes). Paths up to 100 bytes, or 255 split on a slash into prefix + name. */
function tarHeader(path: string, typeflag: '0' | '2' | '5', size: number, mode: number, linkname = ''): Buffer {
  const header = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = path.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(path.slice(cut + 1)) > 100) throw new TarEntryError(`tar path too long: ${path}`);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  if (Buffer.byteLength(linkname) > 100) throw new TarEntryError(`symlink target too long: ${linkname}`);
  header.write(name, 0, 100);
  header.write(octal(mode, 8), 100);
  header.write(octal(0, 8), 108); // uid
  header.write(octal(0, 8), 116); // gid
  header.write(octal(size, 12), 124);
  header.write(octal(0, 12), 136); // mtime: fixed, so the same content gives the same digest
  header.write('        ', 148); // checksum placeholder
  header.write(typeflag, 156);
  header.write(linkname, 157, 100);
  header.write('ustar\0', 257);
  header.write('00', 263);
  header.write(prefix, 345, 155);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(octal(sum, 7) + ' ', 148);
  return header;
}

/** A tar archive of the entries, in order, ending with the two zero blocks. */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    if (entry.type === 'file') {
      parts.push(tarHeader(entry.path, '0', entry.data.length, entry.mode ?? 0o644), entry.data);
      const pad = (512 - (entry.data.length % 512)) % 512;
      if (pad > 0) parts.push(Buffer.alloc(pad));
    } else if (entry.type === 'dir') {
      parts.push(tarHeader(entry.path.endsWith('/') ? entry.path : `${entry.path}/`, '5', 0, entry.mode ?? 0o755));
    } else {
      parts.push(tarHeader(entry.path, '2', 0, 0o777, entry.target));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/**
 * The busybox root file system: the static binary at bin/busybox, every applet (`busybox --list-full`, e.g.
 * `bin/sh`, `usr/bin/wget`) a symlink to it, and the few files programs expect.
 */
export function busyboxLayer(busybox: Buffer, applets: readonly string[]): Buffer {
  const dirs = new Set(['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'var', 'run']);
  for (const applet of applets) {
    const parts = applet.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const entries: TarEntry[] = [...dirs].sort().map((path) => ({ type: 'dir', path, mode: path === 'tmp' ? 0o1777 : 0o755 }));
  entries.push({ type: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 });
  for (const applet of [...new Set(applets)].sort()) {
    if (applet === 'bin/busybox') continue;
    entries.push({ type: 'symlink', path: applet, target: '/bin/busybox' });
  }
  entries.push(
    { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n') },
    { type: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\nnobody:x:65534:\n') },
  );
  return writeTar(entries);
}

/** The sandbox ("pause") process: sleeps until SIGTERM, then exits 0 (PID 1 only gets signals it handles). */
export const SANDBOX_ENTRYPOINT = ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];

/** An OCI image layout tarball (oci-layout, index.json, blobs/sha256/*) holding one single-layer image. */
export function ociImageTarball(spec: ImageSpec): { tarball: Buffer; manifest: Descriptor } {
  const layer: Descriptor = { mediaType: MEDIA_TYPES.layer, digest: sha256(spec.layer), size: spec.layer.length };
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [layer.digest] }, // uncompressed: the diff id is the layer's digest
  }));
  const configDesc: Descriptor = { mediaType: MEDIA_TYPES.config, digest: sha256(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.manifest, config: configDesc, layers: [layer] }));
  const tag = spec.name.slice(spec.name.lastIndexOf(':') + 1);
  const manifestDesc: Descriptor = {
    mediaType: MEDIA_TYPES.manifest, digest: sha256(manifest), size: manifest.length,
    annotations: { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': tag },
  };
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests: [manifestDesc] }));
  const blob = (digest: string, data: Buffer): TarEntry => ({ type: 'file', path: `blobs/sha256/${digest.slice('sha256:'.length)}`, data });
  const tarball = writeTar([
    { type: 'file', path: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { type: 'file', path: 'index.json', data: index },
    { type: 'dir', path: 'blobs' },
    { type: 'dir', path: 'blobs/sha256' },
    blob(layer.digest, spec.layer),
    blob(configDesc.digest, config),
    blob(manifestDesc.digest, manifest),
  ]);
  return { tarball, manifest: manifestDesc };
}

export interface BoxImages {
  busybox: string;
  sandbox: string;
}

/** A distroless-like CoreDNS root: /coredns, the directories it mounts into, and the nonroot user (65532) the manifest runs it as. */
export function corednsLayer(coredns: Buffer): Buffer {
  return writeTar([
    ...['etc', 'tmp'].map((path): TarEntry => ({ type: 'dir', path, mode: path === 'tmp' ? 0o1777 : 0o755 })),
    { type: 'file', path: 'coredns', data: coredns, mode: 0o755 },
    { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n') },
    { type: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\nnonroot:x:65532:\n') },
  ]);
}

/** The CoreDNS image tarball (COREDNS_IMAGE) from the Go-built binary, cached by the binary's digest. */
export function corednsImage(corednsPath: string): string {
  const coredns = readFileSync(corednsPath);
  const key = createHash('sha256').update(coredns).update(`format ${FORMAT}`).digest('hex').slice(0, 16);
  const path = join(imageCacheRoot(), `coredns-${key}`, 'coredns.oci.tar');
  if (existsSync(path)) return path;
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(`${path}.tmp`, ociImageTarball({ name: COREDNS_IMAGE, layer: corednsLayer(coredns), entrypoint: ['/coredns'] }).tarball);
  renameSync(`${path}.tmp`, path);
  return path;
}

/** Where image tarballs are cached: RAVEN_IMAGE_CACHE, else ~/.cache/raven-ts/images. */
export const imageCacheRoot = () => process.env.RAVEN_IMAGE_CACHE ?? join(homedir(), '.cache/raven-ts/images');

/**
 * The busybox and sandbox image tarballs from Debian's busybox-static, cached under ~/.cache/raven-ts/images in a
 * directory keyed by the binary's digest and this module's format.
 */
export function boxImages(busyboxPath = BUSYBOX_BINARY): BoxImages {
  const busybox = readFileSync(busyboxPath);
  const key = `${createHash('sha256').update(busybox).update(`format ${FORMAT}`).digest('hex').slice(0, 16)}`;
  const dir = join(imageCacheRoot(), `busybox-${key}`);
  const paths: BoxImages = { busybox: join(dir, 'busybox.oci.tar'), sandbox: join(dir, 'sandbox.oci.tar') };
  if (existsSync(paths.busybox) && existsSync(paths.sandbox)) return paths;
  const applets = execFileSync(busyboxPath, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const layer = busyboxLayer(busybox, applets);
  mkdirSync(dir, { recursive: true });
  const write = (path: string, data: Buffer) => {
    writeFileSync(`${path}.tmp`, data);
    renameSync(`${path}.tmp`, path);
  };
  write(paths.busybox, ociImageTarball({ name: BUSYBOX_IMAGE, layer, cmd: ['sh'] }).tarball);
  write(paths.sandbox, ociImageTarball({ name: SANDBOX_IMAGE, layer, entrypoint: SANDBOX_ENTRYPOINT }).tarball);
  return paths;
}
