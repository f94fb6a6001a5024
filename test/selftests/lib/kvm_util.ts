/**
 * The KVM selftest library (tools/testing/selftests/kvm/lib/kvm_util.c, include/kvm_util.h) as thin
 * wrappers over a gmemlab host, so that ported selftests read like the C they come from.
 *
 * Conventions, as in the C library:
 * - `foo()` asserts that the call succeeded and returns its result (a failure throws the
 *   SyscallError, which fails the test with the kernel's reason);
 * - `__foo()` never throws a SyscallError: it returns a `SysResult` holding either the value or
 *   the errno, like the raw ioctl's -1/errno.
 * - A `KvmVm` remembers the memslots added through `vm_mem_add()` (struct userspace_mem_region),
 *   which `vm_guest_mem_fallocate()` walks.
 */
import {
  createHost,
  getProfile,
  type Host,
  HostFault,
  type KernelProfile,
  kernels,
  SyscallError,
  uapi,
} from '../../../src/index.js';
import type { PlatformName } from '../../../src/kernel/platform.js';
import type { ErrnoName } from '../../../src/uapi/errno.js';

export const PAGE_SIZE = 4096;
export const SZ_2M = 2 << 20;
export const SZ_4G = 2 ** 32;

/** The result of a raw syscall: the value, or -1 with errno (SyscallError kept for its reason). */
export type SysResult<T> =
  | { readonly ok: true; readonly value: T; readonly errno: 0 }
  | { readonly ok: false; readonly errno: number; readonly code: ErrnoName; readonly error: SyscallError };

/** Run a raw syscall: a SyscallError becomes an errno result; anything else propagates. */
export function sys<T>(fn: () => T): SysResult<T> {
  try {
    return { ok: true, value: fn(), errno: 0 };
  } catch (e) {
    if (e instanceof SyscallError) return { ok: false, errno: e.errno, code: e.code, error: e };
    throw e;
  }
}

/** TEST_EXPECT_SIGBUS(): true iff `fn` raises SIGBUS (a HostFault with signal SIGBUS). */
export function raisesSigbus(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    if (e instanceof HostFault && e.signal === 'SIGBUS') return true;
    throw e;
  }
}

/** A (kernel profile, platform) pair to run a selftest against. */
export interface HostConfig {
  readonly kernel: string;
  readonly platform: PlatformName;
}

export const PLATFORMS: readonly PlatformName[] = ['generic', 'snp', 'tdx'];

/** Every kernel profile on every platform. */
export function allHostConfigs(): HostConfig[] {
  return kernels().flatMap((kernel) => PLATFORMS.map((platform) => ({ kernel, platform })));
}

export function profileOf(kernel: string): KernelProfile {
  const p = getProfile(kernel);
  if (!p) throw new Error(`unknown kernel profile ${kernel}`);
  return p;
}

export function newHost(cfg: HostConfig, invariants = true): Host {
  return createHost({ kernel: cfg.kernel, platform: cfg.platform, invariants });
}

export const VM_TYPE_NAMES: Readonly<Record<number, string>> = {
  [uapi.KVM_X86_DEFAULT_VM]: 'DEFAULT',
  [uapi.KVM_X86_SW_PROTECTED_VM]: 'SW_PROTECTED',
  [uapi.KVM_X86_SEV_VM]: 'SEV',
  [uapi.KVM_X86_SEV_ES_VM]: 'SEV_ES',
  [uapi.KVM_X86_SNP_VM]: 'SNP',
  [uapi.KVM_X86_TDX_VM]: 'TDX',
};

/** Platform-independent x86 VM types: tested once, on the generic platform. */
export const GENERIC_VM_TYPES: readonly number[] = [uapi.KVM_X86_DEFAULT_VM, uapi.KVM_X86_SW_PROTECTED_VM];

/** x86 kvm_arch_has_private_mem(): SW_PROTECTED, SNP and TDX VMs. */
export function kvm_arch_has_private_mem(type: number): boolean {
  return (
    type === uapi.KVM_X86_SW_PROTECTED_VM || type === uapi.KVM_X86_SNP_VM || type === uapi.KVM_X86_TDX_VM
  );
}

/**
 * The (host config, VM type) pairs a selftest's main() loops over (for each type in
 * KVM_CAP_VM_TYPES); DEFAULT and SW_PROTECTED do not depend on the platform, so they run on the
 * generic one only.
 */
export function vm_type_configs(): Array<{ cfg: HostConfig; type: number }> {
  const out: Array<{ cfg: HostConfig; type: number }> = [];
  for (const cfg of allHostConfigs()) {
    for (const type of kvm_vm_types(newHost(cfg))) {
      if (cfg.platform !== 'generic' && GENERIC_VM_TYPES.includes(type)) continue;
      out.push({ cfg, type });
    }
  }
  return out;
}

