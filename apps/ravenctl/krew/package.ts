// Packages ravenctl for krew: dist/krew/kubectl-raven-v<version>.tar.gz from the bundle (`npm run build` first) and
// dist/krew/raven.yaml, the manifest with that release's uri and sha256.
//   npx tsx apps/ravenctl/krew/package.ts --base-url=https://github.com/<owner>/<repo>/releases/download/v<version>
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KREW_MANIFEST, archiveName, krewArchive, krewManifest } from '../src/krew.ts';
import { VERSION } from '../src/version.ts';

const root = new URL('../../..', import.meta.url).pathname;
const { values } = parseArgs({ options: { 'base-url': { type: 'string' } }, strict: true });
const baseUrl = values['base-url'];
if (!baseUrl) throw new Error('--base-url=<where the release archive is downloaded from> is required');
const archive = krewArchive(readFileSync(join(root, 'dist/apps/ravenctl/main.js')));
const out = join(root, 'dist/krew');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, archiveName(VERSION)), archive);
writeFileSync(join(out, 'raven.yaml'), krewManifest(readFileSync(join(root, KREW_MANIFEST), 'utf8'), { version: VERSION, baseUrl, archive }));
console.log(`wrote dist/krew/${archiveName(VERSION)} and dist/krew/raven.yaml`);
