/** How the CLI reports an error: one line per problem, never a stack trace. Returns the exit code. */
import { FlowLoadError, formatProblem } from '../flow/loader.js';
import { FlowRunError } from '../flow/runner.js';
import { reportOtherError } from './error-line.js';

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
  return reportOtherError(e, (text) => void process.stderr.write(text));
}
