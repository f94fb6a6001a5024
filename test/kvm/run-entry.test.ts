/**
 * What KVM_RUN checks before the guest runs (kvm_arch_vcpu_ioctl_run, arch/x86/kvm/x86.c), as a
 * 6.18.44 host without EPT answered them (conformance/results): immediate_exit is -EINTR and
 * leaves kvm_run alone; without TDP (and with it on v6.8) the root allocation needs a page budget
 * (-ENOSPC before the first memslot or KVM_SET_NR_MMU_PAGES); an instruction fetch with no memslot is an emulation failure
 * whose data[] holds the flags and five exit-info words.
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host, kernels, uapi } from '../../src/index.js';
import { errnoOf } from '../errno-of.js';

function defaultVm(tdp: boolean): { host: Host; vm: number; vcpu: number } {
  const host = createHost({ kernel: 'v6.18', tdp });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  host.guest(vcpu).load([{ op: 'hlt' }]);
  return { host, vm, vcpu };
}

function addRam(host: Host, vm: number, slot: number, gpa: number, pages: number): number {
  const hva = host.mmap({ length: pages * 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
    slot,
    flags: 0,
    guest_phys_addr: gpa,
    memory_size: pages * 4096,
    userspace_addr: hva,
  });
  return hva;
}

describe('KVM_RUN without TDP: the shadow MMU page budget', () => {
  it('no memslot was ever made and no KVM_SET_NR_MMU_PAGES: -ENOSPC, exit_reason untouched', () => {
    const { host, vcpu } = defaultVm(false);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('ENOSPC');
    expect(host.kvmRun(vcpu).exit_reason).toBe(0);
  });

  it('KVM_SET_NR_MMU_PAGES below KVM_MIN_ALLOC_MMU_PAGES (64) is -EINVAL; 64 lets the vCPU run', () => {
    const { host, vm, vcpu } = defaultVm(false);
    expect(errnoOf(() => host.ioctl(vm, 'KVM_SET_NR_MMU_PAGES', 63))).toBe('EINVAL');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('ENOSPC');
    expect(host.ioctl(vm, 'KVM_SET_NR_MMU_PAGES', 64)).toBe(0);
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_INTERNAL_ERROR);
  });

  it('a memslot created and deleted again leaves the default budget (at least 64 pages)', () => {
    const { host, vm, vcpu } = defaultVm(false);
    addRam(host, vm, 0, 0x4000_0000, 16);
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0x4000_0000,
      memory_size: 0,
      userspace_addr: 0,
    });
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_INTERNAL_ERROR);
  });

  it('with TDP there is no budget to run out of: the same vCPU gets the emulation failure', () => {
    const { host, vcpu } = defaultVm(true);
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_INTERNAL_ERROR);
  });

  // v6.8's mmu_alloc_direct_roots() made make_mmu_pages_available() before its TDP MMU branch;
  // 6.9 returns early for the TDP MMU (<20240111020048.844847-1-seanjc@google.com>).
  it.each(kernels())(
    'with TDP on %s: -ENOSPC only where the root allocation still asks for pages (v6.8)',
    (kernel) => {
      const host = createHost({ kernel, tdp: true });
      const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
      const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
      host.guest(vcpu).load([{ op: 'hlt' }]);
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe(kernel === 'v6.8' ? 'ENOSPC' : undefined);
    },
  );
});

describe('KVM_RUN with no memslot: prepare_emulation_failure_exit()', () => {
  it('suberror KVM_INTERNAL_ERROR_EMULATION, ndata 6: flags (no instruction bytes) + 5 exit-info words', () => {
    const { host, vcpu } = defaultVm(true);
    host.ioctl(vcpu, 'KVM_RUN');
    const internal = host.kvmRun(vcpu).internal;
    expect(internal?.suberror).toBe(uapi.KVM_INTERNAL_ERROR_EMULATION);
    expect(internal?.ndata).toBe(6);
    expect(internal?.data[0]).toBe(0n); // emulation_failure.flags: no INSTRUCTION_BYTES
  });
});

describe('KVM_RUN with immediate_exit', () => {
  it('an access of several MMIO pieces: the completion makes the next exit itself, before the immediate_exit check', () => {
    const { host, vm, vcpu } = defaultVm(true);
    addRam(host, vm, 0, 0, 16);
    host.guest(vcpu).load([{ op: 'read', gpa: 0x2000_0000, length: 16 }, { op: 'hlt' }]);
    const run = host.kvmRun(vcpu);
    host.ioctl(vcpu, 'KVM_RUN');
    expect([run.exit_reason, run.mmio?.phys_addr, run.mmio?.len]).toEqual([
      uapi.KVM_EXIT_MMIO,
      0x2000_0000n,
      8,
    ]);
    run.mmio!.data.set([1, 1, 1, 1, 1, 1, 1, 1]);
    run.immediate_exit = 1;
    // complete_emulated_mmio(): more fragments -> the next KVM_EXIT_MMIO, and KVM_RUN returns 0.
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect([run.exit_reason, run.mmio?.phys_addr, run.mmio?.len]).toEqual([
      uapi.KVM_EXIT_MMIO,
      0x2000_0008n,
      8,
    ]);
    run.mmio!.data.set([2, 2, 2, 2, 2, 2, 2, 2]);
    // The last fragment finishes the read; then immediate_exit.
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('EINTR');
    expect(host.guest(vcpu).results[0]?.data).toEqual(
      Uint8Array.of(1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2),
    );
  });

  it('-EINTR before the guest runs, and kvm_run keeps the previous exit (reason and MMIO fields)', () => {
    const { host, vm, vcpu } = defaultVm(true);
    addRam(host, vm, 0, 0, 16);
    host.guest(vcpu).load([{ op: 'read', gpa: 0x2000_0000, length: 4 }, { op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    const run = host.kvmRun(vcpu);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_MMIO);
    run.mmio!.data.set([1, 2, 3, 4]);
    run.immediate_exit = 1;
    // The MMIO read completes first (complete_userspace_io), then the immediate exit.
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe('EINTR');
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_MMIO);
    expect(run.mmio?.phys_addr).toBe(0x2000_0000n);
    expect(host.guest(vcpu).results[0]?.data).toEqual(Uint8Array.of(1, 2, 3, 4));
    run.immediate_exit = 0;
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
  });
});
