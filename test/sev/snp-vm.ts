/**
 * Test helper: an SNP VM on a modelled 'snp' host, set up as lib/x86/sev.c and QEMU do it
 * (KVM_SEV_INIT2 before vCPUs, a guest_memfd memslot, private attributes).
 */
import { createHost, type Host } from '../../src/kernel/host.js';
import { allProfiles, getProfile } from '../../src/kernel/profiles/index.js';
import type { KernelProfile } from '../../src/kernel/profiles/types.js';
import { uapi } from '../../src/uapi/index.js';
import '../../src/kernel/arch/register.js';

export const MiB = 1 << 20;

export interface SnpVm {
  host: Host;
  kvm: number;
  vm: number;
  sev: number;
  gmem: number;
  /** Shared backing of the slot (also the VMM's source buffer). */
  hva: number;
  /** Issue KVM_MEMORY_ENCRYPT_OP and return the command struct (error written back). */
  enc(id: string | number, data?: Record<string, unknown>, sevFd?: number): Record<string, unknown>;
}

export function snpVm(
  kernel: string | KernelProfile,
  opts: { size?: number; init2?: boolean; start?: bigint | false; gmemFlags?: number } = {},
): SnpVm {
  const size = opts.size ?? 2 * MiB;
  const host = createHost({ kernel, platform: 'snp' });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SNP_VM);
  const sev = host.open('/dev/sev');
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags: opts.gmemFlags ?? 0 });
  const hva = host.mmap({
    length: size,
    prot: uapi.PROT_READ | uapi.PROT_WRITE,
    flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
  });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 0,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: 0,
    memory_size: size,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: 0,
    size,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const enc = (id: string | number, data: Record<string, unknown> = {}, sevFd = sev) => {
    const cmd: Record<string, unknown> = { id, sev_fd: sevFd, data, error: 0 };
    host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
    return cmd;
  };
  const s: SnpVm = { host, kvm, vm, sev, gmem, hva, enc };
  if (opts.init2 !== false) enc('KVM_SEV_INIT2', { vmsa_features: 0, flags: 0, ghcb_version: 0 });
  if (opts.init2 !== false && opts.start !== false)
    enc('KVM_SEV_SNP_LAUNCH_START', { policy: opts.start ?? 0x30000n });
  return s;
}

/** Run `fn` and return the errno name it failed with (or 'ok'). */
export function errnoOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (typeof code === 'string') return code;
    throw e;
  }
}

/** Every profile that has KVM_X86_SNP_VM (v6.11-rc1 on, and the 2024 dev trees); v6.8 has none. */
export const SNP_KERNELS: readonly string[] = allProfiles()
  .filter((p) => p.vmTypes.snp)
  .map((p) => p.name);

/**
 * Does the profile stand for release `release` ('major.minor') or later? Read from the profile's
 * base ('6.11-rc1' counts as 6.11, the 2024 dev trees as 6.10): the release numbers in the tests come
 * from the kernel's history (the pull request a change went in with), not from the model's switches.
 */
export function releaseAtLeast(kernel: string, release: string): boolean {
  const base = getProfile(kernel)!.base;
  const [maj, min] = (/^(\d+)\.(\d+)/.exec(base) ?? ['', '0', '0']).slice(1).map(Number) as [number, number];
  const [rMaj, rMin] = release.split('.').map(Number) as [number, number];
  return maj > rMaj || (maj === rMaj && min >= rMin);
}
