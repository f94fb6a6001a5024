import { SyscallError } from '../src/index.js';

/** The errno name a call fails with (SyscallError.code), undefined if it succeeds; anything else is rethrown. */
export function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof SyscallError) return e.code;
    throw e;
  }
}
