/**
 * Port of tools/testing/selftests/kvm/guest_memfd_test.c: the ioctl-level and host-memory cases,
 * case by case, on every kernel profile, on every VM type KVM_CAP_VM_TYPES reports (generic types on
 * the generic platform, vendor types on their platform), with the flag batteries main() runs.
 *
 * Sources: torvalds/linux guest_memfd_test.c at 01f492e1817e (newest examined) and at 94220f1123f3
 * (v6.8); virt/kvm/guest_memfd.c at 01f492e1817e (kvm_gmem_create, kvm_gmem_fallocate,
 * kvm_gmem_allocate, kvm_gmem_mmap, kvm_gmem_fault_user_mapping, kvm_gmem_error_folio);
 * include/linux/kvm_host.h kvm_gmem_get_supported_flags() and x86 kvm_arch_supports_gmem_init_shared().
 *
 * Not ported here:
 * - test_guest_memfd_guest (the guest round trip): test/selftests/guest_memfd_test.guest.test.ts.
 * - test_mbind, test_numa_allocation: host NUMA policy (mbind/get_mempolicy/move_pages) is outside the
 *   model; the selftest itself returns early on single-node hosts.
 * The memory-failure case follows Lisa Wang's RFC (Oct 2025, "KVM: selftests: Test guest_memfd
 * behavior with respect to stage 2 page tables" and the test_memory_failure draft), not an upstream
 * selftest: it checks what kvm_gmem_error_folio() and mm's fault path do.
 */
import { describe, expect, it } from 'vitest';
import { uapi } from '../../src/index.js';
import {
  __vm_create_guest_memfd,
  allHostConfigs,
  type HostConfig,
  host_bytes_equal,
  host_memset,
  type KvmVm,
  kvm_arch_has_private_mem,
  kvm_mmap,
  kvm_munmap,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  profileOf,
  raisesSigbus,
  SZ_2M,
  sys,
  VM_TYPE_NAMES,
  vm_check_cap,
  vm_create_barebones_type,
  vm_create_guest_memfd,
  vm_type_configs,
} from './lib/kvm_util.js';

const page_size = PAGE_SIZE;
const total_size = 4 * page_size;
const RW = uapi.PROT_READ | uapi.PROT_WRITE;
const { GUEST_MEMFD_FLAG_MMAP: MMAP, GUEST_MEMFD_FLAG_INIT_SHARED: INIT_SHARED } = uapi;
const KEEP = uapi.FALLOC_FL_KEEP_SIZE;
const PUNCH = uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE;

/**
 * The flags KVM_CAP_GUEST_MEMFD_FLAGS reports on a VM of `type`: kvm_gmem_get_supported_flags()
 * (6.18+: MMAP always, INIT_SHARED iff kvm_arch_supports_gmem_init_shared(), i.e. no private memory
 * on x86). Before 6.18 the capability does not exist and KVM_CHECK_EXTENSION returns 0.
 */
function expectedGmemFlags(kernel: string, type: number): number {
  if (!profileOf(kernel).gmem.mmap) return 0;
  // The out-of-tree direct map removal series (v6.18+no-direct-map) adds NO_DIRECT_MAP (1 << 2) for
  // every VM type but TDX and SNP (kvm_arch_gmem_supports_no_direct_map, patch 0030).
  const noDirectMap =
    kernel === 'v6.18+no-direct-map' && type !== uapi.KVM_X86_TDX_VM && type !== uapi.KVM_X86_SNP_VM ? 4 : 0;
  return MMAP | (kvm_arch_has_private_mem(type) ? 0 : INIT_SHARED) | noDirectMap;
}

/** gmem_test(): a fresh guest_memfd of total_size with `flags`, closed afterwards. */
function withGmem(vm: KvmVm, flags: number, fn: (fd: number) => void, size = total_size): void {
  const fd = vm_create_guest_memfd(vm, size, flags);
  try {
    fn(fd);
  } finally {
    vm.host.close(fd);
  }
}

function withVm(cfg: HostConfig, type: number, fn: (vm: KvmVm) => void): void {
  const host = newHost(cfg);
  const vm = vm_create_barebones_type(host, type);
  fn(vm);
  kvm_vm_free(vm);
}

