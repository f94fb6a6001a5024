/**
 * The per-VM-type hooks the x86 KVM core calls into: the model's kvm_x86_ops plus the
 * guest_memfd arch hooks. Generic x86 VM types live in arch/x86-vm.ts; SEV/SNP in arch/sev/,
 * TDX in arch/tdx/. Every hook is optional: absent means the generic behaviour.
 */

import type { GuestOp, GuestProgram } from '../guest/program.js';
import type { GmemInode } from '../kvm/guest-memfd.js';
import type { Memslot } from '../kvm/memslots.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { Vm } from '../kvm/vm.js';

export interface ArchVm {
  /** kvm_arch_has_private_mem(). */
  readonly hasPrivateMem: boolean;
  /**
   * How a guest access picks private or shared: 'attribute' (SW_PROTECTED: KVM derives it from the
   * memory attribute) or 'guest' (SNP C-bit / TDX shared bit: the guest says, a mismatch exits).
   */
  readonly privacySource: 'attribute' | 'guest' | 'none';
  /** kvm->arch.pre_fault_allowed. */
  preFaultAllowed: boolean;
  /** kvm->arch.has_protected_eoi (6.18+, TDX): KVM_CREATE_IRQCHIP is -ENOTTY. Absent = false. */
  readonly hasProtectedEoi?: boolean;

  /** A short name for messages ('default', 'sw_protected', 'snp', 'tdx', ...). */
  readonly name: string;

  /** KVM_MEMORY_ENCRYPT_OP on the VM fd (kvm_arch_vm_ioctl -> mem_enc_ioctl); `arg` is the user pointer, copied in where the vendor does. */
  memEncryptOp?(arg: unknown): number;
  /** KVM_MEMORY_ENCRYPT_OP on a vCPU fd (TDX vCPU commands); `arg` is the user pointer, copied in where the arch does. */
  vcpuMemEncryptOp?(vcpu: Vcpu, arg: unknown): number;
  /** vCPU ioctls the core does not handle (e.g. KVM_SET_FPU, KVM_SET_MSRS); undefined = not handled. */
  vcpuIoctl?(vcpu: Vcpu, request: number, name: string, arg: unknown): number | undefined;
  /**
   * vcpu->arch.guest_state_protected: the vCPU's registers belong to the guest (SNP from LAUNCH_FINISH,
   * TDX from creation); returns since when / why, undefined while they do not. With
   * has_protected_state, KVM_SET_REGS / KVM_SET_SREGS are then -EINVAL. Absent = never.
   */
  guestStateProtected?(vcpu: Vcpu): string | undefined;
  /** fpstate_is_confidential(&vcpu->arch.guest_fpu): KVM_SET_FPU is refused or ignored. Absent = false. */
  fpuConfidential?(vcpu: Vcpu): boolean;
  /** Checks at KVM_CREATE_VCPU before the vCPU exists (e.g. TDX requires INIT_VM). */
  vcpuPrecreate?(id: number): void;
  vcpuCreated?(vcpu: Vcpu): void;
  /** Checks KVM_RUN makes before entering the guest (TD not runnable, SNP VMSA absent, ...). */
  vcpuPreRun?(vcpu: Vcpu): void;

  /** kvm_arch_gmem_prepare(): called by kvm_gmem_prepare_folio(). Throws a KernelError on failure. */
  gmemPrepare?(gfn: number, pfn: number): void;
  /** Has the CoCo VM been finalized (SNP LAUNCH_FINISH, TDX FINALIZE_VM)? */
  finalized?(): boolean;

  /**
   * A private mapping is being installed by the TDP MMU (TDX: the mirror SPTE is propagated to the
   * S-EPT with TDH.MEM.PAGE.AUG). Throws a KernelError to fail the fault.
   */
  setPrivateSpte?(gfn: number, pfn: number, slot: Memslot): void;
  /** Private mappings in [gfn, gfn+n) are being zapped (TDX: BLOCK/TRACK/REMOVE). */
  removePrivateSptes?(gfn: number, npages: number): void;

  /** Guest operations the arch implements (accept/PVALIDATE, ...). Returns undefined if not handled. */
  guestAccept?(vcpu: Vcpu, gpa: number, size: number): GuestOpResult | undefined;
  /**
   * Why the guest owns guest_memfd page `index` of `inode` in hardware (SNP: its RMP entry is
   * assigned; TDX: it is in the TD's S-EPT), so that the host must not touch it; undefined if not.
   * For the no-host-access-to-private invariant: ownership outlives attributes and memslots.
   */
  guestOwnedPage?(inode: GmemInode, index: number): string | undefined;
  /**
   * A guest access reaches a private page the fault path mapped (TDX: a PENDING S-EPT leaf, AUGed but
   * not accepted, kills the VM and KVM_RUN returns -EIO). Throws a KernelError to fail the access;
   * returns an exception the hardware raises in the guest instead of completing the access (SNP: a
   * page not validated is a #VC), recorded as the operation's result; undefined: the access proceeds.
   */
  guestPrivateAccess?(vcpu: Vcpu, gfn: number): string | undefined;

  /**
   * The guest's GHCB MSR termination request (SEV-ES/SNP); returns true (KVM_RUN returns to
   * userspace). Absent, or undefined: the op is not available on this VM.
   */
  guestTerminate?(vcpu: Vcpu, op: Extract<GuestOp, { op: 'terminate' }>): boolean | undefined;
  /**
   * A guest 'map_gpa' by the arch's own protocol (TDX TDG.VP.VMCALL<MapGPA>, SNP page-state change).
   * Returns true if it exited to userspace, false if the guest goes on, undefined if the op goes the
   * generic KVM_HC_MAP_GPA_RANGE hypercall way (x86.c). Throws a KernelError for a protocol the VM
   * type does not have.
   */
  guestMapGpa?(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'map_gpa' }>): boolean | undefined;
  /**
   * complete_userspace_io for an exit guestMapGpa made. Returns true if it made another exit
   * (KVM_RUN returns to userspace without entering the guest), false if the guest resumes.
   */
  completeMapGpa?(vcpu: Vcpu, prog: GuestProgram): boolean;

  /** Translate a guest-physical address as the guest issued it into (gfn page address, private view). */
  decodeGpa?(gpa: bigint): { gpa: bigint; private: boolean };

  /** kvm_arch_destroy_vm(). */
  destroy?(): void;
}

/** What running one guest operation did, for the guest runner. */
export type GuestOpResult = { kind: 'done'; data?: Uint8Array } | { kind: 'exit' } | { kind: 'vm-dead' };

export type ArchVmFactory = (vm: Vm) => ArchVm;

const factories = new Map<number, ArchVmFactory>();

/** SEV and TDX register their VM types here (kvm_x86_ops per vendor). */
export function registerArchVm(type: number, factory: ArchVmFactory): void {
  factories.set(type, factory);
}

export function archVmFactory(type: number): ArchVmFactory | undefined {
  return factories.get(type);
}
