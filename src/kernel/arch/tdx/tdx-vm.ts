/**
 * KVM's TDX VM type: arch/x86/kvm/vmx/tdx.c (KVM_MEMORY_ENCRYPT_OP for the VM and its vCPUs, the
 * S-EPT hooks of the mirror TDP MMU, the TD exits the model has) driving the modelled TDX module.
 * Versions: the July 2024 TDX dev tree (INIT_MEM_REGION on a pre-faulted GPA), v6.16 .. v6.18
 * (INIT_MEM_REGION maps through kvm_tdp_map_page, nr_premapped), v6.19 .. v7.0 (the page is ADDed
 * while the mirror SPTE is installed). Switch: profile.tdx.initMemRegion (and profile.gmem for the
 * guest_memfd side). Sources: torvalds/linux tdx.c @3829d81b6958 (a 6.16-rc snapshot; 6.16 final adds
 * 28224ef02b56 and the zeroed caps of KVM_TDX_CAPABILITIES, as the profile has), kvm-x86/linux tdx.c
 * @09c6f74ecb86 (2026, after 7.0: its INIT_MEM_REGION already refuses a missing source_addr up
 * front, where 7.0's tdx_gmem_post_populate() returns -EOPNOTSUPP; otherwise the S-EPT and FINALIZE
 * logic of the 6.19 pull), the 2024 threads cited in profiles/tdx-dev-2024-07.ts.
 * Modelled as checks only: the IRQCHIP KVM_CREATE_VCPU requires (profile.tdx.vcpuCreateNeedsSplitIrqchip) and the x2APIC CPUID
 * KVM_TDX_INIT_VCPU requires (no APIC state). Not modelled: TSC and MSR handling,
 * KVM_TDX_TERMINATE_VM, the TD's vCPU limit (num_present_cpus), lock contention (-EBUSY/-EINTR of
 * the 6.19 state guard).
 */
import { ExtentMap } from '../../../ranges/extent-map.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../../uapi/kvm.js';
import { KVM_TDX_CMD_IDS, KVM_TDX_MEASURE_MEMORY_REGION } from '../../../uapi/tdx.js';
import { type KernelError, kerr } from '../../errors.js';
import type { GuestOp, GuestProgram } from '../../guest/program.js';
import { wordAttributes } from '../../kvm/attributes.js';
import { type CpuidEntry, cpuidHasX2apic, findCpuid, readCpuidEntries } from '../../kvm/cpuid.js';
import {
  type GmemInode,
  gmemWritePage,
  kvmGmemPopulate,
  kvmGmemPopulateRun,
  type PostPopulate,
  type PostPopulateRun,
} from '../../kvm/guest-memfd.js';
import { gmemSlotCause, type Memslot } from '../../kvm/memslots.js';
import type { FaultKind } from '../../kvm/mmu.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import type { Vm } from '../../kvm/vm.js';
import { describeProvenance, type Provenance } from '../../provenance.js';
import { copyFromUser, copyToUser, type UStruct, u32, u64 } from '../../uaccess.js';
import type { ArchVm, GuestOpResult } from '../arch-vm.js';
import {
  hexStatus,
  TDX_OPERAND_BUSY,
  TDX_OPERAND_INVALID,
  TDX_SEAMCALL_STATUS_MASK,
  TDX_SUCCESS,
  TDX_TD_ATTR_SEPT_VE_DISABLE,
  type Td,
  type TdVcpu,
  type TdxModule,
  type TdxStatus,
} from './module.js';
import { type MapGpaVcpu, tdxCompleteMapGpa, tdxMapGpa } from './tdvmcall.js';

/** arch/x86/include/asm/kvm_host.h. */
export const KVM_MAX_CPUID_ENTRIES = 256;
/** tdx.c: the optional TDVMCALL leaf userspace can handle (GetTdVmCallInfo R11 bit 1). */
const TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT = 1n << 1n;
/** tdx.c KVM_SUPPORTED_TD_ATTRS (6.16 .. 7.0). */
export const KVM_SUPPORTED_TD_ATTRS = TDX_TD_ATTR_SEPT_VE_DISABLE;
/** TDX_SHARED_BIT_PWL_4 / _PWL_5 as GPA bits. */
const SHARED_BIT_GPAW48 = 1n << 47n;
const SHARED_BIT_GPAW52 = 1n << 51n;

type TdState = 'uninitialized' | 'initialized' | 'runnable';

interface VcpuTdx extends MapGpaVcpu {
  state: 'uninitialized' | 'initialized';
  vp?: TdVcpu;
}

/** kvm_tdp_map_page() faults are prefetches; S-EPT violations are always treated as writes. */
const PREFETCH: FaultKind = { write: false, prefetch: true };
const SEPT_VIOLATION: FaultKind = { write: true, prefetch: false };

const busy = (s: TdxStatus): boolean => (s & TDX_SEAMCALL_STATUS_MASK) === TDX_OPERAND_BUSY;

/** tdx.c TDX_FEATURE_TSX: CPUID.(7,0).EBX HLE (bit 4) | RTM (bit 11); X86_FEATURE_WAITPKG: CPUID.(7,0).ECX bit 5. */
const TDX_FEATURE_TSX = (1 << 4) | (1 << 11);
const FEATURE_WAITPKG = 1 << 5;

/** tdx.c has_tsx() / has_waitpkg(): features KVM does not let a TD have (6.16 .. 7.0). */
function hasTsx(e: CpuidEntry): boolean {
  return e.function === 7 && e.index === 0 && (e.ebx & TDX_FEATURE_TSX) !== 0;
}
function hasWaitpkg(e: CpuidEntry): boolean {
  return e.function === 7 && e.index === 0 && (e.ecx & FEATURE_WAITPKG) !== 0;
}

/** A struct field that may hold a nested struct by value (data of kvm_tdx_cmd). */
function nested(s: UStruct, field: string, what: string): UStruct {
  return copyFromUser(s[field], what);
}