function flagsName(flags: number): string {
  if (flags === 0) return 'flags 0';
  return [flags & MMAP ? 'MMAP' : '', flags & INIT_SHARED ? 'INIT_SHARED' : ''].filter(Boolean).join('|');
}

// --- The battery (__test_guest_memfd) -----------------------------------------------------------

function test_create_guest_memfd_multiple(vm: KvmVm): void {
  const h = vm.host;
  const fd1 = __vm_create_guest_memfd(vm, page_size, 0);
  expect(fd1.ok).toBe(true);
  if (!fd1.ok) return;
  const st1 = h.fstat(fd1.value);
  expect(st1.st_size).toBe(page_size);
  const fd2 = __vm_create_guest_memfd(vm, page_size * 2, 0);
  expect(fd2.ok).toBe(true);
  if (!fd2.ok) return;
  const st2 = h.fstat(fd2.value);
  expect(st2.st_size).toBe(page_size * 2);
  const st1again = h.fstat(fd1.value);
  expect(st1again.st_size).toBe(page_size);
  expect(st1again.st_ino).not.toBe(st2.st_ino);
  h.close(fd2.value);
  h.close(fd1.value);
}

function test_create_guest_memfd_invalid_sizes(vm: KvmVm, flags: number): void {
  const bad: number[] = [];
  for (let size = 1; size < page_size; size++) {
    const r = __vm_create_guest_memfd(vm, size, flags);
    if (r.ok || r.code !== 'EINVAL') bad.push(size);
  }
  expect(bad).toEqual([]);
}

function test_file_read_write(vm: KvmVm, fd: number): void {
  const h = vm.host;
  const buf = new Uint8Array(64);
  // vfs_read()/vfs_write(): no ->read_iter/->write_iter, so no FMODE_CAN_READ/WRITE: -EINVAL.
  const rd = sys(() => h.read(fd, buf.length));
  const wr = sys(() => h.write(fd, buf));
  expect(rd.ok ? 0 : rd.code).toBe('EINVAL');
  expect(wr.ok ? 0 : wr.code).toBe('EINVAL');
  // The selftest only asserts that pread/pwrite fail.
  expect(sys(() => h.pread(fd, buf.length, 0)).ok).toBe(false);
  expect(sys(() => h.pwrite(fd, buf, 0)).ok).toBe(false);
}

function test_mmap_supported(vm: KvmVm, fd: number): void {
  const h = vm.host;
  const mem = kvm_mmap(h, total_size, RW, uapi.MAP_SHARED, fd);
  host_memset(h, mem, 0xaa, total_size);
  expect(host_bytes_equal(h, mem, 0xaa, total_size)).toBe(true);
  expect(h.fallocate(fd, PUNCH, 0, page_size)).toBe(0);
  // The mapping stays usable; the punched page re-faults as a zeroed page.
  expect(host_bytes_equal(h, mem, 0x00, page_size)).toBe(true);
  expect(host_bytes_equal(h, mem + page_size, 0xaa, total_size - page_size)).toBe(true);
  host_memset(h, mem, 0xaa, page_size);
  expect(host_bytes_equal(h, mem, 0xaa, total_size)).toBe(true);
  kvm_munmap(h, mem, total_size);
}

/** test_fault_sigbus(): the mmap succeeds; touching past accessible_size raises SIGBUS. */
function test_fault_sigbus(vm: KvmVm, fd: number, accessible_size: number, map_size: number): void {
  const h = vm.host;
  const mem = kvm_mmap(h, map_size, RW, uapi.MAP_SHARED, fd);
  expect(raisesSigbus(() => host_memset(h, mem, 0xaa, map_size))).toBe(true);
  expect(raisesSigbus(() => h.memory.read(mem + accessible_size, 1))).toBe(true);
  expect(host_bytes_equal(h, mem, 0xaa, accessible_size)).toBe(true);
  kvm_munmap(h, mem, map_size);
}

/**
 * test_collapse(): a guest_memfd mapped at a PMD-aligned address (MAP_FIXED into a reservation) may
 * be advised MADV_HUGEPAGE, but MADV_COLLAPSE is -EINVAL (madvise_collapse():
 * thp_vma_allowable_order() allows no PMD folio for a guest_memfd); DONTNEED and a re-fault work.
 */
