/**
 * madvise(2) on the modelled host (mm/madvise.c do_madvise(), madvise_walk_vmas(),
 * madvise_dontneed_single_vma(), madvise_remove(), madvise_free_single_vma()) and the MMU notifier
 * it drives (virt/kvm/kvm_main.c kvm_mmu_notifier_invalidate_range_start(): the memslots whose
 * userspace range is touched lose their shared SPTEs). Expected values from the man page and those
 * functions: unknown advice and an unaligned start are -EINVAL; a hole in the range is -ENOMEM after
 * the mapped parts were advised; MADV_DONTNEED zero-fills private anonymous memory and leaves shared
 * memory's data alone; MADV_REMOVE needs a shared mapping of a file (shared anonymous memory is a
 * shmem file): -EINVAL for private anonymous memory, -EACCES for a private file mapping.
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host, SyscallError, uapi } from '../src/index.js';
import type { GmemFile } from '../src/kernel/kvm/guest-memfd.js';
import type { Vm, VmFile } from '../src/kernel/kvm/vm.js';
import { errnoOf } from './errno-of.js';
import { buildTd, finalize, initMemRegion, MiB } from './tdx/td.js';

const PAGE = 4096;
const RW = uapi.PROT_READ | uapi.PROT_WRITE;
const mapping = (host: Host, flags: number, length = 4 * PAGE, fd?: number) =>
  host.mmap({ length, prot: RW, flags, ...(fd === undefined ? {} : { fd }) });
const PRIVATE_ANON = uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS;
const SHARED_ANON = uapi.MAP_SHARED | uapi.MAP_ANONYMOUS;

describe('madvise: do_madvise() argument checks', () => {
  it('unknown advice -> EINVAL, before the alignment check', () => {
    const host = createHost({ kernel: 'v7.0' });
    expect(errnoOf(() => host.madvise(1, PAGE, 0x7777))).toBe('EINVAL');
  });

  it('start not page aligned -> EINVAL; len 0 -> 0 with nothing mapped; PAGE_ALIGN(len) overflow -> EINVAL', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = mapping(host, PRIVATE_ANON);
    expect(errnoOf(() => host.madvise(a + 1, PAGE, uapi.MADV_DONTNEED))).toBe('EINVAL');
    expect(host.madvise(0x1000, 0, uapi.MADV_DONTNEED)).toBe(0);
    expect(errnoOf(() => host.madvise(a, 2n ** 64n - 1n, uapi.MADV_DONTNEED))).toBe('EINVAL');
  });

  it('a hole in the range -> ENOMEM, and the mapped part was advised all the same', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = mapping(host, PRIVATE_ANON, 2 * PAGE);
    host.memory.write(a, [1, 2, 3]);
    // The model keeps a guard page below every mapping: [a, a + 3 pages) runs into a hole.
    expect(errnoOf(() => host.madvise(a, 3 * PAGE, uapi.MADV_DONTNEED))).toBe('ENOMEM');
    expect([...host.memory.read(a, 3)]).toEqual([0, 0, 0]);
    expect(errnoOf(() => host.madvise(0x7fff_ffff_f000, PAGE, uapi.MADV_DONTNEED))).toBe('ENOMEM');
  });

  it('hints (NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTFORK, DOFORK) change nothing', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = mapping(host, PRIVATE_ANON);
    host.memory.write(a, [9]);
    for (const adv of [
      uapi.MADV_NORMAL,
      uapi.MADV_RANDOM,
      uapi.MADV_SEQUENTIAL,
      uapi.MADV_WILLNEED,
      uapi.MADV_DONTFORK,
      uapi.MADV_DOFORK,
    ])
      expect(host.madvise(a, PAGE, adv)).toBe(0);
    expect([...host.memory.read(a, 1)]).toEqual([9]);
  });
});

describe('madvise: what each kind of memory keeps', () => {
  it('MADV_DONTNEED: private anonymous pages read as zero, shared anonymous memory keeps its data', () => {
    const host = createHost({ kernel: 'v7.0' });
    const p = mapping(host, PRIVATE_ANON);
    const s = mapping(host, SHARED_ANON);
    host.memory.write(p + PAGE, [1, 2]);
    host.memory.write(s + PAGE, [3, 4]);
    host.madvise(p, 4 * PAGE, uapi.MADV_DONTNEED);
    host.madvise(s, 4 * PAGE, uapi.MADV_DONTNEED);
    expect([...host.memory.read(p + PAGE, 2)]).toEqual([0, 0]);
    expect([...host.memory.read(s + PAGE, 2)]).toEqual([3, 4]);
  });

  it('MADV_DONTNEED on a private memfd mapping drops the copies: the file content shows again', () => {
    const host = createHost({ kernel: 'v7.0' });
    const fd = host.memfdCreate('ram');
    host.ftruncate(fd, 4 * PAGE);
    host.pwrite(fd, Uint8Array.of(7, 7), 0);
    const m = mapping(host, uapi.MAP_PRIVATE, 4 * PAGE, fd);
    host.memory.write(m, [1, 1]);
    expect([...host.memory.read(m, 2)]).toEqual([1, 1]);
    host.madvise(m, PAGE, uapi.MADV_DONTNEED);
    expect([...host.memory.read(m, 2)]).toEqual([7, 7]);
  });

  it('MADV_REMOVE: private anonymous -> EINVAL (no file), private file mapping -> EACCES, shared anonymous memory is freed', () => {
    const host = createHost({ kernel: 'v7.0' });
    const p = mapping(host, PRIVATE_ANON);
    expect(errnoOf(() => host.madvise(p, PAGE, uapi.MADV_REMOVE))).toBe('EINVAL');
    const fd = host.memfdCreate('ram');
    host.ftruncate(fd, 4 * PAGE);
    const m = mapping(host, uapi.MAP_PRIVATE, 4 * PAGE, fd);
    expect(errnoOf(() => host.madvise(m, PAGE, uapi.MADV_REMOVE))).toBe('EACCES');
    const s = mapping(host, SHARED_ANON);
    host.memory.write(s, [5, 6]);
    host.madvise(s, PAGE, uapi.MADV_REMOVE);
    expect([...host.memory.read(s, 2)]).toEqual([0, 0]);
  });

  it('MADV_REMOVE on a shared memfd mapping punches the file (vfs_fallocate PUNCH_HOLE | KEEP_SIZE)', () => {
    const host = createHost({ kernel: 'v7.0' });
    const fd = host.memfdCreate('ram');
    host.ftruncate(fd, 4 * PAGE);
    const m = mapping(host, uapi.MAP_SHARED, 4 * PAGE, fd);
    host.memory.write(m + PAGE, [8, 8]);
    expect([...host.pread(fd, 2, PAGE)]).toEqual([8, 8]);
    host.madvise(m + PAGE, PAGE, uapi.MADV_REMOVE);
    expect([...host.pread(fd, 2, PAGE)]).toEqual([0, 0]);
    expect(host.fstat(fd).st_size).toBe(4 * PAGE);
  });

  it('MADV_FREE: anonymous memory only (-EINVAL for a file mapping); without memory pressure the data stays', () => {
    const host = createHost({ kernel: 'v7.0' });
    const p = mapping(host, PRIVATE_ANON);
    host.memory.write(p, [4]);
    expect(host.madvise(p, PAGE, uapi.MADV_FREE)).toBe(0);
    expect([...host.memory.read(p, 1)]).toEqual([4]);
    const fd = host.memfdCreate('ram');
    host.ftruncate(fd, PAGE);
    const m = mapping(host, uapi.MAP_SHARED, PAGE, fd);
    expect(errnoOf(() => host.madvise(m, PAGE, uapi.MADV_FREE))).toBe('EINVAL');
  });
});

/** A SW_PROTECTED VM with one 4-page guest_memfd slot backed by `flags` memory, and a vCPU. */
function swVm(kernel: string, flags: number) {
  const host = createHost({ kernel });
  const kvm = host.open('/dev/kvm');
  const vmfd = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const vm: Vm = (host.fds.lookup(vmfd) as VmFile).vm;
  const hva = mapping(host, flags);
  const gmem = host.ioctl(vmfd, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags: 0 });
  host.ioctl(vmfd, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 0,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: 0,
    memory_size: 4 * PAGE,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  const vcpu = host.ioctl(vmfd, 'KVM_CREATE_VCPU', 0);
  const read = (gpa: number) => {
    host.guest(vcpu).load([{ op: 'read', gpa, length: 2 }]);
    host.ioctl(vcpu, 'KVM_RUN');
    return [...host.guest(vcpu).results[0]!.data!];
  };
  return { host, vmfd, vm, hva, gmem, vcpu, read };
}

