/**
 * KVM_PRE_FAULT_MEMORY (6.11+). Mirrors virt/kvm/kvm_main.c (the kvm_vcpu_ioctl case and
 * kvm_vcpu_pre_fault_memory()) and x86 kvm_arch_vcpu_pre_fault_memory() / kvm_tdp_map_page() in
 * arch/x86/kvm/mmu/mmu.c. Versions v6.11-rc1 .. v7.0 (switches in profile.mmu).
 *
 * A fault of an already-mapped gfn is not short-cut (see Mmu.fault): it runs kvm_gmem_get_pfn() and
 * ends RET_PF_SPURIOUS (success).
 *
 * A fault that fails with a memory-fault exit fills the vCPU's kvm_run as a guest fault does
 * (kvm_mmu_prepare_memory_fault_exit() has no prefetch exemption): userspace finds it there after
 * the ioctl, whether it returned the errno or 0 after progress.
 *
 * Not modelled: huge mappings (progress is 4 KiB per step).
 */
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { KernelError, kerr } from '../errors.js';
import { copyFromUser, copyToUser, PAGE_SIZE_N, pageAligned, u64 } from '../uaccess.js';
import { gmemSlotCause } from './memslots.js';
import type { FaultKind } from './mmu.js';
import type { Vcpu } from './vcpu.js';

const U64_MAX = (1n << 64n) - 1n;
const PREFETCH: FaultKind = { write: false, prefetch: true };

/**
 * kvm_vcpu_ioctl(KVM_PRE_FAULT_MEMORY): copy in, kvm_vcpu_pre_fault_memory(), and copy the
 * (possibly advanced) struct back whatever the result, EINVAL included.
 */
export function kvmPreFaultMemory(vcpu: Vcpu, arg: unknown): number {
  const s = copyFromUser(arg, 'kvm_pre_fault_memory');
  const range = { gpa: u64(s, 'gpa'), size: u64(s, 'size'), flags: u64(s, 'flags') };
  let result: KernelError | number;
  try {
    result = vcpuPreFaultMemory(vcpu, range);
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    result = e;
  }
  // "Pass back leftover range": copy_to_user of the whole struct on every path.
  copyToUser(s, 'gpa', range.gpa);
  copyToUser(s, 'size', range.size);
  if (result instanceof KernelError) throw result;
  return result;
}

/** kvm_vcpu_pre_fault_memory(): checks in its order; 0 once any byte was mapped, else the error. */
function vcpuPreFaultMemory(vcpu: Vcpu, range: { gpa: bigint; size: bigint; flags: bigint }): number {
  // Only flags is checked; padding[5] is ignored.
  if (range.flags !== 0n) throw kerr('EINVAL', 'kvm_vcpu_pre_fault_memory: flags must be 0');
  // gpa + size <= gpa in u64 arithmetic: size 0, or the range wraps.
  if (
    !pageAligned(range.gpa) ||
    !pageAligned(range.size) ||
    range.size === 0n ||
    range.gpa + range.size > U64_MAX
  ) {
    throw kerr('EINVAL', 'kvm_vcpu_pre_fault_memory: gpa or size unaligned, size 0, or the range wraps');
  }
  const host = vcpu.vm.host;
  const fullSize = range.size;
  let err: KernelError | undefined;
  do {
    if (host.signalPending) {
      err = kerr('EINTR', 'kvm_vcpu_pre_fault_memory: signal pending');
      break;
    }
    let r: bigint;
    try {
      r = host.tracer.within('kvm_arch_vcpu_pre_fault_memory', () => archPreFaultMemory(vcpu, range));
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      err = e; // r < 0: stop (-EIO included, after a WARN)
      break;
    }
    range.size -= r;
    range.gpa += r;
  } while (range.size !== 0n);
  // "Return success if at least one page was mapped successfully."
  if (range.size !== fullSize) return 0;
  throw err ?? kerr('EIO', 'kvm_vcpu_pre_fault_memory: no progress (WARN)');
}

