/**
 * The x86 IRQCHIP modes. Expected values from the kernel source:
 * - arch/x86/kvm/x86.c kvm_arch_vm_ioctl() case KVM_CREATE_IRQCHIP: irqchip_in_kernel() -> -EEXIST,
 *   then (6.18+, b3a37bff8daf "KVM: TDX: Reject fully in-kernel irqchip if EOIs are protected, i.e.
 *   for TDX VMs", kvm-x86-misc-6.18) kvm->arch.has_protected_eoi -> -ENOTTY, then kvm->created_vcpus
 *   -> -EINVAL; then irqchip_mode = KVM_IRQCHIP_KERNEL;
 * - x86.c kvm_vm_ioctl_enable_cap() case KVM_CAP_SPLIT_IRQCHIP: args[0] > MAX_NR_RESERVED_IOAPIC_PINS
 *   (ioapic.h: KVM_MAX_IRQ_ROUTES, 4096) -> -EINVAL, then irqchip_in_kernel() or created_vcpus -> -EEXIST;
 * - x86.c kvm_vm_ioctl_check_extension(): KVM_CAP_IRQCHIP -> 1;
 * - arch/x86/kvm/vmx/tdx.c tdx_vcpu_create() (torvalds/linux @3829d81b6958, 6.16): TD_STATE_INITIALIZED
 *   (-EIO), then !irqchip_split() -> -EINVAL; kept in 6.18+ for a VM without any IRQCHIP (Sean
 *   Christopherson in <aK4rmD7QpotYXume@google.com>); the 2024 TDX series: `!vcpu->arch.apic` -> -EINVAL;
 * - tools/testing/selftests/kvm/lib/x86/processor.c @b2128290c299 kvm_arch_vm_post_create():
 *   vm_create_irqchip() for every x86 VM, SNP included, before KVM_SEV_INIT2 and the vCPUs.
 * include/uapi/linux/kvm.h: KVM_CAP_IRQCHIP 0, KVM_CREATE_IRQCHIP _IO(KVMIO, 0x60).
 */
import { describe, expect, it } from 'vitest';
import { allProfiles, createHost, type Host, SyscallError, uapi } from '../../src/index.js';
import { errnoOf } from '../errno-of.js';
import { initVm } from '../tdx/td.js';

const ALL = allProfiles().map((p) => p.name);
const SEV_ES = allProfiles()
  .filter((p) => p.vmTypes.sev)
  .map((p) => p.name);
const SNP = allProfiles()
  .filter((p) => p.vmTypes.snp)
  .map((p) => p.name);
/** TDX with has_protected_eoi (6.18+). */
const TDX_PROTECTED_EOI = ['v6.18', 'v6.19', 'v7.0', 'v6.18+no-direct-map'];
/** Upstream TDX before has_protected_eoi: the full IRQCHIP is refused only at KVM_CREATE_VCPU. */
const TDX_6_16 = ['v6.16'];
/** The 2024 dev tree: tdx_vcpu_create() needs only an in-kernel local APIC. */
const TDX_DEV_TREE = ['tdx-dev-2024-07', 'tdx-dev-2024-07+eexist', 'tdx-dev-2024-07+eexist+poc'];

function newVm(kernel: string, type: number = uapi.KVM_X86_DEFAULT_VM, platform?: 'snp' | 'tdx') {
  const host = createHost({ kernel, platform });
  const kvm = host.open('/dev/kvm');
  return { host, kvm, vm: host.ioctl(kvm, 'KVM_CREATE_VM', type) };
}
const createIrqchip = (host: Host, vm: number) => errnoOf(() => host.ioctl(vm, 'KVM_CREATE_IRQCHIP'));
const split = (host: Host, vm: number, pins = 24) =>
  errnoOf(() =>
    host.ioctl(vm, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [pins] }),
  );

describe('uapi: include/uapi/linux/kvm.h', () => {
  it('KVM_CAP_IRQCHIP = 0, KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60)', () => {
    expect(uapi.KVM_CAP_IRQCHIP).toBe(0);
    expect(uapi.KVM_CREATE_IRQCHIP).toBe(0xae60);
  });
});