describe('the MMU notifier (kvm_mmu_notifier_invalidate_range_start)', () => {
  it.each(['v6.8', 'v6.16', 'v7.0'])(
    "MADV_DONTNEED of a slot's private anonymous backing zaps the shared SPTE; the guest refaults and reads zeroes [%s]",
    (kernel) => {
      const e = swVm(kernel, PRIVATE_ANON);
      e.host.memory.write(e.hva + PAGE, [0xaa, 0xbb]);
      expect(e.read(PAGE)).toEqual([0xaa, 0xbb]);
      expect(e.vm.mmu.sptes.get(1)).toBeDefined();
      e.host.madvise(e.hva + PAGE, PAGE, uapi.MADV_DONTNEED);
      expect(e.vm.mmu.sptes.get(1)).toBeUndefined();
      expect(e.read(PAGE)).toEqual([0, 0]);
    },
  );

  it('munmap of the backing zaps the SPTE too; the refault finds no VMA: a bare -EFAULT (kvm_handle_error_pfn: no memory-fault exit)', () => {
    const e = swVm('v7.0', PRIVATE_ANON);
    expect(e.read(0)).toEqual([0, 0]);
    expect(e.vm.mmu.sptes.get(0)).toBeDefined();
    e.host.munmap(e.hva, 4 * PAGE);
    expect(e.vm.mmu.sptes.get(0)).toBeUndefined();
    e.host.guest(e.vcpu).load([{ op: 'read', gpa: 0, length: 2 }]);
    expect(errnoOf(() => e.host.ioctl(e.vcpu, 'KVM_RUN'))).toBe('EFAULT');
    expect(e.host.kvmRun(e.vcpu).exit_reason).not.toBe(uapi.KVM_EXIT_MEMORY_FAULT);
    expect(e.host.kvmRun(e.vcpu).memory_fault).toBeUndefined();
  });

  it('the -EFAULT of the refault after munmap names the munmap that took the memory away', () => {
    const e = swVm('v7.0', PRIVATE_ANON);
    e.read(0);
    e.host.munmap(e.hva, 4 * PAGE);
    e.host.guest(e.vcpu).load([{ op: 'read', gpa: 0, length: 2 }]);
    let err: unknown;
    try {
      e.host.ioctl(e.vcpu, 'KVM_RUN');
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).explanation).toMatch(/unmapped by call #\d+ \(munmap > do_vmi_munmap\)/);
  });

  it('a range outside every memslot touches no SPTE; a VM that is gone is no longer notified', () => {
    const e = swVm('v7.0', PRIVATE_ANON);
    e.read(0);
    const other = mapping(e.host, PRIVATE_ANON);
    e.host.madvise(other, 4 * PAGE, uapi.MADV_DONTNEED);
    expect(e.vm.mmu.sptes.get(0)).toBeDefined();
    expect(e.host.mmuNotifiers.has(e.vm)).toBe(true);
    // The vCPU and the guest_memfd each hold a reference on the VM (kvm_get_kvm()).
    e.host.close(e.vcpu);
    e.host.close(e.vmfd);
    expect(e.host.mmuNotifiers.has(e.vm)).toBe(true);
    e.host.close(e.gmem);
    expect(e.host.mmuNotifiers.has(e.vm)).toBe(false);
  });
});

