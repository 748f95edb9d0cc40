// Bundles one app into dist/apps/<app>/main.js: a single ESM file that runs with plain `node`.
// Runtime npm dependencies stay external so the image installs them from the lock file.
import { build } from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const app = process.argv[2];
if (!app) throw new Error('usage: bundle.mjs <app>');
const root = new URL('..', import.meta.url).pathname;
const outdir = join(root, 'dist/apps', app);

// Third-party runtime deps of the app and every workspace lib it pulls in stay external.
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
const workspaceDeps = new Set();
for (const [path, pkg] of Object.entries(lock.packages)) {
  if ((path.startsWith('libs/') || path === `apps/${app}`) && pkg.dependencies) {
    for (const dep of Object.keys(pkg.dependencies)) if (!dep.startsWith('@raven/')) workspaceDeps.add(dep);
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
  external: [...workspaceDeps],
  banner: { js: "import { createRequire as __ravenCreateRequire } from 'node:module'; const require = __ravenCreateRequire(import.meta.url);" },
  metafile: true,
  logLevel: 'warning',
});

// A package.json beside the bundle lists exactly the runtime deps the bundle imports, with locked versions,
// so `npm install --omit=dev` in the image (or the pruned runtime dir) gets nothing else.
const imported = new Set();
for (const output of Object.values(result.metafile.outputs)) {
  for (const imp of output.imports) if (imp.external && !imp.path.startsWith('node:')) imported.add(imp.path.split('/').slice(0, imp.path.startsWith('@') ? 2 : 1).join('/'));
}
const dependencies = Object.fromEntries(
  [...imported].sort().map((name) => [name, lock.packages[`node_modules/${name}`]?.version ?? '*']),
);
mkdirSync(outdir, { recursive: true });
writeFileSync(join(outdir, 'package.json'), JSON.stringify({ name: `raven-${app}`, private: true, type: 'module', main: 'main.js', dependencies }, null, 2) + '\n');
console.log(`bundled ${app} -> ${join('dist/apps', app, 'main.js')} (${[...imported].length} external deps)`);