describe.each(ALL)('IRQCHIP on a default VM [%s]', (kernel) => {
  it('kvm_vm_ioctl_check_extension: KVM_CAP_IRQCHIP and KVM_CAP_SPLIT_IRQCHIP -> 1 (/dev/kvm and VM)', () => {
    const { host, kvm, vm } = newVm(kernel);
    for (const fd of [kvm, vm]) {
      expect(host.ioctl(fd, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_IRQCHIP)).toBe(1);
      expect(host.ioctl(fd, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_SPLIT_IRQCHIP)).toBe(1);
    }
  });

  it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP: 0, then again -> EEXIST; a vCPU after it is created', () => {
    const { host, vm } = newVm(kernel);
    expect(host.ioctl(vm, 'KVM_CREATE_IRQCHIP')).toBe(0);
    expect(createIrqchip(host, vm)).toBe('EEXIST');
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 0)).toBe('number');
    // irqchip_in_kernel() is checked before created_vcpus: still EEXIST.
    expect(createIrqchip(host, vm)).toBe('EEXIST');
  });

  it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP after a vCPU -> EINVAL (created_vcpus), and the VM keeps no IRQCHIP', () => {
    const { host, vm } = newVm(kernel);
    host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    expect(createIrqchip(host, vm)).toBe('EINVAL');
    // Nothing was created: KVM_CAP_SPLIT_IRQCHIP fails for the vCPU (EEXIST), not for an IRQCHIP.
    const e = (() => {
      try {
        host.ioctl(vm, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [24] });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(SyscallError);
    expect((e as SyscallError).code).toBe('EEXIST');
    expect((e as SyscallError).reason).toContain('vCPUs already created');
  });

  it('kvm_vm_ioctl_enable_cap KVM_CAP_SPLIT_IRQCHIP after KVM_CREATE_IRQCHIP -> EEXIST; > 4096 pins -> EINVAL first', () => {
    const { host, vm } = newVm(kernel);
    host.ioctl(vm, 'KVM_CREATE_IRQCHIP');
    expect(split(host, vm, 4097)).toBe('EINVAL');
    expect(split(host, vm, 4096)).toBe('EEXIST');
    expect(split(host, vm, 24)).toBe('EEXIST');
    expect(split(host, vm, 0)).toBe('EEXIST');
  });

  it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP after KVM_CAP_SPLIT_IRQCHIP -> EEXIST (irqchip_in_kernel covers split)', () => {
    const { host, vm } = newVm(kernel);
    expect(split(host, vm, 0)).toBeUndefined();
    let e: unknown;
    try {
      host.ioctl(vm, 'KVM_CREATE_IRQCHIP');
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(SyscallError);
    expect((e as SyscallError).code).toBe('EEXIST');
    expect((e as SyscallError).explanation).toContain('KVM_IRQCHIP_SPLIT');
    // With a vCPU too, EEXIST still comes first.
    host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    expect(createIrqchip(host, vm)).toBe('EEXIST');
  });
});

describe.each(SEV_ES)('IRQCHIP on a SEV-ES VM [%s]', (kernel) => {
  it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP: no SEV check; KVM_SEV_INIT2 and a vCPU after it', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_SEV_ES_VM, 'snp');
    expect(host.ioctl(vm, 'KVM_CREATE_IRQCHIP')).toBe(0);
    const cmd = { id: uapi.KVM_SEV_INIT2, data: {}, sev_fd: host.open('/dev/sev'), error: 0 };
    expect(host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd)).toBe(0);
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 0)).toBe('number');
  });
});

describe.each(SNP)('selftests lib/x86/processor.c kvm_arch_vm_post_create on an SNP VM [%s]', (kernel) => {
  it('vm_create_irqchip() (KVM_CREATE_IRQCHIP) succeeds, then KVM_SEV_INIT2 { 0 }, then the vCPU', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_SNP_VM, 'snp');
    expect(host.ioctl(vm, 'KVM_CREATE_IRQCHIP')).toBe(0);
    const cmd = { id: uapi.KVM_SEV_INIT2, data: {}, sev_fd: host.open('/dev/sev'), error: 0 };
    expect(host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd)).toBe(0);
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 0)).toBe('number');
    expect(split(host, vm)).toBe('EEXIST');
  });
});

describe.each(TDX_PROTECTED_EOI)(
  'IRQCHIP on a TD with protected EOIs [%s] (6.18+: b3a37bff8daf)',
  (kernel) => {
    it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP on a TD -> ENOTTY (has_protected_eoi); KVM_CAP_SPLIT_IRQCHIP still works', () => {
      const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
      expect(host.ioctl(vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_IRQCHIP)).toBe(1);
      expect(createIrqchip(host, vm)).toBe('ENOTTY');
      expect(split(host, vm)).toBeUndefined();
      // irqchip_in_kernel() is checked before has_protected_eoi.
      expect(createIrqchip(host, vm)).toBe('EEXIST');
    });

    it('tdx_vcpu_create without any IRQCHIP -> EINVAL (the irqchip_split() check stays for this case)', () => {
      const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
      initVm({ host, vm });
      expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_VCPU', 0))).toBe('EINVAL');
    });
  },
);

