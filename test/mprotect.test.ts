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
