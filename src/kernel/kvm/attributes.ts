/**
 * KVM_SET_MEMORY_ATTRIBUTES: the VM-wide gfn -> attributes map. Mirrors virt/kvm/kvm_main.c
 * kvm_vm_ioctl_set_mem_attributes() and kvm_vm_set_mem_attributes(), x86 pre-set hook
 * kvm_arch_pre_set_memory_attributes() (zap the range, private and shared). v6.8 .. v7.0.
 * The map needs no memslot and survives memslot deletion.
 */
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { kerr } from '../errors.js';
import type { Provenance } from '../provenance.js';
import { addOverflows, copyFromUser, pageAligned, u64 } from '../uaccess.js';
import type { Vm } from './vm.js';

export interface MemAttr {
  readonly attributes: number;
  readonly since: Provenance;
}

/** kvm_supported_mem_attributes(): PRIVATE iff the VM has private memory (or no VM: /dev/kvm). */
export function supportedMemAttributes(vm: Vm | undefined): number {
  return !vm || vm.arch.hasPrivateMem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
}

export function setMemoryAttributes(vm: Vm, arg: unknown): number {
  const s = copyFromUser(arg, 'kvm_memory_attributes');
  const address = u64(s, 'address');
  const size = u64(s, 'size');
  const attributes = u64(s, 'attributes');
  const flags = u64(s, 'flags');
  if (flags !== 0n) throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: flags must be 0');
  if (attributes & ~BigInt(supportedMemAttributes(vm))) {
    throw kerr(
      'EINVAL',
      `kvm_vm_ioctl_set_mem_attributes: attributes 0x${attributes.toString(16)} not supported`,
    );
  }
  if (size === 0n || addOverflows(address, size))
    throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: size 0 or range wraps');
  if (!pageAligned(address) || !pageAligned(size))
    throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: unaligned');
  const start = Number(address >> 12n);
  const end = Number((address + size) >> 12n);
  const attrs = Number(attributes);
  const t = vm.host.tracer;
  t.enter('kvm_vm_set_mem_attributes');
  try {
    // Nothing to do (and nothing zapped) if the whole range already has these attributes.
    if (vm.attributes.every(start, end, (v) => (v?.attributes ?? 0) === attrs)) return 0;
    // x86 kvm_arch_pre_set_memory_attributes(): zap every SPTE of the range, private and shared.
    if (!vm.profile.bugs?.noZapOnAttributeChange)
      vm.mmu.zapGfnRange(start, end, 'all', 'kvm_arch_pre_set_memory_attributes');
    const since = t.here('xa_store');
    // Shared extents are kept too (attributes 0): their provenance explains later mismatches.
    vm.attributes.set(start, end, { attributes: attrs, since });
    vm.host.invariants.touchGfns(vm, start, end);
    return 0;
  } finally {
    t.leave();
  }
}
