/**
 * Registration of the AMD side: the 'snp' platform (RMP, PSP, /dev/sev) and the SEV VM types
 * (KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM). Imported by arch/register.ts.
 */
import { KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM, KVM_X86_SNP_VM } from '../../../uapi/kvm.js';
import { kerr } from '../../errors.js';
import { registerPlatform } from '../../platform.js';
import { registerArchVm } from '../arch-vm.js';
import { SnpPlatform } from './platform.js';
import { SevArchVm, sevMemEncIoctl, sevMemEncRegion } from './sev.js';

registerPlatform('snp', (host) => {
  const platform: SnpPlatform = new SnpPlatform(
    host,
    (vm, arg) => sevMemEncIoctl(vm, platform, undefined, arg),
    (vm, register, addr, size) =>
      sevMemEncRegion(vm, vm.arch instanceof SevArchVm ? vm.arch.sev : undefined, register, addr, size),
  );
  return platform;
});

for (const type of [KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM]) {
  registerArchVm(type, (vm) => {
    const p = vm.host.platform;
    // kvm_is_vm_type_supported() already refused these types on other platforms.
    if (!(p instanceof SnpPlatform))
      throw kerr('EINVAL', `kvm_arch_init_vm: VM type ${type} needs an SNP host`);
    return new SevArchVm(vm, p);
  });
}

export { SnpPlatform } from './platform.js';
export { SevArchVm } from './sev.js';
