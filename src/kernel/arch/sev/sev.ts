/**
 * KVM's SEV side for SEV, SEV-ES and SEV-SNP VMs. Mirrors arch/x86/kvm/svm/sev.c at
 * torvalds/linux 0097f9df996f (a 6.17 tree: the 6.11..6.19 populate code), with the differences of
 * other releases taken from profile.sev / profile.gmem (6.11-rc1; <= 6.16 SMT / SINGLE_SOCKET policy
 * checks; 6.18 GHCB minimum, Secure TSC, empty LAUNCH_UPDATE; 6.19 firmware policy bits; 7.0): sev_mem_enc_ioctl() dispatch, KVM_SEV_INIT2
 * (__sev_guest_init), KVM_SEV_SNP_LAUNCH_START / _UPDATE (kvm_gmem_populate +
 * sev_gmem_post_populate) / _FINISH (snp_launch_update_vmsa), sev_gmem_prepare(), and the guest's
 * PVALIDATE. Parity: every check these functions make before the firmware, in their order.
 * Not modelled: legacy SEV launch commands (KVM_SEV_LAUNCH_*, SEND/RECEIVE, DBG), mirror VMs and
 * intra-host migration, 2 MiB RMP entries, vCPU creation races (-EBUSY).
 */
import * as K from '../../../uapi/kvm.js';
import { PAGE_SIZE } from '../../../uapi/mman.js';
import * as S from '../../../uapi/sev.js';
import { HostFault, InvariantViolation, KernelError, kerr } from '../../errors.js';
import type { GuestOp, GuestProgram } from '../../guest/program.js';
import type { Host } from '../../host.js';
import {
  type GmemInode,
  gmemWritePage,
  kvmGmemPopulate,
  type PostPopulate,
  type PostPopulateRun,
} from '../../kvm/guest-memfd.js';
import { gmemSlotCause } from '../../kvm/memslots.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import type { Vm } from '../../kvm/vm.js';
import type { KernelProfile } from '../../profiles/types.js';
import { describeProvenance } from '../../provenance.js';
import {
  addOverflows,
  copyFromUser,
  copyToUser,
  isNullUserPointer,
  pageAligned,
  type UStruct,
  u8,
  u16,
  u32,
  u64,
} from '../../uaccess.js';
import type { ArchVm, GuestOpResult } from '../arch-vm.js';
import type { SnpIdBlockInput } from './id-block.js';
import { SNP_PAGE_TYPE_VMSA, SNP_VMSA_GPA } from './launch-digest.js';
import { SevDevFile, type SnpPlatform } from './platform.js';
import { pscNotSnp, sevTermExit, snpBeginPsc, snpBeginPscMsr, snpCompletePsc } from './psc.js';
import type { SnpLaunchPage } from './psp.js';
import {
  applyRegs,
  applySregs,
  KVM_SET_FPU,
  KVM_SET_MSRS,
  type SevVcpu,
  setFpu,
  setMsrs,
  svmResetState,
} from './svm-vcpu.js';
import { encodeVmsa } from './vmsa.js';

const GHCB_VERSION_MAX = 2;
const GHCB_VERSION_DEFAULT = 2;

const SNP_PAGE_TYPES = new Set([
  S.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
  S.KVM_SEV_SNP_PAGE_TYPE_ZERO,
  S.KVM_SEV_SNP_PAGE_TYPE_UNMEASURED,
  S.KVM_SEV_SNP_PAGE_TYPE_SECRETS,
  S.KVM_SEV_SNP_PAGE_TYPE_CPUID,
]);

/** arch/x86/include/asm/sev-common.h: the GHCB MSR protocol's termination request. */
const GHCB_MSR_TERM_REQ = 0x100n;

/** struct kvm_sev_info, for one VM. */
export class SevInfo {
  needInit: boolean;
  active = false;
  esActive = false;
  vmsaFeatures = 0n;
  ghcbVersion = 0;
  asid = 0;
  /** The PSP guest context handle (sev->snp_context). */
  snpContext: number | undefined;
  /** sev->fd, remembered by SNP_LAUNCH_START. */
  fd = -1;
  policy = 0n;
  /** sev->snp_certs_enabled (7.0 KVM_SEV_SNP_ENABLE_REQ_CERTS): guest certificate requests exit to the VMM. */
  snpCertsEnabled = false;
  /** sev->regions_list: the ranges KVM_MEMORY_ENCRYPT_REG_REGION pinned, as userspace gave them. */
  readonly regions: { uaddr: bigint; size: bigint }[] = [];

  constructor(readonly vmType: number) {
    // svm_vm_init(): SEV VM types need KVM_SEV_INIT2.
    this.needInit =
      vmType === K.KVM_X86_SEV_VM || vmType === K.KVM_X86_SEV_ES_VM || vmType === K.KVM_X86_SNP_VM;
  }

  get sevGuest(): boolean {
    return this.active;
  }
  get sevEsGuest(): boolean {
    return this.active && this.esActive;
  }
  get sevSnpGuest(): boolean {
    return this.sevEsGuest && (this.vmsaFeatures & BigInt(S.SVM_SEV_FEAT_SNP_ACTIVE)) !== 0n;
  }
}

/** The kvm_sev_cmd as the handlers see it: id, sev_fd and the error written back. */
interface SevCmd {
  id: number;
  sevFd: number;
  error: number;
  data: unknown;
}

type FwRc = 0 | 'EBADF' | 'EIO';

/**
 * __sev_issue_cmd(): the fd must be /dev/sev (-EBADF), then the firmware runs; a non-zero status
 * is -EIO with the status in *error (sev_do_cmd() writes the status for every command it issues).
 */
