import { HostFault, InvariantViolation, SyscallError } from '../src/index.js';
import { KernelError } from '../src/kernel/errors.js';

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

/** The invariant violation a call raises, undefined if it raises none; anything else is rethrown. */
export function violationOf(fn: () => unknown): InvariantViolation | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvariantViolation) return e;
    throw e;
  }
  return undefined;
}

/** The signal a host access raises (HostFault.signal), undefined if it raises none; anything else is rethrown. */
export function signalOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof HostFault) return e.signal;
    throw e;
  }
}

/**
 * The errno name a kernel-internal call fails with (KernelError.code, before a syscall wraps it),
 * undefined if it succeeds; anything else is rethrown.
 */
export function kernelErrnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
}
