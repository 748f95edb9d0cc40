import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { busyboxLayer, MEDIA_TYPES, ociImageTarball, SANDBOX_ENTRYPOINT, writeTar } from '../src/oci-image.ts';

interface ReadEntry { path: string; type: string; mode: number; data: Buffer; link: string }

/** A minimal ustar reader for the checks below. */
function readTar(tar: Buffer): ReadEntry[] {
  const entries: ReadEntry[] = [];
  let offset = 0;
  const str = (start: number, len: number) => tar.subarray(offset + start, offset + start + len).toString('utf8').replace(/\0.*$/s, '');
  while (offset + 512 <= tar.length) {
    if (tar.subarray(offset, offset + 512).every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : tar[offset + i]!;
    expect(parseInt(str(148, 8), 8)).toBe(sum);
    expect(str(257, 6)).toBe('ustar');
    const prefix = str(345, 155);
    const path = prefix ? `${prefix}/${str(0, 100)}` : str(0, 100);
    const size = parseInt(str(124, 12), 8);
    const entry = { path, type: str(156, 1), mode: parseInt(str(100, 8), 8), link: str(157, 100), data: tar.subarray(offset + 512, offset + 512 + size) };
    entries.push(entry);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  expect(tar.length - offset).toBe(1024);
  return entries;
}

const digest = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('writeTar', () => {
  it('writes files padded to blocks, directories, symlinks and long paths split into prefix + name', () => {
    const long = `${'d'.repeat(80)}/${'e'.repeat(60)}/file`;
    const tar = writeTar([
      { type: 'dir', path: 'etc' },
      { type: 'file', path: 'etc/hello', data: Buffer.from('hi\n'), mode: 0o600 },
      { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
      { type: 'file', path: long, data: Buffer.alloc(513, 1) },
    ]);
    expect(tar.length % 512).toBe(0);
    const entries = readTar(tar);
    expect(entries.map((e) => [e.path, e.type])).toEqual([['etc/', '5'], ['etc/hello', '0'], ['bin/sh', '2'], [long, '0']]);
    expect(entries[1]!.data.toString()).toBe('hi\n');
    expect(entries[1]!.mode).toBe(0o600);
    expect(entries[2]!.link).toBe('/bin/busybox');
    expect(entries[3]!.data.length).toBe(513);
  });

  it('gives the same bytes for the same entries (fixed mtime and owner)', () => {
    const entries = [{ type: 'file' as const, path: 'a', data: Buffer.from('x') }];
    expect(writeTar(entries).equals(writeTar(entries))).toBe(true);
  });
});

describe('busyboxLayer', () => {
  it('holds the binary, every applet as a symlink to it, their directories and /etc/passwd', () => {
    const layer = readTar(busyboxLayer(Buffer.from('ELF-ish'), ['bin/sh', 'bin/ping', 'bin/sleep', 'usr/bin/nc', 'usr/bin/wget', 'bin/busybox']));
    const byPath = new Map(layer.map((e) => [e.path, e]));
    expect(byPath.get('bin/busybox')).toMatchObject({ type: '0', mode: 0o755 });
    expect(byPath.get('bin/busybox')!.data.toString()).toBe('ELF-ish');
    for (const applet of ['bin/sh', 'bin/ping', 'bin/sleep', 'usr/bin/nc', 'usr/bin/wget']) {
      expect(byPath.get(applet)).toMatchObject({ type: '2', link: '/bin/busybox' });
    }
    expect(byPath.get('usr/')?.type).toBe('5');
    expect(byPath.get('usr/bin/')?.type).toBe('5');
    expect(byPath.get('tmp/')?.mode).toBe(0o1777);
    expect(byPath.get('etc/passwd')!.data.toString()).toMatch(/^root:x:0:0:/);
    // Directories come before what they hold.
    expect(layer.findIndex((e) => e.path === 'usr/bin/')).toBeLessThan(layer.findIndex((e) => e.path === 'usr/bin/wget'));
  });
});

describe('ociImageTarball', () => {
  it('is an OCI layout whose index names the image and whose blobs match their digests', () => {
    const layer = busyboxLayer(Buffer.from('bb'), ['bin/sh']);
    const { tarball, manifest } = ociImageTarball({ name: 'registry.k8s.io/pause:raven-box', layer, entrypoint: SANDBOX_ENTRYPOINT });
    const files = new Map(readTar(tarball).filter((e) => e.type === '0').map((e) => [e.path, e.data]));
    expect(JSON.parse(files.get('oci-layout')!.toString())).toEqual({ imageLayoutVersion: '1.0.0' });
    for (const [path, data] of files) {
      if (path.startsWith('blobs/sha256/')) expect(digest(data)).toBe(`sha256:${path.slice('blobs/sha256/'.length)}`);
    }
    const index = JSON.parse(files.get('index.json')!.toString());
    expect(index.mediaType).toBe(MEDIA_TYPES.index);
    expect(index.manifests).toEqual([manifest]);
    expect(manifest.annotations).toEqual({ 'io.containerd.image.name': 'registry.k8s.io/pause:raven-box', 'org.opencontainers.image.ref.name': 'raven-box' });
    const blob = (d: string) => files.get(`blobs/sha256/${d.slice('sha256:'.length)}`)!;
    const man = JSON.parse(blob(manifest.digest).toString());
    expect(blob(manifest.digest).length).toBe(manifest.size);
    expect(man.layers).toEqual([{ mediaType: MEDIA_TYPES.layer, digest: digest(layer), size: layer.length }]);
    expect(blob(man.layers[0].digest).equals(layer)).toBe(true);
    const config = JSON.parse(blob(man.config.digest).toString());
    expect(config).toMatchObject({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest(layer)] } });
    expect(config.config.Entrypoint).toEqual(SANDBOX_ENTRYPOINT);
  });
});
