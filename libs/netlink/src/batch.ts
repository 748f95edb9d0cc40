import { BatchError, CommandError, InvalidSpecError, type BatchFailure } from './errors.ts';
import type { Exec } from './exec.ts';

/** Tools that read a script of commands from stdin with `-batch -`. */
export type BatchTool = 'ip' | 'bridge';

const SAFE_TOKEN = /^[^\s"'\\#]+$/;

/** One script line from tokens; tokens are validated so that a value can never split into several arguments. */
export function batchLine(...tokens: Array<string | number>): string {
  for (const token of tokens) {
    const text = String(token);
    if (!SAFE_TOKEN.test(text)) throw new InvalidSpecError(`unsafe token in batch command: ${JSON.stringify(text)}`);
  }
  return tokens.join(' ');
}

const FAILURE_MARKER = /^Command failed (.*):(\d+)$/;
const NOT_FOUND = /No such (process|file or directory|device)|Cannot find device|not found|does not exist/i;

/** Parses `-force` batch stderr: each failure's messages precede its "Command failed -:N" line. */
export function parseBatchFailures(stderr: string, script: readonly string[]): BatchFailure[] {
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  for (const line of stderr.split('\n')) {
    const marker = FAILURE_MARKER.exec(line);
    if (!marker) {
      if (line.trim() !== '') pending.push(line.trim());
      continue;
    }
    const number = Number(marker[2]);
    failures.push({ line: number, command: script[number - 1] ?? '', message: pending.join(' ') });
    pending = [];
  }
  return failures;
}

/** A delete of something that is already gone is a success: the state is what was wanted. */
export function isAbsentOnDelete(failure: BatchFailure): boolean {
  const verb = failure.command.split(' ')[1];
  return (verb === 'del' || verb === 'delete') && NOT_FOUND.test(failure.message);
}

/**
 * Runs all lines in one process with `-force`, so one bad line does not stop the rest; throws BatchError listing the
 * lines that failed, except deletes of objects that were already gone. `family` sets the family of lines that cannot
 * infer it (policy rules).
 */
export async function runBatch(exec: Exec, tool: BatchTool, script: readonly string[], family?: 4 | 6): Promise<void> {
  if (script.length === 0) return;
  const familyFlag = family === undefined ? [] : [`-${family}`];
  try {
    await exec.run(tool, [...familyFlag, '-force', '-batch', '-'], { input: `${script.join('\n')}\n` });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    const failures = parseBatchFailures(error.stderr, script);
    if (failures.length === 0) throw error;
    const real = failures.filter((f) => !isAbsentOnDelete(f));
    if (real.length > 0) throw new BatchError(error, real);
  }
}