export class TdxVm implements ArchVm {
  readonly name = 'tdx';
  readonly hasPrivateMem = true;
  readonly privacySource = 'guest' as const;
  /** kvm->arch.pre_fault_allowed: set by tdx_td_finalize(). */
  preFaultAllowed = false;
  /** kvm_tdx->state. */
  state: TdState = 'uninitialized';
  td: Td | undefined;
  /** kvm->arch.gfn_direct_bits as a GPA bit (0 before INIT_VM). */
  sharedBit = 0n;
  /** 6.16 and the dev tree: mirror leaves not yet PAGE.ADDed (kvm_tdx->nr_premapped), and where. */
  nrPremapped = 0;
  readonly premapped = new ExtentMap<true>();
  /**
   * Gfns whose S-EPT leaf TDH.MEM.PAGE.REMOVE took away, and by which call (for explanations: a
   * page the TD had is gone, and a later fault AUGs a fresh one the guest never accepted).
   */
  private readonly removedBy = new ExtentMap<Provenance>();
  /** 6.19+: kvm_tdx->page_add_src while tdx_gmem_post_populate() maps a pfn. */
  private pageAddSrc: Uint8Array | null | undefined;
  private readonly vcpuTdx = new WeakMap<Vcpu, VcpuTdx>();
  private cpuid: CpuidEntry[] = [];
  /** The SEAMCALL status the current VM command reports in kvm_tdx_cmd.hw_error. */
  private hwError = 0n;

  constructor(
    private readonly vm: Vm,
    readonly module: TdxModule,
  ) {}

  private get tracer() {
    return this.vm.host.tracer;
  }

  /** kvm->arch.has_protected_eoi, set by tdx_vm_init() from 6.18 (b3a37bff8daf). */
  get hasProtectedEoi(): boolean {
    return this.vm.profile.tdx.protectedEoi;
  }

  private get hkidAssigned(): boolean {
    return this.td !== undefined && this.td.lifecycle !== 'teardown';
  }

  /** KVM_BUG_ON(): the VM is dead from now on, the call returns -EIO. */
  private bug(why: string): KernelError {
    this.vm.kill(why);
    return kerr('EIO', `${why} (KVM_BUG_ON: VM is dead)`);
  }

  finalized(): boolean {
    return this.state === 'runnable';
  }

  /** TDX_SHARED_BIT clear = private (vt_is_tdx_private_gpa). */
  decodeGpa(gpa: bigint): { gpa: bigint; private: boolean } {
    return { gpa: gpa & ~this.sharedBit, private: (gpa & this.sharedBit) === 0n };
  }

  private isPrivateGpa(gpa: bigint): boolean {
    return (gpa & this.sharedBit) === 0n;
  }

  // ---------------------------------------------------------------- VM commands

  /** tdx_vm_ioctl(): copy, hw_error must be 0, dispatch, copy the command back. */
  memEncryptOp(arg: unknown): number {
    const cmd = copyFromUser(arg, 'kvm_tdx_cmd');
    const id = this.cmdId(cmd);
    // tdx_vm_ioctl() / tdx_get_cmd(): userspace must not set hw_error.
    if (u64(cmd, 'hw_error') !== 0n) throw kerr('EINVAL', 'tdx_vm_ioctl: hw_error must be 0 on input');
    const names: Record<number, string> = {
      0: 'tdx_get_capabilities',
      1: 'tdx_td_init',
      4: 'tdx_td_finalize',
    };
    const fn = names[id];
    // Unknown sub-command: -EINVAL without copying the command back.
    if (!fn) throw kerr('EINVAL', `tdx_vm_ioctl: ${this.cmdName(id)} is not a VM command`);
    this.hwError = 0n;
    let err: unknown;
    try {
      this.tracer.within(fn, () => {
        if (id === 0) this.getCapabilities(cmd);
        else if (id === 1) this.tdInit(cmd);
        else this.tdFinalize();
      });
    } catch (e) {
      err = e;
    }
    // copy_to_user(argp, &tdx_cmd): hw_error reaches userspace, also on failure.
    copyToUser(cmd, 'hw_error', this.hwError);
    if (err !== undefined) throw err;
    return 0;
  }

  private cmdId(cmd: UStruct): number {
    const raw = cmd['id'];
    if (typeof raw === 'string') {
      const n = KVM_TDX_CMD_IDS[raw];
      if (n === undefined) throw kerr('EINVAL', `tdx: unknown command '${raw}'`);
      return n;
    }
    return Number(u32(cmd, 'id'));
  }

  private cmdName(id: number): string {
    return Object.entries(KVM_TDX_CMD_IDS).find(([, v]) => v === id)?.[0] ?? `command ${id}`;
  }

  /** init_kvm_tdx_caps(): what KVM reports (0 = the module and KVM have nothing in common). */
  private supportedAttrs(): bigint {
    const c = this.module.config;
    let val = KVM_SUPPORTED_TD_ATTRS;
    if ((val & c.attributesFixed1) !== c.attributesFixed1) return 0n;
    val &= c.attributesFixed0;
    return val;
  }

  private supportedXfam(): bigint {
    const c = this.module.config;
    let val = c.hostXfam;
    if ((val & c.xfamFixed1) !== c.xfamFixed1) return 0n;
    val &= c.xfamFixed0;
    return val;
  }

  /** td_init_cpuid_entry2(): a config leaf as a kvm_cpuid_entry2 (GPAW bits reported configurable). */
  private configEntry(i: number): CpuidEntry {
    const c = this.module.config.cpuidConfigs[i]!;
    const [eax, ebx, ecx, edx] = c.values;
    const e: CpuidEntry = { function: c.leaf, index: c.subleaf ?? 0, flags: 0, eax, ebx, ecx, edx };
    // td_init_cpuid_entry2() never sets flags: the (zeroed) entry keeps 0 even for sub-leaves.
    if (c.leaf === 0x80000008) e.eax = ((e.eax & ~0xff0000) | (0xff << 16)) >>> 0;
    // tdx_clear_unsupported_cpuid(): TSX and WAITPKG are never reported as configurable.
    if (!this.vm.profile.tdx.rejectsTsxWaitpkg) return e;
    if (hasTsx(e)) e.ebx = (e.ebx & ~TDX_FEATURE_TSX) >>> 0;
    if (hasWaitpkg(e)) e.ecx = (e.ecx & ~FEATURE_WAITPKG) >>> 0;
    return e;
  }

