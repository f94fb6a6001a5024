/**
 * The three ways a modelled call can fail, as DESIGN.md defines them. Nothing else may escape
 * the model: a plain JS exception from src/kernel is a defect.
 */
import { ERRNO, type ErrnoName } from '../uapi/errno.js';

/** A call the kernel rejects: the syscall returns -1 with errno set. */
export class SyscallError extends Error {
  readonly errno: number;
  constructor(
    readonly code: ErrnoName,
    readonly syscall: string,
    readonly request: string | undefined,
    /** The kernel function that returned the error, and why (e.g. "kvm_gmem_populate: folio up to date"). */
    readonly reason: string,
    /** Provenance: what earlier step put the page or VM in the state that made this call fail. */
    readonly explanation?: string,
  ) {
    super(`${request ?? syscall}: ${code} (${reason})${explanation ? `; ${explanation}` : ''}`);
    this.name = 'SyscallError';
    this.errno = ERRNO[code];
  }
}

/** A host memory access that the kernel answers with a signal (SIGBUS, SIGSEGV). */
export class HostFault extends Error {
  constructor(
    readonly signal: 'SIGBUS' | 'SIGSEGV',
    readonly address: bigint,
    readonly reason: string,
    /** A SIGBUS for a poisoned page (VM_FAULT_HWPOISON, BUS_MCEERR_AR): GUP reports -EHWPOISON. */
    readonly hwpoison = false,
  ) {
    super(`${signal} at 0x${address.toString(16)} (${reason})`);
    this.name = 'HostFault';
  }
}

/** A violated safety invariant: reported, never confused with an errno. */
export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
  ) {
    super(`invariant ${invariant} violated: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

/**
 * Thrown by kernel code deep inside a call: the syscall layer fills in syscall/request.
 * `kerr('EINVAL', 'kvm_gmem_create: size not page aligned')`.
 */
export class KernelError extends Error {
  constructor(
    readonly code: ErrnoName,
    readonly reason: string,
    readonly explanation?: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'KernelError';
  }
}

export function kerr(code: ErrnoName, reason: string, cause?: string): KernelError {
  return new KernelError(code, reason, cause);
}