function sevIssueCmd(host: Host, fd: number, err: { error: number }, fw: () => number): FwRc {
  let f: unknown;
  try {
    f = host.fds.lookup(fd);
  } catch (e) {
    if (e instanceof KernelError) return 'EBADF';
    throw e;
  }
  if (!(f instanceof SevDevFile)) return 'EBADF';
  const status = fw();
  err.error = status;
  return status === 0 ? 0 : 'EIO';
}

function cmdId(v: unknown): number {
  if (typeof v === 'string') {
    if (!Object.hasOwn(S.KVM_SEV_CMDS, v)) throw kerr('EINVAL', `sev_mem_enc_ioctl: unknown command '${v}'`);
    return S.KVM_SEV_CMDS[v]!;
  }
  return Number(u32({ id: v }, 'id'));
}

/**
 * The commands sev_mem_enc_ioctl()'s switch has a case for: SEND_UPDATE_VMSA, RECEIVE_UPDATE_VMSA
 * and CERT_EXPORT have ids in the uAPI but none, so they are -EINVAL like an unknown id.
 */
const SEV_CMDS_HANDLED = new Set(
  Object.values(S.KVM_SEV_CMDS).filter(
    (id) =>
      id !== S.KVM_SEV_SEND_UPDATE_VMSA &&
      id !== S.KVM_SEV_RECEIVE_UPDATE_VMSA &&
      id !== S.KVM_SEV_CERT_EXPORT &&
      id !== S.KVM_SEV_SNP_ENABLE_REQ_CERTS,
  ),
);

/**
 * Whether this kernel's sev_mem_enc_ioctl() has a case for command `id`: KVM_SEV_INIT2 came with the
 * SEV VM types (6.10), the SNP launch commands with KVM_X86_SNP_VM (6.11). Before, both are the
 * switch's default: -EINVAL.
 */
function commandExists(profile: KernelProfile, id: number): boolean {
  if (id === S.KVM_SEV_INIT2) return profile.vmTypes.sev;
  if (id >= S.KVM_SEV_SNP_LAUNCH_START) return profile.vmTypes.snp;
  return true;
}

/**
 * sev_mem_enc_ioctl(). `arch` is undefined for VM types that are not SEV types (default, SW_PROTECTED);
 * `arg` is the user pointer: NULL is success before anything is read.
 */
export function sevMemEncIoctl(
  vm: Vm,
  platform: SnpPlatform,
  arch: SevArchVm | undefined,
  arg: unknown,
): number {
  if (isNullUserPointer(arg)) return 0;
  const raw = copyFromUser(arg, 'kvm_sev_cmd');
  const c: SevCmd = {
    id: cmdId(raw['id']),
    sevFd: Number(u32(raw, 'sev_fd')),
    error: Number(u32(raw, 'error')),
    data: raw['data'],
  };
  const sev = arch?.sev;
  const t = vm.host.tracer;
  // Once INIT2 made the VM an SNP guest, only SNP commands (no copy back: goto out).
  if (sev?.sevSnpGuest && c.id < S.KVM_SEV_SNP_LAUNCH_START)
    throw kerr('EPERM', 'sev_mem_enc_ioctl: legacy SEV command on an SNP guest');
  const known =
    (SEV_CMDS_HANDLED.has(c.id) && commandExists(vm.profile, c.id)) ||
    (c.id === S.KVM_SEV_SNP_ENABLE_REQ_CERTS && vm.profile.sev.snpReqCerts);
  if (!known) throw kerr('EINVAL', `sev_mem_enc_ioctl: no case for command id ${c.id}`);
  try {
    switch (c.id) {
      case S.KVM_SEV_INIT:
      case S.KVM_SEV_ES_INIT:
        // sev_guest_init(): only for KVM_X86_DEFAULT_VM.
        if (vm.type !== K.KVM_X86_DEFAULT_VM)
          throw kerr('EINVAL', 'sev_guest_init: VM type is not KVM_X86_DEFAULT_VM');
        throw kerr('EOPNOTSUPP', 'sev_guest_init: legacy KVM_SEV_INIT is not modelled by gmemlab');
      case S.KVM_SEV_INIT2:
        return t.within('sev_guest_init2', () => sevGuestInit2(vm, platform, sev, c));
      case S.KVM_SEV_SNP_LAUNCH_START:
        return t.within('snp_launch_start', () => snpLaunchStart(vm, platform, sev, c));
      case S.KVM_SEV_SNP_LAUNCH_UPDATE:
        return t.within('snp_launch_update', () => snpLaunchUpdate(vm, platform, sev, c));
      case S.KVM_SEV_SNP_LAUNCH_FINISH:
        return t.within('snp_launch_finish', () => snpLaunchFinish(vm, platform, arch, c));
      case S.KVM_SEV_SNP_ENABLE_REQ_CERTS:
        // snp_enable_certs() (7.0).
        if (vm.vcpus.size > 0 || !sev?.sevSnpGuest)
          throw kerr('EINVAL', 'snp_enable_certs: vCPUs already created or not an SNP guest');
        sev.snpCertsEnabled = true;
        return 0;
      case S.KVM_SEV_LAUNCH_UPDATE_VMSA:
        if (!sev?.sevEsGuest) throw kerr('ENOTTY', 'sev_launch_update_vmsa: not an SEV-ES guest');
        throw kerr('EOPNOTSUPP', 'sev_launch_update_vmsa: legacy SEV-ES launch is not modelled by gmemlab');
      case S.KVM_SEV_RECEIVE_UPDATE_DATA:
        // The one legacy handler whose sev_guest() check is -EINVAL, not -ENOTTY (since 5.11).
        if (!sev?.sevGuest) throw kerr('EINVAL', 'sev_receive_update_data: not an SEV guest');
        throw kerr('EOPNOTSUPP', 'sev_receive_update_data: SEV migration is not modelled by gmemlab');
      default:
        // Every other legacy handler starts with sev_guest(kvm) -> -ENOTTY.
        if (!sev?.sevGuest) throw kerr('ENOTTY', `sev_mem_enc_ioctl: command ${c.id} needs an SEV guest`);
        throw kerr('EOPNOTSUPP', `sev_mem_enc_ioctl: legacy SEV command ${c.id} is not modelled by gmemlab`);
    }
  } finally {
    // copy_to_user(argp, &sev_cmd): the error field goes back whatever the result.
    copyToUser(raw, 'error', BigInt(c.error >>> 0));
  }
}

