/**
 * kvm_memslots.last_used_slot (include/linux/kvm_host.h ____gfn_to_memslot()): a gfn lookup tries
 * the slot found last before searching. Each memslot update publishes a new kvm_memslots, whose
 * last_used_slot starts empty, so no lookup after a delete, a move or a flags change may answer
 * with the slot as it was. Seen through guest accesses that fault on a default VM: a gfn without a
 * slot is emulated MMIO (kvm_handle_noslot_fault), a write to a READONLY slot too. A second slot
 * stays throughout (with no memslot at all KVM_RUN is an emulation failure instead).
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host, uapi } from '../../src/index.js';

const PAGE = 4096;
const GPA = 0x10_0000;
const MOVED = 0x40_0000;
const OTHER = 0x80_0000;

function vmWithSlot(): { host: Host; vm: number; vcpu: number; hva: number } {
  const host = createHost({ kernel: 'v6.16' });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  const hva = host.mmap({ length: 4 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  setSlot(host, vm, GPA, hva, 0);
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
    slot: 1,
    flags: 0,
    guest_phys_addr: OTHER,
    memory_size: PAGE,
    userspace_addr: hva,
  });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  return { host, vm, vcpu, hva };
}

function setSlot(host: Host, vm: number, gpa: number, hva: number, flags: number, size = 4 * PAGE): void {
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
    slot: 0,
    flags,
    guest_phys_addr: gpa,
    memory_size: size,
    userspace_addr: hva,
  });
}

/** One guest access at gpa; the exit it ended with (KVM_EXIT_HLT: it completed in memory). */
function exitOf(host: Host, vcpu: number, op: 'read' | 'write', gpa: number): number {
  host
    .guest(vcpu)
    .load([op === 'read' ? { op, gpa, length: 4 } : { op, gpa, data: [9, 9, 9, 9] }, { op: 'hlt' }]);
  host.ioctl(vcpu, 'KVM_RUN');
  return host.kvmRun(vcpu).exit_reason;
}

describe('last_used_slot never outlives a memslot update', () => {
  it('a slot just used, then deleted: the next access to it is MMIO', () => {
    const { host, vm, vcpu, hva } = vmWithSlot();
    expect(exitOf(host, vcpu, 'read', GPA + PAGE)).toBe(uapi.KVM_EXIT_HLT);
    setSlot(host, vm, GPA, hva, 0, 0); // memory_size 0: KVM_MR_DELETE
    expect(exitOf(host, vcpu, 'read', GPA + 2 * PAGE)).toBe(uapi.KVM_EXIT_MMIO);
  });

  it('a slot just used, then moved: its old gfns are MMIO, its new ones memory', () => {
    const { host, vm, vcpu, hva } = vmWithSlot();
    expect(exitOf(host, vcpu, 'read', GPA)).toBe(uapi.KVM_EXIT_HLT);
    setSlot(host, vm, MOVED, hva, 0);
    expect(exitOf(host, vcpu, 'read', GPA + PAGE)).toBe(uapi.KVM_EXIT_MMIO);
    expect(exitOf(host, vcpu, 'read', MOVED + PAGE)).toBe(uapi.KVM_EXIT_HLT);
  });

  it('a slot just used, then deleted and made again READONLY: a write to a page not yet mapped is MMIO', () => {
    const { host, vm, vcpu, hva } = vmWithSlot();
    expect(exitOf(host, vcpu, 'write', GPA)).toBe(uapi.KVM_EXIT_HLT);
    setSlot(host, vm, GPA, hva, 0, 0);
    setSlot(host, vm, GPA, hva, uapi.KVM_MEM_READONLY);
    expect(exitOf(host, vcpu, 'write', GPA + 3 * PAGE)).toBe(uapi.KVM_EXIT_MMIO);
    expect(exitOf(host, vcpu, 'read', GPA + 3 * PAGE)).toBe(uapi.KVM_EXIT_HLT);
  });
});
