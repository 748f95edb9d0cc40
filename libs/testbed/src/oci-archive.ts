import { execFile } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';

/** Reads an OCI image layout tarball (what `buildah push oci-archive:` and `ctr images export` write). */

export class OciArchiveError extends Error {
  override readonly name = 'OciArchiveError';
}

const Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const DescriptorSchema = z.object({
  mediaType: z.string(),
  digest: Digest,
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
});
const IndexSchema = z.object({ schemaVersion: z.literal(2), manifests: z.array(DescriptorSchema).min(1) });
const ManifestSchema = z.object({ schemaVersion: z.literal(2), config: DescriptorSchema, layers: z.array(DescriptorSchema).min(1) });
export const ImageConfigSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  config: z.object({
    User: z.string().optional(),
    Entrypoint: z.array(z.string()).nullish(),
    Cmd: z.array(z.string()).nullish(),
    Env: z.array(z.string()).nullish(),
    WorkingDir: z.string().optional(),
    Labels: z.record(z.string(), z.string()).nullish(),
  }),
  rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(Digest) }),
});
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

export interface OciLayer {
  path: string;
  mediaType: string;
  /** Size of the layer's tar, uncompressed. */
  sizeBytes: number;
}

export interface OpenedOciArchive {
  /** The reference the index annotates (`org.opencontainers.image.ref.name` or containerd's image name). */
  reference: string | undefined;
  config: ImageConfig;
  layers: OciLayer[];
  /** Uncompressed size: the sum of the layers' tars, as `docker images` counts it. */
  sizeBytes: number;
  /** Removes the unpacked archive. */
  close(): void;
}

const exec = (cmd: string, args: string[]) => new Promise<string>((resolve, reject) => {
  execFile(cmd, args, { maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
    if (err) reject(new OciArchiveError(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
    else resolve(stdout);
  });
});

const parseJson = <T>(schema: z.ZodType<T>, path: string, what: string): T => {
  const parsed = schema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new OciArchiveError(`${what} (${path}): ${parsed.error.message}`);
  return parsed.data;
};

async function uncompressedSize(path: string, mediaType: string): Promise<number> {
  if (mediaType.endsWith('.tar')) return statSync(path).size;
  if (!mediaType.endsWith('.tar+gzip')) throw new OciArchiveError(`unsupported layer media type ${mediaType}`);
  let bytes = 0;
  const gunzip = createReadStream(path).pipe(createGunzip());
  for await (const chunk of gunzip) bytes += (chunk as Buffer).length;
  return bytes;
}

/** Unpacks the archive into a temporary directory and reads its (single) image's manifest and config. */
export async function openOciArchive(archive: string): Promise<OpenedOciArchive> {
  const dir = mkdtempSync(join(tmpdir(), 'raven-oci-'));
  const close = () => rmSync(dir, { recursive: true, force: true });
  try {
    await exec('tar', ['-xf', archive, '-C', dir]);
    const blob = (digest: string) => join(dir, 'blobs/sha256', digest.slice('sha256:'.length));
    const index = parseJson(IndexSchema, join(dir, 'index.json'), 'OCI index');
    if (index.manifests.length !== 1) throw new OciArchiveError(`${archive}: expected one image, found ${index.manifests.length}`);
    const top = index.manifests[0]!;
    const manifest = parseJson(ManifestSchema, blob(top.digest), 'OCI manifest');
    const config = parseJson(ImageConfigSchema, blob(manifest.config.digest), 'OCI image config');
    if (config.rootfs.diff_ids.length !== manifest.layers.length) throw new OciArchiveError(`${archive}: layers and diff_ids differ in number`);
    const layers = await Promise.all(manifest.layers.map(async (l) => ({
      path: blob(l.digest), mediaType: l.mediaType, sizeBytes: await uncompressedSize(blob(l.digest), l.mediaType),
    })));
    return {
      reference: top.annotations?.['io.containerd.image.name'] ?? top.annotations?.['org.opencontainers.image.ref.name'],
      config, layers, sizeBytes: layers.reduce((sum, l) => sum + l.sizeBytes, 0), close,
    };
  } catch (err) {
    close();
    throw err;
  }
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/**
 * Applies the layers in order to `root`, as a container runtime would: each layer's whiteouts first remove what
 * lower layers put there, then its other entries are extracted (owners and modes kept; run as root).
 */
export async function extractRootfs(image: OpenedOciArchive, root: string): Promise<void> {
  mkdirSync(root, { recursive: true });
  for (const layer of image.layers) {
    const entries = (await exec('tar', ['-tf', layer.path])).split('\n').filter(Boolean);
    for (const entry of entries) {
      const path = normalize(entry).replace(/^(\.\/)+|\/$/g, '');
      if (path.startsWith('..')) throw new OciArchiveError(`layer entry escapes the root: ${entry}`);
      const base = path.slice(path.lastIndexOf('/') + 1);
      if (!base.startsWith(WHITEOUT)) continue;
      const parent = join(root, dirname(path));
      if (base === OPAQUE) {
        rmSync(parent, { recursive: true, force: true });
        mkdirSync(parent, { recursive: true });
      } else {
        rmSync(join(parent, base.slice(WHITEOUT.length)), { recursive: true, force: true });
      }
    }
    await exec('tar', ['-xf', layer.path, '-C', root, '--numeric-owner', '--same-permissions', `--exclude=${WHITEOUT}*`]);
  }
}