  /** KVM_TDX_CAPABILITIES: tdx_get_capabilities(), checks in its order. */
  private getCapabilities(cmd: UStruct): void {
    if (u32(cmd, 'flags') !== 0n) throw kerr('EINVAL', 'tdx_get_capabilities: flags must be 0');
    const caps = nested(cmd, 'data', 'kvm_tdx_capabilities');
    const cpuid = caps['cpuid'] === undefined ? {} : nested(caps, 'cpuid', 'kvm_tdx_capabilities.cpuid');
    const num = this.module.config.cpuidConfigs.length;
    // Nothing is copied back on -E2BIG (QEMU retries with a larger nent).
    if (Number(u32(cpuid, 'nent')) < num)
      throw kerr('E2BIG', `tdx_get_capabilities: cpuid.nent < num_cpuid_config (${num})`);
    const attrs = this.supportedAttrs();
    if (!attrs) throw kerr('EIO', 'init_kvm_tdx_caps: no supported TD attributes');
    const xfam = this.supportedXfam();
    if (!xfam) throw kerr('EIO', 'init_kvm_tdx_caps: no supported XFAM');
    copyToUser(caps, 'supported_attrs', attrs);
    copyToUser(caps, 'supported_xfam', xfam);
    const info = this.vm.profile.tdx.capsTdvmcallInfo;
    for (const f of [
      'kernel_tdvmcallinfo_1_r11',
      'user_tdvmcallinfo_1_r11',
      'kernel_tdvmcallinfo_1_r12',
      'user_tdvmcallinfo_1_r12',
    ])
      copyToUser(
        caps,
        f,
        info && f === 'user_tdvmcallinfo_1_r11' ? TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT : 0n,
      );
    // The whole (zeroed) struct is copied back: reserved[] and the cpuid header's padding read as zeros.
    if (info && Array.isArray(caps['reserved']))
      caps['reserved'] = caps['reserved'].map((v) => (typeof v === 'bigint' ? 0n : 0));
    if (info && cpuid['padding'] !== undefined) copyToUser(cpuid, 'padding', 0n);
    copyToUser(cpuid, 'nent', BigInt(num));
    cpuid['entries'] = Array.from({ length: num }, (_, i) => ({
      ...this.configEntry(i),
      padding: [0, 0, 0],
    }));
    caps['cpuid'] = cpuid;
  }

  /** KVM_TDX_INIT_VM: tdx_td_init() + setup_tdparams() + __tdx_td_init(). */
  private tdInit(cmd: UStruct): void {
    if (this.state !== 'uninitialized') throw kerr('EINVAL', 'tdx_td_init: TD already initialized');
    if (u32(cmd, 'flags') !== 0n) throw kerr('EINVAL', 'tdx_td_init: flags must be 0');
    const init = nested(cmd, 'data', 'kvm_tdx_init_vm');
    const cpuid = init['cpuid'] === undefined ? {} : nested(init, 'cpuid', 'kvm_tdx_init_vm.cpuid');
    const nent = Number(u32(cpuid, 'nent'));
    if (nent > KVM_MAX_CPUID_ENTRIES) throw kerr('E2BIG', 'tdx_td_init: cpuid.nent > KVM_MAX_CPUID_ENTRIES');
    const entries = readCpuidEntries(cpuid, nent, 'kvm_tdx_init_vm.cpuid.entries');
    const reserved = init['reserved'];
    if (Array.isArray(reserved) && reserved.some((v) => v !== 0 && v !== 0n))
      throw kerr('EINVAL', 'tdx_td_init: reserved[] must be zero');
    const padding = cpuid['padding'];
    if (padding !== undefined && padding !== 0 && padding !== 0n)
      throw kerr('EINVAL', 'tdx_td_init: cpuid.padding must be zero');
    // setup_tdparams()
    if (this.vm.vcpus.size > 0) throw kerr('EBUSY', 'setup_tdparams: vCPUs already created');
    const attributes = u64(init, 'attributes');
    const xfam = u64(init, 'xfam');
    if (attributes & ~this.supportedAttrs())
      throw kerr('EINVAL', `setup_tdparams: attributes 0x${attributes.toString(16)} not supported`);
    if (xfam & ~this.supportedXfam())
      throw kerr('EINVAL', `setup_tdparams: xfam 0x${xfam.toString(16)} not supported`);
    // setup_tdparams_eptp_controls(): CPUID 0x80000008 EAX[23:16] is the GPAW.
    const gpawEntry = findCpuid(entries, 0x80000008, 0);
    if (!gpawEntry) throw kerr('EINVAL', 'setup_tdparams_eptp_controls: no CPUID 0x80000008 entry');
    const gpaw = (gpawEntry.eax >>> 16) & 0xff;
    if (gpaw !== 48 && gpaw !== 52)
      throw kerr('EINVAL', `setup_tdparams_eptp_controls: guest physical address bits ${gpaw} (48 or 52)`);
    if (gpaw === 52 && !this.module.config.ept5Level)
      throw kerr('EINVAL', 'setup_tdparams_eptp_controls: GPAW 52 needs 5-level EPT');
    // setup_tdparams_cpuids(): a slotted entry asking for TSX or WAITPKG is refused
    // (tdx_unsupported_cpuid), and every user entry must land in a configurable slot.
    let copied = 0;
    for (let i = 0; i < this.module.config.cpuidConfigs.length; i++) {
      const tmp = this.configEntry(i);
      const entry = findCpuid(entries, tmp.function, tmp.index);
      if (!entry) continue;
      if (this.vm.profile.tdx.rejectsTsxWaitpkg && (hasTsx(entry) || hasWaitpkg(entry)))
        throw kerr(
          'EINVAL',
          'setup_tdparams_cpuids: CPUID.(7,0) asks for TSX or WAITPKG (tdx_unsupported_cpuid)',
        );
      copied++;
    }
    if (copied !== nent)
      throw kerr('EINVAL', 'setup_tdparams_cpuids: a CPUID entry has no configurable slot in TD_PARAMS');
    const attrsFull = attributes | this.module.config.attributesFixed1;
    const xfamFull = xfam | this.module.config.xfamFixed1;
    this.tracer.within('__tdx_td_init', () => this.createTd(attrsFull, xfamFull, gpaw === 52 ? 5 : 4));
    this.cpuid = entries;
    this.sharedBit = gpaw === 52 ? SHARED_BIT_GPAW52 : SHARED_BIT_GPAW48;
    this.state = 'initialized';
  }

