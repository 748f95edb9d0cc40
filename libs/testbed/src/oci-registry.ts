import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, openSync, readSync, rmSync } from 'node:fs';
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

/** Where a file's bytes lie in a tar archive. */
export interface TarSpan {
  offset: number;
  size: number;
}

/** Reads `length` bytes at `offset` of an archive (a Buffer, or a file read on demand). */
type ArchiveReader = (offset: number, length: number) => Buffer;

/** The regular files of a ustar archive, by path, as positions in it (nothing but the headers is read). */
export function tarEntries(read: ArchiveReader, archiveSize: number): Map<string, TarSpan> {
  const files = new Map<string, TarSpan>();
  const field = (header: Buffer, start: number, length: number) => header.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '');
  for (let offset = 0; offset + 512 <= archiveSize;) {
    const header = read(offset, 512);
    if (header.every((b) => b === 0)) break;
    const prefix = field(header, 345, 155);
    const path = (prefix ? `${prefix}/` : '') + field(header, 0, 100);
    const size = Number.parseInt(field(header, 124, 12).trim() || '0', 8);
    if (!Number.isSafeInteger(size) || offset + 512 + size > archiveSize) throw new OciLayoutError(`tar entry ${JSON.stringify(path)} runs past the archive's end`);
    const type = String.fromCharCode(header[156] ?? 0);
    if (type === '0' || type === '\0') files.set(path.replace(/^\.\//, ''), { offset: offset + 512, size });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** The files of a ustar archive (regular files only), by path. */
export function readTar(archive: Buffer): Map<string, Buffer> {
  const entries = tarEntries((offset, length) => archive.subarray(offset, offset + length), archive.length);
  return new Map([...entries].map(([path, { offset, size }]) => [path, archive.subarray(offset, offset + size)]));
}

/** A blob: in memory (manifests, configs, small layers), or a span of an archive file served from disk. */
interface Blob {
  mediaType: string;
  size: number;
  data?: Buffer;
  file?: { path: string; offset: number };
}

const IN_MEMORY_LIMIT = 64 * 1024;
const HASH_CHUNK = 1024 * 1024;

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
  private readonly blobs = new Map<string, Blob>();
  private server?: Server;
  /** Requests served, by `METHOD kind` (for tests: proves that pulls came here). */
  readonly served = new Map<string, number>();

  /**
   * Adds every image of an OCI layout tarball (a file, or its bytes) under the name its index annotates
   * (`io.containerd.image.name`). Every blob is checked against its digest; large ones stay on disk.
   */
  add(tarball: Buffer | string): void {
    const source = typeof tarball === 'string' ? openSync(tarball, 'r') : undefined;
    try {
      const size = source === undefined ? (tarball as Buffer).length : fstatSync(source).size;
      const read: ArchiveReader = source === undefined
        ? (offset, length) => (tarball as Buffer).subarray(offset, offset + length)
        : (offset, length) => {
          const buffer = Buffer.alloc(length);
          const got = readSync(source, buffer, 0, length, offset);
          if (got !== length) throw new OciLayoutError(`${tarball as string} ended early at ${offset + got}`);
          return buffer;
        };
      const files = tarEntries(read, size);
      const readFile = (entry: TarSpan) => read(entry.offset, entry.size);
      const indexEntry = files.get('index.json');
      if (!indexEntry) throw new OciLayoutError('the tarball has no index.json');
      const found = new Map<string, Blob>();
      for (const [path, entry] of files) {
        if (!path.startsWith('blobs/sha256/')) continue;
        const hash = createHash('sha256');
        for (let done = 0; done < entry.size; done += HASH_CHUNK) hash.update(read(entry.offset + done, Math.min(HASH_CHUNK, entry.size - done)));
        const digest = `sha256:${hash.digest('hex')}`;
        if (digest !== `sha256:${path.slice('blobs/sha256/'.length)}`) throw new OciLayoutError(`blob ${path} does not match its digest`);
        const inMemory = source === undefined || entry.size <= IN_MEMORY_LIMIT;
        found.set(digest, {
          mediaType: 'application/octet-stream', size: entry.size,
          ...(inMemory ? { data: Buffer.from(readFile(entry)) } : { file: { path: tarball as string, offset: entry.offset } }),
        });
      }
      for (const entry of indexSchema.parse(JSON.parse(readFile(indexEntry).toString('utf8'))).manifests) {
        const name = entry.annotations?.['io.containerd.image.name'];
        if (!name) continue;
        const manifest = found.get(entry.digest);
        if (!manifest?.data || manifest.size !== entry.size) throw new OciLayoutError(`manifest ${entry.digest} of ${name} is missing or of the wrong size`);
        manifest.mediaType = entry.mediaType;
        const { host, path, tag } = parseReference(name);
        const key = `${host}/${path}`;
        const repo = this.repositories.get(key) ?? { tags: new Map() };
        repo.tags.set(tag, entry.digest);
        this.repositories.set(key, repo);
      }
      for (const [digest, blob] of found) if (!this.blobs.has(digest) || blob.mediaType !== 'application/octet-stream') this.blobs.set(digest, blob);
    } finally {
      if (source !== undefined) closeSync(source);
    }
  }

  static async listen(socketPath: string, tarballs: readonly string[]): Promise<OciRegistry> {
    const registry = new OciRegistry();
    for (const file of tarballs) registry.add(file);
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
      'Content-Length': found.size,
      'Docker-Content-Digest': digest,
    });
    if (req.method === 'HEAD') res.end();
    else if (found.data) res.end(found.data);
    else if (found.file && found.size > 0) createReadStream(found.file.path, { start: found.file.offset, end: found.file.offset + found.size - 1 }).pipe(res);
    else res.end();
  }
}
