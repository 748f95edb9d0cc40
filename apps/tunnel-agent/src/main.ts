import { COMMON_FLAGS, ConfigError, createLogger, parseFlags } from '@raven/controller-kit';

const flags = {
  ...COMMON_FLAGS,
  'node-name': { type: 'string', description: 'This node (defaults to $NODE_NAME)' },
} as const;

async function main(): Promise<void> {
  parseFlags('tunnel-agent', 'Raven L3 agent (every node): vxlan to the domain gateway, WireGuard/IPsec tunnels between gateways.', flags);
  throw new ConfigError('tunnel-agent: not available in this build yet');
}

main().catch((err: unknown) => {
  createLogger('tunnel-agent').fatal({ err }, (err as Error).message);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
