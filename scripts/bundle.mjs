// Bundles one app into dist/apps/<app>/main.js: a single self-contained ESM file that runs with plain `node`
// (every npm dependency is inside), so an image needs Node and this one directory.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const app = process.argv[2];
if (!app) throw new Error('usage: bundle.mjs <app>');
const root = new URL('..', import.meta.url).pathname;
const outdir = join(root, 'dist/apps', app);

/** The workspace version plus the commit it was built from, when this is a git checkout. */
function buildVersion() {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return `${version}+${commit}`;
  } catch {
    return version;
  }
}

const result = await build({
  entryPoints: [join(root, 'apps', app, 'src/main.ts')],
  outfile: join(outdir, 'main.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  minifySyntax: true,
  legalComments: 'linked',
  // CommonJS dependencies inside an ESM bundle still call require(); give them one.
  banner: { js: "import { createRequire as __ravenRequire } from 'node:module'; const require = __ravenRequire(import.meta.url);" },
  define: { __RAVEN_VERSION__: JSON.stringify(buildVersion()) },
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(join(outdir, 'package.json'), JSON.stringify({ name: `raven-${app}`, private: true, type: 'module', main: 'main.js' }, null, 2) + '\n');
const bytes = Object.entries(result.metafile.outputs).find(([f]) => f.endsWith('main.js'))?.[1].bytes ?? 0;
console.log(`bundled ${app} -> dist/apps/${app}/main.js (${(bytes / 1e6).toFixed(1)} MB)`);
