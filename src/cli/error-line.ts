/**
 * The one line for an error that is not a flow error: a failed system call (exit 2) or an internal
 * error (exit 70), never a stack trace. Shared by errors.ts and the built `gmemlab` (start.ts), which
 * must not load the flow modules errors.ts imports.
 */
export function reportOtherError(e: unknown, write: (text: string) => void): number {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && typeof err.message === 'string' && err.syscall) {
    write(`gmemlab: ${err.message}\n`);
    return 2;
  }
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  write(`gmemlab: internal error: ${msg.split('\n')[0]}\n`);
  return 70;
}
