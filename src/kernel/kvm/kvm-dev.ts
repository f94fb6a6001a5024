/**
 * /dev/kvm: kvm_dev_ioctl() in virt/kvm/kvm_main.c (API version, VM creation, capabilities).
 */
import * as K from '../../uapi/kvm.js';
import { kerr } from '../errors.js';
import { KFile, type Stat } from '../file.js';
import { scalar } from '../uaccess.js';
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
        return 3 * 4096;
      default:
        throw kerr('ENOTTY', `kvm_dev_ioctl: ${name} is not a /dev/kvm ioctl`);
    }
  }

  stat(): Stat {
    return { st_ino: 1, st_size: 0, st_blksize: 4096, st_mode: 0o20666 };
  }

  protected release(): void {}
}
