/** Shared setup for the TDX tests: a TD as QEMU builds it, one step at a time. */
import { createHost, type Host, SyscallError, uapi } from '../../src/index.js';

export const TDX_PROFILES = [
  'tdx-dev-2024-07',
  'tdx-dev-2024-07+eexist',
  'tdx-dev-2024-07+eexist+poc',
  'v6.16',
  'v6.19',
  'v7.0',
] as const;
export const UPSTREAM = ['v6.16', 'v6.19', 'v7.0'] as const;
export const DEV_TREE = ['tdx-dev-2024-07', 'tdx-dev-2024-07+eexist', 'tdx-dev-2024-07+eexist+poc'] as const;

/** GPAW 48 in CPUID 0x80000008 EAX[23:16]. */
export const GPAW48 = { function: 0x80000008, index: 0, flags: 0, eax: 48 << 16 };
export const MiB = 1 << 20;

export interface Td {
  host: Host;
  vm: number;
  vcpu?: number;
  gmem?: number;
  hva?: number;
  src?: number;
}

/** A TD VM with a split IRQCHIP, as a VMM must give it before its vCPUs (tdx_vcpu_create). */
export function tdVm(kernel: string): Td {
  const host = createHost({ kernel, platform: 'tdx' });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_TDX_VM);
  host.ioctl(vm, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [24] });
  return { host, vm };
}

/** CPUID.1:ECX[21], the x2APIC KVM_TDX_INIT_VCPU requires, and 0x80000008 MAXPHYADDR 48 (= the GPAW). */
export const X2APIC_CPUID = {
  nent: 3,
  entries: [
    { function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 1 << 21, edx: 0 },
    { function: 0x80000000, index: 0, flags: 0, eax: 0x80000008, ebx: 0, ecx: 0, edx: 0 },
    { function: 0x80000008, index: 0, flags: 0, eax: 0x3030, ebx: 0, ecx: 0, edx: 0 },
  ],
};

/** KVM_CREATE_VCPU + KVM_SET_CPUID2 with x2APIC (QEMU kvm_arch_init_vcpu), ready for INIT_VCPU. */
export function tdVcpu(td: Td, id = 0): number {
  const vcpu = td.host.ioctl(td.vm, 'KVM_CREATE_VCPU', id);
  td.host.ioctl(vcpu, 'KVM_SET_CPUID2', X2APIC_CPUID);
  return vcpu;
}

export function tdCmd(id: string, data: unknown, flags: number | bigint = 0): Record<string, unknown> {
  return { id, flags, data, hw_error: 0 };
}

export function initVm(td: Td, data?: Record<string, unknown>): Record<string, unknown> {
  const cmd = tdCmd(
    'KVM_TDX_INIT_VM',
    data ?? { attributes: 1n << 28n, xfam: 0x3n, cpuid: { nent: 1, entries: [GPAW48] } },
  );
  td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
  return cmd;
}

/**
 * INIT_VM (TD attributes `attributes`: SEPT_VE_DISABLE by default), a vCPU + INIT_VCPU, a 2 MiB
 * guest_memfd slot at `base` (private), a 1-page source.
 */
export function buildTd(kernel: string, base = 0, size = 2 * MiB, attributes = 1n << 28n): Required<Td> {
  const td = tdVm(kernel);
  const { host, vm } = td;
  initVm(td, { attributes, xfam: 0x3n, cpuid: { nent: 1, entries: [GPAW48] } });
  const vcpu = tdVcpu(td);
  host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VCPU', 0));
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags: 0 });
  const hva = host.mmap({ length: size, prot: 3, flags: uapi.MAP_SHARED | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 0,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: base,
    memory_size: size,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: base,
    size,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const src = host.mmap({ length: 4 * 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.memory.write(
    src,
    Uint8Array.from({ length: 4 * 4096 }, (_, i) => (i * 7 + 1) & 0xff),
  );
  return { host, vm, vcpu, gmem, hva, src };
}

export function initMemRegion(td: Required<Td>, gpa: number, nrPages = 1, flags = 0, src = td.src) {
  const region = { source_addr: src, gpa, nr_pages: nrPages };
  const cmd = tdCmd('KVM_TDX_INIT_MEM_REGION', region, flags);
  td.host.ioctl(td.vcpu, 'KVM_MEMORY_ENCRYPT_OP', cmd);
  return region;
}

export function finalize(td: Td): Record<string, unknown> {
  const cmd = tdCmd('KVM_TDX_FINALIZE_VM', 0);
  td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
  return cmd;
}

export { errnoOf } from '../errno-of.js';

export function syscallError(fn: () => unknown): SyscallError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SyscallError) return e;
    throw e;
  }
  throw new Error('expected a SyscallError');
}