  /** __tdx_td_init(): HKID, TDH.MNG.CREATE, KEY.CONFIG, ADDCX per TDCS page, TDH.MNG.INIT. */
  private createTd(attributes: bigint, xfam: bigint, eptLevels: number): void {
    const m = this.module;
    const hkid = m.allocHkid();
    if (hkid === undefined) throw kerr('ENOSPC', 'tdx_guest_keyid_alloc: no free TDX private HKID');
    const td = m.mngCreate(hkid);
    const fail = (why: string, status: TdxStatus): KernelError => {
      m.mngKeyFreeid(td); // teardown: tdx_mmu_release_hkid()
      return kerr('EIO', `${why} failed: ${hexStatus(status)} (WARN)`);
    };
    let s = m.mngKeyConfig(td);
    if (s !== TDX_SUCCESS) throw this.bug(`TDH.MNG.KEY.CONFIG failed: ${hexStatus(s)}`);
    for (let i = 0; i < m.config.tdcsPages; i++) {
      s = m.mngAddcx(td);
      if (s !== TDX_SUCCESS) throw fail('TDH.MNG.ADDCX', s);
    }
    s = m.mngInit(td, { attributes, xfam, eptLevels });
    if ((s & TDX_SEAMCALL_STATUS_MASK) === TDX_OPERAND_INVALID) {
      m.mngKeyFreeid(td);
      // "Return a hint to the user": the SEAMCALL status reaches userspace in hw_error.
      this.hwError = s;
      throw kerr('EINVAL', `TDH.MNG.INIT: operand invalid (${hexStatus(s)}), see hw_error`);
    }
    if (s !== TDX_SUCCESS) throw fail('TDH.MNG.INIT', s);
    this.td = td;
  }

  /** KVM_TDX_FINALIZE_VM: tdx_td_finalize(); hw_error = the TDH.MR.FINALIZE status. */
  private tdFinalize(): void {
    if (!this.hkidAssigned || this.state === 'runnable')
      throw kerr('EINVAL', 'tdx_td_finalize: TD not initialized or already finalized');
    // 6.16 and the dev tree: pages pre-mapped but never PAGE.ADDed (removed in 6.19 with nr_premapped).
    if (this.vm.profile.tdx.initMemRegion !== 'map-pfn' && this.nrPremapped !== 0) {
      const first = this.premapped.entries().next().value;
      throw kerr(
        'EINVAL',
        `tdx_td_finalize: nr_premapped = ${this.nrPremapped}, pages wait for KVM_TDX_INIT_MEM_REGION`,
        first ? `gfn 0x${first.start.toString(16)} is in the mirror EPT without TDH.MEM.PAGE.ADD` : undefined,
      );
    }
    const td = this.td!;
    const s = this.tracer.within('tdh_mr_finalize', () => this.module.mrFinalize(td));
    this.hwError = s;
    if (busy(s)) throw kerr('EBUSY', 'TDH.MR.FINALIZE: operand busy');
    if (s !== TDX_SUCCESS) throw this.bug(`TDH.MR.FINALIZE failed: ${hexStatus(s)}`);
    this.state = 'runnable';
    // TD_STATE_RUNNABLE before pre_fault_allowed (smp_wmb in tdx_td_finalize).
    this.preFaultAllowed = true;
  }

  /** The MRTD the module holds (TDCS.MRTD; what a TD report shows), once finalized. */
  mrtd(): Uint8Array | undefined {
    return this.td?.mrtd?.slice();
  }

  // ---------------------------------------------------------------- vCPU commands

  /** tdx_vcpu_create(): KVM_CREATE_VCPU needs INIT_VM first. */
  vcpuPrecreate(_id: number): void {
    if (this.state !== 'initialized')
      throw kerr('EIO', 'tdx_vcpu_create: TD is not in TD_STATE_INITIALIZED (KVM_TDX_INIT_VM first)');
    // The TDX module mandates APICv, hence an in-kernel local APIC; an in-kernel I/O APIC cannot be
    // emulated faithfully: 6.16+ accept only a split IRQCHIP (irqchip_split()), which 6.18+ still
    // check here for a VM that has none at all. The 2024 tree checks `!vcpu->arch.apic`: a full
    // KVM_CREATE_IRQCHIP also gives the vCPU a local APIC.
    if (this.vm.profile.tdx.vcpuCreateNeedsSplitIrqchip) {
      if (!this.vm.irqchipSplit)
        throw kerr(
          'EINVAL',
          'tdx_vcpu_create: TDX needs a split IRQCHIP (KVM_CAP_SPLIT_IRQCHIP)',
          this.vm.irqchipMode === 'kernel' ? 'the VM has a full IRQCHIP (KVM_CREATE_IRQCHIP)' : undefined,
        );
    } else if (this.vm.irqchipMode === 'none')
      throw kerr(
        'EINVAL',
        'tdx_vcpu_create: no in-kernel local APIC (no KVM_CREATE_IRQCHIP or split IRQCHIP)',
      );
  }

  vcpuCreated(vcpu: Vcpu): void {
    this.vcpuTdx.set(vcpu, { state: 'uninitialized' });
  }

  /**
   * tdx_vcpu_create(): guest_state_protected unless the TD has ATTR_DEBUG, which KVM never accepts
   * (KVM_SUPPORTED_TD_ATTRS): always protected.
   */
  guestStateProtected(): string {
    return 'tdx_vcpu_create(): a TD vCPU without ATTR_DEBUG';
  }

  /** tdx_vcpu_create(): fpstate_set_confidential(). */
  fpuConfidential(): boolean {
    return true;
  }

  /** tdx_vcpu_pre_run(): the vCPU must be initialized and the TD runnable. */
  vcpuPreRun(vcpu: Vcpu): void {
    if (this.vcpuTdx.get(vcpu)?.state !== 'initialized' || this.state !== 'runnable')
      throw kerr('EINVAL', 'tdx_vcpu_pre_run: vCPU not initialized or TD not finalized');
  }

  /**
   * tdx_vcpu_ioctl() (6.16) / tdx_vcpu_unlocked_ioctl() + tdx_vcpu_ioctl() (6.19+). Both refuse every
   * vCPU command before INIT_VM and after FINALIZE_VM and a nonzero hw_error with -EINVAL.
   */
  vcpuMemEncryptOp(vcpu: Vcpu, arg: unknown): number {
    const copiedFirst = this.vm.profile.tdx.vcpuCmdCopiedFirst;
    let cmd = copiedFirst ? copyFromUser(arg, 'kvm_tdx_cmd') : undefined;
    if (!this.hkidAssigned || this.state === 'runnable')
      throw kerr('EINVAL', 'tdx_vcpu_ioctl: TD not initialized or already finalized');
    cmd ??= copyFromUser(arg, 'kvm_tdx_cmd');
    const id = this.cmdId(cmd);
    if (u64(cmd, 'hw_error') !== 0n) throw kerr('EINVAL', 'tdx_vcpu_ioctl: hw_error must be 0 on input');
    switch (id) {
      case 2:
        return this.tracer.within('tdx_vcpu_init', () => this.vcpuInit(vcpu, cmd));
      case 3:
        return this.tracer.within('tdx_vcpu_init_mem_region', () => this.initMemRegion(vcpu, cmd));
      case 5:
        return this.tracer.within('tdx_vcpu_get_cpuid', () => this.getCpuid(cmd));
      default:
        throw kerr('EINVAL', `tdx_vcpu_ioctl: ${this.cmdName(id)} is not a vCPU command`);
    }
  }

