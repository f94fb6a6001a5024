/**
 * What a vCPU's guest does when KVM_RUN runs it: a list of memory operations, run in order from
 * where the guest stopped. An operation that caused an exit runs again on the next KVM_RUN, as a
 * faulting instruction does, unless the exit completes it (a hypercall's return value).
 */

export type GuestOp =
  | { op: 'read'; gpa: number | bigint; length: number; shared?: boolean }
  | { op: 'write'; gpa: number | bigint; data: Uint8Array | number[]; shared?: boolean }
  /** TDX TDG.MEM.PAGE.ACCEPT / SNP PVALIDATE of [gpa, gpa+size). */
  | { op: 'accept'; gpa: number | bigint; size: number | bigint }
  /** TDX MapGPA / SNP page-state change, reaching the VMM as KVM_HC_MAP_GPA_RANGE. */
  | { op: 'map_gpa'; gpa: number | bigint; npages: number | bigint; private: boolean }
  | { op: 'hlt' };

export interface GuestOpResultRecord {
  /** Bytes read, for 'read'. */
  data?: Uint8Array;
  /** The hypercall's return value as the guest saw it, for 'map_gpa'. */
  ret?: bigint;
}

export class GuestProgram {
  pc = 0;
  readonly results: GuestOpResultRecord[] = [];
  /** Progress inside a multi-page operation (pages already done), so a re-run resumes there. */
  partial = 0;
  constructor(readonly ops: readonly GuestOp[]) {}

  get done(): boolean {
    return this.pc >= this.ops.length;
  }
}

/** host.guest(vcpu): the handle tests and flows use. */
export class Guest {
  program: GuestProgram = new GuestProgram([]);

  load(ops: readonly GuestOp[]): void {
    this.program = new GuestProgram(ops);
  }

  get results(): GuestOpResultRecord[] {
    return this.program.results;
  }

  get pc(): number {
    return this.program.pc;
  }
}
