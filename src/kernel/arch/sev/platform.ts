/**
 * The 'snp' platform: an AMD host with SEV-SNP enabled. Host-wide state, like the hardware: the RMP,
 * the PSP firmware, the SEV ASID space, and /dev/sev (drivers/crypto/ccp/sev-dev.c) through which
 * KVM's firmware commands are authorised (sev_issue_cmd_external_user: the fd must be /dev/sev).
 * kvm_arch_gmem_invalidate() is sev_gmem_invalidate(): freed guest_memfd pages go back to the
 * hypervisor in the RMP.
 */
import {
  KVM_SNP_POLICY_MASK_VALID,
  KVM_X86_GRP_SEV,
  KVM_X86_SEV_SNP_REQ_CERTS,
  KVM_X86_SEV_VMSA_FEATURES,
  KVM_X86_SNP_POLICY_BITS,
  SEV_ISSUE_CMD,
  SEV_PLATFORM_STATUS,
  SEV_RET_SUCCESS,
  SNP_PLATFORM_STATUS,
  SNP_POLICY_MASK_VALID,
  SVM_SEV_FEAT_DEBUG_SWAP,
  SVM_SEV_FEAT_SECURE_TSC,
} from '../../../uapi/sev.js';
import { kerr } from '../../errors.js';
import { KFile, type Stat } from '../../file.js';
import type { Host } from '../../host.js';
import type { Vm } from '../../kvm/vm.js';
import type { Platform } from '../../platform.js';
import { copyFromUser, copyToUser, u32 } from '../../uaccess.js';
import { Psp, SNP_FW_API_MAJOR, SNP_FW_API_MINOR } from './psp.js';
import { Rmp } from './rmp.js';

/** CPUID 0x8000001F EDX: the first ASID usable by plain SEV guests; SEV-ES/SNP use 1..MIN-1. */
export const MIN_SEV_ASID = 100;
export const MAX_SEV_ASID = 509;
/**
 * The modelled host's TSC frequency (tsc_khz; kvm->arch.default_tsc_khz of every VM, as no
 * KVM_SET_TSC_KHZ is modelled): 2.4 GHz, the base clock of an EPYC 9004 (Genoa) part. Non-zero, so
 * 6.18+ KVM offers Secure TSC (sev_hardware_setup() needs tsc_khz).
 */
export const HOST_TSC_KHZ = 2_400_000;

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
export type VmMemEncryptOp = (vm: Vm, arg: unknown) => number;
/** sev.c's (un)register_region for every VM of the host (set by index.ts). */
export type VmMemEncRegion = (vm: Vm, register: boolean, addr: bigint, size: bigint) => number;

export class SnpPlatform implements Platform {
  readonly name = 'snp' as const;
  readonly rmp: Rmp;
  readonly psp: Psp;
  /** X86_FEATURE_SNP_SECURE_TSC (CPUID 0x8000001F EAX[8]) on the modelled CPU (a test may clear it). */
  cpuSecureTsc = true;
  /** The host's tsc_khz (a test may model a host without one). */
  tscKhz = HOST_TSC_KHZ;
  private readonly esAsids = new Set<number>();
  private readonly sevAsids = new Set<number>();

  constructor(
    readonly host: Host,
    private readonly memEncOp: VmMemEncryptOp,
    private readonly memEncRegion: VmMemEncRegion,
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

  vmMemEncryptOp(vm: Vm, arg: unknown): number {
    return this.memEncOp(vm, arg);
  }

  vmMemEncRegion(vm: Vm, register: boolean, addr: bigint, size: bigint): number {
    return this.memEncRegion(vm, register, addr, size);
  }

  /**
   * sev_hardware_setup(): sev_supported_vmsa_features. DebugSwap (module parameter debug_swap, on by
   * default); 6.18+: Secure TSC when SNP is enabled, the host has tsc_khz and the CPU has
   * X86_FEATURE_SNP_SECURE_TSC.
   */
  supportedVmsaFeatures(): bigint {
    let f = BigInt(SVM_SEV_FEAT_DEBUG_SWAP);
    if (this.host.profile.sev.secureTsc && this.tscKhz && this.cpuSecureTsc)
      f |= BigInt(SVM_SEV_FEAT_SECURE_TSC);
    return f;
  }

  /**
   * The policy bits snp_launch_start() accepts: SNP_POLICY_MASK_VALID before 6.19; 6.19+
   * snp_supported_policy_bits = sev_get_snp_policy_bits() & KVM_SNP_POLICY_MASK_VALID
   * (sev_hardware_setup()).
   */
  snpSupportedPolicyBits(): bigint {
    if (!this.host.profile.sev.snpPolicyBitsFromFirmware) return SNP_POLICY_MASK_VALID;
    return this.psp.snpPolicyBits() & KVM_SNP_POLICY_MASK_VALID;
  }

  /**
   * sev_dev_get_attr() (kvm_x86_ops.dev_get_attr, added with KVM_SEV_INIT2 in 6.10): group
   * KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, (6.19+) KVM_X86_SNP_POLICY_BITS and (7.0)
   * KVM_X86_SEV_SNP_REQ_CERTS; anything else is -ENXIO. Before 6.10 SVM had no dev_get_attr: -ENXIO from kvm_x86_dev_get_attr().
   */
  devGetAttr(group: number, attr: bigint): bigint {
    const p = this.host.profile;
    if (!p.vmTypes.sev || group !== KVM_X86_GRP_SEV)
      throw kerr('ENXIO', `sev_dev_get_attr: unknown attribute group ${group}`);
    if (attr === BigInt(KVM_X86_SEV_VMSA_FEATURES)) return this.supportedVmsaFeatures();
    if (attr === BigInt(KVM_X86_SNP_POLICY_BITS) && p.sev.snpPolicyBitsFromFirmware)
      return this.snpSupportedPolicyBits();
    // 7.0: sev_snp_enabled ? 1 : 0; SNP is enabled on this platform.
    if (attr === BigInt(KVM_X86_SEV_SNP_REQ_CERTS) && p.sev.snpReqCerts) return 1n;
    throw kerr('ENXIO', `sev_dev_get_attr: unknown attribute ${attr} in KVM_X86_GRP_SEV`);
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
