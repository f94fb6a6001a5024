/**
 * The 'snp' platform: an AMD host with SEV-SNP enabled. Host-wide state, like the hardware: the RMP,
 * the PSP firmware, the SEV ASID space, and /dev/sev (drivers/crypto/ccp/sev-dev.c) through which
 * KVM's firmware commands are authorised (sev_issue_cmd_external_user: the fd must be /dev/sev).
 * kvm_arch_gmem_invalidate() is sev_gmem_invalidate(): freed guest_memfd pages go back to the
 * hypervisor in the RMP.
 */
import {
  SEV_ISSUE_CMD,
  SEV_PLATFORM_STATUS,
  SEV_RET_SUCCESS,
  SNP_PLATFORM_STATUS,
} from '../../../uapi/sev.js';
import { kerr } from '../../errors.js';
import { KFile, type Stat } from '../../file.js';
import type { Host } from '../../host.js';
import type { Vm } from '../../kvm/vm.js';
import type { Platform } from '../../platform.js';
import { copyFromUser, copyToUser, type UStruct, u32 } from '../../uaccess.js';
import { Psp, SNP_FW_API_MAJOR, SNP_FW_API_MINOR } from './psp.js';
import { Rmp } from './rmp.js';

/** CPUID 0x8000001F EDX: the first ASID usable by plain SEV guests; SEV-ES/SNP use 1..MIN-1. */
export const MIN_SEV_ASID = 100;
export const MAX_SEV_ASID = 509;

export class SevDevFile extends KFile {
  readonly kind = 'sev';

  /** sev_ioctl(): SEV_ISSUE_CMD with the platform status commands QEMU and libvirt use. */
  override ioctl(request: number, name: string, arg: unknown): number {
    if (request !== SEV_ISSUE_CMD) throw kerr('ENOTTY', `sev_ioctl: ${name} is not a /dev/sev ioctl`);
    const s = copyFromUser(arg, 'sev_issue_cmd');
    const cmd = Number(u32(s, 'cmd'));
    const data = s['data'];
    switch (cmd) {
      case SEV_PLATFORM_STATUS:
      case SNP_PLATFORM_STATUS: {
        const out = copyFromUser(data, 'platform status');
        copyToUser(out, 'api_major', BigInt(SNP_FW_API_MAJOR));
        copyToUser(out, 'api_minor', BigInt(SNP_FW_API_MINOR));
        copyToUser(out, 'state', 1n); // INIT / SNP initialised
        copyToUser(s, 'error', BigInt(SEV_RET_SUCCESS));
        return 0;
      }
      default:
        throw kerr('EINVAL', `sev_ioctl: platform command ${cmd} is not modelled`);
    }
  }

  stat(): Stat {
    return { st_ino: 2, st_size: 0, st_blksize: 4096, st_mode: 0o20600 };
  }

  protected release(): void {}
}

/** The hook the SNP module gives for VMs that are not SEV types (set by index.ts). */
export type VmMemEncryptOp = (vm: Vm, cmd: UStruct) => number;

export class SnpPlatform implements Platform {
  readonly name = 'snp' as const;
  readonly rmp: Rmp;
  readonly psp: Psp;
  private readonly esAsids = new Set<number>();
  private readonly sevAsids = new Set<number>();

  constructor(
    readonly host: Host,
    private readonly memEncOp: VmMemEncryptOp,
    rmp?: Rmp,
  ) {
    this.rmp = rmp ?? new Rmp();
    this.psp = new Psp(this.rmp);
  }

  open(path: string): KFile | undefined {
    return path === '/dev/sev' ? new SevDevFile(this.host) : undefined;
  }

  /** sev_gmem_invalidate(): every assigned pfn of a freed folio goes back to the hypervisor. */
  gmemInvalidate(pfnStart: number, pfnEnd: number): void {
    if (this.rmp.entries.some(pfnStart, pfnEnd, () => true)) this.rmp.makeShared(pfnStart, pfnEnd);
  }

  vmMemEncryptOp(vm: Vm, cmd: UStruct): number {
    return this.memEncOp(vm, cmd);
  }

  /** sev_asid_new(): SEV-ES/SNP guests 1..MIN_SEV_ASID-1, SEV guests MIN..MAX; -EBUSY when none is free. */
  asidNew(es: boolean): number {
    const [set, lo, hi] = es
      ? [this.esAsids, 1, MIN_SEV_ASID - 1]
      : [this.sevAsids, MIN_SEV_ASID, MAX_SEV_ASID];
    for (let a = lo; a <= hi; a++) {
      if (!set.has(a)) {
        set.add(a);
        return a;
      }
    }
    throw kerr('EBUSY', 'sev_asid_new: no free ASID');
  }

  asidFree(asid: number): void {
    this.esAsids.delete(asid);
    this.sevAsids.delete(asid);
  }
}
