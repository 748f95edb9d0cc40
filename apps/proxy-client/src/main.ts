import { COMMON_FLAGS, ConfigError, createLogger, parseFlags } from '@raven/controller-kit';

const flags = {
  ...COMMON_FLAGS,
  'node-name': { type: 'string', description: 'This node (defaults to $NODE_NAME)' },
} as const;

async function main(): Promise<void> {
  parseFlags('proxy-client', 'Raven L7 proxy client (edge): dials out to the cloud proxy-servers and serves requests for the nodes of its domain.', flags);
  throw new ConfigError('proxy-client: not available in this build yet');
}

main().catch((err: unknown) => {
  createLogger('proxy-client').fatal({ err }, (err as Error).message);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
