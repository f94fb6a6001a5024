/**
 * The out-of-tree direct map removal series (profile v6.18+no-direct-map; Firecracker's
 * secret-hiding kernels carry it as patches 0023-0039): GUEST_MEMFD_FLAG_NO_DIRECT_MAP (1 << 2) is
 * offered by kvm_gmem_get_supported_flags() to /dev/kvm and every VM type but TDX and SNP
 * (kvm_arch_gmem_supports_no_direct_map, patch 0030); such a file's mapping is AS_NO_DIRECT_MAP,
 * which GUP's check_vma_flags() refuses (patch 0028): MADV_POPULATE -> -EINVAL, KVM's hva_to_pfn()
 * for a plain memslot over it -> -EFAULT. KVM's own faults of a guest_memfd slot use
 * kvm_gmem_get_pfn(), not GUP, and work.
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../src/index.js';
import { errnoOf } from './errno-of.js';

const PAGE = 4096;
const RW = uapi.PROT_READ | uapi.PROT_WRITE;
const MMAP = uapi.GUEST_MEMFD_FLAG_MMAP;
const SHARED = uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
const NDM = uapi.GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
const PATCHED = 'v6.18+no-direct-map';

function vmOf(kernel: string, type: number, platform?: 'snp' | 'tdx') {
  const host = createHost({ kernel, ...(platform ? { platform } : {}) });
  const kvm = host.open('/dev/kvm');
  return { host, kvm, vm: host.ioctl(kvm, 'KVM_CREATE_VM', type) };
}

describe('GUEST_MEMFD_FLAG_NO_DIRECT_MAP: who is offered it', () => {
  it('KVM_CAP_GUEST_MEMFD_FLAGS: 7 on /dev/kvm and a DEFAULT VM, 5 on SW_PROTECTED, 1 on SNP and TDX; upstream 6.18 never sets bit 2', () => {
    const caps = (kernel: string, type: number, platform?: 'snp' | 'tdx') => {
      const { host, kvm, vm } = vmOf(kernel, type, platform);
      return [
        host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD_FLAGS),
        host.ioctl(vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD_FLAGS),
      ];
    };
    expect(caps(PATCHED, uapi.KVM_X86_DEFAULT_VM)).toEqual([7, 7]);
    expect(caps(PATCHED, uapi.KVM_X86_SW_PROTECTED_VM)).toEqual([7, 5]);
    expect(caps(PATCHED, uapi.KVM_X86_SNP_VM, 'snp')).toEqual([7, 1]);
    expect(caps(PATCHED, uapi.KVM_X86_TDX_VM, 'tdx')).toEqual([7, 1]);
    expect(caps('v6.18', uapi.KVM_X86_DEFAULT_VM)).toEqual([3, 3]);
  });

  it('KVM_CREATE_GUEST_MEMFD with the flag: accepted where offered, EINVAL on SNP and on upstream 6.18', () => {
    const create = (kernel: string, type: number, flags: number, platform?: 'snp' | 'tdx') => {
      const { host, vm } = vmOf(kernel, type, platform);
      return errnoOf(() => host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags }));
    };
    expect(create(PATCHED, uapi.KVM_X86_DEFAULT_VM, MMAP | SHARED | NDM)).toBeUndefined();
    expect(create(PATCHED, uapi.KVM_X86_SW_PROTECTED_VM, NDM)).toBeUndefined();
    expect(create(PATCHED, uapi.KVM_X86_SNP_VM, NDM, 'snp')).toBe('EINVAL');
    expect(create('v6.18', uapi.KVM_X86_DEFAULT_VM, MMAP | SHARED | NDM)).toBe('EINVAL');
  });
});

describe('GUEST_MEMFD_FLAG_NO_DIRECT_MAP: what GUP refuses and what still works', () => {
  function setup(flags: number) {
    const { host, vm } = vmOf(PATCHED, uapi.KVM_X86_DEFAULT_VM);
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 16 * PAGE, flags });
    const m = host.mmap({ length: 16 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: gmem });
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    return { host, vm, gmem, m, vcpu, guest: host.guest(vcpu), run: host.kvmRun(vcpu) };
  }

  it('the VMM reads and writes through its own mapping; MADV_POPULATE_READ/WRITE -> EINVAL (check_vma_flags)', () => {
    const { host, m } = setup(MMAP | SHARED | NDM);
    host.memory.write(m + PAGE, [7]);
    expect(host.memory.read(m + PAGE, 1)[0]).toBe(7);
    expect(errnoOf(() => host.madvise(m, PAGE, uapi.MADV_POPULATE_READ))).toBe('EINVAL');
    expect(errnoOf(() => host.madvise(m, PAGE, uapi.MADV_POPULATE_WRITE))).toBe('EINVAL');
    const plain = setup(MMAP | SHARED);
    expect(plain.host.madvise(plain.m, PAGE, uapi.MADV_POPULATE_READ)).toBe(0);
  });

  it('a guest_memfd memslot: the guest reads what the VMM wrote (kvm_gmem_get_pfn, no GUP)', () => {
    const { host, vm, gmem, m, vcpu, guest } = setup(MMAP | SHARED | NDM);
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 0,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: 0,
      memory_size: 16 * PAGE,
      userspace_addr: m,
      guest_memfd: gmem,
      guest_memfd_offset: 0,
    });
    host.memory.write(m + 2 * PAGE, [0x11, 0x22]);
    guest.load([{ op: 'read', gpa: 2 * PAGE, length: 2 }, { op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(guest.results[0]?.data).toEqual(Uint8Array.of(0x11, 0x22));
  });

  it('a plain memslot over the mapping: hva_to_pfn() cannot GUP it -> a bare EFAULT (no memory-fault exit); without the flag it works', () => {
    for (const [flags, want] of [
      [MMAP | SHARED | NDM, 'EFAULT'],
      [MMAP | SHARED, undefined],
    ] as const) {
      const { host, vm, m, vcpu, guest, run } = setup(flags);
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: 16 * PAGE,
        userspace_addr: m,
      });
      guest.load([{ op: 'read', gpa: PAGE, length: 1 }, { op: 'hlt' }]);
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_RUN'))).toBe(want);
      expect(run.exit_reason).not.toBe(uapi.KVM_EXIT_MEMORY_FAULT);
      expect(run.memory_fault).toBeUndefined();
    }
  });
});