  /** KVM_TDX_INIT_VCPU: tdx_vcpu_init() + tdx_td_vcpu_init(); data is the initial RCX. */
  private vcpuInit(vcpu: Vcpu, cmd: UStruct): number {
    if (u32(cmd, 'flags') !== 0n) throw kerr('EINVAL', 'tdx_vcpu_init: flags must be 0');
    const v = this.vcpuTdx.get(vcpu)!;
    if (v.state !== 'uninitialized') throw kerr('EINVAL', 'tdx_vcpu_init: vCPU already initialized');
    // TDX requires x2APIC: kvm_apic_set_base(APIC_DEFAULT_PHYS_BASE | LAPIC_MODE_X2APIC) treats
    // X2APIC_ENABLE as reserved unless the vCPU's CPUID (KVM_SET_CPUID2) has X2APIC, leaf 1 ECX[21].
    if (!cpuidHasX2apic(vcpu.cpuid ?? []))
      throw kerr('EINVAL', 'tdx_vcpu_init: kvm_apic_set_base(x2APIC) refused: no X2APIC in the vCPU CPUID');
    const td = this.td!;
    const m = this.module;
    const vp = m.vpCreate(td);
    if (typeof vp === 'bigint') throw this.bug(`TDH.VP.CREATE failed: ${hexStatus(vp)}`);
    for (let i = 0; i < m.config.tdvpsPages - 1; i++) {
      const s = m.vpAddcx(td, vp);
      if (s !== TDX_SUCCESS) throw this.bug(`TDH.VP.ADDCX failed: ${hexStatus(s)}`);
    }
    const s = m.vpInit(td, vp, u64(cmd, 'data'));
    if (s !== TDX_SUCCESS) throw this.bug(`TDH.VP.INIT failed: ${hexStatus(s)}`);
    v.vp = vp;
    v.state = 'initialized';
    return 0;
  }

  /**
   * KVM_TDX_GET_CPUID: tdx_vcpu_get_cpuid(). The model returns the leaves configured at INIT_VM
   * (the real call reads every leaf back with TDH.MNG.RD), with the GPAW filled in for 0x80000008.
   */
  private getCpuid(cmd: UStruct): number {
    const out = nested(cmd, 'data', 'kvm_cpuid2');
    const gpaw = this.sharedBit === SHARED_BIT_GPAW52 ? 52 : 48;
    const entries = this.cpuid.map((e) =>
      e.function === 0x80000008 ? { ...e, eax: ((e.eax & ~0xff0000) | (gpaw << 16)) >>> 0 } : { ...e },
    );
    const room = Number(u32(out, 'nent'));
    copyToUser(out, 'nent', BigInt(entries.length));
    if (room < entries.length) throw kerr('E2BIG', `tdx_vcpu_get_cpuid: nent ${room} < ${entries.length}`);
    out['entries'] = entries.map((e) => ({ ...e, padding: [0, 0, 0] }));
    return 0;
  }

  /** KVM_TDX_INIT_MEM_REGION: tdx_vcpu_init_mem_region(), checks in its order, one page at a time. */
  private initMemRegion(vcpu: Vcpu, cmd: UStruct): number {
    const vm = this.vm;
    if (this.vcpuTdx.get(vcpu)?.state !== 'initialized')
      throw kerr('EINVAL', 'tdx_vcpu_init_mem_region: vCPU not initialized (KVM_TDX_INIT_VCPU first)');
    // "Once TD is finalized, the initial guest memory is fixed."
    if (this.state === 'runnable') throw kerr('EINVAL', 'tdx_vcpu_init_mem_region: TD already finalized');
    const flags = u32(cmd, 'flags');
    if (flags & ~BigInt(KVM_TDX_MEASURE_MEMORY_REGION))
      throw kerr('EINVAL', 'tdx_vcpu_init_mem_region: unknown flags');
    const region = nested(cmd, 'data', 'kvm_tdx_init_mem_region');
    let src = u64(region, 'source_addr');
    let gpa = u64(region, 'gpa');
    let nr = u64(region, 'nr_pages');
    const end = gpa + (nr << 12n);
    if (
      src & 0xfffn ||
      gpa & 0xfffn ||
      nr === 0n ||
      BigInt.asUintN(64, end) <= gpa ||
      !this.isPrivateGpa(gpa) ||
      !this.isPrivateGpa(BigInt.asUintN(64, end - 1n))
    ) {
      throw kerr('EINVAL', 'tdx_vcpu_init_mem_region: unaligned, empty, wrapping or shared-bit range');
    }
    const measure = (flags & BigInt(KVM_TDX_MEASURE_MEMORY_REGION)) !== 0n;
    const post = this.postPopulate(vcpu, measure);
    const postRun = this.postPopulateRun(measure);
    let err: unknown;
    while (nr > 0n) {
      if (vm.host.signalPending) {
        err = kerr('EINTR', 'tdx_vcpu_init_mem_region: signal pending');
        break;
      }
      if (postRun !== undefined) {
        // Several iterations of this loop at once where nothing can differ between them.
        const srcRun = vm.profile.gmem.populateGupInCommonCode && src === 0n ? null : Number(src);
        const ran = kvmGmemPopulateRun(
          vm,
          Number(gpa >> 12n),
          srcRun,
          nr > 0x10000n ? 0x10000 : Number(nr),
          postRun,
        );
        if (ran > 0) {
          src += BigInt(ran) * 4096n;
          gpa += BigInt(ran) * 4096n;
          nr -= BigInt(ran);
          continue;
        }
      }
      try {
        // 7.0 common code pins the source only `if (src)`: a NULL source reaches the callback as no page.
        const srcArg = vm.profile.gmem.populateGupInCommonCode && src === 0n ? null : Number(src);
        const n = kvmGmemPopulate(vm, Number(gpa >> 12n), srcArg, 1, post);
        if (n !== 1) {
          err = kerr('EIO', 'tdx_vcpu_init_mem_region: kvm_gmem_populate did not populate the page');
          break;
        }
      } catch (e) {
        err = e;
        break;
      }
      src += 4096n;
      gpa += 4096n;
      nr--;
    }
    // The region is always copied back: userspace can resume from where it stopped.
    copyToUser(region, 'source_addr', src);
    copyToUser(region, 'gpa', gpa);
    copyToUser(region, 'nr_pages', nr);
    if (err !== undefined) throw err;
    return 0;
  }

