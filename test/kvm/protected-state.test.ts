/**
 * vCPU state of VMs with protected state: kvm_vcpu_ioctl() copies KVM_SET_REGS / KVM_SET_SREGS /
 * KVM_SET_FPU in (memdup_user: -EFAULT first), then arch/x86/kvm/x86.c refuses them:
 * kvm_arch_vcpu_ioctl_set_regs/sregs() when kvm->arch.has_protected_state and
 * vcpu->arch.guest_state_protected; kvm_arch_vcpu_ioctl_set_fpu() when the FPU state is confidential
 * (-EINVAL with has_protected_state, else 0 and nothing changes). Who sets what: sev.c
 * snp_launch_update_vmsa() sets guest_state_protected at LAUNCH_FINISH and leaves the FPU alone (only
 * __sev_launch_update_vmsa(), SEV-ES's LAUNCH_UPDATE_VMSA, calls fpstate_set_confidential()); tdx.c tdx_vcpu_create()
 * does both (guest_state_protected unless ATTR_DEBUG, which KVM_SUPPORTED_TD_ATTRS never allows).
 * KVM_SET_MSRS never fails for a refused MSR: msr_io() returns how many entries were set before it
 * (svm.c sev_es_prevent_msr_access() refuses PAT once an SNP VMSA is encrypted; kvm_set_msr_common()
 * refuses an invalid PAT on VMX and SVM).
 */
import { describe, expect, it } from 'vitest';
import type { SyscallError } from '../../src/index.js';
import type { SevArchVm } from '../../src/kernel/arch/sev/sev.js';
import { createHost } from '../../src/kernel/host.js';
import type { VmFile } from '../../src/kernel/kvm/vm.js';
import { uapi } from '../../src/uapi/index.js';
import { errnoOf } from '../errno-of.js';
import { SNP_KERNELS, type SnpVm, snpVm } from '../sev/snp-vm.js';
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

/** One NORMAL page measured, then KVM_SEV_SNP_LAUNCH_FINISH (which encrypts the VMSAs). */
function launchFinish(s: SnpVm): void {
  s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', {
    gfn_start: 0,
    uaddr: s.hva,
    len: 4096,
    type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
  });
  s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
}

/** setters() where the state is the VMM's: every struct taken, none given -EFAULT (the copy). */
const ACCEPTED = {
  regs: undefined,
  sregs: undefined,
  fpu: undefined,
  regsNoStruct: 'EFAULT',
  sregsNoStruct: 'EFAULT',
  fpuNoStruct: 'EFAULT',
};