describe('the MMU notifier on a TD: KVM_FILTER_SHARED leaves the mirror root alone', () => {
  it.each(['v6.16', 'v7.0'])(
    'QEMU discards the shared side of a whole slot (MADV_REMOVE of shared anonymous RAM): the PAGE.ADDed private page keeps its S-EPT mapping [%s]',
    (kernel) => {
      const td = buildTd(kernel);
      initMemRegion(td, 0);
      finalize(td);
      const vm: Vm = (td.host.fds.lookup(td.vm) as VmFile).vm;
      const before = vm.mmu.sptes.get(0);
      expect(before?.private).toBe(true);
      td.host.madvise(td.hva, 2 * MiB, uapi.MADV_REMOVE);
      expect(vm.mmu.sptes.get(0)).toBe(before);
    },
  );
});

describe('MADV_REMOVE of a guest_memfd mapping (6.18+: GUEST_MEMFD_FLAG_MMAP | INIT_SHARED)', () => {
  it.each(['v6.18', 'v7.0'])(
    'madvise_remove() -> vfs_fallocate(PUNCH_HOLE | KEEP_SIZE) -> kvm_gmem_fallocate(): the page reads as zero, the file keeps its size [%s]',
    (kernel) => {
      const host = createHost({ kernel });
      const kvm = host.open('/dev/kvm');
      const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
      const flags = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
      const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags });
      const m = mapping(host, uapi.MAP_SHARED, 4 * PAGE, gmem);
      host.memory.write(m + 2 * PAGE, [0x11, 0x22]);
      expect([...host.memory.read(m + 2 * PAGE, 2)]).toEqual([0x11, 0x22]);
      host.madvise(m + 2 * PAGE, PAGE, uapi.MADV_REMOVE);
      expect([...host.memory.read(m + 2 * PAGE, 2)]).toEqual([0, 0]);
      expect(host.fstat(gmem).st_size).toBe(4 * PAGE);
    },
  );
});