  /** tdx_gmem_post_populate() of the profile's kernel. */
  private postPopulate(vcpu: Vcpu, measure: boolean): PostPopulate {
    const mode = this.vm.profile.tdx.initMemRegion;
    return (ctx) =>
      this.tracer.within('tdx_gmem_post_populate', () => {
        if (mode === 'requires-prefault') this.postPopulateDev2024(ctx);
        else if (mode === 'map-page') this.postPopulate616(vcpu, ctx);
        else this.postPopulate619(ctx);
        if (measure) this.extendPage(ctx.gfn, mode === 'map-pfn');
      });
  }

  /**
   * tdx_gmem_post_populate() over a run of pages (guest_memfd.ts PostPopulateRun), for the
   * upstream kernels: 6.16 maps each page through a private fault (kvm_tdp_map_page: cleared,
   * marked prepared, pre-mapped) and then TDH.MEM.PAGE.ADDs it; 6.19+ installs the mirror leaf,
   * whose hook TDH.MEM.PAGE.ADDs it. Either way every page ends up cleared then written with its
   * source, ADDed, measured, mapped by a private SPTE, and nr_premapped is back where it was.
   * Taken only where no step can fail: pages with no SPTE, S-EPT leaf or pre-mapped entry, private
   * in the attributes, a source, a TD being built. The dev tree (pre-fault first) goes page by page.
   */
  private postPopulateRun(measure: boolean): PostPopulateRun | undefined {
    const vm = this.vm;
    const mode = vm.profile.tdx.initMemRegion;
    if (mode === 'requires-prefault') return undefined;
    if (
      vm.arch.gmemPrepare ||
      vm.profile.bugs?.noClearOnPrepare ||
      vm.profile.gmem.skipUptodateForUnfinalizedTd
    )
      return undefined;
    return (run) => {
      const td = this.td;
      if (td?.lifecycle !== 'initialized' || this.state === 'runnable' || this.preFaultAllowed) return 0;
      if (run.src === null || this.pageAddSrc !== undefined) return 0;
      // kvm_mmu_faultin_pfn(): the fault is private, so the attribute must be too.
      const a = vm.attributes.extentAt(run.gfn);
      if (a === undefined || !(wordAttributes(a.value) & KVM_MEMORY_ATTRIBUTE_PRIVATE)) return 0;
      let n = Math.min(run.n, a.end - run.gfn);
      n = vm.mmu.freshRun(run.gfn, n, run.slot);
      const leaf = td.sept.nextExtent(run.gfn);
      if (leaf !== undefined) n = Math.min(n, leaf.start - run.gfn);
      const pre = this.premapped.nextExtent(run.gfn);
      if (pre !== undefined) n = Math.min(n, pre.start - run.gfn);
      if (n <= 0) return 0;
      const t = this.tracer;
      const mm = vm.host.mm;
      const src = run.src;
      t.enter('tdx_gmem_post_populate');
      t.enter(mode === 'map-page' ? 'kvm_tdp_map_page' : 'kvm_tdp_mmu_map_private_pfn');
      try {
        // tdx_sept_link_private_spt(): TDH.MEM.SEPT.ADD where a page is the first of its tables.
        for (let g = run.gfn; g < run.gfn + n; g = (Math.floor(g / 512) + 1) * 512) {
          vm.mmu.withinMapLeaf(() => t.within('tdx_sept_link_private_spt', () => this.linkTables(g)));
        }
        const done = this.module.memPageAddRun(
          td,
          run.gfn,
          n,
          run,
          mm.anonPagesFrom(src),
          (i, bytes) => run.write(i, bytes),
          measure,
        );
        if (done !== n) throw this.bug('tdx_gmem_post_populate: TDH.MEM.PAGE.ADD refused a checked run');
        vm.mmu.setPrivateRun(run.gfn, n, run.slot, {
          inode: run.inode,
          gen: run.gen,
          pfnDelta: run.pfn - run.gfn,
        });
        return n;
      } finally {
        t.leave();
        t.leave();
      }
    };
  }

  /** get_user_pages_fast() of the source page (an unmapped address is -EFAULT). */
  private gupSource(src: number | null): Uint8Array | null {
    if (src === null) throw kerr('EFAULT', 'get_user_pages_fast: NULL source');
    return this.tracer.within('get_user_pages_fast', () => this.vm.host.mm.gupRead(src));
  }

  /**
   * The 2024 dev tree: the mirror EPT must already map the gfn (KVM_PRE_FAULT_MEMORY did it), to
   * the pfn guest_memfd has. Error values as in Isaku Yamahata's callback of 2024-04-25 (the July
   * branch's exact code is not public: inferred).
   */
  private postPopulateDev2024(ctx: Parameters<PostPopulate>[0]): void {
    const srcPage = this.gupSource(ctx.src);
    const spte = this.vm.mmu.sptes.get(ctx.gfn);
    if (!spte?.private)
      throw kerr(
        'ENOENT',
        'kvm_tdp_mmu_get_walk_private_pfn: gfn not mapped in the mirror EPT',
        `gfn 0x${ctx.gfn.toString(16)} was not pre-faulted (KVM_PRE_FAULT_MEMORY) before KVM_TDX_INIT_MEM_REGION (errno inferred from Isaku Yamahata's callback of 2024-04-25: the dev branch is not public)`,
      );
    if (spte.inode !== ctx.inode || spte.pfnDelta !== ctx.pfn - ctx.gfn)
      throw kerr('EAGAIN', 'tdx_gmem_post_populate: mirror EPT pfn differs from guest_memfd pfn');
    this.pageAdd(ctx, srcPage, false);
    this.unpremap(ctx.gfn);
  }