/** The errno name of a sys() result, or 'ok'. */
export const errnoOf = (r: { ok: boolean; code?: string }): string => (r.ok ? 'ok' : (r.code ?? '?'));

/** The bits of a mask, ascending (for_each_set_bit). */
export function setBits(mask: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 32; i++) if (mask & (1 << i)) out.push(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// /dev/kvm and VMs
// ---------------------------------------------------------------------------------------------

/** struct userspace_mem_region: what vm_mem_add() set up. */
export interface MemRegion {
  readonly slot: number;
  readonly flags: number;
  readonly gpa: number;
  readonly size: number;
  /** userspace_addr (0 when the caller passed NULL). */
  readonly hva: number;
  /** The library's own host mapping, if it made one (unmapped on delete). */
  readonly mmapped: { addr: number; length: number } | null;
  /** The library's dup of the guest_memfd, or -1. */
  readonly guest_memfd: number;
  readonly guest_memfd_offset: number;
  /** region->fd: the memfd behind a shmem backing, or -1. */
  readonly fd?: number;
}

/** struct kvm_vm. */
export interface KvmVm {
  readonly host: Host;
  readonly kvm_fd: number;
  readonly fd: number;
  readonly type: number;
  readonly regions: Map<number, MemRegion>;
  readonly vcpus: number[];
}

/** open_kvm_dev_path_or_exit(). */
export function open_kvm_dev(host: Host): number {
  return host.open('/dev/kvm');
}

/** kvm_check_cap(): KVM_CHECK_EXTENSION on /dev/kvm. */
export function kvm_check_cap(host: Host, cap: number): number {
  const kvm = open_kvm_dev(host);
  try {
    return host.ioctl(kvm, 'KVM_CHECK_EXTENSION', cap);
  } finally {
    host.close(kvm);
  }
}

/** vm_check_cap(): KVM_CHECK_EXTENSION on the VM fd. */
export function vm_check_cap(vm: KvmVm, cap: number): number {
  return vm.host.ioctl(vm.fd, 'KVM_CHECK_EXTENSION', cap);
}

/** The VM types main() loops over: KVM_CAP_VM_TYPES, or BIT(VM_TYPE_DEFAULT) if that is 0. */
export function kvm_vm_types(host: Host): number[] {
  const mask = kvm_check_cap(host, uapi.KVM_CAP_VM_TYPES);
  return setBits(mask || 1 << uapi.KVM_X86_DEFAULT_VM);
}

/** __vm_create() without memslots: vm_create_barebones_type(). */
export function vm_create_barebones_type(host: Host, type: number): KvmVm {
  const kvm_fd = open_kvm_dev(host);
  const fd = host.ioctl(kvm_fd, 'KVM_CREATE_VM', type);
  return { host, kvm_fd, fd, type, regions: new Map(), vcpus: [] };
}

/** vm_create_barebones(): a default-type VM. */
export function vm_create_barebones(host: Host): KvmVm {
  return vm_create_barebones_type(host, uapi.KVM_X86_DEFAULT_VM);
}

/** __vm_vcpu_add(). */
export function vm_vcpu_add(vm: KvmVm, id: number): number {
  const fd = vm.host.ioctl(vm.fd, 'KVM_CREATE_VCPU', id);
  vm.vcpus.push(fd);
  return fd;
}

/** kvm_vm_free(): close what the library opened (vCPUs, regions' guest_memfd dups, the VM, /dev/kvm). */
export function kvm_vm_free(vm: KvmVm): void {
  const h = vm.host;
  for (const fd of vm.vcpus) h.close(fd);
  for (const r of vm.regions.values()) release_region(vm, r);
  vm.regions.clear();
  h.close(vm.fd);
  h.close(vm.kvm_fd);
}

// ---------------------------------------------------------------------------------------------
// guest_memfd
// ---------------------------------------------------------------------------------------------

export function __vm_create_guest_memfd(vm: KvmVm, size: number | bigint, flags: number | bigint) {
  return sys(() => vm.host.ioctl(vm.fd, 'KVM_CREATE_GUEST_MEMFD', { size, flags }));
}

export function vm_create_guest_memfd(vm: KvmVm, size: number | bigint, flags: number | bigint): number {
  return vm.host.ioctl(vm.fd, 'KVM_CREATE_GUEST_MEMFD', { size, flags });
}

// ---------------------------------------------------------------------------------------------
// memslots
// ---------------------------------------------------------------------------------------------

export interface Region2Args {
  slot: number;
  flags: number;
  gpa: number | bigint;
  size: number | bigint;
  hva: number | bigint;
  guest_memfd?: number;
  guest_memfd_offset?: number | bigint;
}

/** __vm_set_user_memory_region(): the v1 ioctl. */
export function __vm_set_user_memory_region(
  vm: KvmVm,
  slot: number,
  flags: number,
  gpa: number | bigint,
  size: number | bigint,
  hva: number | bigint,
) {
  return sys(() =>
    vm.host.ioctl(vm.fd, 'KVM_SET_USER_MEMORY_REGION', {
      slot,
      flags,
      guest_phys_addr: gpa,
      memory_size: size,
      userspace_addr: hva,
    }),
  );
}

export function vm_set_user_memory_region(
  vm: KvmVm,
  slot: number,
  flags: number,
  gpa: number | bigint,
  size: number | bigint,
  hva: number | bigint,
): void {
  const r = __vm_set_user_memory_region(vm, slot, flags, gpa, size, hva);
  if (!r.ok) throw r.error;
}

/** __vm_set_user_memory_region2(). `guest_memfd` is a u32: -1 reads as 0xffffffff. */
export function __vm_set_user_memory_region2(vm: KvmVm, a: Region2Args) {
  return sys(() =>
    vm.host.ioctl(vm.fd, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: a.slot,
      flags: a.flags,
      guest_phys_addr: a.gpa,
      memory_size: a.size,
      userspace_addr: a.hva,
      guest_memfd_offset: a.guest_memfd_offset ?? 0,
      guest_memfd: (a.guest_memfd ?? 0) >>> 0,
    }),
  );
}

