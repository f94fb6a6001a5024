import { HostFault, InvariantViolation, SyscallError } from '../src/index.js';
import { KernelError } from '../src/kernel/errors.js';

/**
 * pick(e) for the error of class `kind` that fn() throws, undefined if it throws nothing; an error
 * of any other class is rethrown.
 */
function caught<E, R>(
  fn: () => unknown,
  kind: abstract new (...a: never[]) => E,
  pick: (e: E) => R,
): R | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof kind) return pick(e);
    throw e;
  }
  return undefined;
}

/** The errno name a call fails with (SyscallError.code), undefined if it succeeds; anything else is rethrown. */
export function errnoOf(fn: () => unknown): string | undefined {
  return caught(fn, SyscallError, (e) => e.code);
}

/** The invariant violation a call raises, undefined if it raises none; anything else is rethrown. */
export function violationOf(fn: () => unknown): InvariantViolation | undefined {
  return caught(fn, InvariantViolation, (e) => e);
}

/** The signal a host access raises (HostFault.signal), undefined if it raises none; anything else is rethrown. */
export function signalOf(fn: () => unknown): string | undefined {
  return caught(fn, HostFault, (e) => e.signal);
}

/**
 * The errno name a kernel-internal call fails with (KernelError.code, before a syscall wraps it),
 * undefined if it succeeds; anything else is rethrown.
 */
export function kernelErrnoOf(fn: () => unknown): string | undefined {
  return caught(fn, KernelError, (e) => e.code);
}
