/**
 * TDG.VP.VMCALL<MapGPA> from a TD guest: arch/x86/kvm/vmx/tdx.c tdx_map_gpa(), __tdx_map_gpa() and
 * tdx_complete_vmcall_map_gpa(). Versions: 6.16 .. 7.0 (torvalds/linux tdx.c @3829d81b6958, kvm-x86
 * tdx.c @09c6f74ecb86); the status for an untrapped KVM_HC_MAP_GPA_RANGE is a profile switch
 * (profile.tdx.mapGpaUnsupportedStatus). Not modelled: a pending interrupt between chunks
 * (kvm_vcpu_has_events() -> TDVMCALL_STATUS_RETRY; the model has no interrupts), and the post-7.0
 * completion that maps hypercall.ret EAGAIN/EINVAL to RETRY/INVALID_OPERAND and fails KVM_RUN with
 * -EINVAL for other values (kvm-x86 3e2dec1ede0a, applied 2026-05-29).
 *
 * What the VMM sees: one KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE) per TDX_MAP_GPA_MAX_LEN (2 MiB)
 * chunk; args[0] the chunk's GPA without the shared bit, args[1] its pages, args[2]
 * KVM_MAP_GPA_RANGE_ENCRYPTED iff the GPA the guest passed is private (shared bit clear), flags
 * KVM_EXIT_HYPERCALL_LONG_MODE, ret 0. Completing a chunk with ret 0 makes the next chunk's exit
 * straight from KVM_RUN, without entering the guest. What the guest sees: R10 = TDVMCALL status
 * (SUCCESS once the whole range is done) and on failure R11 = the GPA to resume from.
 */
import * as K from '../../../uapi/kvm.js';
import type { GuestOp, GuestProgram } from '../../guest/program.js';
import { cpuidMaxPhyAddr } from '../../kvm/cpuid.js';
import type { Vcpu } from '../../kvm/vcpu.js';

/** arch/x86/include/asm/shared/tdx.h TDVMCALL_STATUS_*. */
export const TDVMCALL_STATUS_SUCCESS = 0n;
export const TDVMCALL_STATUS_RETRY = 1n;
export const TDVMCALL_STATUS_INVALID_OPERAND = 0x8000000000000000n;
export const TDVMCALL_STATUS_ALIGN_ERROR = 0x8000000000000002n;
/** Added in 6.16-rc (Binbin Wu, "KVM: TDX: Add new TDVMCALL status code for unsupported subfuncs"). */
export const TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED = 0x8000000000000003n;
/** tdx.c TDX_MAP_GPA_MAX_LEN: 2 MiB per userspace exit (6.16 .. 7.0). */
export const TDX_MAP_GPA_MAX_LEN = 2n << 20n;

const U64_MASK = (1n << 64n) - 1n;
const HC_MAP_GPA_RANGE = BigInt(K.KVM_HC_MAP_GPA_RANGE);
const ENCRYPTED = BigInt(K.KVM_MAP_GPA_RANGE_ENCRYPTED);
const DECRYPTED = BigInt(K.KVM_MAP_GPA_RANGE_DECRYPTED);
const LONG_MODE = BigInt(K.KVM_EXIT_HYPERCALL_LONG_MODE);

type MapGpaOp = Extract<GuestOp, { op: 'map_gpa' }>;

/** What tdvmcall.ts needs of the TD (TdxVm). */
export interface TdMapGpaHost {
  /** kvm_gfn_direct_bits() as a GPA bit: the shared bit (TDX_SHARED_BIT_PWL_4/5). */
  readonly sharedBit: bigint;
}

/** struct vcpu_tdx map_gpa_next / map_gpa_end: the request the VMM is being asked to convert. */
export interface MapGpaState {
  next: bigint;
  end: bigint;
}

/** The vCPU's TDX state (struct vcpu_tdx) as far as MapGPA keeps it. */
export interface MapGpaVcpu {
  mapGpa?: MapGpaState | undefined;
}

/**
 * The GPA width KVM checks against (kvm_vcpu_is_legal_gpa(): cpuid_maxphyaddr()). With guest CPUID
 * set (KVM_SET_CPUID2), cpuid_query_maxphyaddr(): CPUID.0x80000008.EAX[7:0], 36 without the leaf.
 * Without KVM_SET_CPUID2 the model assumes the VMM gave the TD MAXPHYADDR = GPAW (QEMU sets guest
 * CPUID for every vCPU; an assumption, not KVM's default of 36).
 */
function maxPhyAddr(vcpu: Vcpu, t: TdMapGpaHost): bigint {
  if (vcpu.cpuid === undefined) return t.sharedBit === 1n << 51n ? 52n : 48n;
  return BigInt(cpuidMaxPhyAddr(vcpu.cpuid));
}

