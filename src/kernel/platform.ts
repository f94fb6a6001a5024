/**
 * The platform a host runs on: 'generic' (no confidential computing), 'snp' (AMD: RMP and PSP
 * firmware) or 'tdx' (Intel: the TDX module). Platform state is host-wide, like the hardware.
 */

import type { KFile } from './file.js';
import type { Host } from './host.js';
import type { Vm } from './kvm/vm.js';

export type PlatformName = 'generic' | 'snp' | 'tdx';

export interface Platform {
  readonly name: PlatformName;
  /** kvm_arch_gmem_invalidate(): guest_memfd pages [start, end) were freed (SNP: RMP back to hypervisor). */
  gmemInvalidate?(pfnStart: number, pfnEnd: number): void;
  /** Device files the platform provides (SNP: /dev/sev). */
  open?(path: string): KFile | undefined;
  /**
   * KVM_MEMORY_ENCRYPT_OP for VM types without their own handler: the vendor module's
   * mem_enc_ioctl serves every VM on the host (SNP: sev_mem_enc_ioctl() also for default VMs).
   */
  vmMemEncryptOp?(vm: Vm, arg: unknown): number;
  /**
   * KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION (`register` false): the vendor's
   * mem_enc_register_region / mem_enc_unregister_region (SVM: sev.c). Absent (VMX): -ENOTTY.
   */
  vmMemEncRegion?(vm: Vm, register: boolean, addr: bigint, size: bigint): number;
  /**
   * kvm_x86_ops.dev_get_attr for a non-zero /dev/kvm attribute group (SVM: sev_dev_get_attr()).
   * Throws the kernel's errno (-ENXIO for an unknown group or attribute). Absent: -ENXIO.
   */
  devGetAttr?(group: number, attr: bigint): bigint;
  /** For host.clone(): a deep copy of the platform's state. */
  clone?(host: Host): Platform;
}

export type PlatformFactory = (host: Host) => Platform;

const factories = new Map<PlatformName, PlatformFactory>();

export function registerPlatform(name: PlatformName, factory: PlatformFactory): void {
  factories.set(name, factory);
}

export function createPlatform(name: PlatformName, host: Host): Platform {
  const f = factories.get(name);
  return f ? f(host) : { name };
}
