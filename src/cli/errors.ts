/** How the CLI reports an error: one line per problem, never a stack trace. Returns the exit code. */
import { FlowLoadError, formatProblem } from '../flow/loader.js';
import { FlowRunError } from '../flow/runner.js';

/** Bad input the user can fix (a path, an option): one line, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function reportError(e: unknown): number {
  if (e instanceof FlowLoadError) {
    for (const p of e.problems) process.stderr.write(`${formatProblem(p)}\n`);
    return 2;
  }
  if (e instanceof FlowRunError || e instanceof UsageError) {
    process.stderr.write(`gmemlab: ${e.message}\n`);
    return 2;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && typeof err.message === 'string' && err.syscall) {
    process.stderr.write(`gmemlab: ${err.message}\n`);
    return 2;
  }
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  process.stderr.write(`gmemlab: internal error: ${msg.split('\n')[0]}\n`);
  return 70;
}
