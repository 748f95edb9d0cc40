import { describe, expect, it } from 'vitest';
import { imageNodeVersion, type AppName } from '@raven/testbed';
import { runApp } from './apps.ts';

const APPS: AppName[] = ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'];

describe.concurrent.each(APPS)('%s command line', (app) => {
  it('prints its version', async () => {
    const { code, out } = await runApp(app, ['--version']);
    expect(code).toBe(0);
    const bundle = process.env.RAVEN_APP_MODE === 'bundle';
    const stamped = bundle ? /\d+\.\d+\.\d+(\+[0-9a-f]{12})?/ : /dev/;
    // Bundles run on the Node the images ship, whatever Node runs the tests.
    const node = bundle ? imageNodeVersion().replace(/\./g, '\\.') : '\\d+';
    expect(out).toMatch(new RegExp(`^${app} ${stamped.source} \\(node v${node}[ )]`));
  }, 120_000);

  it('refuses unknown flags and stray arguments', async () => {
    const [unknown, stray] = await Promise.all([runApp(app, ['--no-such-flag=1']), runApp(app, ['stray'])]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.out + unknown.err).toMatch(/no-such-flag/);
    expect(stray.code).not.toBe(0);
    expect(stray.out + stray.err).toMatch(/unexpected argument \\?"stray\\?"/);
  }, 120_000);
});

it('gateway-pickup: `--leader-elect false` is an error, not leader election with a stray "false"', async () => {
  const { code, out, err } = await runApp('gateway-pickup', ['--leader-elect', 'false']);
  expect(code).not.toBe(0);
  expect(out + err).toMatch(/boolean flags take the form --leader-elect=false/);
}, 120_000);
