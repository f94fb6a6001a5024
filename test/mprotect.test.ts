/**
 * mprotect(2) on the modelled host (mm/mprotect.c do_mprotect_pkey(), mprotect_fixup()) and what it
 * does to KVM: changed page tables go through the MMU notifier, so the memslots over the range lose
 * their SPTEs, and KVM's next fault on the range finds the new protection (hva_to_pfn() fails on a
 * PROT_NONE or read-only VMA: KVM_PFN_ERR_FAULT, -EFAULT with a memory-fault exit). The argument
 * checks are conformance cases measured on a 6.18.44 host (conformance/results); these tests cover
 * the VMA split and the KVM side.
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../src/index.js';
import type { Host } from '../src/kernel/host.js';
import type { VmFile } from '../src/kernel/kvm/vm.js';
import { errnoOf, signalOf } from './errno-of.js';

const PAGE = 4096;
const RW = uapi.PROT_READ | uapi.PROT_WRITE;
const PRIVATE_ANON = uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS;

describe('mprotect: the VMAs of the range', () => {
  it('protecting the middle page of three splits the mapping; the outer pages keep their data and access', () => {
    const host = createHost({ kernel: 'v7.0' });
    const m = host.mmap({ length: 3 * PAGE, prot: RW, flags: PRIVATE_ANON });
    host.memory.write(m, [1]);
    host.memory.write(m + PAGE, [2]);
    host.memory.write(m + 2 * PAGE, [3]);
    expect(host.mprotect(m + PAGE, PAGE, uapi.PROT_READ)).toBe(0);
    expect(signalOf(() => host.memory.write(m + PAGE, [9]))).toBe('SIGSEGV');
    expect(host.memory.read(m + PAGE, 1)[0]).toBe(2);
    host.memory.write(m, [4]);
    host.memory.write(m + 2 * PAGE, [5]);
    expect([...host.memory.read(m, 1), ...host.memory.read(m + 2 * PAGE, 1)]).toEqual([4, 5]);
    // The pieces are still one mapping's memory: unmapping all of it works and leaves nothing.
    expect(host.munmap(m, 3 * PAGE)).toBe(0);
    expect(errnoOf(() => host.mprotect(m, PAGE, RW))).toBe('ENOMEM');
  });

  it('a length that is not a page multiple covers the partial page', () => {
    const host = createHost({ kernel: 'v7.0' });
    const m = host.mmap({ length: 2 * PAGE, prot: RW, flags: PRIVATE_ANON });
    expect(host.mprotect(m, PAGE + 1, uapi.PROT_NONE)).toBe(0);
    expect(signalOf(() => host.memory.read(m + PAGE, 1))).toBe('SIGSEGV');
  });
});

describe('mprotect and KVM (the MMU notifier)', () => {
  function guestOverAnonRam(kernel: string) {
    const host = createHost({ kernel });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const ram = host.mmap({ length: 16 * PAGE, prot: RW, flags: PRIVATE_ANON });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 16 * PAGE,
      userspace_addr: ram,
    });
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    return { host, ram, vcpu, guest: host.guest(vcpu), run: host.kvmRun(vcpu) };
  }

  for (const kernel of ['v6.8', 'v6.18', 'v7.0']) {
    it(`${kernel}: PROT_NONE takes the mapped page away from the guest; restoring it brings the data back`, () => {
      const { host, ram, vcpu, guest, run } = guestOverAnonRam(kernel);
      host.memory.write(ram + PAGE, [0x5a]);
      guest.load([{ op: 'read', gpa: PAGE, length: 1 }, { op: 'hlt' }]);
      host.ioctl(vcpu, 'KVM_RUN');
      expect(guest.results[0]?.data).toEqual(Uint8Array.of(0x5a));

      host.mprotect(ram + PAGE, PAGE, uapi.PROT_NONE);
      guest.load([{ op: 'read', gpa: PAGE, length: 1 }, { op: 'hlt' }]);
      // Without the zap the guest would read through its old SPTE.
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('EFAULT');
      // kvm_handle_error_pfn(): a failed GUP of shared memory is a bare -EFAULT, no memory-fault
      // exit (only guest_memfd faults prepare one); kvm_run still shows the previous exit's reason.
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(run.memory_fault).toBeUndefined();

      host.mprotect(ram + PAGE, PAGE, uapi.PROT_READ);
      guest.load([
        { op: 'read', gpa: PAGE, length: 1 },
        { op: 'write', gpa: PAGE, data: [1] },
      ]);
      // The read completes; the write to the read-only VMA cannot be mapped writable.
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('EFAULT');
      expect(guest.results[0]?.data).toEqual(Uint8Array.of(0x5a));
    });
  }
});

/**
 * hva_to_pfn(): GUP faults the page in before KVM maps it, so a page a user access could not reach
 * (check_vma_flags(): no VM_READ; or a file page whose fault is SIGBUS) is KVM_PFN_ERR_FAULT ->
 * kvm_handle_error_pfn() -EFAULT, and no SPTE is made. KVM_PRE_FAULT_MEMORY (a read fault,
 * kvm_tdp_map_page()) stops there too: -EFAULT with the range untouched, or 0 after earlier pages.
 */
