// npm run kubectl -- <args> : the pinned kubectl against the local cluster (.cluster/kubeconfig).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { binaryPath, WORKSPACE_ROOT } from '@raven/testbed';

const result = spawnSync(binaryPath('kubectl'), [`--kubeconfig=${join(WORKSPACE_ROOT, '.cluster/kubeconfig')}`, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
