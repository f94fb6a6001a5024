/**
 * /dev/kvm: kvm_dev_ioctl() in virt/kvm/kvm_main.c (API version, VM creation, capabilities) and
 * kvm_arch_dev_ioctl() in arch/x86/kvm/x86.c for the system device attributes.
 */
import * as K from '../../uapi/kvm.js';
import { kerr } from '../errors.js';
import { KFile, type Stat } from '../file.js';
import type { Host } from '../host.js';
import { copyFromUser, scalar, u32, u64 } from '../uaccess.js';
import { checkExtension, Vm, VmFile } from './vm.js';
import { checkVmType } from './x86.js';

export class KvmDevFile extends KFile {
  readonly kind = 'kvm';

  override ioctl(request: number, name: string, arg: unknown): number {
    switch (request) {
      case K.KVM_GET_API_VERSION:
        if (arg) throw kerr('EINVAL', 'KVM_GET_API_VERSION takes no argument');
        return K.KVM_API_VERSION;
      case K.KVM_CREATE_VM: {
        const type = checkVmType(this.host, scalar(arg, 'VM type'));
        const vm = new Vm(this.host, type, this.host.nextVmId());
        return this.host.fds.install(new VmFile(vm));
      }
      case K.KVM_CHECK_EXTENSION:
        return checkExtension(this.host, undefined, Number(scalar(arg, 'capability')));
      case K.KVM_GET_VCPU_MMAP_SIZE:
        if (arg) throw kerr('EINVAL', 'KVM_GET_VCPU_MMAP_SIZE takes no argument');
        return 3 * 4096;
      case K.KVM_HAS_DEVICE_ATTR:
      case K.KVM_GET_DEVICE_ATTR: {
        // kvm_arch_dev_ioctl(): copy_from_user of struct kvm_device_attr, then
        // kvm_x86_dev_has_attr() / kvm_x86_dev_get_attr().
        const a = copyFromUser(arg, 'kvm_device_attr');
        const val = x86DevGetAttr(this.host, Number(u32(a, 'group')), u64(a, 'attr'));
        if (request === K.KVM_HAS_DEVICE_ATTR) return 0;
        putUserU64(this.host, u64(a, 'addr'), val);
        return 0;
      }
      case K.KVM_GET_SUPPORTED_CPUID: {
        // kvm_arch_dev_ioctl(): the header (-EFAULT), then kvm_dev_ioctl_get_cpuid()'s nent < 1
        // (-E2BIG); the entries are the host CPU's, which the model does not have: said plainly.
        const c = copyFromUser(arg, 'kvm_cpuid2');
        if (u32(c, 'nent') < 1n) throw kerr('E2BIG', 'kvm_dev_ioctl_get_cpuid: nent < 1');
        throw kerr('EOPNOTSUPP', 'KVM_GET_SUPPORTED_CPUID: the host CPU is not modelled by gmemlab');
      }
      default:
        // kvm_dev_ioctl() hands anything else to kvm_arch_dev_ioctl(), whose x86 default is -EINVAL.
        throw kerr('EINVAL', `kvm_arch_dev_ioctl: ${name} is not a /dev/kvm ioctl`);
    }
  }

  stat(): Stat {
    return { st_ino: 1, st_size: 0, st_blksize: 4096, st_mode: 0o20666 };
  }

  protected release(): void {}
}

/**
 * The modelled host's kvm_caps.supported_xcr0 (KVM_X86_XCOMP_GUEST_SUPP): x87, SSE, AVX,
 * AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) and PKRU, as on an EPYC 9004 host. A modelled value, not
 * read from a machine.
 */
export const MODELLED_SUPPORTED_XCR0 = 0x2e7n;

/**
 * __kvm_x86_dev_get_attr(): a non-zero group goes to the vendor's dev_get_attr (SVM:
 * sev_dev_get_attr), -ENXIO without one; group 0 has KVM_X86_XCOMP_GUEST_SUPP; anything else -ENXIO.
 */
function x86DevGetAttr(host: Host, group: number, attr: bigint): bigint {
  if (group) {
    if (!host.platform.devGetAttr) throw kerr('ENXIO', `kvm_x86_dev_get_attr: no attribute group ${group}`);
    return host.platform.devGetAttr(group, attr);
  }
  if (attr === BigInt(K.KVM_X86_XCOMP_GUEST_SUPP)) return MODELLED_SUPPORTED_XCR0;
  throw kerr('ENXIO', `kvm_x86_dev_get_attr: unknown system attribute ${attr}`);
}

/** put_user() of a u64 at a user address: -EFAULT where it cannot be written. */
function putUserU64(host: Host, addr: bigint, val: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, val, true);
  if (addr > BigInt(Number.MAX_SAFE_INTEGER - 8))
    throw kerr('EFAULT', `put_user: address 0x${addr.toString(16)} not mapped`);
  host.mm.copyToUser(Number(addr), b);
}