describe('MADV_COLLAPSE (mm/khugepaged.c madvise_collapse)', () => {
  it('a guest_memfd mapping: thp_vma_allowable_order() allows no PMD folio -> EINVAL; a memfd (shmem) mapping: not modelled -> EINVAL', () => {
    const host = createHost({ kernel: 'v7.0' });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const flags = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags });
    const reason = (addr: number): string => {
      try {
        host.madvise(addr, 4 * PAGE, uapi.MADV_COLLAPSE);
      } catch (e) {
        if (e instanceof SyscallError && e.code === 'EINVAL') return e.reason ?? '';
        throw e;
      }
      return 'ok';
    };
    expect(reason(mapping(host, uapi.MAP_SHARED, 4 * PAGE, gmem))).toContain('thp_vma_allowable_order');
    const memfd = host.memfdCreate('ram');
    host.ftruncate(memfd, 4 * PAGE);
    expect(reason(mapping(host, uapi.MAP_SHARED, 4 * PAGE, memfd))).toContain('not modelled');
  });
});

describe('madvise at scale', () => {
  it('MADV_DONTNEED of 4 TiB of private anonymous RAM costs what was written, not its size', () => {
    const host = createHost({ kernel: 'v7.0' });
    const TIB4 = 4 * 2 ** 40;
    const a = host.mmap({ length: TIB4, prot: RW, flags: PRIVATE_ANON | uapi.MAP_NORESERVE });
    host.memory.write(a + 2 ** 40, [1]);
    host.memory.write(a + TIB4 - PAGE, [2]);
    host.madvise(a, TIB4, uapi.MADV_DONTNEED);
    expect([...host.memory.read(a + 2 ** 40, 1)]).toEqual([0]);
    expect([...host.memory.read(a + TIB4 - PAGE, 1)]).toEqual([0]);
  });
});

