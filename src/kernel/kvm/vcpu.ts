/**
 * A vCPU: its fd, its kvm_run, its guest program. Mirrors virt/kvm/kvm_main.c (kvm_vm_ioctl_create_vcpu,
 * kvm_vcpu_ioctl) for the ioctls gmemlab models; KVM_RUN itself is in run.ts.
 */
import { kerr } from '../errors.js';
import { KFile, type Stat } from '../file.js';
import type { GuestProgram } from '../guest/program.js';
import type { CpuidEntry } from './cpuid.js';
import type { Vm } from './vm.js';

/** The fields of struct kvm_run that gmemlab fills; union members appear for their exit. */
export interface KvmRun {
  exit_reason: number;
  immediate_exit: number;
  memory_fault?: { flags: bigint; gpa: bigint; size: bigint };
  hypercall?: { nr: bigint; args: bigint[]; ret: bigint; flags: bigint };
  mmio?: { phys_addr: bigint; data: Uint8Array; len: number; is_write: number };
  internal?: { suberror: number; ndata: number; data: bigint[] };
  system_event?: { type: number; ndata: number; data: bigint[] };
  fail_entry?: { hardware_entry_failure_reason: bigint; cpu: number };
}

export class Vcpu {
  /**
   * Every union member is there from the start, undefined until its exit fills it: kvm_run keeps
   * one shape, so clearing the previous exit's member is a store, not a delete (V8 turns an object
   * that loses properties in another order than it gained them into a slow dictionary).
   */
  readonly run: KvmRun = {
    exit_reason: 0,
    immediate_exit: 0,
    memory_fault: undefined,
    hypercall: undefined,
    mmio: undefined,
    internal: undefined,
    system_event: undefined,
    fail_entry: undefined,
  };
  program: GuestProgram | undefined;
  /** Arch state (SEV: VMSA state; TDX: TD vCPU state). */
  archState: Record<string, unknown> = {};
  /** The guest CPUID userspace set with KVM_SET_CPUID2 (undefined: never set). */
  cpuid: CpuidEntry[] | undefined;
  /** kvm_vcpu_has_run(): a KVM_RUN got past its entry checks (the CPUID is frozen from then on). */
  hasRun = false;
  /**
   * An exit that userspace must complete on the next KVM_RUN (hypercall return, MMIO read, or an
   * arch conversion request: TDX MapGPA, SNP page-state change: ArchVm.completeMapGpa).
   */
  pendingCompletion: 'hypercall' | 'mmio' | 'map_gpa' | undefined;
  /**
   * The hypercall member of the last exit, as userspace left it: kvm_run is one shared page, and the
   * SNP page-state-change exits do not rewrite every field (hypercall.flags; ret before 6.13).
   */
  staleHypercall: KvmRun['hypercall'];
  /** The hypercall member KVM_HC_MAP_GPA_RANGE exits fill in place (run.ts hypercallExit()). */
  readonly hypercallMember: NonNullable<KvmRun['hypercall']> = {
    nr: 0n,
    args: [0n, 0n, 0n, 0n, 0n, 0n],
    ret: 0n,
    flags: 0n,
  };

  constructor(
    readonly vm: Vm,
    readonly id: number,
  ) {}
}

export class VcpuFile extends KFile {
  /** An anonymous-inode pseudo file: no FMODE_PREAD/FMODE_PWRITE. */
  override get positional(): boolean {
    return false;
  }

  readonly kind = 'kvm-vcpu';
  constructor(readonly vcpu: Vcpu) {
    super(vcpu.vm.host);
  }

  override ioctl(request: number, name: string, arg: unknown): number {
    return this.vcpu.vm.vcpuIoctl(this.vcpu, request, name, arg);
  }

  stat(): Stat {
    return { st_ino: 0, st_size: 0, st_blksize: 4096, st_mode: 0o600 };
  }

  protected release(): void {
    this.vcpu.vm.put();
  }
}

export function checkVcpuId(id: bigint, max: number): number {
  if (id >= BigInt(max)) throw kerr('EINVAL', `kvm_vm_ioctl_create_vcpu: id ${id} >= KVM_MAX_VCPU_IDS`);
  return Number(id);
}
