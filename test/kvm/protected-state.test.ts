/**
 * vCPU state of VMs with protected state: kvm_vcpu_ioctl() copies KVM_SET_REGS / KVM_SET_SREGS /
 * KVM_SET_FPU in (memdup_user: -EFAULT first), then arch/x86/kvm/x86.c refuses them:
 * kvm_arch_vcpu_ioctl_set_regs/sregs() when kvm->arch.has_protected_state and
 * vcpu->arch.guest_state_protected; kvm_arch_vcpu_ioctl_set_fpu() when the FPU state is confidential
 * (-EINVAL with has_protected_state, else 0 and nothing changes). Who sets what: sev.c
 * snp_launch_update_vmsa() sets guest_state_protected at LAUNCH_FINISH and leaves the FPU alone (only
 * the legacy __sev_launch_update_vmsa() calls fpstate_set_confidential()); tdx.c tdx_vcpu_create()
 * does both (guest_state_protected unless ATTR_DEBUG, which KVM_SUPPORTED_TD_ATTRS never allows).
 */
import { describe, expect, it } from 'vitest';
import type { SyscallError } from '../../src/index.js';
import { createHost } from '../../src/kernel/host.js';
import { uapi } from '../../src/uapi/index.js';
import { errnoOf } from '../errno-of.js';
import { SNP_KERNELS, snpVm } from '../sev/snp-vm.js';
import { buildTd, UPSTREAM } from '../tdx/td.js';

const REGS = { rip: 0xfff0, rflags: 2 };
const SEG = { base: 0, limit: 0xffff, selector: 0, type: 3, present: 1, s: 1 };
const SREGS = {
  cs: { ...SEG, type: 0xb },
  ds: SEG,
  es: SEG,
  fs: SEG,
  gs: SEG,
  ss: SEG,
  tr: { ...SEG, type: 0xb, s: 0 },
  ldt: { ...SEG, type: 2, s: 0 },
  cr0: 0x60000010,
};
const FPU = { fcw: 0x37f, mxcsr: 0x1f80 };

/** The errnos of KVM_SET_REGS, KVM_SET_SREGS and KVM_SET_FPU on a vCPU, with good structs and with none. */
function setters(host: ReturnType<typeof createHost>, vcpu: number) {
  return {
    regs: errnoOf(() => host.ioctl(vcpu, 'KVM_SET_REGS', REGS)),
    sregs: errnoOf(() => host.ioctl(vcpu, 'KVM_SET_SREGS', SREGS)),
    fpu: errnoOf(() => host.ioctl(vcpu, 'KVM_SET_FPU', FPU)),
    regsNoStruct: errnoOf(() => host.ioctl(vcpu, 'KVM_SET_REGS', null)),
    sregsNoStruct: errnoOf(() => host.ioctl(vcpu, 'KVM_SET_SREGS', null)),
    fpuNoStruct: errnoOf(() => host.ioctl(vcpu, 'KVM_SET_FPU', null)),
  };
}

describe.each(SNP_KERNELS)('SNP vCPU state on %s (sev.c snp_launch_update_vmsa)', (kernel) => {
  it('before LAUNCH_FINISH the VMM sets registers and FPU; afterwards KVM_SET_REGS/SREGS are -EINVAL, KVM_SET_FPU still 0', () => {
    const s = snpVm(kernel);
    const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    expect(setters(s.host, vcpu)).toEqual({
      regs: undefined,
      sregs: undefined,
      fpu: undefined,
      regsNoStruct: 'EFAULT',
      sregsNoStruct: 'EFAULT',
      fpuNoStruct: 'EFAULT',
    });
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', {
      gfn_start: 0,
      uaddr: s.hva,
      len: 4096,
      type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
    });
    s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
    // The refusal names the step that protected the state: the VMSA's LAUNCH_UPDATE inside FINISH.
    try {
      s.host.ioctl(vcpu, 'KVM_SET_REGS', REGS);
      expect.unreachable();
    } catch (e) {
      expect((e as SyscallError).explanation).toMatch(/snp_launch_finish > snp_launch_update_vmsa/);
    }
    expect(setters(s.host, vcpu)).toEqual({
      regs: 'EINVAL',
      sregs: 'EINVAL',
      fpu: undefined,
      // memdup_user() comes first.
      regsNoStruct: 'EFAULT',
      sregsNoStruct: 'EFAULT',
      fpuNoStruct: 'EFAULT',
    });
  });
});

describe.each([...UPSTREAM, 'tdx-dev-2024-07'])('TD vCPU state on %s (tdx.c tdx_vcpu_create)', (kernel) => {
  it('KVM_SET_REGS/SREGS/FPU are -EINVAL from the vCPU on, after the copy (-EFAULT first)', () => {
    const td = buildTd(kernel);
    expect(setters(td.host, td.vcpu)).toEqual({
      regs: 'EINVAL',
      sregs: 'EINVAL',
      fpu: 'EINVAL',
      regsNoStruct: 'EFAULT',
      sregsNoStruct: 'EFAULT',
      fpuNoStruct: 'EFAULT',
    });
  });
});

describe('VMs without protected state', () => {
  for (const type of [uapi.KVM_X86_DEFAULT_VM, uapi.KVM_X86_SW_PROTECTED_VM]) {
    it(`VM type ${type}: the VMM sets registers and FPU at any time`, () => {
      const host = createHost({ kernel: 'v7.0' });
      const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', type);
      const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
      expect(setters(host, vcpu)).toMatchObject({ regs: undefined, sregs: undefined, fpu: undefined });
    });
  }
});
