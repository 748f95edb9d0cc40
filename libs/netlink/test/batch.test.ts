import { describe, expect, it } from 'vitest';
import { BatchError, CommandError, InvalidSpecError, batchLine, parseBatchFailures, runBatch, type Exec, type RunOptions } from '../src/index.ts';

/** Stderr exactly as `ip -force -batch -` printed it for a script whose lines 1, 2 and 4 failed. */
const STDERR = [
  'Error: ipv4: Address not found.',
  'Command failed -:1',
  'Cannot find device "nosuch"',
  'Command failed -:2',
  'RTNETLINK answers: No such file or directory',
  'Command failed -:4',
  '',
].join('\n');
const SCRIPT = ['address del 10.9.9.9/32 dev d0', 'link set dev nosuch up', 'route replace 10.0.0.0/8 dev d0 table 5', 'rule del priority 100 lookup 9027'];

/** Records what runBatch spawns and fails the way `ip` would. */
class FailingExec implements Exec {
  calls: Array<{ cmd: string; args: string[]; input: string | undefined }> = [];
  constructor(private readonly stderr: string) {}
  run(cmd: string, args: string[], opts?: RunOptions): Promise<{ stdout: string; stderr: string }> {
    this.calls.push({ cmd, args, input: opts?.input });
    return Promise.reject(new CommandError(cmd, args, 1, this.stderr));
  }
}

describe('batch scripts', () => {
  it('builds lines only from safe tokens', () => {
    expect(batchLine('route', 'replace', '10.0.0.0/8', 'table', 9027)).toBe('route replace 10.0.0.0/8 table 9027');
    for (const bad of ['a b', 'a\nroute flush', '"x"', 'a#b', '']) expect(() => batchLine('link', 'del', bad)).toThrow(InvalidSpecError);
  });

  it('attributes each failure message to its script line', () => {
    expect(parseBatchFailures(STDERR, SCRIPT)).toEqual([
      { line: 1, command: SCRIPT[0], message: 'Error: ipv4: Address not found.' },
      { line: 2, command: SCRIPT[1], message: 'Cannot find device "nosuch"' },
      { line: 4, command: SCRIPT[3], message: 'RTNETLINK answers: No such file or directory' },
    ]);
  });

  it('tolerates deletes of absent objects but reports every other failure', async () => {
    const exec = new FailingExec(STDERR);
    const error = await runBatch(exec, 'ip', SCRIPT).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BatchError);
    expect((error as BatchError).failures.map((f) => f.line)).toEqual([2]);
    expect(exec.calls).toEqual([{ cmd: 'ip', args: ['-force', '-batch', '-'], input: `${SCRIPT.join('\n')}\n` }]);
  });

  it('succeeds when only deletes of absent objects failed', async () => {
    const stderr = 'RTNETLINK answers: No such process\nCommand failed -:1\n';
    await expect(runBatch(new FailingExec(stderr), 'ip', ['route del 10.0.0.0/8 metric 0 table 9027'], 4)).resolves.toBeUndefined();
  });

  it('rethrows failures it cannot attribute, and spawns nothing for an empty script', async () => {
    const error = await runBatch(new FailingExec('Segmentation fault'), 'ip', ['link del dev x']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).not.toBeInstanceOf(BatchError);
    const exec = new FailingExec('');
    await runBatch(exec, 'ip', []);
    expect(exec.calls).toHaveLength(0);
  });
});
