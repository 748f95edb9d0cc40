import { describe, expect, it } from 'vitest';
import { progressLine, runWithProgress } from '../scripts/progress.mjs';

describe('Go build progress', () => {
  it.each([
    [0, 'still building etcd (0m00s)'],
    [30_000, 'still building etcd (0m30s)'],
    [59_600, 'still building etcd (1m00s)'],
    [65_000, 'still building etcd (1m05s)'],
    [3_600_000 + 9_000, 'still building etcd (60m09s)'],
  ])('%i ms: %s', (elapsedMs, expected) => {
    expect(progressLine('etcd', elapsedMs)).toBe(expected);
  });

  it('says what is building while it runs, and nothing after it ends', async () => {
    const lines: string[] = [];
    await runWithProgress('kubernetes', 'sh', ['-c', 'sleep 0.35'], { cwd: '/', say: (l) => lines.push(l), intervalMs: 100 });
    const said = lines.length;
    expect(said).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line).toMatch(/^still building kubernetes \(0m00s\)$/);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(lines).toHaveLength(said);
  });

  it('fails with what was building', async () => {
    await expect(runWithProgress('helm', 'sh', ['-c', 'exit 3'], { cwd: '/', say: () => undefined })).rejects.toThrow('building helm failed with 3');
  });
});