/** kvm_arch_vcpu_pre_fault_memory(): the bytes mapped at range.gpa, or an error. */
function archPreFaultMemory(vcpu: Vcpu, range: { gpa: bigint; size: bigint }): bigint {
  const vm = vcpu.vm;
  // kvm->arch.pre_fault_allowed (5932ca411e53, 6.11-rc2): false for SNP until LAUNCH_FINISH and for
  // TDX until FINALIZE_VM; true from creation for the default and SW_PROTECTED types.
  if (vm.profile.mmu.preFaultAllowedGate && !vm.arch.preFaultAllowed) {
    throw kerr(
      'EOPNOTSUPP',
      `kvm_arch_vcpu_pre_fault_memory: pre_fault_allowed is false for this ${vm.arch.name} VM (not finalized)`,
      vm.arch.name === 'tdx'
        ? 'a TD allows pre-fault once KVM_TDX_FINALIZE_VM succeeded (tdx_td_finalize())'
        : vm.arch.name === 'snp'
          ? 'an SNP VM allows pre-fault once KVM_SEV_SNP_LAUNCH_FINISH succeeded (snp_launch_finish())'
          : undefined,
    );
  }
  // kvm_is_gfn_alias() (8046d29dde17, 6.16-rc2): a GPA with the direct bits (the TDX shared bit) is
  // not an address userspace gave a memslot. Only the current page is checked: a range that runs
  // into the alias stops there, after the progress made below it.
  if (vm.profile.mmu.preFaultRejectsAlias && vm.arch.decodeGpa && !vm.arch.decodeGpa(range.gpa).private) {
    throw kerr(
      'EINVAL',
      `kvm_arch_vcpu_pre_fault_memory: gpa 0x${range.gpa.toString(16)} has the shared bit (kvm_is_gfn_alias)`,
    );
  }
  // kvm_mmu_reload() on every call, before anything looks at the MMU's kind: a shadow-paging vCPU
  // with no page budget cannot load its root (-ENOSPC).
  vm.mmu.reload();
  // kvm_tdp_map_page(): only a TDP MMU is indexed by GPA (page_fault == kvm_tdp_page_fault).
  if (!vm.host.tdp)
    throw kerr('EOPNOTSUPP', 'kvm_tdp_map_page: shadow paging, the MMU is not indexed by GPA');
  const gfnBig = range.gpa >> 12n;
  // Beyond any memslot the model can hold (memslots end below 2^40 gfns): RET_PF_EMULATE.
  if (gfnBig > BigInt(Number.MAX_SAFE_INTEGER))
    throw kerr('ENOENT', 'kvm_tdp_map_page: gpa beyond every memslot (RET_PF_EMULATE)');
  const gfn = Number(gfnBig);
  // PFERR_PRIVATE_ACCESS iff the VM has private memory and the gfn is private: a pre-fault never
  // mismatches the attribute. The error code is PFERR_GUEST_FINAL_MASK only (a read fault).
  const isPrivate = vm.arch.hasPrivateMem && (vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
  const r = vm.host.tracer.within('kvm_tdp_map_page', () => {
    // kvm_tdp_map_page(): signal -> -EINTR, dead VM -> -EIO, before each fault attempt.
    if (vm.host.signalPending) throw kerr('EINTR', 'kvm_tdp_map_page: signal pending');
    if (vm.dead) throw kerr('EIO', `kvm_tdp_map_page: VM is dead (${vm.dead})`);
    return vm.mmu.fault(vcpu, gfn, isPrivate, PREFETCH);
  });
  // RET_PF_EMULATE (no memslot: emulated MMIO) -> -ENOENT.
  if (r === 'emulate')
    throw kerr(
      'ENOENT',
      `kvm_tdp_map_page: no memslot for gpa 0x${range.gpa.toString(16)} (RET_PF_EMULATE)`,
      gmemSlotCause(vm, gfn),
    );
  // min(range->size, end of the 4 KiB mapping - gpa).
  return range.size < PAGE_SIZE_N ? range.size : PAGE_SIZE_N;
}