function test_collapse(vm: KvmVm, fd: number, pmd_size: number): void {
  const h = vm.host;
  const reserved = kvm_mmap(h, pmd_size * 2, uapi.PROT_NONE, uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS);
  const aligned = Math.ceil(reserved / pmd_size) * pmd_size;
  const mem = h.mmap({
    addr: aligned,
    length: pmd_size,
    prot: RW,
    flags: uapi.MAP_FIXED | uapi.MAP_SHARED,
    fd,
    offset: 0,
  });
  expect(mem % pmd_size, 'Userspace address must be aligned to PMD size.').toBe(0);
  // Reads populate the page table without dirtying pages.
  for (let i = 0; i < pmd_size; i += page_size) h.memory.read(mem + i, 1);
  expect(h.madvise(mem, pmd_size, uapi.MADV_HUGEPAGE)).toBe(0);
  const collapse = sys(() => h.madvise(mem, pmd_size, uapi.MADV_COLLAPSE));
  expect(collapse.ok ? 0 : collapse.code).toBe('EINVAL');
  expect(h.madvise(mem, pmd_size, uapi.MADV_DONTNEED)).toBe(0);
  expect([...h.memory.read(mem, 1)]).toEqual([0]);
  kvm_munmap(h, reserved, pmd_size * 2);
}

function test_mmap_cow(vm: KvmVm, fd: number): void {
  // kvm_gmem_mmap(): a MAP_PRIVATE vma lacks VM_SHARED|VM_MAYSHARE: -EINVAL ("Copy-on-write not allowed").
  const r = sys(() => vm.host.mmap({ length: total_size, prot: RW, flags: uapi.MAP_PRIVATE, fd, offset: 0 }));
  expect(r.ok ? 0 : r.code).toBe('EINVAL');
}

function test_mmap_not_supported(vm: KvmVm, fd: number): void {
  // Before 6.18 guest_memfd has no ->mmap (do_mmap: -ENODEV); 6.18+ kvm_gmem_mmap() without
  // GUEST_MEMFD_FLAG_MMAP: -ENODEV. The selftest asserts MAP_FAILED.
  for (const length of [page_size, total_size]) {
    const r = sys(() => vm.host.mmap({ length, prot: RW, flags: uapi.MAP_SHARED, fd, offset: 0 }));
    expect(r.ok ? 0 : r.code).toBe('ENODEV');
  }
}

function test_file_size(vm: KvmVm, fd: number): void {
  const sb = vm.host.fstat(fd);
  expect(sb.st_size).toBe(total_size);
  expect(sb.st_blksize).toBe(page_size);
}

function test_fallocate(vm: KvmVm, fd: number): void {
  const h = vm.host;
  const fa = (mode: number, off: number, len: number) => sys(() => h.fallocate(fd, mode, off, len));
  // Each row: kvm_gmem_fallocate() alignment check, kvm_gmem_allocate() i_size check, punch-hole
  // beyond EOF allowed (truncate of an empty range).
  expect(fa(KEEP, 0, total_size).ok).toBe(true);
  expect(fa(PUNCH, page_size - 1, page_size).ok).toBe(false);
  expect(fa(KEEP, total_size, page_size).ok).toBe(false);
  expect(fa(KEEP, total_size + page_size, page_size).ok).toBe(false);
  expect(fa(PUNCH, total_size, page_size).ok).toBe(true);
  expect(fa(PUNCH, total_size + page_size, page_size).ok).toBe(true);
  expect(fa(PUNCH, page_size, page_size - 1).ok).toBe(false);
  expect(fa(PUNCH, page_size, page_size).ok).toBe(true);
  expect(fa(KEEP, page_size, page_size).ok).toBe(true);
}