export function vm_set_user_memory_region2(vm: KvmVm, a: Region2Args): void {
  const r = __vm_set_user_memory_region2(vm, a);
  if (!r.ok) throw r.error;
}

/** kvm_mmap(): an anonymous or file mapping that must succeed. */
export function kvm_mmap(host: Host, length: number, prot: number, flags: number, fd = -1): number {
  return host.mmap({ length, prot, flags, fd, offset: 0 });
}

export function kvm_munmap(host: Host, addr: number, length: number): void {
  host.munmap(addr, length);
}

/** enum vm_mem_backing_src_type, the kinds the ports use (-s of the selftests that take it). */
export type VmMemBackingSrc = 'anonymous' | 'anonymous_thp' | 'shmem';

/**
 * vm_mem_add(): a host mapping of `src` for userspace_addr, and with KVM_MEM_GUEST_MEMFD either a
 * new guest_memfd of exactly the slot size (guest_memfd < 0, offset must be 0) or a dup of the
 * caller's fd, so the caller may close its copy.
 */
export function vm_mem_add(
  vm: KvmVm,
  gpa: number,
  slot: number,
  npages: number,
  flags: number,
  guest_memfd = -1,
  guest_memfd_offset = 0,
  src: VmMemBackingSrc = 'anonymous',
): MemRegion {
  const h = vm.host;
  const size = npages * PAGE_SIZE;
  // The backing of userspace_addr by src_type (vm_mem_backing_src_alias()): shmem is a memfd
  // (kvm_memfd_alloc()) mapped MAP_SHARED; THP is anonymous memory with madvise(MADV_HUGEPAGE).
  const fd = src === 'shmem' ? kvm_memfd_alloc(h, size) : -1;
  const hva =
    fd >= 0
      ? kvm_mmap(h, size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED, fd)
      : kvm_mmap(h, size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS);
  if (src === 'anonymous_thp') h.madvise(hva, size, uapi.MADV_HUGEPAGE);
  let gfd = -1;
  if (flags & uapi.KVM_MEM_GUEST_MEMFD) {
    if (guest_memfd < 0) {
      if (guest_memfd_offset !== 0) throw new Error('Offset must be zero when creating new guest_memfd');
      gfd = vm_create_guest_memfd(vm, size, 0);
    } else {
      gfd = h.dup(guest_memfd);
    }
  }
  const region: MemRegion = {
    slot,
    flags,
    gpa,
    size,
    hva,
    mmapped: { addr: hva, length: size },
    guest_memfd: gfd,
    guest_memfd_offset,
    fd,
  };
  vm_set_user_memory_region2(vm, {
    slot,
    flags,
    gpa,
    size,
    hva,
    guest_memfd: gfd < 0 ? 0 : gfd,
    guest_memfd_offset,
  });
  vm.regions.set(slot, region);
  return region;
}

