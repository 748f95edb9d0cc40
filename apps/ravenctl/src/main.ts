#!/usr/bin/env node
import { run } from './cli.ts';

// Installed as `kubectl-raven` on the PATH, kubectl runs this file as a plugin (`kubectl raven show`).
const code = await run(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: { ...process.env, RAVENCTL_ARGV0: process.argv[1] },
});
// exitCode, not exit(): stdout may still be draining into a pipe.
process.exitCode = code;