/** The errno of the failing test_fallocate rows (not asserted by the selftest): all -EINVAL in the kernel. */
function fallocate_failure_errnos(vm: KvmVm, fd: number): void {
  const h = vm.host;
  const code = (mode: number, off: number, len: number) => {
    const r = sys(() => h.fallocate(fd, mode, off, len));
    return r.ok ? 'ok' : r.code;
  };
  expect(code(PUNCH, page_size - 1, page_size)).toBe('EINVAL'); // kvm_gmem_fallocate: !PAGE_ALIGNED
  expect(code(KEEP, total_size, page_size)).toBe('EINVAL'); // kvm_gmem_allocate: beyond i_size
  expect(code(KEEP, total_size + page_size, page_size)).toBe('EINVAL');
  expect(code(PUNCH, page_size, page_size - 1)).toBe('EINVAL');
  // kvm_gmem_fallocate(): !KEEP_SIZE and modes other than KEEP_SIZE|PUNCH_HOLE are -EOPNOTSUPP.
  expect(code(0, 0, page_size)).toBe('EOPNOTSUPP');
  expect(code(KEEP | uapi.FALLOC_FL_ZERO_RANGE, 0, page_size)).toBe('EOPNOTSUPP');
}

function test_invalid_punch_hole(vm: KvmVm, fd: number): void {
  const P = page_size;
  const cases: Array<[number, number]> = [
    [0, 1],
    [0, P - 1],
    [0, P + 1],
    [1, 1],
    [1, P - 1],
    [1, P],
    [1, P + 1],
    [P, 1],
    [P, P - 1],
    [P, P + 1],
  ];
  for (const [offset, len] of cases) {
    const r = sys(() => vm.host.fallocate(fd, PUNCH, offset, len));
    expect(r.ok ? 'ok' : r.code, `PUNCH_HOLE offset ${offset} len ${len}`).toBe('EINVAL');
  }
}

// --- The matrix ---------------------------------------------------------------------------------

const configs = vm_type_configs();

describe('guest_memfd_test.c main(): KVM_CAP_GUEST_MEMFD and the VM types looped over', () => {
  for (const cfg of allHostConfigs()) {
    it(`guest_memfd_test.c main [${cfg.kernel}/${cfg.platform}]: KVM_CAP_GUEST_MEMFD on /dev/kvm is 1`, () => {
      const host = newHost(cfg);
      const kvm = host.open('/dev/kvm');
      expect(host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD)).toBe(1);
      // DEFAULT is always among the VM types (kvm_caps.supported_vm_types).
      expect(host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_VM_TYPES) & 1).toBe(1);
    });
  }
});