/** vm_userspace_mem_region_add(): vm_mem_add() with no caller guest_memfd. */
export function vm_userspace_mem_region_add(
  vm: KvmVm,
  gpa: number,
  slot: number,
  npages: number,
  flags: number,
): MemRegion {
  return vm_mem_add(vm, gpa, slot, npages, flags);
}

function release_region(vm: KvmVm, r: MemRegion): void {
  if (r.mmapped) vm.host.munmap(r.mmapped.addr, r.mmapped.length);
  if (r.guest_memfd >= 0) vm.host.close(r.guest_memfd);
  if (r.fd !== undefined && r.fd >= 0) vm.host.close(r.fd);
}

/** vm_mem_region_delete(): KVM_SET_USER_MEMORY_REGION2 with size 0, then free the region. */
export function vm_mem_region_delete(vm: KvmVm, slot: number): void {
  const r = vm.regions.get(slot);
  vm_set_user_memory_region2(vm, { slot, flags: r?.flags ?? 0, gpa: r?.gpa ?? 0, size: 0, hva: 0 });
  if (r) {
    release_region(vm, r);
    vm.regions.delete(slot);
  }
}

/** vm_guest_mem_fallocate(): fallocate each guest_memfd slot piece of [gpa, gpa+size). */
export function vm_guest_mem_fallocate(vm: KvmVm, gpa: number, size: number, punch_hole: boolean): void {
  const mode = uapi.FALLOC_FL_KEEP_SIZE | (punch_hole ? uapi.FALLOC_FL_PUNCH_HOLE : 0);
  let g = gpa;
  const end = gpa + size;
  while (g < end) {
    const r = [...vm.regions.values()].find((x) => g >= x.gpa && g < x.gpa + x.size);
    if (!r || !(r.flags & uapi.KVM_MEM_GUEST_MEMFD))
      throw new Error(`Private memory region not found for GPA 0x${g.toString(16)}`);
    const len = Math.min(end, r.gpa + r.size) - g;
    vm.host.fallocate(r.guest_memfd, mode, r.guest_memfd_offset + (g - r.gpa), len);
    g += len;
  }
}

// ---------------------------------------------------------------------------------------------
// memory attributes
// ---------------------------------------------------------------------------------------------

export interface MemAttrArgs {
  address: number | bigint;
  size: number | bigint;
  attributes: number | bigint;
  flags?: number | bigint;
}

/** __vm_set_memory_attributes(): the raw ioctl (flags default 0). */
export function __vm_set_memory_attributes(vm: KvmVm, a: MemAttrArgs) {
  return sys(() =>
    vm.host.ioctl(vm.fd, 'KVM_SET_MEMORY_ATTRIBUTES', {
      address: a.address,
      size: a.size,
      attributes: a.attributes,
      flags: a.flags ?? 0,
    }),
  );
}

/** vm_set_memory_attributes(): overwrites _all_ attributes, so only 0 or PRIVATE are allowed. */
export function vm_set_memory_attributes(vm: KvmVm, gpa: number, size: number, attrs: number): void {
  if (attrs !== 0 && attrs !== uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    throw new Error('KVM_SET_MEMORY_ATTRIBUTES overwrites _all_ attributes');
  const r = __vm_set_memory_attributes(vm, { address: gpa, size, attributes: attrs });
  if (!r.ok) throw r.error;
}

export const vm_mem_set_private = (vm: KvmVm, gpa: number, size: number): void =>
  vm_set_memory_attributes(vm, gpa, size, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE);
export const vm_mem_set_shared = (vm: KvmVm, gpa: number, size: number): void =>
  vm_set_memory_attributes(vm, gpa, size, 0);

// ---------------------------------------------------------------------------------------------
// host memory
// ---------------------------------------------------------------------------------------------

/** kvm_memfd_alloc(): memfd_create + ftruncate + fallocate(KEEP_SIZE). */
export function kvm_memfd_alloc(host: Host, size: number): number {
  const fd = host.memfdCreate('kvm_selftest', 0);
  host.ftruncate(fd, size);
  host.fallocate(fd, uapi.FALLOC_FL_KEEP_SIZE, 0, size);
  return fd;
}

/** memset() through the host mapping. */
export function host_memset(host: Host, addr: number, value: number, len: number): void {
  host.memory.write(addr, new Uint8Array(len).fill(value));
}

/** Every byte of [addr, addr+len) equals `value` (READ_ONCE loop + TEST_ASSERT_EQ). */
export function host_bytes_equal(host: Host, addr: number, value: number, len: number): boolean {
  const b = host.memory.read(addr, len);
  for (let i = 0; i < b.length; i++) if (b[i] !== value) return false;
  return true;
}