describe.each(SNP_KERNELS)('SNP vCPU state on %s (sev.c snp_launch_update_vmsa)', (kernel) => {
  it('before LAUNCH_FINISH the VMM sets registers and FPU; afterwards KVM_SET_REGS/SREGS are -EINVAL, KVM_SET_FPU still 0', () => {
    const s = snpVm(kernel);
    const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    expect(setters(s.host, vcpu)).toEqual(ACCEPTED);
    launchFinish(s);
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

describe.each(UPSTREAM)('TD vCPU state on %s (tdx.c tdx_vcpu_create)', (kernel) => {
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

describe('SNP: what KVM_SET_REGS left is what LAUNCH_FINISH encrypts (sev_es_sync_vmsa)', () => {
  it.each(SNP_KERNELS)(
    '%s: __set_regs() writes every register (left out = 0) and RFLAGS with its fixed bit',
    (kernel) => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      s.host.ioctl(vcpu, 'KVM_SET_REGS', { rip: 0x1234, rflags: 0, rbx: 7 });
      launchFinish(s);
      const vm = (s.host.fds.lookup(s.vm) as VmFile).vm;
      const st = (vm.arch as SevArchVm).vcpuOf(vm.vcpus.get(0)!).state;
      expect({ rip: st.rip, rflags: st.rflags, rbx: st.rbx, rdx: st.rdx }).toEqual({
        rip: 0x1234n,
        rflags: 2n,
        rbx: 7n,
        rdx: 0n, // the reset value 0x600 is overwritten by the struct's 0
      });
    },
  );

  it.each(SNP_KERNELS)(
    '%s: __set_sregs() takes every field of kvm_sregs (a segment left out is a zero segment)',
    (kernel) => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      const cs = { selector: 0xf000, base: 0xffff0000, limit: 0xffff, type: 0xb, s: 1, present: 1 };
      s.host.ioctl(vcpu, 'KVM_SET_SREGS', { cs, cr0: 0x10 });
      launchFinish(s);
      const vm = (s.host.fds.lookup(s.vm) as VmFile).vm;
      const st = (vm.arch as SevArchVm).vcpuOf(vm.vcpus.get(0)!).state;
      // attrib: type 0xb | S (bit 4) | P (bit 7), svm_set_segment()'s packing.
      expect(st.cs).toEqual({ selector: 0xf000, attrib: 0x9b, limit: 0xffff, base: 0xffff0000n });
      expect(st.ds).toEqual({ selector: 0, attrib: 0, limit: 0, base: 0n }); // left out
      expect(st.gdtr.limit).toBe(0); // the reset state's was 0xffff
      expect(st.cr0).toBe(0x10n);
    },
  );
});

describe('has_protected_state also decides read-only memslots (kvm_arch_has_readonly_mem)', () => {
  it.each([
    ['tdx-dev-2024-07', undefined],
    ['v6.16', 'EINVAL'],
  ])('%s TD: a read-only plain memslot -> %s', (kernel, errno) => {
    const td = buildTd(kernel);
    const hva = td.host.mmap({ length: 4096, prot: 1, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    const slot = {
      slot: 5,
      flags: uapi.KVM_MEM_READONLY,
      guest_phys_addr: 0x8000_0000,
      memory_size: 4096,
      userspace_addr: hva,
    };
    expect(errnoOf(() => td.host.ioctl(td.vm, 'KVM_SET_USER_MEMORY_REGION', slot))).toBe(errno);
  });
});

describe('TD vCPU state on tdx-dev-2024-07: no has_protected_state yet (set for TDs in January 2025)', () => {
  it('KVM_SET_REGS/SREGS succeed, KVM_SET_FPU returns 0 on the confidential FPU; KVM_GET_FPU a zeroed struct', () => {
    const td = buildTd('tdx-dev-2024-07');
    expect(setters(td.host, td.vcpu)).toEqual(ACCEPTED);
    const fpu: Record<string, unknown> = { fcw: 0x37f };
    expect(td.host.ioctl(td.vcpu, 'KVM_GET_FPU', fpu)).toBe(0);
    expect(fpu).toMatchObject({ fcw: 0, mxcsr: 0 });
    const regs: Record<string, unknown> = {};
    expect(td.host.ioctl(td.vcpu, 'KVM_GET_REGS', regs)).toBe(0);
    // What KVM_SET_REGS left: REGS has no RDX, so 0 (the reset value was 0x600).
    expect(regs).toMatchObject({ rip: 0xfff0, rdx: 0 });
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

describe('KVM_GET_REGS (x86.c kvm_arch_vcpu_ioctl_get_regs)', () => {
  it.each(SNP_KERNELS)(
    '%s SNP: the reset state and what KVM_SET_REGS left, until LAUNCH_FINISH; then -EINVAL before anything is written',
    (kernel) => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      const reset: Record<string, unknown> = {};
      expect(s.host.ioctl(vcpu, 'KVM_GET_REGS', reset)).toBe(0);
      // kvm_vcpu_reset(): RDX 0x600 (no CPUID yet), RIP 0xfff0, RFLAGS the fixed bit.
      expect(reset).toMatchObject({ rax: 0, rdx: 0x600, rip: 0xfff0, rflags: 2, r15: 0 });
      s.host.ioctl(vcpu, 'KVM_SET_REGS', { rip: 0x1234, rflags: 0, rbx: 7 });
      const after: Record<string, unknown> = {};
      s.host.ioctl(vcpu, 'KVM_GET_REGS', after);
      expect(after).toMatchObject({ rbx: 7, rdx: 0, rip: 0x1234, rflags: 2 });
      launchFinish(s);
      const untouched: Record<string, unknown> = { rip: 99 };
      expect(errnoOf(() => s.host.ioctl(vcpu, 'KVM_GET_REGS', untouched))).toBe('EINVAL');
      expect(untouched).toEqual({ rip: 99 });
      // The refusal comes before copy_to_user(): a bad pointer is -EINVAL too.
      expect(errnoOf(() => s.host.ioctl(vcpu, 'KVM_GET_REGS', null))).toBe('EINVAL');
    },
  );

  it.each(UPSTREAM)('%s TD: -EINVAL (KVM_GET_SREGS and KVM_GET_FPU too)', (kernel) => {
    const td = buildTd(kernel);
    expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_GET_REGS', {}))).toBe('EINVAL');
    expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_GET_SREGS', {}))).toBe('EINVAL');
    expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_GET_FPU', {}))).toBe('EINVAL');
  });

  it('KVM_GET_SREGS, KVM_GET_FPU and KVM_GET_SUPPORTED_CPUID, real ioctls answered by the vendor module and the CPU: EOPNOTSUPP, said plainly', () => {
    const host = createHost({ kernel: 'v7.0' });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_SREGS', {}))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_FPU', {}))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_SUPPORTED_CPUID', { nent: 8, entries: [] }))).toBe(
      'EOPNOTSUPP',
    );
    // What the kernel answers whatever the state: copy_to_user() of no struct, the header, nent < 1.
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_SREGS', null))).toBe('EFAULT');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_FPU', null))).toBe('EFAULT');
    expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_SUPPORTED_CPUID', null))).toBe('EFAULT');
    expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_SUPPORTED_CPUID', { nent: 0, entries: [] }))).toBe('E2BIG');
  });

  it('a vCPU that has run: the model has no guest registers and says so (EOPNOTSUPP), where the kernel returns them', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const hva = host.mmap({ length: 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 4096,
      userspace_addr: hva,
    });
    host.guest(vcpu).load([{ op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_REGS', {}))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_REGS', null))).toBe('EFAULT');
  });
});

describe('KVM_GET_FPU / KVM_SET_FPU on a confidential FPU without has_protected_state', () => {
  it('SEV-ES through KVM_SEV_ES_INIT on a default VM (not modelled; the hook forced here): 0, the set ignored, the get a zeroed struct', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vmFd = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const vcpu = host.ioctl(vmFd, 'KVM_CREATE_VCPU', 0);
    const vm = (host.fds.lookup(vmFd) as VmFile).vm;
    (vm.arch as { fpuConfidential?: () => boolean }).fpuConfidential = () => true;
    expect(host.ioctl(vcpu, 'KVM_SET_FPU', { fcw: 0x37f, mxcsr: 0x1f80 })).toBe(0);
    const got: Record<string, unknown> = { fcw: 0x1234, mxcsr: 0x1f80 };
    expect(host.ioctl(vcpu, 'KVM_GET_FPU', got)).toBe(0);
    expect(got).toMatchObject({ fcw: 0, fsw: 0, ftwx: 0, mxcsr: 0 });
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_GET_FPU', null))).toBe('EFAULT');
  });
});

describe('KVM_SET_MSRS (x86.c msr_io: the count set, never an errno for a refused MSR)', () => {
  const PAT = { index: 0x277, reserved: 0, data: 0x0007040600070406n };
  const BAD_PAT = { ...PAT, data: 0x0007040600070402n }; // memory type 2: !kvm_pat_valid()

  it.each(SNP_KERNELS)(
    '%s SNP: PAT is set before LAUNCH_FINISH; afterwards sev_es_prevent_msr_access() stops the count at 0',
    (kernel) => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      expect(s.host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 1, entries: [PAT] })).toBe(1);
      // svm_set_msr() -> kvm_set_msr_common(): an invalid PAT is refused.
      expect(s.host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 2, entries: [PAT, BAD_PAT] })).toBe(1);
      launchFinish(s);
      expect(s.host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 1, entries: [PAT] })).toBe(0);
      // msr_io() checks come first: too many entries, entries missing.
      expect(errnoOf(() => s.host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 256, entries: [PAT] }))).toBe('E2BIG');
      expect(errnoOf(() => s.host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 2, entries: [PAT] }))).toBe('EFAULT');
    },
  );

  it('every entry is copied before any is set (memdup_user): a bad entry after a refused one is -EFAULT', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const other = { index: 0x10, reserved: 0, data: 0n }; // an MSR the model does not know
    expect(host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 2, entries: [PAT, other] })).toBe(1);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 2, entries: [other, null] }))).toBe(
      'EFAULT',
    );
  });

  it('an invalid PAT: refused by VMX and SVM (tdx and snp platforms), taken on the generic platform as the 6.18 PVM host takes it', () => {
    const counts = (['generic', 'snp', 'tdx'] as const).map((platform) => {
      const host = createHost({ kernel: 'v7.0', platform });
      const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
      const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
      return host.ioctl(vcpu, 'KVM_SET_MSRS', { nmsrs: 1, entries: [BAD_PAT] });
    });
    expect(counts).toEqual([1, 0, 0]);
  });
});
