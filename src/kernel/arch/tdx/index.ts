/**
 * Registration of the TDX VM type (KVM_X86_TDX_VM -> arch/tdx/tdx-vm.ts) and the 'tdx' platform,
 * whose state is the TDX module (arch/tdx/module.ts). Also the handles the launch builders use to
 * read what the module holds (MRTD) and, for launch orders KVM cannot express, to issue a SEAMCALL.
 */
import { KVM_X86_TDX_VM } from '../../../uapi/kvm.js';
import { kerr } from '../../errors.js';
import type { Host } from '../../host.js';
import type { Vm } from '../../kvm/vm.js';
import { VmFile } from '../../kvm/vm.js';
import { type Platform, registerPlatform } from '../../platform.js';
import { registerArchVm } from '../arch-vm.js';
import { DEFAULT_TDX_MODULE_CONFIG, TdxModule, type TdxStatus } from './module.js';
import { TdxVm } from './tdx-vm.js';

export type { TdxModuleConfig } from './module.js';
export { DEFAULT_TDX_MODULE_CONFIG, TdxModule } from './module.js';
export { TdxVm } from './tdx-vm.js';

/** The 'tdx' platform: the host's TDX module (host-wide, like the hardware). */
export class TdxPlatform implements Platform {
  readonly name = 'tdx' as const;
  readonly module = new TdxModule(DEFAULT_TDX_MODULE_CONFIG);
}

registerPlatform('tdx', () => new TdxPlatform());

registerArchVm(KVM_X86_TDX_VM, (vm: Vm) => {
  const p = vm.host.platform;
  if (!(p instanceof TdxPlatform)) throw kerr('EINVAL', 'kvm_arch_init_vm: no TDX module on this host');
  return new TdxVm(vm, p.module);
});

/** The TD behind a VM fd (throws TypeError for anything else: a caller error, not a kernel one). */
export function tdxVmOf(host: Host, vmFd: number): TdxVm {
  const f = host.fds.lookup(vmFd);
  if (!(f instanceof VmFile) || !(f.vm.arch instanceof TdxVm))
    throw new TypeError(`fd ${vmFd} is not a TDX VM`);
  return f.vm.arch;
}

/** The MRTD the modelled TDX module holds for a finalized TD (what a TD report carries). */
export function tdMrtd(host: Host, vmFd: number): Uint8Array | undefined {
  return tdxVmOf(host, vmFd).mrtd();
}

/**
 * TDH.MR.EXTEND issued to the module directly, outside KVM. No KVM ioctl issues it alone (upstream
 * KVM extends inside KVM_TDX_INIT_MEM_REGION, page by page); the launch builder uses this to model
 * the "two-pass" order of older TDX stacks. Returns the SEAMCALL status.
 */
export function tdhMrExtendDirect(host: Host, vmFd: number, gpa: bigint): TdxStatus {
  const t = tdxVmOf(host, vmFd);
  if (!t.td) throw new TypeError('TDH.MR.EXTEND: the TD has no TDR yet (KVM_TDX_INIT_VM first)');
  return t.module.mrExtend(t.td, gpa);
}