/**
 * sev_mem_enc_register_region() / sev_mem_enc_unregister_region(), checks in their order. `sev` is
 * undefined for VMs that are not SEV types. Registering pins the range (sev_pin_memory(): length 0
 * or a wrapping range -EINVAL; pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM) short of the whole
 * range -ENOMEM). The model's VMM holds CAP_IPC_LOCK, so RLIMIT_MEMLOCK never refuses; the pin
 * itself changes nothing the model keeps (a pinned page is not kept from MADV_DONTNEED's zap in
 * the model either). Unregistering needs the exact (addr, size) registered: else -EINVAL.
 */
export function sevMemEncRegion(
  vm: Vm,
  sev: SevInfo | undefined,
  register: boolean,
  addr: bigint,
  size: bigint,
): number {
  if (!register) {
    if (!sev?.sevGuest) throw kerr('ENOTTY', 'sev_mem_enc_unregister_region: not an SEV guest');
    const i = sev.regions.findIndex((r) => r.uaddr === addr && r.size === size);
    if (i < 0)
      throw kerr('EINVAL', 'sev_mem_enc_unregister_region: no region registered at this address and size');
    sev.regions.splice(i, 1);
    return 0;
  }
  if (!sev?.sevGuest) throw kerr('ENOTTY', 'sev_mem_enc_register_region: not an SEV guest');
  if (size === 0n || addOverflows(addr, size))
    throw kerr('EINVAL', 'sev_pin_memory: length 0 or the range wraps');
  const first = addr & ~0xfffn;
  const npages = Number(((addr + size - 1n) >> 12n) - (first >> 12n) + 1n);
  // After the RLIMIT_MEMLOCK check (not modelled, see above): the page count must fit an int.
  if (npages > 0x7fff_ffff) throw kerr('EINVAL', `sev_pin_memory: ${npages} pages exceed INT_MAX`);
  if (!vm.host.mm.pinUserPages(Number(first), npages, true))
    throw kerr(
      'ENOMEM',
      `sev_pin_memory: pin_user_pages_fast() could not pin all ${npages} pages at 0x${addr.toString(16)}`,
    );
  sev.regions.push({ uaddr: addr, size });
  return 0;
}

/** sev_guest_init2() and __sev_guest_init(), checks in their order. */
function sevGuestInit2(vm: Vm, platform: SnpPlatform, sev: SevInfo | undefined, c: SevCmd): number {
  if (!sev?.needInit) throw kerr('EINVAL', 'sev_guest_init2: VM already initialized or not an SEV VM type');
  if (vm.type !== K.KVM_X86_SEV_VM && vm.type !== K.KVM_X86_SEV_ES_VM && vm.type !== K.KVM_X86_SNP_VM)
    throw kerr('EINVAL', 'sev_guest_init2: VM type is not SEV, SEV-ES or SNP');
  const data = copyFromUser(c.data, 'kvm_sev_init');
  const esActive = vm.type !== K.KVM_X86_SEV_VM;
  const snpActive = vm.type === K.KVM_X86_SNP_VM;
  const sevp = vm.profile.sev;
  let valid = esActive ? platform.supportedVmsaFeatures() : 0n;
  if (vm.vcpus.size > 0) throw kerr('EINVAL', '__sev_guest_init: vCPUs already created');
  if (u32(data, 'flags') !== 0n) throw kerr('EINVAL', '__sev_guest_init: flags must be 0');
  // 6.18+ (Secure TSC): only SNP VMs may ask for SVM_SEV_FEAT_SECURE_TSC.
  if (sevp.secureTsc && !snpActive) valid &= ~BigInt(S.SVM_SEV_FEAT_SECURE_TSC);
  const features = u64(data, 'vmsa_features');
  if (features & ~valid)
    throw kerr('EINVAL', `__sev_guest_init: vmsa_features 0x${features.toString(16)} not supported`);
  let ghcb = Number(u16(data, 'ghcb_version'));
  if (ghcb > GHCB_VERSION_MAX || (!esActive && ghcb))
    throw kerr('EINVAL', `__sev_guest_init: ghcb_version ${ghcb} not valid for this VM type`);
  // SEV-ES and SNP default to GHCB version 2 (6.18 moved this before the SNP minimum check).
  if (esActive && !ghcb) ghcb = GHCB_VERSION_DEFAULT;
  // 6.18+ (00f0b959ffb0): an SNP guest needs GHCB protocol version 2.
  if (sevp.snpGhcbVersionMin2 && snpActive && ghcb < 2)
    throw kerr('EINVAL', `__sev_guest_init: ghcb_version ${ghcb} below 2 for an SNP VM`);
  if (sev.active) throw kerr('EINVAL', '__sev_guest_init: already active');
  sev.asid = platform.asidNew(esActive);
  sev.active = true;
  sev.esActive = esActive;
  sev.vmsaFeatures = features;
  sev.ghcbVersion = ghcb;
  if (snpActive) sev.vmsaFeatures |= BigInt(S.SVM_SEV_FEAT_SNP_ACTIVE);
  sev.needInit = false;
  return 0;
}

