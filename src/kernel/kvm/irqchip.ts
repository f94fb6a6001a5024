/**
 * The x86 interrupt-controller mode of a VM, kvm->arch.irqchip_mode (arch/x86/kvm/irq.h:
 * irqchip_in_kernel() = any mode but NONE, irqchip_split() = SPLIT):
 * - KVM_CREATE_IRQCHIP (kvm_arch_vm_ioctl() in arch/x86/kvm/x86.c): 'kernel', the PIC and the
 *   IOAPIC in KVM, and a local APIC for every vCPU created afterwards;
 * - KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) (kvm_vm_ioctl_enable_cap()): 'split', only the local
 *   APICs in KVM, the IOAPIC (args[0] pins reserved for it) and the PIC in userspace.
 * Either one is final: the other, or the same again, is -EEXIST, and both must come before the
 * first vCPU. Versions: 6.18+ refuse KVM_CREATE_IRQCHIP for a VM with protected EOIs (a TD) with
 * -ENOTTY (profile.tdx.protectedEoi, b3a37bff8daf). The same checks in 6.8 .. 7.0 otherwise.
 * Only the mode is modelled, with KVM_IRQ_LINE's and KVM_CREATE_PIT2's checks: no PIC/IOAPIC
 * state, GSI routing, KVM_IRQ_LINE_STATUS or KVM_GET/SET_IRQCHIP; those stay unknown VM ioctls
 * (-ENOTTY in the model, not the kernel's answer).
 */
import * as K from '../../uapi/kvm.js';
import { kerr } from '../errors.js';
import { describeProvenance } from '../provenance.js';
import { copyFromUser } from '../uaccess.js';
import type { Vm } from './vm.js';

/** enum kvm_irqchip_mode: KVM_IRQCHIP_NONE, KVM_IRQCHIP_KERNEL, KVM_IRQCHIP_SPLIT. */
export type IrqchipMode = 'none' | 'kernel' | 'split';

const MODE_NAME: Record<IrqchipMode, string> = {
  none: 'KVM_IRQCHIP_NONE',
  kernel: 'KVM_IRQCHIP_KERNEL (KVM_CREATE_IRQCHIP)',
  split: 'KVM_IRQCHIP_SPLIT (KVM_CAP_SPLIT_IRQCHIP)',
};

/** Why the VM's IRQCHIP exists, for -EEXIST explanations. */
function existing(vm: Vm): string {
  const since = vm.irqchipSince ? ` since ${describeProvenance(vm.irqchipSince)}` : '';
  return `irqchip_mode is ${MODE_NAME[vm.irqchipMode]}${since}`;
}

/** kvm_arch_vm_ioctl() case KVM_CREATE_IRQCHIP (x86.c; the argument is ignored). */
export function kvmCreateIrqchip(vm: Vm): number {
  // irqchip_in_kernel(): a full or a split IRQCHIP already exists.
  if (vm.irqchipMode !== 'none')
    throw kerr('EEXIST', 'KVM_CREATE_IRQCHIP: the VM already has an IRQCHIP', existing(vm));
  // 6.18+ (b3a37bff8daf): kvm->arch.has_protected_eoi, set by tdx_vm_init(): KVM cannot intercept
  // the guest's EOIs, so it cannot emulate level-triggered interrupts, i.e. an IOAPIC.
  if (vm.arch.hasProtectedEoi)
    throw kerr('ENOTTY', 'KVM_CREATE_IRQCHIP: the VM has protected EOIs (TDX): only KVM_CAP_SPLIT_IRQCHIP');
  // kvm->created_vcpus: the local APICs are made at vCPU creation.
  if (vm.vcpus.size > 0) throw kerr('EINVAL', `KVM_CREATE_IRQCHIP: ${vm.vcpus.size} vCPU(s) already created`);
  // kvm_pic_init(), kvm_ioapic_init(), the default routing (-ENOMEM only): not modelled.
  vm.irqchipSince = vm.host.tracer.here('kvm_arch_vm_ioctl(KVM_CREATE_IRQCHIP)');
  vm.irqchipMode = 'kernel';
  return 0;
}

/**
 * kvm_arch_vm_ioctl() case KVM_CREATE_PIT2: the config (-EFAULT; its flags are not checked), a
 * second PIT -EEXIST, from 6.9 no in-kernel PIC (no full IRQCHIP) -ENOENT. The PIT itself (its
 * timer and speaker port) is not modelled.
 */
export function kvmCreatePit2(vm: Vm, arg: unknown): number {
  copyFromUser(arg, 'kvm_pit_config');
  if (vm.hasPit) throw kerr('EEXIST', 'KVM_CREATE_PIT2: the VM already has a PIT');
  if (vm.profile.x86.pitNeedsPic && vm.irqchipMode !== 'kernel')
    throw kerr('ENOENT', 'KVM_CREATE_PIT2: no in-kernel PIC', existing(vm));
  vm.hasPit = true;
  return 0;
}

/**
 * KVM_IRQ_LINE (kvm_vm_ioctl() > kvm_vm_ioctl_irq_line()): the level (-EFAULT), then -ENXIO without
 * an IRQCHIP in the kernel (full or split). The line's effect on the PIC or IOAPIC is not
 * modelled; KVM_IRQ_LINE_STATUS, whose status depends on it, is not offered.
 */
export function kvmIrqLine(vm: Vm, arg: unknown): number {
  copyFromUser(arg, 'kvm_irq_level');
  if (vm.irqchipMode === 'none') throw kerr('ENXIO', 'KVM_IRQ_LINE: no IRQCHIP in the kernel');
  return 0;
}

/** kvm_vm_ioctl_enable_cap() case KVM_CAP_SPLIT_IRQCHIP (x86.c); `pins` = args[0]. */
export function kvmEnableSplitIrqchip(vm: Vm, pins: bigint): number {
  if (pins > BigInt(K.MAX_NR_RESERVED_IOAPIC_PINS))
    throw kerr(
      'EINVAL',
      `KVM_CAP_SPLIT_IRQCHIP: ${pins} reserved IOAPIC pins (max ${K.MAX_NR_RESERVED_IOAPIC_PINS})`,
    );
  // -EEXIST for both: irqchip_in_kernel() (either mode), then kvm->created_vcpus.
  if (vm.irqchipMode !== 'none')
    throw kerr('EEXIST', 'KVM_CAP_SPLIT_IRQCHIP: the VM already has an IRQCHIP', existing(vm));
  if (vm.vcpus.size > 0) throw kerr('EEXIST', 'KVM_CAP_SPLIT_IRQCHIP: vCPUs already created');
  vm.irqchipSince = vm.host.tracer.here('kvm_vm_ioctl_enable_cap(KVM_CAP_SPLIT_IRQCHIP)');
  vm.irqchipMode = 'split';
  return 0;
}
