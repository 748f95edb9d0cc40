import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { extractRootfs, MEDIA_TYPES, OciArchiveError, openOciArchive, writeTar, type TarEntry } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'raven-oci-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const digest = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const file = (path: string, text = path): TarEntry => ({ type: 'file', path, data: Buffer.from(text) });

/** An OCI layout tarball with the layers given (the first gzip-compressed), as buildah writes them. */
function archive(name: string, layers: Buffer[], index?: object): string {
  const blobs = layers.map((l, i) => (i === 0 ? { data: gzipSync(l), mediaType: `${MEDIA_TYPES.layer}+gzip` } : { data: l, mediaType: MEDIA_TYPES.layer }));
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { User: '65532:65532', Entrypoint: ['node', '/app/main.js'] },
    rootfs: { type: 'layers', diff_ids: layers.map(digest) },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: digest(config), size: config.length },
    layers: blobs.map((b) => ({ mediaType: b.mediaType, digest: digest(b.data), size: b.data.length })),
  }));
  const top = { mediaType: MEDIA_TYPES.manifest, digest: digest(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'ghcr.io/raven-ts/x:0.1.0' } };
  const blob = (data: Buffer): TarEntry => ({ type: 'file', path: `blobs/sha256/${digest(data).slice(7)}`, data });
  const path = join(dir, `${name}.oci.tar`);
  writeFileSync(path, writeTar([
    file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'),
    file('index.json', JSON.stringify(index ?? { schemaVersion: 2, manifests: [top] })),
    { type: 'dir', path: 'blobs' }, { type: 'dir', path: 'blobs/sha256' },
    ...blobs.map((b) => blob(b.data)), blob(config), blob(manifest),
  ]));
  return path;
}

const lower = writeTar([
  { type: 'dir', path: 'a' }, file('a/keep'), file('a/gone'),
  { type: 'dir', path: 'b' }, file('b/old'), { type: 'dir', path: 'b/sub' }, file('b/sub/deep'),
]);
const upper = writeTar([
  { type: 'dir', path: 'a' }, file('a/.wh.gone', ''),
  { type: 'dir', path: 'b' }, file('b/.wh..wh..opq', ''), file('b/new'), file('c', 'upper'),
]);

describe('openOciArchive and extractRootfs', () => {
  it('read the config, the reference and the uncompressed size', async () => {
    const image = await openOciArchive(archive('ok', [lower, upper]));
    try {
      expect(image.reference).toBe('ghcr.io/raven-ts/x:0.1.0');
      expect(image.config.config.User).toBe('65532:65532');
      expect(image.sizeBytes).toBe(lower.length + upper.length);
    } finally {
      image.close();
    }
  });

  it('apply the layers in order, whiteouts and opaque directories included', async () => {
    const image = await openOciArchive(archive('layers', [lower, upper]));
    const root = join(dir, 'root');
    try {
      await extractRootfs(image, root);
    } finally {
      image.close();
    }
    expect(readFileSync(join(root, 'a/keep'), 'utf8')).toBe('a/keep');
    expect(existsSync(join(root, 'a/gone'))).toBe(false);
    expect(readdirSync(join(root, 'b'))).toEqual(['new']);
    expect(readFileSync(join(root, 'c'), 'utf8')).toBe('upper');
    expect(readdirSync(join(root, 'a'))).toEqual(['keep']);
  });

  it('refuse an index that is not an OCI image index', async () => {
    await expect(openOciArchive(archive('bad', [lower], { schemaVersion: 2, manifests: [] }))).rejects.toThrow(OciArchiveError);
  });
});