/** snp_launch_start(), then snp_context_create() (GCTX_CREATE), SNP_LAUNCH_START, snp_bind_asid(). */
function snpLaunchStart(vm: Vm, platform: SnpPlatform, sev: SevInfo | undefined, c: SevCmd): number {
  if (!sev?.sevSnpGuest) throw kerr('ENOTTY', 'snp_launch_start: not an SNP guest (KVM_SEV_INIT2 first)');
  const params = copyFromUser(c.data, 'kvm_sev_snp_launch_start');
  if (sev.snpContext !== undefined) throw kerr('EINVAL', 'snp_launch_start: SNP context already exists');
  const psp = platform.psp;
  // Up to 6.11 the context comes first, and a refused start below leaves it (e3a7792d9676).
  if (vm.profile.sev.launchStartContextFirst) sev.snpContext = snpContextCreate(vm, psp, c);
  if (u16(params, 'flags') !== 0n) throw kerr('EINVAL', 'snp_launch_start: flags must be 0');
  const policy = u64(params, 'policy');
  // 6.19+: snp_supported_policy_bits (firmware & KVM); before, SNP_POLICY_MASK_VALID.
  if (policy & ~platform.snpSupportedPolicyBits())
    throw kerr('EINVAL', `snp_launch_start: policy 0x${policy.toString(16)} has unsupported bits`);
  if (!(policy & S.SNP_POLICY_MASK_RSVD_MBO))
    throw kerr('EINVAL', 'snp_launch_start: policy bit 17 (reserved, must be one) is clear');
  // 6.11 .. 6.16: KVM itself requires SMT allowed and refuses SINGLE_SOCKET (dropped in 6.17).
  if (vm.profile.sev.launchStartChecksSmtSocket) {
    if (!(policy & S.SNP_POLICY_MASK_SMT))
      throw kerr('EINVAL', 'snp_launch_start: policy does not allow SMT (bit 16 clear)');
    if (policy & S.SNP_POLICY_MASK_SINGLE_SOCKET)
      throw kerr('EINVAL', 'snp_launch_start: policy SINGLE_SOCKET (bit 20) is not supported');
  }
  sev.policy = policy;
  const handle = sev.snpContext ?? snpContextCreate(vm, psp, c);
  sev.snpContext = handle;
  // 6.18+ Secure TSC: DESIRED_TSC_FREQ = kvm->arch.default_tsc_khz (the host's tsc_khz here; the
  // kernel only WARNs if it is 0).
  const desiredTscKhz = sev.vmsaFeatures & BigInt(S.SVM_SEV_FEAT_SECURE_TSC) ? platform.tscKhz : 0;
  let rc = sevIssueCmd(vm.host, c.sevFd, c, () => psp.launchStart(handle, policy, desiredTscKhz));
  if (!rc) {
    sev.fd = c.sevFd;
    rc = sevIssueCmd(vm.host, sev.fd, c, () => psp.activate(handle, sev.asid));
  }
  if (rc) {
    // snp_decommission_context()
    psp.decommission(handle);
    sev.snpContext = undefined;
    throw kerr(rc, `snp_launch_start: firmware failed (status ${S.sevRetName(c.error)})`);
  }
  return 0;
}

/** snp_context_create(): SNP_GCTX_CREATE; every failure, even a bad sev_fd, is -ENOTTY. */
function snpContextCreate(vm: Vm, psp: SnpPlatform['psp'], c: SevCmd): number {
  let handle = 0;
  const created = sevIssueCmd(vm.host, c.sevFd, c, () => {
    handle = psp.gctxCreate();
    return 0;
  });
  if (created) throw kerr('ENOTTY', `snp_context_create: SNP_GCTX_CREATE failed (${created})`);
  return handle;
}

/** snp_launch_update(): checks, then kvm_gmem_populate() with sev_gmem_post_populate(). */
function snpLaunchUpdate(vm: Vm, platform: SnpPlatform, sev: SevInfo | undefined, c: SevCmd): number {
  if (!sev?.sevSnpGuest || sev.snpContext === undefined)
    throw kerr('EINVAL', 'snp_launch_update: not an SNP guest or no SNP context (LAUNCH_START first)');
  const params = copyFromUser(c.data, 'kvm_sev_snp_launch_update');
  const gfnStart = u64(params, 'gfn_start');
  const uaddr = u64(params, 'uaddr');
  const len = u64(params, 'len');
  const type = Number(u8(params, 'type'));
  if (!pageAligned(len) || u16(params, 'flags') !== 0n || !SNP_PAGE_TYPES.has(type))
    throw kerr('EINVAL', 'snp_launch_update: len not page aligned, flags set or unknown page type');
  const isZero = type === S.KVM_SEV_SNP_PAGE_TYPE_ZERO;
  // 7.0 (b2e648758038): the source must be 4K aligned (NULL counts as aligned).
  if (vm.profile.sev.launchUpdateSrcAligned && !isZero && !pageAligned(uaddr))
    throw kerr('EINVAL', 'snp_launch_update: uaddr not 4K aligned');
  // 6.18+ (5b66e335ead6): npages = len / PAGE_SIZE must be positive. Before, len 0 reaches
  // kvm_gmem_populate(), which populates nothing and returns 0: success, params unchanged.
  if (vm.profile.sev.launchUpdateRejectsEmpty && len >> 12n <= 0n)
    throw kerr('EINVAL', 'snp_launch_update: len / PAGE_SIZE <= 0');
  const npages = Number(len >> 12n);
  // kvm_slot_can_be_private(gfn_to_memslot()).
  const gfn = gfnStart > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(gfnStart);
  const slot = gfn < 0 ? undefined : vm.memslots.lookup(gfn);
  if (!slot?.gmem)
    throw kerr(
      'EINVAL',
      'snp_launch_update: gfn_start is not in a guest_memfd memslot',
      gmemSlotCause(vm, gfn),
    );
  const src = isZero || uaddr === 0n ? null : Number(uaddr);
  const fw = { error: 0 };
  let count: number;
  try {
    count = kvmGmemPopulate(
      vm,
      gfn,
      src,
      npages,
      postPopulate(vm, platform, sev, type, c.sevFd, fw),
      postPopulateRun(vm, platform, sev, type, c.sevFd, fw),
    );
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    // count < 0: the errno is flattened to -EIO; error = the firmware status (0 if not from firmware).
    c.error = fw.error;
    throw kerr(
      'EIO',
      `snp_launch_update: kvm_gmem_populate failed on gfn 0x${gfnStart.toString(16)} (${e.code}: ${e.reason})`,
      e.explanation,
    );
  }
  copyToUser(params, 'gfn_start', gfnStart + BigInt(count));
  copyToUser(params, 'len', len - BigInt(count) * 4096n);
  if (!isZero) copyToUser(params, 'uaddr', uaddr + BigInt(count) * 4096n);
  return 0;
}

