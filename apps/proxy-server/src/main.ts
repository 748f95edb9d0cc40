import { COMMON_FLAGS, ConfigError, createLogger, parseFlags } from '@raven/controller-kit';

const flags = {
  ...COMMON_FLAGS,
  'node-name': { type: 'string', description: 'This node (defaults to $NODE_NAME)' },
} as const;

async function main(): Promise<void> {
  parseFlags('proxy-server', 'Raven L7 proxy server (cloud): accepts edge proxy-clients and forwards cloud HTTP/HTTPS requests to edge nodes by name.', flags);
  throw new ConfigError('proxy-server: not available in this build yet');
}

main().catch((err: unknown) => {
  createLogger('proxy-server').fatal({ err }, (err as Error).message);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
