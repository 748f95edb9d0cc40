// Regenerates derived files from their single source (the zod schemas in libs/api-types).
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GATEWAY_CRD_PATH, gatewayCrdYaml } from '@raven/api-types';

const root = new URL('..', import.meta.url).pathname;
const outputs: Array<[string, string]> = [[GATEWAY_CRD_PATH, gatewayCrdYaml()]];
for (const [path, content] of outputs) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  console.log(`wrote ${path}`);
}
