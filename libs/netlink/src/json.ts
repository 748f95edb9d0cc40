import type { z } from 'zod';
import { OutputParseError } from './errors.ts';

/** Parses and validates the JSON a command printed (`ip -j`, `bridge -j`); empty output means an empty list. */
export function parseJsonOutput<T>(schema: z.ZodType<T>, stdout: string, source: string): T {
  let data: unknown;
  try {
    data = JSON.parse(stdout.trim() === '' ? '[]' : stdout);
  } catch (error) {
    throw new OutputParseError(source, 'invalid JSON', { cause: error });
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new OutputParseError(source, `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'unexpected shape'}`, { cause: result.error });
  }
  return result.data;
}
