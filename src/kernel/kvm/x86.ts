/**
 * x86 VM types: which exist (kvm_caps.supported_vm_types per kernel profile and platform) and the
 * generic ones (KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM). Mirrors arch/x86/kvm/x86.c
 * kvm_arch_init_vm() / kvm_is_vm_type_supported(). SEV and TDX types come from arch/sev and arch/tdx.
 */
import * as K from '../../uapi/kvm.js';
import { type ArchVm, archVmFactory } from '../arch/arch-vm.js';
import { kerr } from '../errors.js';
import type { Host } from '../host.js';
import type { Vm } from './vm.js';

/**
 * The bitmask KVM_CAP_VM_TYPES reports. Vendor types are added by the vendor module's hardware
 * setup (sev_hardware_setup(), tdx_bringup() set kvm_caps.supported_vm_types), so a vendor type is
 * reported only when the platform has it, the profile's kernel has it, and its arch model registered.
 */
export function supportedVmTypes(host: Host): number {
  const t = host.profile.vmTypes;
  const vendor = (type: number): number => (archVmFactory(type) ? 1 << type : 0);
  let mask = 1 << K.KVM_X86_DEFAULT_VM;
  // SW_PROTECTED needs the TDP MMU (tdp_mmu_enabled): kvm_is_vm_type_supported() in 6.8/6.9,
  // kvm_x86_vendor_init() from 6.10. So not without TDP.
  if (t.swProtected && host.tdp) mask |= 1 << K.KVM_X86_SW_PROTECTED_VM;
  if (host.platform.name === 'snp' && t.sev) mask |= vendor(K.KVM_X86_SEV_VM) | vendor(K.KVM_X86_SEV_ES_VM);
  if (host.platform.name === 'snp' && t.snp) mask |= vendor(K.KVM_X86_SNP_VM);
  if (host.platform.name === 'tdx' && t.tdx) mask |= vendor(K.KVM_X86_TDX_VM);
  return mask;
}

/** kvm_arch_init_vm(): an unsupported type is -EINVAL. */
export function checkVmType(host: Host, type: bigint): number {
  if (type >= 32n || !(supportedVmTypes(host) & (1 << Number(type)))) {
    throw kerr(
      'EINVAL',
      `kvm_arch_init_vm: ${K.vmTypeName(type)} not supported by ${host.profile.name} on ${host.platform.name}`,
    );
  }
  return Number(type);
}

export function createArchVm(vm: Vm): ArchVm {
  const factory = archVmFactory(vm.type);
  if (factory) return factory(vm);
  switch (vm.type) {
    case K.KVM_X86_DEFAULT_VM:
      return { name: 'default', hasPrivateMem: false, privacySource: 'none', preFaultAllowed: true };
    case K.KVM_X86_SW_PROTECTED_VM:
      return { name: 'sw_protected', hasPrivateMem: true, privacySource: 'attribute', preFaultAllowed: true };
    default:
      throw kerr('EINVAL', `kvm_arch_init_vm: VM type ${vm.type} has no model`);
  }
}
