// Regenerates derived files from their single source (the zod schemas in libs/api-types; the monitoring rule file).
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GATEWAY_CRD_PATH, gatewayCrdYaml } from '@raven/api-types';
import { PROMETHEUS_RULE_PATH, prometheusRuleYaml } from './monitoring.ts';

const root = new URL('..', import.meta.url).pathname;
const outputs: Array<[string, string]> = [[GATEWAY_CRD_PATH, gatewayCrdYaml()], [PROMETHEUS_RULE_PATH, prometheusRuleYaml()]];
for (const [path, content] of outputs) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  console.log(`wrote ${path}`);
}
