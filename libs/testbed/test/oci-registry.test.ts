import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA_TYPES, ociImageTarball, writeTar } from '../src/oci-image.ts';
import { OciLayoutError, OciRegistry, parseReference, readTar } from '../src/oci-registry.ts';

const dir = mkdtempSync(join(tmpdir(), 'raven-registry-'));
const socket = join(dir, 'registry.sock');
const layer = writeTar([{ type: 'dir', path: 'bin' }, { type: 'file', path: 'bin/hello', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 }]);
const image = ociImageTarball({ name: 'docker.io/library/busybox:latest', layer, cmd: ['sh'] });
const pause = ociImageTarball({ name: 'registry.k8s.io/pause:raven-box', layer, entrypoint: ['/bin/hello'] });
let registry: OciRegistry;

function get(method: 'GET' | 'HEAD', path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method, headers: { Accept: `${MEDIA_TYPES.manifest}, ${MEDIA_TYPES.index}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}
const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

beforeAll(async () => {
  writeFileSync(join(dir, 'busybox.tar'), image.tarball);
  writeFileSync(join(dir, 'pause.tar'), pause.tarball);
  registry = await OciRegistry.listen(socket, [join(dir, 'busybox.tar'), join(dir, 'pause.tar')]);
});
afterAll(async () => {
  await registry?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('OciRegistry', () => {
  it('answers the API version check', async () => {
    const res = await get('GET', '/v2/');
    expect(res.status).toBe(200);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it.each([
    ['a mirror request for docker.io', '/v2/library/busybox/manifests/latest?ns=docker.io', image.manifest.digest],
    ['a direct pull (no ns: docker.io)', '/v2/library/busybox/manifests/latest', image.manifest.digest],
    ['a mirror request for registry.k8s.io', '/v2/pause/manifests/raven-box?ns=registry.k8s.io', pause.manifest.digest],
    ['a manifest by digest', `/v2/library/busybox/manifests/${image.manifest.digest}?ns=docker.io`, image.manifest.digest],
  ])('serves %s with its digest and media type', async (_what, path, digest) => {
    const res = await get('GET', path);
    expect(res.status).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(res.headers['content-type']).toBe(MEDIA_TYPES.manifest);
    expect(sha(res.body)).toBe(digest);
    const head = await get('HEAD', path);
    expect([head.status, head.headers['docker-content-digest'], head.headers['content-length'], head.body.length]).toEqual([200, digest, String(res.body.length), 0]);
  });

  it('serves every blob a manifest names, byte for byte', async () => {
    const manifest = JSON.parse((await get('GET', '/v2/library/busybox/manifests/latest?ns=docker.io')).body.toString()) as { config: { digest: string }; layers: Array<{ digest: string; size: number }> };
    for (const { digest } of [manifest.config, ...manifest.layers]) {
      const res = await get('GET', `/v2/library/busybox/blobs/${digest}?ns=docker.io`);
      expect(res.status, digest).toBe(200);
      expect(sha(res.body)).toBe(digest);
    }
    expect(sha((await get('GET', `/v2/library/busybox/blobs/${manifest.layers[0]!.digest}`)).body)).toBe(sha(layer));
  });

  it.each([
    ['an unknown tag', '/v2/library/busybox/manifests/1.36?ns=docker.io', 'MANIFEST_UNKNOWN'],
    ['a tag under another host', '/v2/library/busybox/manifests/latest?ns=quay.io', 'MANIFEST_UNKNOWN'],
    ['an unknown repository', '/v2/library/nginx/manifests/latest', 'MANIFEST_UNKNOWN'],
    ['a layer asked for as a manifest', 'LAYER', 'MANIFEST_UNKNOWN'],
    ['a blob by tag', '/v2/library/busybox/blobs/latest', 'DIGEST_INVALID'],
    ['an unknown blob', `/v2/library/busybox/blobs/sha256:${'0'.repeat(64)}`, 'BLOB_UNKNOWN'],
  ])('answers %s with 404 and the spec\'s error code', async (_what, path, code) => {
    const target = path === 'LAYER' ? `/v2/library/busybox/manifests/${sha(layer)}` : path;
    const res = await get('GET', target);
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body.toString())).toMatchObject({ errors: [{ code }] });
  });

  it('counts what it served, so a test can prove a pull came through it', () => {
    expect(registry.served.get('GET manifests')).toBeGreaterThan(0);
  });
});

describe('readTar and parseReference', () => {
  it('reads back what writeTar wrote, long paths (ustar prefix) included', () => {
    const long = `${'d'.repeat(120)}/file`;
    const files = readTar(writeTar([{ type: 'dir', path: 'a' }, { type: 'file', path: 'a/b', data: Buffer.from('xyz') }, { type: 'file', path: long, data: Buffer.alloc(1000, 7) }, { type: 'symlink', path: 'a/l', target: 'b' }]));
    expect([...files.keys()]).toEqual(['a/b', long]);
    expect(files.get('a/b')?.toString()).toBe('xyz');
    expect(files.get(long)?.length).toBe(1000);
  });

  it('refuses a truncated archive and a corrupt blob', () => {
    expect(() => readTar(image.tarball.subarray(0, 512 + 10))).toThrow(OciLayoutError);
    const corrupt = Buffer.from(image.tarball);
    const at = corrupt.indexOf(Buffer.from('echo hi'));
    corrupt[at] = 'E'.charCodeAt(0);
    expect(() => new OciRegistry().add(corrupt)).toThrow(/does not match its digest/);
  });

  it.each([
    ['docker.io/library/busybox:latest', { host: 'docker.io', path: 'library/busybox', tag: 'latest' }],
    ['registry.k8s.io/coredns/coredns:v1.12.1', { host: 'registry.k8s.io', path: 'coredns/coredns', tag: 'v1.12.1' }],
  ])('parses %s', (ref, want) => expect(parseReference(ref)).toEqual(want));

  it.each(['busybox', 'busybox:latest', 'docker.io/busybox'])('refuses the short reference %s', (ref) => expect(() => parseReference(ref)).toThrow(OciLayoutError));
});
