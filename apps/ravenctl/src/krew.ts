import { createHash } from 'node:crypto';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { tarGz } from './archive.ts';

/**
 * The krew package of ravenctl: one archive holding the bundle as `kubectl-raven` (executable, its `#!/usr/bin/env
 * node` line makes it runnable), and the manifest pointing at it. Release tooling only; the CLI never imports this.
 */
export const KREW_BIN = 'kubectl-raven';
export const KREW_MANIFEST = 'apps/ravenctl/krew/raven.yaml';
export const archiveName = (version: string) => `${KREW_BIN}-v${version}.tar.gz`;

const platformSchema = z.object({
  selector: z.object({ matchLabels: z.record(z.string(), z.string()).optional(), matchExpressions: z.array(z.object({ key: z.string(), operator: z.string(), values: z.array(z.string()) })).optional() }),
  uri: z.url({ protocol: /^https$/ }),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  files: z.array(z.object({ from: z.string(), to: z.string() })).min(1),
  bin: z.string(),
});

/** The krew Plugin shape (krew.googlecontainers.com/v1alpha2) as far as krew's own validation goes. */
export const krewPluginSchema = z.object({
  apiVersion: z.literal('krew.googlecontainers.com/v1alpha2'),
  kind: z.literal('Plugin'),
  metadata: z.object({ name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/) }),
  spec: z.object({
    version: z.string().regex(/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/),
    homepage: z.url().optional(),
    shortDescription: z.string().min(1).max(80),
    description: z.string().optional(),
    caveats: z.string().optional(),
    platforms: z.array(platformSchema).min(1),
  }),
});
export type KrewPlugin = z.infer<typeof krewPluginSchema>;

export function krewArchive(bundle: Buffer, mtime = new Date(0)): Buffer {
  if (!bundle.subarray(0, 64).toString('utf8').startsWith('#!/usr/bin/env node')) throw new Error('the bundle must start with #!/usr/bin/env node');
  return tarGz([{ path: KREW_BIN, content: bundle, mode: 0o755 }], mtime);
}

/** The manifest for one release: version, every platform's uri (`<baseUrl>/<archive>`) and sha256; comments kept. */
export function krewManifest(template: string, release: { version: string; baseUrl: string; archive: Buffer }): string {
  const doc = parseDocument(template);
  krewPluginSchema.parse(doc.toJS());
  const sha256 = createHash('sha256').update(release.archive).digest('hex');
  doc.setIn(['spec', 'version'], `v${release.version}`);
  const platforms = (doc.toJS() as KrewPlugin).spec.platforms;
  platforms.forEach((_, i) => {
    doc.setIn(['spec', 'platforms', i, 'uri'], `${release.baseUrl.replace(/\/+$/, '')}/${archiveName(release.version)}`);
    doc.setIn(['spec', 'platforms', i, 'sha256'], sha256);
  });
  const text = doc.toString();
  krewPluginSchema.parse(parseDocument(text).toJS());
  return text;
}