  /** 6.16: kvm_tdp_map_page() (a nested private fault, pre-mapping the leaf), then TDH.MEM.PAGE.ADD. */
  private postPopulate616(vcpu: Vcpu, ctx: Parameters<PostPopulate>[0]): void {
    const srcPage = this.gupSource(ctx.src);
    const r = this.tracer.within('kvm_tdp_map_page', () => this.vm.mmu.fault(vcpu, ctx.gfn, true, PREFETCH));
    if (r === 'emulate')
      throw kerr('ENOENT', 'kvm_tdp_map_page: no memslot (RET_PF_EMULATE)', gmemSlotCause(this.vm, ctx.gfn));
    this.pageAdd(ctx, srcPage, false);
    this.unpremap(ctx.gfn);
  }

  /** 6.19+: kvm_tdp_mmu_map_private_pfn() with page_add_src set; the S-EPT hook does PAGE.ADD. */
  private postPopulate619(ctx: Parameters<PostPopulate>[0]): void {
    if (this.pageAddSrc !== undefined) throw this.bug('tdx_gmem_post_populate: page_add_src already set');
    let srcPage: Uint8Array | null;
    if (this.vm.profile.gmem.populateGupInCommonCode) {
      // 7.0: common code pinned the page; no source at all is refused (tdx_gmem_post_populate).
      if (ctx.src === null) throw kerr('EOPNOTSUPP', 'tdx_gmem_post_populate: no source page');
      srcPage = ctx.srcPage ?? null;
    } else {
      srcPage = this.gupSource(ctx.src);
    }
    this.pageAddSrc = srcPage;
    try {
      const folio = ctx.inode.folios.get(ctx.index)!;
      this.tracer.within('kvm_tdp_mmu_map_private_pfn', () =>
        this.vm.mmu.mapPrivatePfn(ctx.gfn, { inode: ctx.inode, gen: folio.gen, pfn: ctx.pfn }, ctx.slot),
      );
    } finally {
      this.pageAddSrc = undefined;
    }
  }

  /** TDH.MEM.PAGE.ADD of a populated page. */
  private pageAdd(
    ctx: { gfn: number; inode: GmemInode; index: number },
    srcPage: Uint8Array | null,
    bugOnError: boolean,
  ): void {
    const host = this.vm.host;
    const s = this.tracer.within('tdh_mem_page_add', () =>
      this.module.memPageAdd(
        this.td!,
        ctx.gfn,
        ctx,
        (bytes) => gmemWritePage(host, ctx.inode, ctx.index, bytes, 'TDH.MEM.PAGE.ADD'),
        srcPage,
      ),
    );
    if (s === TDX_SUCCESS) return;
    if (busy(s)) throw kerr('EBUSY', 'TDH.MEM.PAGE.ADD: operand busy');
    if (bugOnError) throw this.bug(`TDH.MEM.PAGE.ADD failed: ${hexStatus(s)}`);
    throw kerr('EIO', `TDH.MEM.PAGE.ADD failed: ${hexStatus(s)}`);
  }

  /** KVM_TDX_MEASURE_MEMORY_REGION: TDH.MR.EXTEND for each 256-byte chunk (6.19+: TDX_BUG_ON on failure). */
  private extendPage(gfn: number, bugOnError: boolean): void {
    const s = this.module.mrExtendPage(this.td!, gfn);
    if (s === TDX_SUCCESS) return;
    if (bugOnError) throw this.bug(`TDH.MR.EXTEND failed: ${hexStatus(s)}`);
    throw kerr('EIO', `TDH.MR.EXTEND failed: ${hexStatus(s)}`);
  }

  private unpremap(gfn: number): void {
    if (this.premapped.get(gfn) === undefined) return;
    this.premapped.set(gfn, gfn + 1, undefined);
    this.nrPremapped--;
  }

  // ---------------------------------------------------------------- S-EPT hooks

  /** tdx_sept_link_private_spt(): TDH.MEM.SEPT.ADD for each missing non-leaf level. */
  private linkTables(gfn: number): void {
    const td = this.td!;
    for (const level of this.module.missingTables(td, gfn)) {
      const s = this.module.memSeptAdd(td, gfn, level);
      if (busy(s)) throw kerr('EBUSY', 'TDH.MEM.SEPT.ADD: operand busy');
      if (s !== TDX_SUCCESS) throw this.bug(`TDH.MEM.SEPT.ADD failed: ${hexStatus(s)}`);
    }
  }

  /**
   * tdx_sept_set_private_spte(): a new mirror leaf. RUNNABLE: TDH.MEM.PAGE.AUG (PENDING until the
   * guest accepts). Before that: 6.19+ TDH.MEM.PAGE.ADD of page_add_src (tdx_mem_page_add);
   * 6.16 and the dev tree: only counted in nr_premapped (tdx_mem_page_record_premap_cnt).
   */
  setPrivateSpte(gfn: number, pfn: number, slot: Memslot): void {
    if (!this.td) throw this.bug('tdx_sept_set_private_spte: no TD');
    const inode = slot.gmem!.file!.inode;
    const page = { gfn, inode, index: pfn - inode.pfnBase };
    this.tracer.within('tdx_sept_link_private_spt', () => this.linkTables(gfn));
    if (this.state === 'runnable') {
      const s = this.tracer.within('tdx_mem_page_aug', () => this.module.memPageAug(this.td!, gfn, page));
      if (busy(s)) throw kerr('EBUSY', 'TDH.MEM.PAGE.AUG: operand busy');
      if (s !== TDX_SUCCESS) throw this.bug(`TDH.MEM.PAGE.AUG failed: ${hexStatus(s)}`);
      return;
    }
    if (this.vm.profile.tdx.initMemRegion === 'map-pfn') {
      if (this.preFaultAllowed || this.pageAddSrc === undefined)
        throw this.bug('tdx_mem_page_add: pre_fault_allowed or no page_add_src');
      this.tracer.within('tdx_mem_page_add', () => this.pageAdd(page, this.pageAddSrc ?? null, true));
      return;
    }
    if (this.preFaultAllowed)
      throw kerr('EINVAL', 'tdx_mem_page_record_premap_cnt: pre_fault_allowed (KVM_BUG_ON)');
    this.premapped.set(gfn, gfn + 1, true);
    this.nrPremapped++;
  }