/** sev_gmem_post_populate() for one 4 KiB page. */
function postPopulate(
  vm: Vm,
  platform: SnpPlatform,
  sev: SevInfo,
  type: number,
  sevFd: number,
  fw: { error: number },
): PostPopulate {
  const host = vm.host;
  const t = host.tracer;
  const rmp = platform.rmp;
  return ({ gfn, pfn, inode, index, src, srcPage }) => {
    if (type !== S.KVM_SEV_SNP_PAGE_TYPE_ZERO && src === null)
      throw kerr('EINVAL', 'sev_gmem_post_populate: no source for a non-ZERO page (WARN_ON_ONCE)');
    // 6.11-rc1: the callback's own kvm_mem_is_private() (common code took it over in rc2).
    if (
      vm.profile.sev.postPopulateChecksPrivate &&
      !(vm.memoryAttributes(gfn) & K.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    )
      throw kerr(
        'EINVAL',
        `sev_gmem_post_populate: gfn 0x${gfn.toString(16)} is not private`,
        vm.attributeCause(gfn),
      );
    // snp_lookup_rmpentry(): the page must still be hypervisor-owned.
    if (rmp.assigned(pfn)) {
      throw kerr(
        vm.profile.sev.postPopulateAssignedEexist ? 'EEXIST' : 'EINVAL',
        'sev_gmem_post_populate: RMP entry already assigned',
        `gfn 0x${gfn.toString(16)}: ${rmp.describe(pfn)}`,
      );
    }
    if (src !== null) {
      // 6.11..6.19: copy_from_user() of 4 KiB from src (which need not be page aligned before
      // 7.0); 7.0: memcpy from the page common code pinned.
      const bytes = vm.profile.gmem.populateGupInCommonCode
        ? (srcPage ?? null)
        : t.within('copy_from_user', () => host.mm.copyFromUser(src, PAGE_SIZE));
      gmemWritePage(host, inode, index, bytes, 'sev_gmem_post_populate (copy source)');
    }
    rmp.makePrivate(pfn, gfn, sev.asid, true, 'pre-guest', t.here('rmp_make_private'));
    const page: SnpLaunchPage = {
      pfn,
      read: () => inode.readPage(index) ?? new Uint8Array(4096),
      write: (b) => gmemWritePage(host, inode, index, b, 'SNP_LAUNCH_UPDATE (firmware write)'),
    };
    const since = t.here('SNP_LAUNCH_UPDATE');
    const rc = sevIssueCmd(host, sevFd, fw, () =>
      platform.psp.launchUpdate(sev.snpContext!, page, type, since),
    );
    if (rc) {
      // snp_page_reclaim(): the page is hypervisor-owned again.
      if (platform.psp.pageReclaim(pfn) === 0) {
        rmp.makeShared(pfn, pfn + 1);
        // Invalid CPUID entries: the firmware wrote the expected values into the page; KVM copies
        // them back to the source (a failed copy is only logged).
        if (type === S.KVM_SEV_SNP_PAGE_TYPE_CPUID && fw.error === S.SEV_RET_INVALID_PARAM && src !== null) {
          const back = inode.readPage(index) ?? new Uint8Array(4096);
          try {
            // 6.11..6.19 copy_to_user(src, vaddr, PAGE_SIZE): at src itself, which need not be page
            // aligned; a fault ends the copy. 7.0: memcpy into the pinned (aligned) source page.
            host.mm.write(src, back);
          } catch (e) {
            if (!(e instanceof KernelError) && !(e instanceof HostFault)) throw e;
          }
        }
      }
      throw kerr(rc, `sev_gmem_post_populate: SNP_LAUNCH_UPDATE failed (status ${S.sevRetName(fw.error)})`);
    }
  };
}

/** What the firmware reads of a page that holds zeroes (never written). */
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

/**
 * sev_gmem_post_populate() over a run of pages (guest_memfd.ts PostPopulateRun): the same steps
 * per page (source copied, RMP made private and immutable, SNP_LAUNCH_UPDATE), taken for the
 * whole run, for the page types whose firmware step cannot fail page by page. Stops before the
 * first page whose RMP entry is already assigned; takes nothing when the command itself would fail
 * (bad /dev/sev fd, guest context not launching): the per-page path reports those.
 */
function postPopulateRun(
  vm: Vm,
  platform: SnpPlatform,
  sev: SevInfo,
  type: number,
  sevFd: number,
  fw: { error: number },
): PostPopulateRun | undefined {
  if (
    type !== S.KVM_SEV_SNP_PAGE_TYPE_NORMAL &&
    type !== S.KVM_SEV_SNP_PAGE_TYPE_ZERO &&
    type !== S.KVM_SEV_SNP_PAGE_TYPE_UNMEASURED
  )
    return undefined;
  const host = vm.host;
  const t = host.tracer;
  const rmp = platform.rmp;
  return (run) => {
    if (type !== S.KVM_SEV_SNP_PAGE_TYPE_ZERO && run.src === null) return 0;
    if (!host.fds.has(sevFd) || !(host.fds.lookup(sevFd) instanceof SevDevFile)) return 0;
    if (!platform.psp.launchUpdateRunReady(sev.snpContext!, sev.asid)) return 0;
    let n = run.n;
    // snp_lookup_rmpentry(): up to the first page that is already assigned.
    const assigned = rmp.entries.nextExtent(run.pfn);
    if (assigned !== undefined) n = Math.min(n, assigned.start - run.pfn);
    if (n <= 0) return 0;
    const src = run.src;
    if (src !== null) {
      // copy_from_user() (7.0: memcpy from the page common code pinned): the same bytes.
      const page = host.mm.anonPagesFrom(src);
      for (let i = 0; i < n; i++) run.write(i, page(i));
    }
    rmp.makePrivateRun(run.pfn, n, run.gfn, sev.asid, true, 'pre-guest', t.here('rmp_make_private'));
    const since = t.here('SNP_LAUNCH_UPDATE');
    const done = platform.psp.launchUpdateRun(
      sev.snpContext!,
      run.pfn,
      n,
      type,
      (i) => run.inode.data.get(run.index + i) ?? ZERO_PAGE,
      (i, bytes) => run.write(i, bytes),
      since,
    );
    if (done !== n)
      throw new KernelError('EIO', 'sev_gmem_post_populate: firmware refused a checked run (model defect)');
    fw.error = 0;
    return n;
  };
}

/** snp_launch_finish(): VMSAs measured (snp_launch_update_vmsa), then SNP_LAUNCH_FINISH. */
function snpLaunchFinish(vm: Vm, platform: SnpPlatform, arch: SevArchVm | undefined, c: SevCmd): number {
  const sev = arch?.sev;
  if (!arch || !sev?.sevSnpGuest) throw kerr('ENOTTY', 'snp_launch_finish: not an SNP guest');
  if (sev.snpContext === undefined) throw kerr('EINVAL', 'snp_launch_finish: no SNP context');
  const params = copyFromUser(c.data, 'kvm_sev_snp_launch_finish');
  if (u16(params, 'flags') !== 0n) throw kerr('EINVAL', 'snp_launch_finish: flags must be 0');
  const host = vm.host;
  const t = host.tracer;
  const rmp = platform.rmp;
  t.within('snp_launch_update_vmsa', () => {
    for (const vcpu of vm.vcpus.values()) {
      const sv = arch.vcpuOf(vcpu);
      t.within('sev_es_sync_vmsa', () => arch.syncVmsa(vcpu, sv));
      rmp.makePrivate(
        sv.vmsaPfn,
        Number(SNP_VMSA_GPA >> 12n),
        sev.asid,
        true,
        'pre-guest',
        t.here('rmp_make_private (VMSA)'),
      );
      const page: SnpLaunchPage = { pfn: sv.vmsaPfn, read: () => sv.vmsa!, write: () => {} };
      const since = t.here('SNP_LAUNCH_UPDATE (VMSA)');
      const rc = sevIssueCmd(host, c.sevFd, c, () =>
        platform.psp.launchUpdate(sev.snpContext!, page, SNP_PAGE_TYPE_VMSA, since),
      );
      if (rc) {
        if (platform.psp.pageReclaim(sv.vmsaPfn) === 0) rmp.makeShared(sv.vmsaPfn, sv.vmsaPfn + 1);
        throw kerr(rc, `snp_launch_update_vmsa: vCPU ${vcpu.id} VMSA LAUNCH_UPDATE failed`);
      }
      sv.guestStateProtected = true;
      sv.protectedSince = since;
    }
  });
  let idBlock: SnpIdBlockInput | undefined;
  if (u8(params, 'id_block_en')) {
    // psp_copy_user_blob() of the ID block, then of ID_AUTH (always with an ID block, whatever
    // auth_key_en says); auth_key_en reaches the firmware only here: with id_block_en = 0 KVM
    // neither reads id_auth nor passes auth_key_en.
    idBlock = {
      idBlock: readUserBlob(host, u64(params, 'id_block_uaddr'), S.KVM_SEV_SNP_ID_BLOCK_SIZE, 'id_block'),
      idAuth: readUserBlob(host, u64(params, 'id_auth_uaddr'), S.KVM_SEV_SNP_ID_AUTH_SIZE, 'id_auth'),
      authKeyEn: u8(params, 'auth_key_en') !== 0n,
    };
  }
  const hostData = bytesField(params['host_data'], S.KVM_SEV_SNP_FINISH_DATA_SIZE);
  // A firmware failure (BAD_MEASUREMENT, POLICY_FAILURE, BAD_SIGNATURE...) is -EIO with the status
  // in kvm_sev_cmd.error; pre_fault_allowed stays false.
  const rc = sevIssueCmd(host, sev.fd, c, () =>
    platform.psp.launchFinish(sev.snpContext!, hostData, idBlock),
  );
  if (rc) throw kerr(rc, `snp_launch_finish: SNP_LAUNCH_FINISH failed (status ${S.sevRetName(c.error)})`);
  // No more LAUNCH_UPDATE: private pages can be given to the guest by making the RMP entry private.
  arch.preFaultAllowed = true;
  return 0;
}

/**
 * drivers/crypto/ccp/sev-dev.c psp_copy_user_blob(): a zero address (or length) is -EINVAL before
 * anything is read; then memdup_user(), where an unreadable range is -EFAULT.
 */
function readUserBlob(host: Host, addr: bigint, len: number, what: string): Uint8Array {
  if (addr === 0n || len === 0) throw kerr('EINVAL', `psp_copy_user_blob: ${what} address is 0`);
  if (!host.mm.mapped(Number(addr), len)) throw kerr('EFAULT', `psp_copy_user_blob: ${what} not readable`);
  try {
    return host.mm.read(addr, len);
  } catch (e) {
    // Mapped but not readable (PROT_NONE, a private guest_memfd page, a file page past EOF).
    if (e instanceof HostFault)
      throw kerr('EFAULT', `psp_copy_user_blob: ${what} not readable (${e.reason})`);
    throw e;
  }
}

function bytesField(v: unknown, n: number): Uint8Array {
  const out = new Uint8Array(n);
  if (v instanceof Uint8Array) out.set(v.subarray(0, n));
  else if (Array.isArray(v)) out.set(v.slice(0, n).map((x) => Number(x) & 0xff));
  return out;
}

/** The ArchVm of KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM and KVM_X86_SNP_VM on the 'snp' platform. */
export class SevArchVm implements ArchVm {
  readonly name: string;
  readonly hasPrivateMem: boolean;
  readonly privacySource: 'guest' | 'none';
  /** svm_vm_init(): pre_fault_allowed = !has_private_mem. */
  preFaultAllowed: boolean;
  readonly sev: SevInfo;
  private readonly vcpuState = new Map<Vcpu, SevVcpu>();

  constructor(
    readonly vm: Vm,
    readonly platform: SnpPlatform,
  ) {
    const snp = vm.type === K.KVM_X86_SNP_VM;
    this.name = snp ? 'snp' : vm.type === K.KVM_X86_SEV_ES_VM ? 'sev-es' : 'sev';
    this.hasPrivateMem = snp;
    this.privacySource = snp ? 'guest' : 'none';
    this.preFaultAllowed = !snp;
    this.sev = new SevInfo(vm.type);
  }

  memEncryptOp(arg: unknown): number {
    return sevMemEncIoctl(this.vm, this.platform, this, arg);
  }

  /**
   * svm_vcpu_pre_run() (6.10+, the KVM_SEV_INIT2 series): an SEV, SEV-ES or SNP VM whose INIT2 never
   * ran cannot enter the guest (need_init). Once a vCPU exists INIT2 is refused too, so such a VM
   * never runs.
   */
  vcpuPreRun(_vcpu: Vcpu): void {
    if (this.sev.needInit)
      throw kerr('EINVAL', 'svm_vcpu_pre_run: KVM_SEV_INIT2 has not run on this VM (need_init)');
  }

  /** sev_es_vcpu_create(): the VMSA page (snp_safe_alloc_page). */
  vcpuCreated(vcpu: Vcpu): void {
    this.vcpuState.set(vcpu, {
      vmsaPfn: this.vm.host.reservePfns(1),
      state: svmResetState(),
      vmsa: undefined,
      guestStateProtected: false,
    });
  }

  vcpuOf(vcpu: Vcpu): SevVcpu {
    let s = this.vcpuState.get(vcpu);
    if (!s) {
      this.vcpuCreated(vcpu);
      s = this.vcpuState.get(vcpu)!;
    }
    return s;
  }

  /**
   * snp_launch_update_vmsa() sets guest_state_protected. It does not make the FPU state confidential
   * (only __sev_launch_update_vmsa(), SEV-ES's KVM_SEV_LAUNCH_UPDATE_VMSA, does; not modelled): KVM_SET_FPU
   * still succeeds.
   */
  guestStateProtected(vcpu: Vcpu): string | undefined {
    const sv = this.vcpuOf(vcpu);
    return sv.guestStateProtected
      ? `VMSA encrypted by ${sv.protectedSince ? describeProvenance(sv.protectedSince) : 'LAUNCH_FINISH'}`
      : undefined;
  }

  vcpuIoctl(vcpu: Vcpu, request: number, _name: string, arg: unknown): number | undefined {
    const sv = this.vcpuOf(vcpu);
    switch (request) {
      case KVM_SET_FPU:
        return setFpu(sv.state, arg);
      case KVM_SET_MSRS:
        return setMsrs(sv, arg);
      default:
        return undefined;
    }
  }

  /** sev_es_sync_vmsa(): the save area from the vCPU's registers, SEV_FEATURES = vmsa_features. */
  syncVmsa(vcpu: Vcpu, sv: SevVcpu): void {
    if (sv.guestStateProtected) {
      if (this.vm.profile.sev.syncVmsaRejectsProtected)
        throw kerr('EINVAL', 'sev_es_sync_vmsa: vCPU state already protected (VMSA encrypted)');
      // Before 9b9f7962e3e8 KVM writes the guest-owned VMSA: an RMP #PF oopses the host.
      throw new InvariantViolation(
        'no-host-access-to-private',
        `sev_es_sync_vmsa wrote vCPU ${vcpu.id}'s VMSA, ${this.platform.rmp.describe(sv.vmsaPfn)}: host RMP #PF (kernel oops), fixed by 9b9f7962e3e8`,
      );
    }
    const st = { ...sv.state };
    const sregs = vcpu.archState['sregs'];
    if (sregs && typeof sregs === 'object') applySregs(st, sregs as UStruct);
    const regs = vcpu.archState['regs'];
    if (regs && typeof regs === 'object') applyRegs(st, regs as UStruct);
    st.sevFeatures = this.sev.vmsaFeatures;
    sv.state = st;
    sv.vmsa = encodeVmsa(st);
  }

  /** An assigned RMP entry: the host touching the page takes an RMP #PF (until sev_gmem_invalidate()). */
  guestOwnedPage(inode: GmemInode, index: number): string | undefined {
    const pfn = inode.pfn(index);
    return this.platform.rmp.assigned(pfn) ? this.platform.rmp.describe(pfn) : undefined;
  }

  /**
   * An SNP guest's private access to a page whose RMP entry is assigned to it but not validated
   * (sev_gmem_prepare() makes pages so; LAUNCH_UPDATE's are validated, PVALIDATE validates): the
   * hardware raises #VC (PAGE_NOT_VALIDATED) in the guest; KVM sees nothing.
   */
  guestPrivateAccess(_vcpu: Vcpu, gfn: number): string | undefined {
    if (!this.sev.sevSnpGuest) return undefined;
    const spte = this.vm.mmu.sptes.get(gfn);
    if (spte?.pfnDelta === undefined) return undefined;
    const pfn = gfn + spte.pfnDelta;
    const e = this.platform.rmp.lookup(pfn);
    if (e?.state !== 'guest-invalid' || e.asid !== this.sev.asid) return undefined;
    return `#VC PAGE_NOT_VALIDATED at gfn 0x${gfn.toString(16)}: ${this.platform.rmp.describe(pfn)}`;
  }

  /** kvm_arch_gmem_prepare() = sev_gmem_prepare(): an unassigned page becomes guest-owned, not validated. */
  gmemPrepare(gfn: number, pfn: number): void {
    if (!this.sev.sevSnpGuest) return;
    const rmp = this.platform.rmp;
    if (rmp.assigned(pfn)) return;
    rmp.makePrivate(
      pfn,
      gfn,
      this.sev.asid,
      false,
      'guest-invalid',
      // sev_gmem_prepare() -> rmp_make_private(), under kvm_arch_gmem_prepare().
      this.vm.host.tracer.hereIn(['sev_gmem_prepare'], 'rmp_make_private'),
    );
  }

  finalized(): boolean {
    const h = this.sev.snpContext;
    return h !== undefined && this.platform.psp.context(h)?.state === 'RUNNING';
  }

  /**
   * PVALIDATE of [gpa, gpa+size) by the guest: each page is faulted in privately (NPT), then its RMP
   * entry must belong to this guest at this GPA; Guest-Invalid becomes Guest-Valid. A page already
   * valid is left alone (PVALIDATE_FAIL_NOUPDATE to the guest).
   */
  guestAccept(vcpu: Vcpu, gpa: number, size: number): GuestOpResult | undefined {
    if (!this.sev.sevSnpGuest) return undefined;
    const rmp = this.platform.rmp;
    const first = Math.floor(gpa / 4096);
    const last = Math.ceil((gpa + Math.max(size, 1)) / 4096);
    for (let gfn = first; gfn < last; gfn++) {
      const r = this.vm.mmu.fault(vcpu, gfn, true, { write: false, prefetch: false });
      if (r === 'emulate' || !r.private) continue;
      const pfn = gfn + r.pfnDelta!;
      const e = rmp.lookup(pfn);
      if (!e || e.asid !== this.sev.asid || pfn + e.gfnDelta !== gfn) continue; // #VC / FAIL_INPUT to the guest
      if (e.state === 'guest-invalid')
        rmp.update(pfn, { state: 'guest-valid' }, this.vm.host.tracer.here('PVALIDATE'));
    }
    return { kind: 'done' };
  }

  /**
   * A guest conversion request (arch/sev/psc.ts): SNP guests use the page-state change VMGEXITs
   * (default: the GHCB PSC buffer), or the KVM hypercall ('hypercall': the generic path).
   */
  guestMapGpa(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'map_gpa' }>): boolean | undefined {
    const via = op.via ?? (this.sev.sevSnpGuest ? 'psc_ghcb' : 'hypercall');
    if (via === 'hypercall') return undefined;
    // A plain SEV guest has no GHCB (no VMGEXIT to make): the model refuses the op.
    if (!this.sev.sevEsGuest || (via !== 'psc_msr' && via !== 'psc_ghcb'))
      throw kerr('EINVAL', `guest map_gpa via ${via} is not available on ${this.name} VMs`);
    // sev_handle_vmgexit_msr_protocol() / sev_es_validate_vmgexit(): PSC is SNP-only.
    if (!this.sev.sevSnpGuest) return pscNotSnp(vcpu, prog, op, via);
    const es = this.vcpuOf(vcpu);
    return via === 'psc_msr' ? snpBeginPscMsr(vcpu, es, prog, op) : snpBeginPsc(vcpu, es, prog, op);
  }

  /**
   * GHCB_MSR_TERM_REQ (sev_handle_vmgexit_msr_protocol(): every SEV-ES guest, SNP or not): the
   * termination exit with the request as written; the guest gets no response, so running it again
   * asks again. A plain SEV guest has no GHCB: not available.
   */
  guestTerminate(vcpu: Vcpu, op: Extract<GuestOp, { op: 'terminate' }>): boolean | undefined {
    if (!this.sev.sevEsGuest) return undefined;
    const set = BigInt(op.reasonSet ?? 0);
    const code = BigInt(op.reasonCode ?? 0);
    sevTermExit(vcpu, (code << 16n) | (set << 12n) | GHCB_MSR_TERM_REQ);
    return true;
  }

  completeMapGpa(vcpu: Vcpu, prog: GuestProgram): boolean {
    return snpCompletePsc(vcpu, this.vcpuOf(vcpu), prog);
  }

  /** sev_vm_destroy(): the SNP context is decommissioned, VMSA pages reclaimed, the ASID freed. */
  destroy(): void {
    const h = this.sev.snpContext;
    if (h !== undefined) this.platform.psp.decommission(h);
    for (const sv of this.vcpuState.values()) this.platform.rmp.makeShared(sv.vmsaPfn, sv.vmsaPfn + 1);
    if (this.sev.active) this.platform.asidFree(this.sev.asid);
  }
}
