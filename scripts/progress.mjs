// Progress of the long Go builds: no silent minutes. Node built-ins only (bootstrap runs before npm ci).
import { spawn } from 'node:child_process';

/** "still building <what> (1m05s)": what is building and how long it has been. */
export function progressLine(what, elapsedMs) {
  const s = Math.round(elapsedMs / 1000);
  return `still building ${what} (${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s)`;
}

/** Runs a long step, saying every `intervalMs` what it is and how long it has been running. */
export function runWithProgress(what, cmd, argv, { cwd, say, intervalMs = 30_000 }) {
  const started = Date.now();
  const child = spawn(cmd, argv, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  const ticker = setInterval(() => say(progressLine(what, Date.now() - started)), intervalMs);
  return new Promise((resolve, reject) => child.on('close', (code, signal) => {
    clearInterval(ticker);
    if (code === 0) resolve();
    else reject(new Error(`building ${what} failed with ${code ?? signal}`));
  }));
}