/** tdx_map_gpa(): checks in its order; an error resumes the guest with R10 = status, R11 = gpa. */
export function tdxMapGpa(
  t: TdMapGpaHost,
  vcpu: Vcpu,
  tv: MapGpaVcpu,
  prog: GuestProgram,
  op: MapGpaOp,
): boolean {
  const vm = vcpu.vm;
  // R12: the GPA as the guest passes it (its shared bit says private or shared).
  let gpa = BigInt.asUintN(64, BigInt(op.gpa));
  if (op.private !== undefined) gpa = op.private ? gpa & ~t.sharedBit : gpa | t.sharedBit;
  // R13: size in bytes.
  const size =
    op.size !== undefined
      ? BigInt.asUintN(64, BigInt(op.size))
      : BigInt.asUintN(64, BigInt(op.npages) << 12n);
  const fail = (status: bigint): boolean => {
    // tdx_map_gpa() error: tdvmcall_set_return_code(ret); vp_enter_args.r11 = gpa; resume guest.
    prog.results[prog.pc] = { ret: status, r11: gpa };
    return false;
  };
  // !user_exit_on_hypercall(KVM_HC_MAP_GPA_RANGE): SUBFUNC_UNSUPPORTED (6.16 final .. 7.0);
  // INVALID_OPERAND before Binbin Wu's June 2025 patch.
  if (!vm.userExitOnHypercall(HC_MAP_GPA_RANGE))
    return fail(
      vm.profile.tdx.mapGpaUnsupportedStatus === 'subfunc-unsupported'
        ? TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED
        : TDVMCALL_STATUS_INVALID_OPERAND,
    );
  // gpa + size <= gpa (wraps or empty), either end not a legal GPA, or the range mixes private and
  // shared (vt_is_tdx_private_gpa of both ends differ): INVALID_OPERAND.
  const end = (gpa + size) & U64_MASK;
  const limit = 1n << maxPhyAddr(vcpu, t);
  const isPrivate = (a: bigint): boolean => (a & t.sharedBit) === 0n;
  if (end <= gpa || gpa >= limit || end - 1n >= limit || isPrivate(gpa) !== isPrivate(end - 1n))
    return fail(TDVMCALL_STATUS_INVALID_OPERAND);
  // !PAGE_ALIGNED(gpa) || !PAGE_ALIGNED(size): ALIGN_ERROR (checked after the range).
  if (gpa & 0xfffn || size & 0xfffn) return fail(TDVMCALL_STATUS_ALIGN_ERROR);
  const st: MapGpaState = { next: gpa, end };
  tv.mapGpa = st;
  tdxMapGpaExit(t, vcpu, st);
  return true;
}

/** __tdx_map_gpa(): the exit for the next chunk of at most TDX_MAP_GPA_MAX_LEN. */
function tdxMapGpaExit(t: TdMapGpaHost, vcpu: Vcpu, st: MapGpaState): void {
  const left = st.end - st.next;
  const size = left > TDX_MAP_GPA_MAX_LEN ? TDX_MAP_GPA_MAX_LEN : left;
  // kvm_run is one shared page: the vCPU's hypercall member is filled in place (run.ts
  // hypercallExit()), so a VMM that kept it from the last chunk writes this chunk's ret.
  const hc = vcpu.hypercallMember;
  hc.nr = HC_MAP_GPA_RANGE;
  // args[0]: the shared bit (gfn_direct_bits) cleared; args[2] from the GPA, not from a flag.
  // args[3..5] are not written by KVM; the model reports them as 0.
  const args = hc.args;
  args[0] = st.next & ~t.sharedBit;
  args[1] = size >> 12n;
  args[2] = (st.next & t.sharedBit) === 0n ? ENCRYPTED : DECRYPTED;
  args[3] = 0n;
  args[4] = 0n;
  args[5] = 0n;
  // "In principle this should have been -KVM_ENOSYS" (QEMU <= 9.2 never writes it): KVM sets 0.
  hc.ret = 0n;
  hc.flags = LONG_MODE;
  vcpu.run.exit_reason = K.KVM_EXIT_HYPERCALL;
  vcpu.run.hypercall = hc;
  vcpu.vm.noteConversion(Number(args[0]! >> 12n), Number(args[1]!), args[2] === ENCRYPTED);
  vcpu.pendingCompletion = 'map_gpa';
}

/**
 * tdx_complete_vmcall_map_gpa() (6.16 .. 7.0). Returns true when it made the next chunk's exit
 * (KVM_RUN returns to userspace at once), false when the guest resumes (the op is complete).
 */
export function tdxCompleteMapGpa(t: TdMapGpaHost, vcpu: Vcpu, tv: MapGpaVcpu, prog: GuestProgram): boolean {
  const st = tv.mapGpa;
  if (!st) return false;
  // Any non-zero hypercall.ret: INVALID_OPERAND, R11 = the chunk that failed.
  if ((vcpu.run.hypercall?.ret ?? 0n) !== 0n) {
    tv.mapGpa = undefined;
    prog.complete({ ret: TDVMCALL_STATUS_INVALID_OPERAND, r11: st.next });
    return false;
  }
  st.next += TDX_MAP_GPA_MAX_LEN;
  if (st.next >= st.end) {
    // Whole range done: R10 keeps TDVMCALL_STATUS_SUCCESS.
    tv.mapGpa = undefined;
    prog.complete({ ret: TDVMCALL_STATUS_SUCCESS });
    return false;
  }
  // kvm_vcpu_has_events() would stop here with TDVMCALL_STATUS_RETRY: no events in the model.
  tdxMapGpaExit(t, vcpu, st);
  return true;
}