describe('madvise: review findings (mm/madvise.c, mm/shmem.c)', () => {
  it('MADV_FREE: madvise_free_single_vma() runs the MMU notifier (the SPTE goes, the data stays); shared anonymous memory is not anonymous -> EINVAL', () => {
    const e = swVm('v7.0', PRIVATE_ANON);
    e.host.memory.write(e.hva, [0x42]);
    expect(e.read(0)).toEqual([0x42, 0]);
    e.host.madvise(e.hva, PAGE, uapi.MADV_FREE);
    expect(e.vm.mmu.sptes.get(0)).toBeUndefined();
    expect(e.read(0)).toEqual([0x42, 0]);
    const s = mapping(e.host, SHARED_ANON);
    expect(errnoOf(() => e.host.madvise(s, PAGE, uapi.MADV_FREE))).toBe('EINVAL');
  });

  it('the advice QEMU gives guest RAM (DONTDUMP, HUGEPAGE, DONTFORK, MERGEABLE) is accepted; HWPOISON without CAP_SYS_ADMIN -> EPERM; WIPEONFORK on shared memory -> EINVAL; MADV_COLLAPSE of anonymous memory is not modelled -> EINVAL', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = mapping(host, PRIVATE_ANON);
    host.memory.write(a, [3]);
    for (const adv of [
      uapi.MADV_DONTDUMP,
      uapi.MADV_HUGEPAGE,
      uapi.MADV_DONTFORK,
      uapi.MADV_MERGEABLE,
      uapi.MADV_COLD,
      uapi.MADV_PAGEOUT,
    ])
      expect(host.madvise(a, PAGE, adv)).toBe(0);
    expect([...host.memory.read(a, 1)]).toEqual([3]);
    expect(errnoOf(() => host.madvise(a, PAGE, uapi.MADV_HWPOISON))).toBe('EPERM');
    expect(host.madvise(a, PAGE, uapi.MADV_WIPEONFORK)).toBe(0);
    expect(errnoOf(() => host.madvise(mapping(host, SHARED_ANON), PAGE, uapi.MADV_WIPEONFORK))).toBe(
      'EINVAL',
    );
    expect(errnoOf(() => host.madvise(a, PAGE, uapi.MADV_COLLAPSE))).toBe('EINVAL');
  });

  it('MADV_POPULATE_WRITE faults the range in: a memfd mapping beyond i_size is SIGBUS -> EFAULT; a read-only mapping -> EINVAL (check_vma_flags)', () => {
    const host = createHost({ kernel: 'v7.0' });
    const fd = host.memfdCreate('ram');
    host.ftruncate(fd, PAGE);
    const m = mapping(host, uapi.MAP_SHARED, 2 * PAGE, fd);
    expect(host.madvise(m, PAGE, uapi.MADV_POPULATE_WRITE)).toBe(0);
    expect(errnoOf(() => host.madvise(m, 2 * PAGE, uapi.MADV_POPULATE_WRITE))).toBe('EFAULT');
    const ro = host.mmap({ length: PAGE, prot: uapi.PROT_READ, flags: PRIVATE_ANON });
    expect(errnoOf(() => host.madvise(ro, PAGE, uapi.MADV_POPULATE_WRITE))).toBe('EINVAL');
    expect(host.madvise(ro, PAGE, uapi.MADV_POPULATE_READ)).toBe(0);
  });

  it('shmem_fallocate(PUNCH_HOLE) and a shrinking ftruncate unmap every mapping of the file: the SPTEs of a memfd-backed slot go', () => {
    const host = createHost({ kernel: 'v7.0' });
    const kvm = host.open('/dev/kvm');
    const vmfd = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const vm: Vm = (host.fds.lookup(vmfd) as VmFile).vm;
    const fd = host.memfdCreate('ram');
    host.ftruncate(fd, 4 * PAGE);
    const hva = mapping(host, uapi.MAP_SHARED, 4 * PAGE, fd);
    host.ioctl(vmfd, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 4 * PAGE,
      userspace_addr: hva,
    });
    const vcpu = host.ioctl(vmfd, 'KVM_CREATE_VCPU', 0);
    host.guest(vcpu).load([
      { op: 'read', gpa: 0, length: 1 },
      { op: 'read', gpa: 3 * PAGE, length: 1 },
    ]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(vm.mmu.sptes.get(0)).toBeDefined();
    expect(vm.mmu.sptes.get(3)).toBeDefined();
    host.fallocate(fd, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, 0, PAGE);
    expect(vm.mmu.sptes.get(0)).toBeUndefined();
    expect(vm.mmu.sptes.get(3)).toBeDefined();
    host.ftruncate(fd, 2 * PAGE);
    expect(vm.mmu.sptes.get(3)).toBeUndefined();
  });
});