describe.each(TDX_6_16)('IRQCHIP on a TD before has_protected_eoi [%s]', (kernel) => {
  it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP on a TD -> 0; KVM_CAP_SPLIT_IRQCHIP then -> EEXIST', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
    expect(host.ioctl(vm, 'KVM_CREATE_IRQCHIP')).toBe(0);
    expect(split(host, vm)).toBe('EEXIST');
  });

  it('tdx_vcpu_create with a full IRQCHIP -> EIO before INIT_VM, then EINVAL (!irqchip_split)', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
    host.ioctl(vm, 'KVM_CREATE_IRQCHIP');
    expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_VCPU', 0))).toBe('EIO');
    initVm({ host, vm });
    let e: unknown;
    try {
      host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(SyscallError);
    expect((e as SyscallError).code).toBe('EINVAL');
    expect((e as SyscallError).reason).toContain('tdx_vcpu_create');
    expect((e as SyscallError).explanation).toContain('KVM_CREATE_IRQCHIP');
  });
});

describe.each(TDX_DEV_TREE)('IRQCHIP on a TD of the 2024 dev tree [%s]', (kernel) => {
  it('kvm_arch_vm_ioctl KVM_CREATE_IRQCHIP on a TD -> 0 (no has_protected_eoi)', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
    expect(host.ioctl(vm, 'KVM_CREATE_IRQCHIP')).toBe(0);
    expect(split(host, vm)).toBe('EEXIST');
  });

  it('tdx_vcpu_create with a full IRQCHIP: the vCPU has its local APIC (`!vcpu->arch.apic` passes)', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
    host.ioctl(vm, 'KVM_CREATE_IRQCHIP');
    initVm({ host, vm });
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 0)).toBe('number');
  });

  it('tdx_vcpu_create without any IRQCHIP -> EINVAL (no in-kernel local APIC)', () => {
    const { host, vm } = newVm(kernel, uapi.KVM_X86_TDX_VM, 'tdx');
    initVm({ host, vm });
    expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_VCPU', 0))).toBe('EINVAL');
  });
});

describe('the TDX profile lists above match the profiles', () => {
  it('every profile with KVM_X86_TDX_VM is in exactly one list', () => {
    const tdx = allProfiles()
      .filter((p) => p.vmTypes.tdx)
      .map((p) => p.name)
      .sort();
    expect([...TDX_PROTECTED_EOI, ...TDX_6_16, ...TDX_DEV_TREE].sort()).toEqual(tdx);
  });
});

describe('KVM_CREATE_PIT2 and KVM_IRQ_LINE (x86.c; a 6.18.44 host agrees: conformance irq_line.*, pit2.*)', () => {
  const vmOn = (kernel: string) => {
    const host = createHost({ kernel });
    return { host, vm: host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0) };
  };
  it('up to 6.8 a PIT needs no in-kernel PIC; from 6.9 it does (-ENOENT; "Check irqchip mode before create PIT")', () => {
    for (const [kernel, noPic] of [
      ['v6.8', undefined],
      ['v6.11', 'ENOENT'],
      ['v7.0', 'ENOENT'],
    ] as const) {
      const { host, vm } = vmOn(kernel);
      expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_PIT2', { flags: 0 }))).toBe(noPic);
    }
  });

  it('a second PIT is -EEXIST; KVM_IRQ_LINE is -ENXIO until an IRQCHIP exists, then 0', () => {
    const { host, vm } = vmOn('v6.18');
    expect(errnoOf(() => host.ioctl(vm, 'KVM_IRQ_LINE', { irq: 4, level: 1 }))).toBe('ENXIO');
    host.ioctl(vm, 'KVM_CREATE_IRQCHIP');
    expect(host.ioctl(vm, 'KVM_IRQ_LINE', { irq: 4, level: 1 })).toBe(0);
    expect(host.ioctl(vm, 'KVM_CREATE_PIT2', { flags: 0 })).toBe(0);
    expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_PIT2', { flags: 0 }))).toBe('EEXIST');
  });
});