  /**
   * tdx_sept_remove_private_spte() per page: a pre-mapped leaf (BLOCK finds no S-EPT entry) only
   * drops nr_premapped; a present one is BLOCKed, TRACKed, REMOVEd and its page cleared.
   */
  removePrivateSptes(gfn: number, npages: number): void {
    const td = this.td;
    if (!td) return;
    const end = gfn + npages;
    const m = this.module;
    for (const e of this.premapped.entries(gfn, end)) this.nrPremapped -= e.end - e.start;
    this.premapped.set(gfn, end, undefined);
    for (const e of td.sept.entries(gfn, end)) {
      this.removedBy.set(e.start, e.end, this.tracer.here('TDH.MEM.PAGE.REMOVE'));
      for (let g = e.start; g < e.end; g++) {
        const leaf = e.value;
        let s = m.memRangeBlock(td, g);
        if (s !== TDX_SUCCESS) {
          this.bug(`TDH.MEM.RANGE.BLOCK failed: ${hexStatus(s)}`);
          return;
        }
        if (this.state === 'runnable') m.memTrack(td); // tdx_track(): only once the TD can run
        s = m.memPageRemove(td, g);
        if (s !== TDX_SUCCESS) {
          this.bug(`TDH.MEM.PAGE.REMOVE failed: ${hexStatus(s)}`);
          return;
        }
        // tdx_clear_page() / tdx_quirk_reset_paddr(): the page no longer holds TD data.
        const index = g + leaf.delta;
        if (leaf.inode.folios.get(index))
          gmemWritePage(this.vm.host, leaf.inode, index, null, 'TDH.MEM.PAGE.REMOVE > tdx_clear_page');
      }
    }
  }

  /** A page in the TD's S-EPT (added or AUGed, through a binding of this TD): the TD's memory. */
  guestOwnedPage(inode: GmemInode, index: number): string | undefined {
    const td = this.td;
    if (!td) return undefined;
    for (const f of inode.files) {
      if (f.vm !== this.vm) continue;
      const slot = f.bindings.get(index);
      if (!slot) continue;
      const gfn = slot.baseGfn + (index - slot.gmem!.pgoff);
      const leaf = td.sept.get(gfn);
      if (leaf && leaf.inode === inode && gfn + leaf.delta === index)
        return `gfn 0x${gfn.toString(16)} is ${leaf.state} in the TD's S-EPT`;
    }
    return undefined;
  }

  /**
   * A guest access to a private page the fault path has mapped: a PENDING S-EPT leaf (AUGed, not
   * accepted) is an EPT violation KVM treats as fatal (tdx_handle_ept_violation: "Guest access
   * before accepting", kvm_vm_dead, KVM_RUN returns -EIO). With SEPT_VE_DISABLE clear the module
   * turns the EPT violation into a #VE for the guest and KVM never sees it (a Linux guest refuses
   * to run so, and would panic on it).
   */
  guestPrivateAccess(_vcpu: Vcpu, gfn: number): string | undefined {
    const leaf = this.td?.sept.get(gfn);
    if (leaf?.state !== 'pending') return undefined;
    if (!(this.td!.attributes & TDX_TD_ATTR_SEPT_VE_DISABLE))
      return `#VE EPT violation at gfn 0x${gfn.toString(16)}: PENDING in the S-EPT (AUGed, not accepted), SEPT_VE_DISABLE clear`;
    this.vm.kill(`guest access before accepting 0x${(BigInt(gfn) << 12n).toString(16)}`);
    const removed = this.removedBy.get(gfn);
    throw kerr(
      'EIO',
      'tdx_handle_ept_violation: guest access before accepting the page (kvm_vm_dead)',
      `gfn 0x${gfn.toString(16)} was added with TDH.MEM.PAGE.AUG and never accepted` +
        (removed ? `; the TD's page before it was removed at ${describeProvenance(removed)}` : ''),
    );
  }

  /**
   * TDG.MEM.PAGE.ACCEPT of [gpa, gpa + size): an unmapped page first exits to KVM as an EPT
   * violation (KVM faults it in: TDH.MEM.PAGE.AUG), then the module accepts it: the guest sees zeroes.
   */
  guestAccept(vcpu: Vcpu, gpa: number, size: number): GuestOpResult | undefined {
    const td = this.td;
    if (!td) return undefined;
    const d = this.decodeGpa(BigInt(gpa));
    if (!d.private)
      throw kerr('EINVAL', 'TDG.MEM.PAGE.ACCEPT of a shared GPA (the TDCALL fails in the guest)');
    const first = Number(d.gpa >> 12n);
    const last = Math.ceil((Number(d.gpa) + size) / 4096);
    for (let gfn = first; gfn < last; gfn++) {
      let r = this.module.pageAccept(td, gfn);
      if (r === 'missing') {
        this.tracer.within('tdx_handle_ept_violation', () =>
          this.vm.mmu.fault(vcpu, gfn, true, SEPT_VIOLATION),
        );
        r = this.module.pageAccept(td, gfn);
      }
      // TDX_PAGE_ALREADY_ACCEPTED: the guest's TDCALL reports it; nothing changes.
      if (r !== 'accepted') continue;
      const leaf = td.sept.get(gfn);
      if (leaf?.inode.folios.get(gfn + leaf.delta))
        gmemWritePage(this.vm.host, leaf.inode, gfn + leaf.delta, null, 'TDG.MEM.PAGE.ACCEPT');
    }
    return { kind: 'done' };
  }

  /**
   * A guest conversion request: TDG.VP.VMCALL<MapGPA> (default; arch/tdx/tdvmcall.ts) or the KVM
   * hypercall through TDG.VP.VMCALL ('hypercall': the generic path).
   */
  guestMapGpa(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'map_gpa' }>): boolean | undefined {
    const via = op.via ?? 'tdvmcall';
    if (via === 'hypercall') return undefined;
    if (via !== 'tdvmcall') throw kerr('EINVAL', `guest map_gpa via ${via} is not available on TDX VMs`);
    return tdxMapGpa(this, vcpu, this.tdxVcpu(vcpu), prog, op);
  }

  completeMapGpa(vcpu: Vcpu, prog: GuestProgram): boolean {
    return tdxCompleteMapGpa(this, vcpu, this.tdxVcpu(vcpu), prog);
  }

  /** The vCPU's struct vcpu_tdx (made by tdx_vcpu_create for every vCPU of the TD). */
  private tdxVcpu(vcpu: Vcpu): VcpuTdx {
    let v = this.vcpuTdx.get(vcpu);
    if (!v) {
      v = { state: 'uninitialized' };
      this.vcpuTdx.set(vcpu, v);
    }
    return v;
  }

  /** tdx_mmu_release_hkid() + tdx_vm_destroy(). */
  destroy(): void {
    if (this.td && this.td.lifecycle !== 'teardown') this.module.mngKeyFreeid(this.td);
    this.state = 'uninitialized';
  }
}