describe('KVM_PRE_FAULT_MEMORY and the shared fault: GUP must reach the page', () => {
  /** A default VM of `kernel` whose slot 0 maps `pages` pages at `ram` (made by `map`), and its vCPU. */
  function vmOver(kernel: string, pages: number, map: (host: Host) => number) {
    const host = createHost({ kernel });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const ram = map(host);
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: pages * PAGE,
      userspace_addr: ram,
    });
    return { host, vm, ram, vcpu: host.ioctl(vm, 'KVM_CREATE_VCPU', 0) };
  }

  for (const kernel of ['v6.11', 'v6.18', 'v7.0']) {
    it(`${kernel}: a PROT_NONE page -> EFAULT, range unchanged; [RW page, PROT_NONE page] -> 0 after one page`, () => {
      const { host, ram, vcpu } = vmOver(kernel, 4, (h) =>
        h.mmap({ length: 4 * PAGE, prot: RW, flags: PRIVATE_ANON }),
      );
      host.mprotect(ram + PAGE, PAGE, uapi.PROT_NONE);
      const none = { gpa: PAGE, size: PAGE, flags: 0 };
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', none))).toBe('EFAULT');
      expect(none).toEqual({ gpa: PAGE, size: PAGE, flags: 0 });
      const both = { gpa: 0, size: 2 * PAGE, flags: 0 };
      expect(host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', both)).toBe(0);
      expect(both).toEqual({ gpa: PAGE, size: PAGE, flags: 0 });
      // A read-only page can be mapped for the read fault pre-fault makes.
      host.mprotect(ram + 2 * PAGE, PAGE, uapi.PROT_READ);
      const ro = { gpa: 2 * PAGE, size: PAGE, flags: 0 };
      expect(host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', ro)).toBe(0);
      expect(ro.size).toBe(0);
    });

    it(`${kernel}: a shared memfd page past EOF (its fault is SIGBUS) -> EFAULT`, () => {
      let fd = -1;
      const { host, vcpu } = vmOver(kernel, 2, (h) => {
        fd = h.memfdCreate('ram', 0);
        h.ftruncate(fd, 2 * PAGE);
        return h.mmap({ length: 2 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd, offset: 0 });
      });
      host.ftruncate(fd, PAGE);
      expect(host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0, size: PAGE, flags: 0 })).toBe(0);
      expect(
        errnoOf(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: PAGE, size: PAGE, flags: 0 })),
      ).toBe('EFAULT');
    });
  }

  it('KVM_RUN: a guest read of a PROT_NONE page fails with a bare EFAULT and leaves no SPTE behind', () => {
    const { host, vm, vcpu } = vmOver('v7.0', 2, (h) =>
      h.mmap({ length: 2 * PAGE, prot: uapi.PROT_NONE, flags: PRIVATE_ANON }),
    );
    const guest = host.guest(vcpu);
    guest.load([{ op: 'read', gpa: PAGE, length: 1 }]);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('EFAULT');
    expect(host.kvmRun(vcpu).memory_fault).toBeUndefined();
    const v = (host.fds.lookup(vm) as VmFile).vm;
    expect(v.mmu.sptes.get(1)).toBeUndefined();
  });
});
