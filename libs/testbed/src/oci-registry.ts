import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { MEDIA_TYPES } from './oci-image.ts';

/**
 * A read-only OCI distribution registry (the pull half of the spec: `/v2/`, manifests and blobs by tag or digest)
 * over OCI image layout tarballs. The box's containerds use it as their mirror for docker.io and registry.k8s.io, so
 * a manifest's `image: busybox` is pulled as on a real cluster, `imagePullPolicy: Always` included, with no registry
 * on the internet. It listens on a unix socket; each node relays its 127.0.0.1:5000 to it.
 */

export const REGISTRY_PORT = 5000;

export class OciLayoutError extends Error {
  override readonly name = 'OciLayoutError';
}

const indexSchema = z.object({
  manifests: z.array(z.object({
    mediaType: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/), size: z.number().int().nonnegative(),
    annotations: z.record(z.string(), z.string()).optional(),
  })),
});

/** The files of a ustar archive (regular files only), by path. */
export function readTar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const field = (header: Buffer, start: number, length: number) => header.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '');
  for (let offset = 0; offset + 512 <= archive.length;) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const prefix = field(header, 345, 155);
    const path = (prefix ? `${prefix}/` : '') + field(header, 0, 100);
    const size = Number.parseInt(field(header, 124, 12).trim() || '0', 8);
    if (!Number.isSafeInteger(size) || offset + 512 + size > archive.length) throw new OciLayoutError(`tar entry ${JSON.stringify(path)} runs past the archive's end`);
    const type = String.fromCharCode(header[156] ?? 0);
    if (type === '0' || type === '\0') files.set(path.replace(/^\.\//, ''), archive.subarray(offset + 512, offset + 512 + size));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

interface Repository {
  tags: Map<string, string>;
}

/** `docker.io/library/busybox:latest` → host, repository path and tag. */
export function parseReference(reference: string): { host: string; path: string; tag: string } {
  const match = /^([^/]+)\/(.+):([\w][\w.-]{0,127})$/.exec(reference);
  if (!match) throw new OciLayoutError(`image reference ${JSON.stringify(reference)} is not host/path:tag`);
  return { host: match[1]!, path: match[2]!, tag: match[3]! };
}

export class OciRegistry {
  private readonly repositories = new Map<string, Repository>();
  private readonly blobs = new Map<string, { data: Buffer; mediaType: string }>();
  private server?: Server;
  /** Requests served, by `METHOD kind` (for tests: proves that pulls came here). */
  readonly served = new Map<string, number>();

  /** Adds every image of an OCI layout tarball under the name its index annotates (`io.containerd.image.name`). */
  add(tarball: Buffer): void {
    const files = readTar(tarball);
    const blob = (digest: string) => files.get(`blobs/sha256/${digest.slice('sha256:'.length)}`);
    const indexFile = files.get('index.json');
    if (!indexFile) throw new OciLayoutError('the tarball has no index.json');
    for (const [path, data] of files) {
      if (!path.startsWith('blobs/sha256/')) continue;
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      if (digest !== `sha256:${path.slice('blobs/sha256/'.length)}`) throw new OciLayoutError(`blob ${path} does not match its digest`);
      this.blobs.set(digest, { data, mediaType: 'application/octet-stream' });
    }
    for (const entry of indexSchema.parse(JSON.parse(indexFile.toString('utf8'))).manifests) {
      const name = entry.annotations?.['io.containerd.image.name'];
      if (!name) continue;
      const manifest = blob(entry.digest);
      if (!manifest || manifest.length !== entry.size) throw new OciLayoutError(`manifest ${entry.digest} of ${name} is missing or of the wrong size`);
      this.blobs.set(entry.digest, { data: manifest, mediaType: entry.mediaType });
      const { host, path, tag } = parseReference(name);
      const key = `${host}/${path}`;
      const repo = this.repositories.get(key) ?? { tags: new Map() };
      repo.tags.set(tag, entry.digest);
      this.repositories.set(key, repo);
    }
  }

  static async listen(socketPath: string, tarballs: readonly string[]): Promise<OciRegistry> {
    const registry = new OciRegistry();
    for (const file of tarballs) registry.add(readFileSync(file));
    rmSync(socketPath, { force: true });
    const server = createServer((req, res) => registry.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    registry.server = server;
    return registry;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://registry');
    const notFound = (code: string, message: string) => {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message }] }));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      return;
    }
    const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!match) return notFound('NAME_UNKNOWN', `no route ${url.pathname}`);
    const [, path, kind, reference] = match as unknown as [string, string, 'manifests' | 'blobs', string];
    // Mirrors are asked with ?ns=<upstream host>; a direct pull names no host, as a docker.io pull would.
    const host = url.searchParams.get('ns') ?? 'docker.io';
    const count = `${req.method} ${kind}`;
    this.served.set(count, (this.served.get(count) ?? 0) + 1);
    let digest = reference;
    if (!reference.startsWith('sha256:')) {
      if (kind === 'blobs') return notFound('DIGEST_INVALID', `blobs are addressed by digest, not ${reference}`);
      const tagged = this.repositories.get(`${host}/${path}`)?.tags.get(reference);
      if (!tagged) return notFound('MANIFEST_UNKNOWN', `${host}/${path}:${reference} is not in this registry`);
      digest = tagged;
    }
    const found = this.blobs.get(digest);
    const isManifest = found && Object.values<string>(MEDIA_TYPES).includes(found.mediaType) && found.mediaType !== MEDIA_TYPES.layer;
    if (!found || (kind === 'manifests' && !isManifest)) return notFound(kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${digest} is not in this registry`);
    res.writeHead(200, {
      'Content-Type': kind === 'manifests' ? found.mediaType : 'application/octet-stream',
      'Content-Length': found.data.length,
      'Docker-Content-Digest': digest,
    });
    res.end(req.method === 'HEAD' ? undefined : found.data);
  }
}
