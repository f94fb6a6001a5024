/**
 * What a vCPU's guest does when KVM_RUN runs it: a list of memory operations, run in order from
 * where the guest stopped. An operation that caused an exit runs again on the next KVM_RUN, as a
 * faulting instruction does, unless the exit completes it (a hypercall's return value, an emulated
 * MMIO access: complete_userspace_io).
 */

export type GuestOp =
  /** Read `length` bytes; `shared` is the guest's view on SNP/TDX (C-bit clear / shared bit set). */
  | { op: 'read'; gpa: number | bigint; length: number; shared?: boolean }
  | { op: 'write'; gpa: number | bigint; data: Uint8Array | number[]; shared?: boolean }
  /** TDX TDG.MEM.PAGE.ACCEPT / SNP PVALIDATE of [gpa, gpa+size). */
  | { op: 'accept'; gpa: number | bigint; size: number | bigint }
  /**
   * KVM_HC_MAP_GPA_RANGE (TDX MapGPA / SNP page-state change reach the VMM the same way).
   * a2 ("attributes") is `attrs` when given, else KVM_MAP_GPA_RANGE_ENCRYPTED iff `private`; KVM
   * passes it through to userspace unchecked (private_mem_conversions_test puts its own flags there).
   */
  | {
      op: 'map_gpa';
      gpa: number | bigint;
      npages: number | bigint;
      private?: boolean;
      attrs?: number | bigint;
    }
  | { op: 'hlt' };

export interface GuestOpResultRecord {
  /** Bytes read, for 'read'. */
  data?: Uint8Array;
  /** The hypercall's return value (RAX) as the guest saw it, for 'map_gpa' (negative = -KVM_Exxx). */
  ret?: bigint;
}

export class GuestProgram {
  pc = 0;
  readonly results: GuestOpResultRecord[] = [];
  /** Progress inside a multi-page operation (bytes already done), so a re-run resumes there. */
  partial = 0;
  /** An emulated MMIO access of `len` bytes waiting for its completion on the next KVM_RUN. */
  pendingMmio: { len: number; read: boolean } | undefined;
  constructor(readonly ops: readonly GuestOp[]) {}

  get done(): boolean {
    return this.pc >= this.ops.length;
  }
}

/** host.guest(vcpu): the handle tests and flows use. */
export class Guest {
  program: GuestProgram = new GuestProgram([]);

  /** Give the guest a new program; it starts at its first operation on the next KVM_RUN. */
  load(ops: readonly GuestOp[]): void {
    this.program = new GuestProgram(ops);
  }

  get results(): GuestOpResultRecord[] {
    return this.program.results;
  }

  get pc(): number {
    return this.program.pc;
  }

  get done(): boolean {
    return this.program.done;
  }
}