describe('MADV_POPULATE on guest_memfd mappings (kvm_gmem_fault_user_mapping over a run)', () => {
  const gmemOf = (host: Host, fd: number) => (host.fds.lookup(fd) as GmemFile).inode;
  function gmemMapping(kernel: string, vmType: number, flags: number, size: number, mapLen = size) {
    const host = createHost({ kernel });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', vmType);
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags });
    const m = host.mmap({ length: mapLen, prot: RW, flags: uapi.MAP_SHARED, fd: gmem });
    return { host, gmem, m };
  }
  const SHARED_GMEM = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;

  it('INIT_SHARED: every page of the run comes in up to date (cleared), as a fault of each would leave it', () => {
    const { host, gmem, m } = gmemMapping('v7.0', uapi.KVM_X86_DEFAULT_VM, SHARED_GMEM, 4 * PAGE);
    expect(host.madvise(m, 4 * PAGE, uapi.MADV_POPULATE_READ)).toBe(0);
    for (let i = 0; i < 4; i++) expect(gmemOf(host, gmem).folios.get(i)?.uptodate).toBe(true);
    expect([...host.memory.read(m + 3 * PAGE, 2)]).toEqual([0, 0]);
  });

  it('a mapping longer than the file: the pages inside come in, the first one past i_size is SIGBUS -> EFAULT', () => {
    const { host, gmem, m } = gmemMapping('v7.0', uapi.KVM_X86_DEFAULT_VM, SHARED_GMEM, 2 * PAGE, 4 * PAGE);
    expect(errnoOf(() => host.madvise(m, 4 * PAGE, uapi.MADV_POPULATE_READ))).toBe('EFAULT');
    expect(gmemOf(host, gmem).folios.get(1)?.uptodate).toBe(true);
  });

  it('without INIT_SHARED (a VM with private memory) the first page faults: EFAULT, nothing comes in', () => {
    const { host, gmem, m } = gmemMapping(
      'v7.0',
      uapi.KVM_X86_SW_PROTECTED_VM,
      uapi.GUEST_MEMFD_FLAG_MMAP,
      4 * PAGE,
    );
    expect(errnoOf(() => host.madvise(m, 4 * PAGE, uapi.MADV_POPULATE_WRITE))).toBe('EFAULT');
    expect(gmemOf(host, gmem).folios.get(0)).toBeUndefined();
  });

  it('a poisoned page: the fault is VM_FAULT_HWPOISON and GUP asks FOLL_HWPOISON -> EHWPOISON (not EFAULT); the pages before it come in', () => {
    const { host, gmem, m } = gmemMapping('v7.0', uapi.KVM_X86_DEFAULT_VM, SHARED_GMEM, 4 * PAGE);
    host.memory.write(m + 2 * PAGE, [1]);
    expect(host.memoryFailure(gmem, 2 * PAGE)).toBe(0);
    expect(errnoOf(() => host.madvise(m, 4 * PAGE, uapi.MADV_POPULATE_READ))).toBe('EHWPOISON');
    expect(errnoOf(() => host.madvise(m + 2 * PAGE, PAGE, uapi.MADV_POPULATE_WRITE))).toBe('EHWPOISON');
    expect(gmemOf(host, gmem).folios.get(1)?.uptodate).toBe(true);
    // A range that leaves the poisoned page out is fine.
    expect(host.madvise(m + 3 * PAGE, PAGE, uapi.MADV_POPULATE_READ)).toBe(0);
  });

  it('a TiB guest_memfd populates by extents, not page by page', () => {
    const TIB = 2 ** 40;
    const { host, gmem, m } = gmemMapping('v7.0', uapi.KVM_X86_DEFAULT_VM, SHARED_GMEM, TIB);
    expect(host.madvise(m, TIB, uapi.MADV_POPULATE_READ)).toBe(0);
    expect(gmemOf(host, gmem).folios.get(TIB / PAGE - 1)?.uptodate).toBe(true);
    expect(gmemOf(host, gmem).folios.size).toBe(1);
  });
});
