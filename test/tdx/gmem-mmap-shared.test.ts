/**
 * A TD's guest_memfd created with GUEST_MEMFD_FLAG_MMAP (6.18+, 44c6cb9fe988): the memslot is
 * gmem-only, a shared-bit access maps a guest_memfd folio through the direct root, and the file's
 * invalidation filter (KVM_FILTER_PRIVATE without INIT_SHARED) zaps only the mirror root, so
 * PUNCH_HOLE frees a folio the guest still maps; so does the last close (kvm_gmem_release() zaps
 * with the same filter, the folios go when the inode is evicted). Found by a model probe and read
 * against virt/kvm/guest_memfd.c (kvm_gmem_get_supported_flags, kvm_gmem_bind,
 * kvm_gmem_get_invalidate_filter), arch/x86/kvm/mmu/mmu.c (__kvm_mmu_faultin_pfn) and
 * arch/x86/kvm/mmu/tdp_mmu.h (kvm_gfn_range_filter_to_root_types); not checked on hardware.
 */
import { describe, expect, it } from 'vitest';
import { uapi } from '../../src/index.js';
import { violationOf } from '../errno-of.js';
import { errnoOf, GPAW48, MiB, type Td, tdCmd, tdVcpu, tdVm } from './td.js';

const SHARED = 1n << 47n; // GPAW 48
const PAGE = 0x103000;

/** A finalized TD with 2 MiB of RAM in a guest_memfd of `flags`: the first MiB private, the rest shared. */
function tdWithRam(kernel: string, flags: number): Td & { gmem: number; hva: number; vcpu: number } {
  const td = tdVm(kernel);
  const { host, vm } = td;
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 2 * MiB, flags });
  host.ioctl(
    vm,
    'KVM_MEMORY_ENCRYPT_OP',
    tdCmd('KVM_TDX_INIT_VM', { attributes: 1n << 28n, xfam: 3n, cpuid: { nent: 1, entries: [GPAW48] } }),
  );
  const vcpu = tdVcpu(td);
  const hva = host.mmap({ length: 2 * MiB, prot: 3, flags: uapi.MAP_SHARED | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 0,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: 0,
    memory_size: 2 * MiB,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: 0,
    size: MiB,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VCPU', 0));
  host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_FINALIZE_VM', 0));
  return { ...td, gmem, hva, vcpu };
}

/** The TD writes [0xaa, 0xbb] through the shared bit and reads it back. */
function sharedRoundTrip(td: ReturnType<typeof tdWithRam>): number[] {
  const g = td.host.guest(td.vcpu);
  g.load([
    { op: 'write', gpa: SHARED | BigInt(PAGE), data: [0xaa, 0xbb] },
    { op: 'read', gpa: SHARED | BigInt(PAGE), length: 2 },
  ]);
  td.host.ioctl(td.vcpu, 'KVM_RUN');
  return [...(g.results[1]?.data ?? [])];
}

describe('TD guest_memfd with GUEST_MEMFD_FLAG_MMAP (6.18+)', () => {
  it.each(['v6.18', 'v6.19', 'v7.0'])(
    'kvm_gmem_get_supported_flags(): a TD is offered MMAP, never INIT_SHARED (kvm_arch_supports_gmem_init_shared() = !has_private_mem) [%s]',
    (kernel) => {
      const { host, vm } = tdVm(kernel);
      expect(host.ioctl(vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(
        uapi.GUEST_MEMFD_FLAG_MMAP,
      );
      const both = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
      expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 2 * MiB, flags: both }))).toBe(
        'EINVAL',
      );
    },
  );

  it('v6.16: no GUEST_MEMFD_FLAG_MMAP at all (kvm_gmem_create() refuses unknown flags)', () => {
    const { host, vm } = tdVm('v6.16');
    const flags = uapi.GUEST_MEMFD_FLAG_MMAP;
    expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 2 * MiB, flags }))).toBe('EINVAL');
  });

  it.each(['v6.18', 'v6.19', 'v7.0'])(
    'gmem-only slot: a shared-bit access reads and writes the guest_memfd folio, not userspace_addr [%s]',
    (kernel) => {
      const td = tdWithRam(kernel, uapi.GUEST_MEMFD_FLAG_MMAP);
      expect(sharedRoundTrip(td)).toEqual([0xaa, 0xbb]);
      expect([...td.host.memory.read(td.hva + PAGE, 2)]).toEqual([0, 0]);
    },
  );

  it.each(['v6.18', 'v6.19', 'v7.0'])(
    'PUNCH_HOLE frees the folio but zaps only the mirror root (KVM_FILTER_PRIVATE): the shared SPTE maps freed memory [%s]',
    (kernel) => {
      const td = tdWithRam(kernel, uapi.GUEST_MEMFD_FLAG_MMAP);
      sharedRoundTrip(td);
      const punch = uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE;
      const v = violationOf(() => td.host.fallocate(td.gmem, punch, PAGE, 0x1000));
      expect(v?.invariant).toBe('no-mapping-of-freed-folio');
      expect(v?.detail).toContain('gfn 0x103');
    },
  );

  it.each(['v6.18', 'v6.19', 'v7.0'])(
    'the last close: kvm_gmem_release() zaps with the same filter, inode eviction frees the folio, the shared SPTE stays [%s]',
    (kernel) => {
      const td = tdWithRam(kernel, uapi.GUEST_MEMFD_FLAG_MMAP);
      sharedRoundTrip(td);
      expect(violationOf(() => td.host.close(td.gmem))?.invariant).toBe('no-mapping-of-freed-folio');
    },
  );

  it.each(['v6.18', 'v7.0'])(
    'without MMAP the slot is not gmem-only: the shared access uses userspace_addr and PUNCH_HOLE is safe [%s]',
    (kernel) => {
      const td = tdWithRam(kernel, 0);
      expect(sharedRoundTrip(td)).toEqual([0xaa, 0xbb]);
      expect([...td.host.memory.read(td.hva + PAGE, 2)]).toEqual([0xaa, 0xbb]);
      const punch = uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE;
      expect(td.host.fallocate(td.gmem, punch, PAGE, 0x1000)).toBe(0);
    },
  );
});
