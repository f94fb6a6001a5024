/**
 * KVM_PRE_FAULT_MEMORY (6.11+). Mirrors virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory() and x86
 * kvm_arch_vcpu_pre_fault_memory() / kvm_tdp_map_page() in arch/x86/kvm/mmu/mmu.c.
 */
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { KernelError, kerr } from '../errors.js';
import { copyFromUser, copyToUser, pageAligned, u64 } from '../uaccess.js';
import type { Vcpu } from './vcpu.js';

export function kvmPreFaultMemory(vcpu: Vcpu, arg: unknown): number {
  const s = copyFromUser(arg, 'kvm_pre_fault_memory');
  let gpa = u64(s, 'gpa');
  let size = u64(s, 'size');
  const flags = u64(s, 'flags');
  // kvm_vcpu_pre_fault_memory(): padding is not checked, only flags.
  if (flags !== 0n) throw kerr('EINVAL', 'kvm_vcpu_pre_fault_memory: flags must be 0');
  if (!pageAligned(gpa) || !pageAligned(size) || gpa + size <= gpa || gpa + size > (1n << 64n) - 1n) {
    throw kerr('EINVAL', 'kvm_vcpu_pre_fault_memory: unaligned, empty or wrapping range');
  }
  const vm = vcpu.vm;
  const fullSize = size;
  const generation = vm.mmu.memslotGeneration;
  let err: KernelError | undefined;
  do {
    if (vm.host.signalPending) {
      err = kerr('EINTR', 'kvm_vcpu_pre_fault_memory: signal pending');
      break;
    }
    try {
      const done = vm.host.tracer.within('kvm_arch_vcpu_pre_fault_memory', () =>
        archPreFault(vcpu, gpa, size),
      );
      size -= done;
      gpa += done;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      err = e;
      break;
    }
  } while (size > 0n);
  // The struct is always copied back.
  copyToUser(s, 'gpa', gpa);
  copyToUser(s, 'size', size);
  if (size !== fullSize) return 0; // progress was made: success
  if (err && vm.profile.mmu.preFaultEagain && vm.mmu.memslotGeneration !== generation) {
    throw kerr('EAGAIN', 'kvm_tdp_map_page: memslot update raced with the pre-fault');
  }
  throw err ?? kerr('EIO', 'kvm_vcpu_pre_fault_memory: no progress');
}

/** kvm_arch_vcpu_pre_fault_memory(): returns the bytes mapped at gpa. */
function archPreFault(vcpu: Vcpu, gpa: bigint, size: bigint): bigint {
  const vm = vcpu.vm;
  if (vm.profile.mmu.preFaultAllowedGate && !vm.arch.preFaultAllowed) {
    throw kerr('EOPNOTSUPP', 'kvm_arch_vcpu_pre_fault_memory: pre_fault_allowed is false (VM not finalized)');
  }
  const gfnBig = gpa >> 12n;
  if (gfnBig > BigInt(Number.MAX_SAFE_INTEGER))
    throw kerr('ENOENT', 'kvm_tdp_map_page: gpa beyond every memslot (RET_PF_EMULATE)');
  const gfn = Number(gfnBig);
  // A pre-fault never mismatches the attribute: it asks for private iff the gfn is private.
  const isPrivate = vm.arch.hasPrivateMem && (vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
  const r = vm.host.tracer.within('kvm_tdp_map_page', () => vm.mmu.fault(undefined, gfn, isPrivate, true));
  if (r.kind === 'emulate')
    throw kerr('ENOENT', `kvm_tdp_map_page: no memslot for gpa 0x${gpa.toString(16)} (RET_PF_EMULATE)`);
  return size < 4096n ? size : 4096n;
}
