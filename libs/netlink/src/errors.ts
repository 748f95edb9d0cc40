/** A command exited non-zero, was killed, or could not be started. */
export class CommandError extends Error {
  override readonly name: string = 'CommandError';
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    /** Exit status; null when killed by a signal or when the command could not be spawned. */
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout = '',
    options?: ErrorOptions,
  ) {
    super(`${[cmd, ...args].join(' ')} failed (${exitCode === null ? 'no exit code' : `exit ${exitCode}`}): ${firstLines(stderr) || '(no stderr)'}`, options);
  }
}

/** One line of an `ip -batch` / `bridge -batch` script that the kernel refused. */
export interface BatchFailure {
  /** 1-based line number in the script. */
  readonly line: number;
  readonly command: string;
  readonly message: string;
}

/** Some lines of a batch failed (the others were applied: batches run with `-force`). */
export class BatchError extends CommandError {
  override readonly name: string = 'BatchError';
  constructor(cause: CommandError, readonly failures: readonly BatchFailure[]) {
    super(cause.cmd, cause.args, cause.exitCode, cause.stderr, cause.stdout, { cause });
    this.message = `${cause.cmd} batch: ${failures.length} command(s) failed: ${failures
      .slice(0, 5)
      .map((f) => `line ${f.line} "${f.command}": ${f.message}`)
      .join('; ')}`;
  }
}

/** A command's output did not have the expected shape. */
export class OutputParseError extends Error {
  override readonly name: string = 'OutputParseError';
  constructor(readonly source: string, detail: string, options?: ErrorOptions) {
    super(`cannot parse output of ${source}: ${detail}`, options);
  }
}

/** The desired state is malformed or reaches outside what the reconciler owns. */
export class InvalidSpecError extends Error {
  override readonly name: string = 'InvalidSpecError';
}

/** Links that the desired state adopts (created by someone else) do not exist yet. */
export class LinkNotFoundError extends Error {
  override readonly name: string = 'LinkNotFoundError';
  constructor(readonly links: readonly string[]) {
    super(`adopted link(s) not found: ${links.join(', ')}`);
  }
}

/** An ipset cannot be destroyed or recreated because a kernel component (an iptables rule) references it. */
export class IpsetInUseError extends Error {
  override readonly name: string = 'IpsetInUseError';
  constructor(readonly set: string, options?: ErrorOptions) {
    super(`ipset ${set} is referenced by a kernel component (remove the iptables rules that use it first)`, options);
  }
}

function firstLines(text: string, max = 3): string {
  return text.trim().split('\n').slice(0, max).join(' | ');
}

/** The running kernel lacks an ipset type (e.g. hash:net,net needs CONFIG_IP_SET_HASH_NETNET). */
export class IpsetTypeUnsupportedError extends Error {
  override readonly name: string = 'IpsetTypeUnsupportedError';
  constructor(readonly set: string, readonly type: string, options?: ErrorOptions) {
    super(`the kernel does not support ipset type ${type} (set ${set})`, options);
  }
}