for (const { cfg, type } of configs) {
  const tname = VM_TYPE_NAMES[type] ?? `type ${type}`;
  const tag = `[${cfg.kernel}/${cfg.platform}] ${tname} VM`;
  const supported = expectedGmemFlags(cfg.kernel, type);
  // test_guest_memfd(): flags 0, then MMAP if supported, then MMAP|INIT_SHARED if supported.
  const batteries = [0];
  if (supported & MMAP) batteries.push(MMAP);
  if (supported & INIT_SHARED) batteries.push(MMAP | INIT_SHARED);

  describe(`guest_memfd_test.c test_guest_memfd ${tag}`, () => {
    it(`guest_memfd_test.c test_guest_memfd_flags ${tag}`, () => {
      withVm(cfg, type, (vm) => {
        const valid = vm_check_cap(vm, uapi.KVM_CAP_GUEST_MEMFD_FLAGS);
        expect(valid).toBe(supported);
        for (let bit = 0n; bit < 64n; bit++) {
          const flag = 1n << bit;
          const r = __vm_create_guest_memfd(vm, page_size, flag);
          if (flag & BigInt(valid)) {
            expect(r.ok, `flag 0x${flag.toString(16)}`).toBe(true);
            if (r.ok) vm.host.close(r.value);
          } else {
            expect(r.ok ? 'ok' : r.code, `flag 0x${flag.toString(16)}`).toBe('EINVAL');
          }
        }
      });
    });

    for (const flags of batteries) {
      const bt = `${tag} ${flagsName(flags)}`;
      it(`guest_memfd_test.c test_create_guest_memfd_multiple ${bt}`, () =>
        withVm(cfg, type, (vm) => test_create_guest_memfd_multiple(vm)));
      it(`guest_memfd_test.c test_create_guest_memfd_invalid_sizes ${bt}`, () =>
        withVm(cfg, type, (vm) => test_create_guest_memfd_invalid_sizes(vm, flags)));
      it(`guest_memfd_test.c test_file_read_write ${bt}`, () =>
        withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_file_read_write(vm, fd))));
      if (flags & MMAP) {
        if (flags & INIT_SHARED) {
          it(`guest_memfd_test.c test_mmap_supported ${bt}`, () =>
            withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_mmap_supported(vm, fd))));
          it(`guest_memfd_test.c test_fault_overflow ${bt}`, () =>
            withVm(cfg, type, (vm) =>
              withGmem(vm, flags, (fd) => test_fault_sigbus(vm, fd, total_size, total_size * 4)),
            ));
          // __gmem_test(collapse, vm, flags, pmd_size): a guest_memfd of one PMD (x86: 2 MiB).
          it(`guest_memfd_test.c test_collapse ${bt}`, () =>
            withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_collapse(vm, fd, SZ_2M), SZ_2M)));
        } else {
          it(`guest_memfd_test.c test_fault_private ${bt}`, () =>
            withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_fault_sigbus(vm, fd, 0, total_size))));
        }
        it(`guest_memfd_test.c test_mmap_cow ${bt}`, () =>
          withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_mmap_cow(vm, fd))));
      } else {
        it(`guest_memfd_test.c test_mmap_not_supported (v6.8: test_mmap) ${bt}`, () =>
          withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_mmap_not_supported(vm, fd))));
      }
      it(`guest_memfd_test.c test_file_size ${bt}`, () =>
        withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_file_size(vm, fd))));
      it(`guest_memfd_test.c test_fallocate ${bt}`, () =>
        withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_fallocate(vm, fd))));
      it(`guest_memfd_test.c test_fallocate failing rows' errno (kvm_gmem_fallocate) ${bt}`, () =>
        withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => fallocate_failure_errnos(vm, fd))));
      it(`guest_memfd_test.c test_invalid_punch_hole ${bt}`, () =>
        withVm(cfg, type, (vm) => withGmem(vm, flags, (fd) => test_invalid_punch_hole(vm, fd))));
    }

    if (supported & INIT_SHARED) {
      it(`guest_memfd_test.c test_memory_failure (RFC, kvm_gmem_error_folio) ${tag} MMAP|INIT_SHARED`, () =>
        withVm(cfg, type, (vm) =>
          withGmem(vm, MMAP | INIT_SHARED, (fd) => {
            const h = vm.host;
            const mem = kvm_mmap(h, total_size, RW, uapi.MAP_SHARED, fd);
            host_memset(h, mem, 0xaa, total_size);
            expect(h.memoryFailure(fd, page_size)).toBe(0);
            // kvm_gmem_error_folio() does not truncate: the poisoned folio stays in the page cache
            // and the next user fault on it is VM_FAULT_HWPOISON (__do_fault): SIGBUS.
            expect(raisesSigbus(() => h.memory.read(mem + page_size, 1))).toBe(true);
            expect(raisesSigbus(() => host_memset(h, mem + page_size, 0, 1))).toBe(true);
            expect(host_bytes_equal(h, mem, 0xaa, page_size)).toBe(true);
            expect(host_bytes_equal(h, mem + 2 * page_size, 0xaa, 2 * page_size)).toBe(true);
            // Punching the hole truncates the poisoned folio; the page re-faults as a zeroed one.
            expect(h.fallocate(fd, PUNCH, page_size, page_size)).toBe(0);
            expect(host_bytes_equal(h, mem + page_size, 0, page_size)).toBe(true);
            kvm_munmap(h, mem, total_size);
          }),
        ));
    }

    it(`guest_memfd_test.c guest_memfd outlives its VM (kvm_gmem_release: the file pins KVM) ${tag}`, () => {
      const host = newHost(cfg);
      const vm = vm_create_barebones_type(host, type);
      const fd = vm_create_guest_memfd(vm, total_size, 0);
      kvm_vm_free(vm); // closes the VM fd and /dev/kvm; the guest_memfd still holds the VM
      expect(host.fstat(fd).st_size).toBe(total_size);
      expect(host.fallocate(fd, KEEP, 0, total_size)).toBe(0);
      expect(host.fallocate(fd, PUNCH, page_size, page_size)).toBe(0);
      const rd = sys(() => host.read(fd, 64));
      expect(rd.ok ? 0 : rd.code).toBe('EINVAL');
      expect(host.close(fd)).toBe(0);
      const again = sys(() => host.fstat(fd));
      expect(again.ok ? 0 : again.code).toBe('EBADF');
    });
  });
}
