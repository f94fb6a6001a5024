/**
 * A VM: its fd, memslots, memory attributes, MMU and vCPUs. Mirrors virt/kvm/kvm_main.c
 * (kvm_create_vm, kvm_vm_ioctl, kvm_vm_ioctl_check_extension_generic, kvm_put_kvm) and the x86 parts
 * of arch/x86/kvm/x86.c (kvm_arch_init_vm, kvm_vm_ioctl_check_extension, kvm_vm_ioctl_enable_cap).
 */
import { PageCells, PointExtentMap } from '../../ranges/point-extent-map.js';
import * as K from '../../uapi/kvm.js';
import { PAGE_SIZE } from '../../uapi/mman.js';
import type { ArchVm } from '../arch/arch-vm.js';
import { kerr } from '../errors.js';
import { KFile, type Stat } from '../file.js';
import type { Host } from '../host.js';
import type { KernelProfile } from '../profiles/types.js';
import { describeProvenance, type Provenance } from '../provenance.js';
import { copyFromUser, copyToUser, scalar, type UStruct, u32, u64, userStructOut } from '../uaccess.js';
import {
  MemAttrSites,
  type MemAttrWord,
  setMemoryAttributes,
  supportedMemAttributes,
  wordAttributes,
} from './attributes.js';
import { type CpuidEntry, KVM_MAX_CPUID_ENTRIES, readCpuidEntries } from './cpuid.js';
import { createGuestMemfd, type GmemFile, supportedGmemFlags } from './guest-memfd.js';
import {
  type IrqchipMode,
  kvmCreateIrqchip,
  kvmCreatePit2,
  kvmEnableSplitIrqchip,
  kvmIrqLine,
} from './irqchip.js';
import { deleteSlot, Memslots, setUserMemoryRegion } from './memslots.js';
import { Mmu } from './mmu.js';
import { kvmPatValid, MSR_IA32_CR_PAT, msrIo } from './msr.js';
import { kvmPreFaultMemory } from './pre-fault.js';
import { kvmArchVcpuIoctlRun } from './run.js';
import { checkVcpuId, Vcpu, VcpuFile } from './vcpu.js';
import { createArchVm, supportedVmTypes } from './x86.js';

const HC_MAP_GPA_RANGE = BigInt(K.KVM_HC_MAP_GPA_RANGE);
/** KVM_EXIT_HYPERCALL_VALID_MASK (arch/x86/kvm/x86.h). */
export const KVM_EXIT_HYPERCALL_VALID_MASK = 1n << HC_MAP_GPA_RANGE;

export class Vm {
  readonly memslots = new Memslots();
  /**
   * The page layer the attributes share with the SPTEs (mmu.sptes): a conversion changes a gfn's
   * attribute and zaps its SPTE, and the faults around it read both, so one hash entry per gfn
   * serves the two maps.
   */
  readonly gfnCells = new PageCells();
  /**
   * gfn -> attribute word (attributes.ts: seq * 2 + private). Written only through
   * setAttributes(), which keeps memoryAttributes()'s one-entry cache valid.
   */
  readonly attributes = new PointExtentMap<MemAttrWord>(undefined, this.gfnCells);
  readonly attrSites = new MemAttrSites();
  /**
   * The guest's last conversion request that reached userspace (a KVM_HC_MAP_GPA_RANGE exit, by
   * hypercall, TDX MapGPA or an SNP page-state change), for explanations: a VMM that never set the
   * attributes it asked for leaves the next access mismatched. One record, rewritten in place (the
   * exit is a hot path); `answered` once KVM_SET_MEMORY_ATTRIBUTES gave its range what it asked.
   */
  readonly lastConversion = { gfn: 0, npages: 0, private: false, seq: 0, answered: true };
  /** memoryAttributes() of the gfn asked last (a fault asks twice per access: -1 = none). */
  private attrMemoGfn = -1;
  private attrMemo = 0;
  readonly mmu: Mmu;
  readonly vcpus = new Map<number, Vcpu>();
  readonly gmemFiles = new Set<GmemFile>();
  readonly arch: ArchVm;
  private exitMask = 0n;
  /** Its KVM_HC_MAP_GPA_RANGE bit, asked on every conversion request (no BigInt per ask). */
  private mapGpaRangeExit = false;

  /** kvm->arch.hypercall_exit_enabled. */
  get hypercallExitEnabled(): bigint {
    return this.exitMask;
  }
  set hypercallExitEnabled(mask: bigint) {
    this.exitMask = mask;
    this.mapGpaRangeExit = (mask & (1n << HC_MAP_GPA_RANGE)) !== 0n;
  }

  /** user_exit_on_hypercall(): KVM_CAP_EXIT_HYPERCALL enabled the user exit for hypercall `nr`. */
  userExitOnHypercall(nr: bigint): boolean {
    if (nr === HC_MAP_GPA_RANGE) return this.mapGpaRangeExit;
    return (this.exitMask & (1n << nr)) !== 0n;
  }
  /** kvm->arch.irqchip_mode (irqchip.ts): 'kernel' after KVM_CREATE_IRQCHIP, 'split' after KVM_CAP_SPLIT_IRQCHIP. */
  irqchipMode: IrqchipMode = 'none';
  /** kvm->arch.vpit: KVM_CREATE_PIT2 made a PIT. */
  hasPit = false;
  /** Where irqchipMode was set, for explanations. */
  irqchipSince: Provenance | undefined;
  /** irqchip_split(): local APICs in KVM, the IOAPIC and the PIC in userspace. */
  get irqchipSplit(): boolean {
    return this.irqchipMode === 'split';
  }
  /** kvm->vm_dead / vm_bugged: every ioctl returns -EIO from then on. */
  dead: string | undefined;
  private refs = 1;
  readonly profile: KernelProfile;

  constructor(
    readonly host: Host,
    readonly type: number,
    readonly id: number,
  ) {
    this.profile = host.profile;
    this.mmu = new Mmu(this);
    this.arch = createArchVm(this);
    host.mmuNotifiers.add(this); // kvm_create_vm() -> kvm_init_mmu_notifier()
  }

  /**
   * kvm->arch.has_protected_state (6.10+, SEV-ES and SNP VM types; TDX from 2025, profile
   * tdx.hasProtectedState): no read-only memslots, register ioctls refused.
   */
  get hasProtectedState(): boolean {
    if (this.type === K.KVM_X86_TDX_VM) return this.profile.tdx.hasProtectedState;
    return this.type === K.KVM_X86_SEV_ES_VM || this.type === K.KVM_X86_SNP_VM;
  }

  get(): void {
    this.refs++;
  }

  /** kvm_put_kvm(): the last reference destroys the VM (memslots freed, guest_memfd unbound). */
  put(): void {
    if (--this.refs > 0) return;
    this.host.mmuNotifiers.delete(this); // kvm_destroy_vm(): mmu_notifier_unregister()
    for (const asId of [0, 1]) for (const slot of [...this.memslots.all(asId)]) deleteSlot(this, slot);
    this.arch.destroy?.();
  }

  /**
   * kvm_mmu_notifier_invalidate_range_start() for the host range [start, end): each memslot whose
   * userspace range overlaps it loses the SPTEs of the overlap (kvm_unmap_gfn_range), with
   * KVM_FILTER_SHARED: the host's page tables only ever backed shared mappings, so a TD's mirror
   * root (its private pages) is left alone; other VMs have one root and lose both kinds. Address
   * space 1 (SMM) is not walked: the model keeps no SPTEs for it (Mmu.zapSlot).
   */
  mmuNotifierInvalidate(start: number, end: number): void {
    for (const slot of this.memslots.all(0)) {
      const s = Math.max(start, slot.userspaceAddr);
      const e = Math.min(end, slot.userspaceAddr + slot.npages * PAGE_SIZE);
      if (s >= e) continue;
      const g0 = slot.baseGfn + Math.floor((s - slot.userspaceAddr) / PAGE_SIZE);
      const g1 = slot.baseGfn + Math.ceil((e - slot.userspaceAddr) / PAGE_SIZE);
      const filter = this.profile.mmu.gfnRangeFilter ? 'shared' : 'all';
      this.mmu.zapGfnRange(g0, g1, filter, 'kvm_mmu_notifier_invalidate_range_start');
    }
  }

  /** kvm_get_memory_attributes(). */
  memoryAttributes(gfn: number): number {
    if (gfn === this.attrMemoGfn) return this.attrMemo;
    const a = wordAttributes(this.attributes.get(gfn));
    this.attrMemoGfn = gfn;
    this.attrMemo = a;
    return a;
  }

  /** Does every gfn of [start, end) have exactly `attrs`? */
  attributesAre(start: number, end: number, attrs: number): boolean {
    if (end - start === 1) return this.memoryAttributes(start) === attrs;
    return this.attributes.every(start, end, (w) => wordAttributes(w) === attrs);
  }

  /** Store attribute words (the only writer of `attributes`). */
  setAttributes(start: number, end: number, word: MemAttrWord): void {
    this.attrMemoGfn = -1;
    this.attributes.set(start, end, word);
  }

  /** Why gfn has the attributes it has, for explanations. */
  attributeCause(gfn: number): string {
    const w = this.attributes.get(gfn);
    const isPrivate = wordAttributes(w) & K.KVM_MEMORY_ATTRIBUTE_PRIVATE;
    const why =
      w === undefined
        ? `gfn 0x${gfn.toString(16)} is shared (never set private)`
        : `gfn 0x${gfn.toString(16)} is ${isPrivate ? 'private' : 'shared'} since ${describeProvenance(this.attrSites.provenance(w))}`;
    // The guest asked for the other state and the VMM has not set it (yet).
    const c = this.lastConversion;
    if (c.answered || gfn < c.gfn || gfn >= c.gfn + c.npages || c.private === Boolean(isPrivate)) return why;
    return `${why}; the guest asked for it to be ${c.private ? 'private' : 'shared'} at call #${c.seq} (KVM_RUN > KVM_EXIT_HYPERCALL KVM_HC_MAP_GPA_RANGE), and no KVM_SET_MEMORY_ATTRIBUTES followed`;
  }

  /** A conversion request of [gfn, gfn + npages) reached userspace (see lastConversion). */
  noteConversion(gfn: number, npages: number, isPrivate: boolean): void {
    const c = this.lastConversion;
    c.gfn = gfn;
    c.npages = npages;
    c.private = isPrivate;
    c.seq = this.host.tracer.seq;
    c.answered = false;
  }

  /** KVM_BUG_ON / kvm_vm_dead(): the VM is dead, every later ioctl returns -EIO. */
  kill(reason: string): void {
    this.dead ??= reason;
  }

  private checkAlive(): void {
    if (this.dead) throw kerr('EIO', `VM is dead (${this.dead})`);
  }

  /** kvm_vm_ioctl(). */
  ioctl(request: number, name: string, arg: unknown): number {
    this.checkAlive();
    switch (request) {
      case K.KVM_CREATE_VCPU:
        return this.createVcpu(scalar(arg, 'vcpu id'));
      case K.KVM_CREATE_IRQCHIP:
        return kvmCreateIrqchip(this);
      case K.KVM_CREATE_PIT2:
        return kvmCreatePit2(this, arg);
      case K.KVM_IRQ_LINE:
        return kvmIrqLine(this, arg);
      case K.KVM_SET_NR_MMU_PAGES:
        return this.mmu.setNrMmuPages(scalar(arg, 'nr_mmu_pages'));
      case K.KVM_SET_TSS_ADDR:
        return setTssAddr(scalar(arg, 'tss addr'));
      case K.KVM_SET_USER_MEMORY_REGION:
        return setUserMemoryRegion(this, arg, false);
      case K.KVM_SET_USER_MEMORY_REGION2:
        return setUserMemoryRegion(this, arg, true);
      case K.KVM_CHECK_EXTENSION:
        return checkExtension(this.host, this, Number(scalar(arg, 'capability')));
      case K.KVM_ENABLE_CAP:
        return this.enableCap(arg);
      case K.KVM_SET_MEMORY_ATTRIBUTES:
        return setMemoryAttributes(this, arg);
      case K.KVM_CREATE_GUEST_MEMFD:
        return createGuestMemfd(this, arg);
      case K.KVM_MEMORY_ENCRYPT_REG_REGION:
      case K.KVM_MEMORY_ENCRYPT_UNREG_REGION: {
        // kvm_arch_vm_ioctl(): struct kvm_enc_region is copied in first, then -ENOTTY where the
        // vendor has no hook (VMX).
        const region = copyFromUser(arg, 'kvm_enc_region');
        const addr = u64(region, 'addr');
        const size = u64(region, 'size');
        const hook = this.host.platform.vmMemEncRegion;
        if (!hook) throw kerr('ENOTTY', `${name}: no mem_enc_(un)register_region on this host`);
        return hook.call(this.host.platform, this, request === K.KVM_MEMORY_ENCRYPT_REG_REGION, addr, size);
      }
      case K.KVM_MEMORY_ENCRYPT_OP: {
        // kvm_arch_vm_ioctl: no mem_enc_ioctl for this VM's vendor ops -> -ENOTTY.
        if (this.arch.memEncryptOp) return this.arch.memEncryptOp(arg);
        if (this.host.platform.vmMemEncryptOp) return this.host.platform.vmMemEncryptOp(this, arg);
        throw kerr('ENOTTY', 'KVM_MEMORY_ENCRYPT_OP: not supported by this VM type');
      }
      default:
        throw kerr('ENOTTY', `kvm_vm_ioctl: ${name} is not a VM ioctl`);
    }
  }

  /** kvm_vm_ioctl_create_vcpu(). */
  private createVcpu(rawId: bigint): number {
    const id = checkVcpuId(rawId, K.KVM_MAX_VCPU_IDS);
    if (this.vcpus.size >= K.KVM_MAX_VCPUS) throw kerr('EINVAL', 'kvm_vm_ioctl_create_vcpu: too many vCPUs');
    this.arch.vcpuPrecreate?.(id);
    if (this.vcpus.has(id)) throw kerr('EEXIST', `kvm_vm_ioctl_create_vcpu: vCPU ${id} exists`);
    const vcpu = new Vcpu(this, id);
    this.vcpus.set(id, vcpu);
    this.arch.vcpuCreated?.(vcpu);
    this.get();
    try {
      return this.host.fds.install(new VcpuFile(vcpu));
    } catch (e) {
      // create_vcpu_fd() failed (-EMFILE): kvm_vm_ioctl_create_vcpu() unwinds (xa_erase), so the id
      // can be created again. The file's release already dropped its VM reference.
      this.vcpus.delete(id);
      throw e;
    }
  }

  /** kvm_vm_ioctl_enable_cap_generic() then x86 kvm_vm_ioctl_enable_cap(). */
  private enableCap(arg: unknown): number {
    const s = copyFromUser(arg, 'kvm_enable_cap');
    const cap = Number(u32(s, 'cap'));
    const flags = u32(s, 'flags');
    const args = Array.isArray(s['args']) ? (s['args'] as unknown[]) : [];
    const arg0 = scalar(args[0] ?? 0, 'args[0]');
    if (flags !== 0n) throw kerr('EINVAL', 'kvm_vm_ioctl_enable_cap: flags must be 0');
    switch (cap) {
      case K.KVM_CAP_EXIT_HYPERCALL:
        if (arg0 & ~KVM_EXIT_HYPERCALL_VALID_MASK)
          throw kerr('EINVAL', 'KVM_CAP_EXIT_HYPERCALL: unsupported hypercall');
        this.hypercallExitEnabled = arg0;
        return 0;
      case K.KVM_CAP_SPLIT_IRQCHIP:
        // x86 kvm_vm_ioctl_enable_cap(): too many reserved pins -EINVAL, then -EEXIST once an
        // IRQCHIP (full or split) exists or a vCPU was created.
        return kvmEnableSplitIrqchip(this, arg0);
      default:
        throw kerr('EINVAL', `kvm_vm_ioctl_enable_cap: capability ${cap} cannot be enabled`);
    }
  }

  /**
   * x86.c kvm_arch_vcpu_ioctl_{get,set}_{regs,sregs}(): -EINVAL when the VM type has
   * has_protected_state and the vCPU guest_state_protected; the arch says since when.
   */
  private refuseProtectedState(vcpu: Vcpu, name: string): void {
    const why = this.hasProtectedState ? this.arch.guestStateProtected?.(vcpu) : undefined;
    if (why !== undefined)
      throw kerr('EINVAL', `${name}: vCPU ${vcpu.id}'s state is protected (guest_state_protected)`, why);
  }

  /** kvm_vcpu_ioctl() and x86 kvm_arch_vcpu_ioctl(). */
  vcpuIoctl(vcpu: Vcpu, request: number, name: string, arg: unknown): number {
    this.checkAlive();
    switch (request) {
      case K.KVM_RUN:
        if (arg !== undefined && arg !== null && arg !== 0) throw kerr('EINVAL', 'KVM_RUN takes no argument');
        return kvmArchVcpuIoctlRun(vcpu);
      case K.KVM_PRE_FAULT_MEMORY:
        // Before 6.11 kvm_vcpu_ioctl() has no such case: it falls to kvm_arch_vcpu_ioctl(), whose
        // x86 default is -EINVAL (not -ENOTTY).
        if (!this.profile.mmu.preFault)
          throw kerr(
            'EINVAL',
            'kvm_arch_vcpu_ioctl: KVM_PRE_FAULT_MEMORY does not exist in this kernel (x86 default: -EINVAL)',
          );
        return kvmPreFaultMemory(vcpu, arg);
      case K.KVM_MEMORY_ENCRYPT_OP:
        if (!this.arch.vcpuMemEncryptOp) {
          // kvm_arch_vcpu_ioctl() has this case only since the TDX series ("KVM: TDX: Do TDX
          // specific vcpu initialization": 6.16, and the 2024 dev tree); before, its default: -EINVAL.
          if (!this.profile.vmTypes.tdx)
            throw kerr(
              'EINVAL',
              'kvm_arch_vcpu_ioctl: no KVM_MEMORY_ENCRYPT_OP case before TDX (default: -EINVAL)',
            );
          // -ENOTTY without kvm_x86_ops.vcpu_mem_enc_ioctl. A host with TDX enabled has
          // vt_vcpu_mem_enc_ioctl(), which refuses a non-TD vCPU with -EINVAL.
          if (this.host.platform.name === 'tdx') throw kerr('EINVAL', 'vt_vcpu_mem_enc_ioctl: not a TD vCPU');
          throw kerr('ENOTTY', 'KVM_MEMORY_ENCRYPT_OP: no vCPU commands for this VM type');
        }
        return this.arch.vcpuMemEncryptOp(vcpu, arg);
      case K.KVM_GET_REGS: {
        // kvm_arch_vcpu_ioctl_get_regs(): refused for protected state before anything is written,
        // then copy_to_user() (-EFAULT).
        this.refuseProtectedState(vcpu, name);
        const out = userStructOut(arg, 'kvm_regs');
        if (vcpu.hasRun)
          throw kerr(
            'EOPNOTSUPP',
            'KVM_GET_REGS: the registers of a vCPU that has run are not modelled by gmemlab',
          );
        const set = vcpu.archState['regs'] as UStruct | undefined;
        for (const r of K.KVM_REGS_FIELDS) copyToUser(out, r, set ? u64(set, r) : (RESET_REGS[r] ?? 0n));
        // __set_regs() stored rflags | X86_EFLAGS_FIXED.
        if (set) copyToUser(out, 'rflags', u64(set, 'rflags') | 2n);
        return 0;
      }
      case K.KVM_GET_SREGS:
        // kvm_arch_vcpu_ioctl_get_sregs(): the same refusal for protected state; the segment state
        // it would return is the vendor module's (VMX, SVM and PVM differ) and not modelled.
        this.refuseProtectedState(vcpu, name);
        userStructOut(arg, 'kvm_sregs'); // copy_to_user() fails whatever it would have copied
        throw kerr(
          'EOPNOTSUPP',
          'KVM_GET_SREGS: segment and control register state is not modelled by gmemlab',
        );
      case K.KVM_GET_FPU:
        // kvm_arch_vcpu_ioctl_get_fpu(): a confidential FPU state is -EINVAL with has_protected_state,
        // else KVM copies out the zeroed struct it allocated; the x87/SSE state itself is not modelled.
        if (this.arch.fpuConfidential?.(vcpu)) {
          if (this.hasProtectedState)
            throw kerr(
              'EINVAL',
              `KVM_GET_FPU: vCPU ${vcpu.id}'s FPU state is confidential (fpstate_is_confidential)`,
            );
          const out = userStructOut(arg, 'kvm_fpu');
          for (const f of ['fcw', 'fsw', 'ftwx', 'last_opcode', 'last_ip', 'last_dp', 'mxcsr'])
            copyToUser(out, f, 0n);
          return 0;
        }
        userStructOut(arg, 'kvm_fpu'); // copy_to_user() fails whatever it would have copied
        throw kerr('EOPNOTSUPP', 'KVM_GET_FPU: the x87/SSE register state is not modelled by gmemlab');
      case K.KVM_SET_REGS:
      case K.KVM_SET_SREGS: {
        // kvm_vcpu_ioctl() copies the struct in (memdup_user: -EFAULT), then
        // kvm_arch_vcpu_ioctl_set_regs/sregs() refuse a vCPU whose state the guest owns, on VM
        // types with has_protected_state (6.10+: SEV-ES, SNP; TDX from 2025), before any other check.
        const regs = copyFromUser(arg, name === 'KVM_SET_REGS' ? 'kvm_regs' : 'kvm_sregs');
        this.refuseProtectedState(vcpu, name);
        if (name === 'KVM_SET_SREGS') checkSregs(regs);
        vcpu.archState[name === 'KVM_SET_REGS' ? 'regs' : 'sregs'] = { ...regs };
        return 0;
      }
      case K.KVM_SET_CPUID2: {
        // kvm_vcpu_ioctl_set_cpuid2(): too many entries -E2BIG, then the copy (-EFAULT).
        const c = copyFromUser(arg, 'kvm_cpuid2');
        const nent = Number(u32(c, 'nent'));
        if (nent > KVM_MAX_CPUID_ENTRIES)
          throw kerr('E2BIG', `KVM_SET_CPUID2: nent ${nent} > ${KVM_MAX_CPUID_ENTRIES}`);
        const entries = readCpuidEntries(c, nent, 'kvm_cpuid2.entries');
        // kvm_set_cpuid(): once the vCPU has run, only the same table is accepted (5.16+), checked
        // before kvm_check_cpuid(); the vCPU keeps the table it has.
        if (vcpu.hasRun) {
          if (!sameCpuid(vcpu.cpuid ?? [], entries))
            throw kerr('EINVAL', 'kvm_set_cpuid: the vCPU has run; the CPUID can no longer change');
          return 0;
        }
        checkCpuid(entries);
        vcpu.cpuid = entries;
        return 0;
      }
      default: {
        // kvm_arch_vcpu_ioctl_set_fpu() after the copy: a confidential FPU state is -EINVAL with
        // has_protected_state, else silently left alone (0).
        if (request === K.KVM_SET_FPU && this.arch.fpuConfidential?.(vcpu)) {
          copyFromUser(arg, 'kvm_fpu');
          if (this.hasProtectedState)
            throw kerr(
              'EINVAL',
              `KVM_SET_FPU: vCPU ${vcpu.id}'s FPU state is confidential (fpstate_is_confidential)`,
            );
          return 0;
        }
        // Register ioctls an arch models itself (SEV: the state sev_es_sync_vmsa() reads).
        const r = this.arch.vcpuIoctl?.(vcpu, request, name, arg);
        if (r !== undefined) return r;
        if (request === K.KVM_SET_FPU) {
          vcpu.archState['fpu'] = { ...copyFromUser(arg, 'kvm_fpu') };
          return 0;
        }
        if (request === K.KVM_SET_MSRS) return setMsrsGeneric(arg, this.host.platform.name !== 'generic');
        // kvm_vcpu_ioctl() default -> kvm_arch_vcpu_ioctl(), whose x86 default is r = -EINVAL.
        throw kerr('EINVAL', `kvm_arch_vcpu_ioctl: ${name} is not a vCPU ioctl (x86 default: -EINVAL)`);
      }
    }
  }
}

export class VmFile extends KFile {
  /** An anonymous-inode pseudo file: no FMODE_PREAD/FMODE_PWRITE. */
  override get positional(): boolean {
    return false;
  }

  readonly kind = 'kvm-vm';
  constructor(readonly vm: Vm) {
    super(vm.host);
  }

  override ioctl(request: number, name: string, arg: unknown): number {
    return this.vm.ioctl(request, name, arg);
  }

  stat(): Stat {
    return { st_ino: 0, st_size: 0, st_blksize: 4096, st_mode: 0o600 };
  }

  protected release(): void {
    this.vm.put();
  }
}

/** kvm_vm_ioctl_check_extension_generic() + x86 kvm_vm_ioctl_check_extension(); vm undefined = /dev/kvm. */
export function checkExtension(host: Host, vm: Vm | undefined, cap: number): number {
  const p = host.profile;
  switch (cap) {
    // Generic: the memslot ioctls, whose old bugs these two name as fixed, and the VM-fd ioctls.
    case K.KVM_CAP_USER_MEMORY:
    case K.KVM_CAP_USER_MEMORY2:
    case K.KVM_CAP_DESTROY_MEMORY_REGION_WORKS:
    case K.KVM_CAP_JOIN_MEMORY_REGIONS_WORKS:
    case K.KVM_CAP_CHECK_EXTENSION_VM:
    case K.KVM_CAP_ENABLE_CAP_VM:
    case K.KVM_CAP_MEMORY_FAULT_INFO:
    // x86's list, for every VM type: the ones whose feature the model has (KVM_SET_NR_MMU_PAGES,
    // KVM_SET_TSS_ADDR, KVM_CREATE_PIT2, kvm_run.immediate_exit). Not KVM_CAP_IRQ_INJECT_STATUS:
    // the kernel says 1, but the model does not offer KVM_IRQ_LINE_STATUS (irqchip.ts).
    case K.KVM_CAP_SYNC_MMU:
    case K.KVM_CAP_MMU_SHADOW_CACHE_CONTROL:
    case K.KVM_CAP_SET_TSS_ADDR:
    case K.KVM_CAP_PIT2:
    case K.KVM_CAP_IMMEDIATE_EXIT:
      return 1;
    case K.KVM_CAP_READONLY_MEM:
      return p.x86.readonlyMemCapPerVm && vm?.hasProtectedState ? 0 : 1;
    // has_emulated_msr(kvm, MSR_IA32_SMBASE) (CONFIG_KVM_SMM=y): not for a TD (tdx_has_emulated_msr)
    // nor an SEV-ES/SNP guest (svm_has_emulated_msr); VMX with unrestricted guest, SVM and
    // /dev/kvm say 1. The model's SMM is its second address space (KVM_CAP_MULTI_ADDRESS_SPACE).
    case K.KVM_CAP_X86_SMM:
      return vm !== undefined && (vm.type === K.KVM_X86_TDX_VM || vm.hasProtectedState) ? 0 : 1;
    case K.KVM_CAP_NR_MEMSLOTS:
      return K.KVM_USER_MEM_SLOTS;
    case K.KVM_CAP_MAX_VCPUS:
      return K.KVM_MAX_VCPUS;
    case K.KVM_CAP_MAX_VCPU_ID:
      return K.KVM_MAX_VCPU_IDS;
    case K.KVM_CAP_MEMORY_ATTRIBUTES:
      return supportedMemAttributes(vm);
    case K.KVM_CAP_GUEST_MEMFD:
      // 6.8..6.17: only where private memory exists; 6.18+: guest_memfd on every VM.
      return p.memslots.gmemOnAnyVm || !vm || vm.arch.hasPrivateMem ? 1 : 0;
    case K.KVM_CAP_GUEST_MEMFD_FLAGS:
      return supportedGmemFlags(p, vm);
    case K.KVM_CAP_VM_TYPES:
      return supportedVmTypes(host);
    case K.KVM_CAP_PRE_FAULT_MEMORY:
      return p.mmu.preFault && host.tdp ? 1 : 0; // tdp_enabled
    case K.KVM_CAP_EXIT_HYPERCALL:
      return Number(KVM_EXIT_HYPERCALL_VALID_MASK);
    // kvm_arch_nr_memslot_as_ids(): no SMM address space for a VM with private memory;
    // KVM_MAX_NR_ADDRESS_SPACES on /dev/kvm.
    case K.KVM_CAP_MULTI_ADDRESS_SPACE:
      return vm?.arch.hasPrivateMem ? 1 : 2;
    case K.KVM_CAP_IRQCHIP: // x86: 1 for every VM type, TDs included (6.17+: CONFIG_KVM_IOAPIC=y)
    case K.KVM_CAP_SPLIT_IRQCHIP:
      return 1;
    default:
      return 0;
  }
}

/**
 * kvm_vcpu_reset() at vCPU creation: GPRs zero but RDX, which holds CPUID.1.EAX or, with no CPUID
 * set yet (always, at creation), 0x600; RIP 0xfff0; RFLAGS the fixed bit. Checked on a 6.18 host.
 */
const RESET_REGS: Partial<Record<(typeof K.KVM_REGS_FIELDS)[number], bigint>> = {
  rdx: 0x600n,
  rip: 0xfff0n,
  rflags: 2n,
};

/**
 * KVM_SET_MSRS on a VM type that keeps no MSR state in the model: PAT is accepted, any other index
 * ends the count, where a kernel accepts the MSRs its CPU has. VMX and SVM (the tdx and snp
 * platforms) refuse a PAT that kvm_pat_valid() rejects; the generic platform answers as the
 * conformance host's vendor module (PVM) does, which takes it (case vcpu.set_msrs_bad_pat).
 */
function setMsrsGeneric(arg: unknown, vendorChecksPat: boolean): number {
  return msrIo(arg, (index, data) => index === MSR_IA32_CR_PAT && (!vendorChecksPat || kvmPatValid(data)));
}

const CR0_PE = 1n;
const CR0_NW = 1n << 29n;
const CR0_CD = 1n << 30n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;

/**
 * kvm_is_valid_sregs() and kvm_is_valid_cr0(), the checks that do not depend on the CPU: CR0 bits
 * above 31, NW without CD, PG without PE; in long mode (EFER.LME with CR0.PG) CR4.PAE and
 * EFER.LMA, otherwise neither EFER.LMA nor CS.L. Not modelled: CR4's reserved bits (they follow
 * the guest CPUID), CR3 beyond MAXPHYADDR, the APIC base.
 */
function checkSregs(s: UStruct): void {
  const cr0 = u64(s, 'cr0');
  const cr4 = u64(s, 'cr4');
  const efer = u64(s, 'efer');
  const cs = s['cs'] && typeof s['cs'] === 'object' ? (s['cs'] as UStruct) : {};
  if (cr0 >> 32n !== 0n || (cr0 & CR0_NW && !(cr0 & CR0_CD)) || (cr0 & CR0_PG && !(cr0 & CR0_PE)))
    throw kerr('EINVAL', `kvm_is_valid_cr0: CR0 0x${cr0.toString(16)}`);
  if (efer & EFER_LME && cr0 & CR0_PG) {
    if (!(cr4 & CR4_PAE) || !(efer & EFER_LMA))
      throw kerr('EINVAL', 'kvm_is_valid_sregs: long mode needs CR4.PAE and EFER.LMA');
  } else if (efer & EFER_LMA || u64(cs, 'l') !== 0n)
    throw kerr('EINVAL', 'kvm_is_valid_sregs: EFER.LMA or CS.L outside long mode');
}

/** XFEATURE_MASK_XTILE_DATA, the one bit of XFEATURE_MASK_USER_DYNAMIC. */
const XFEATURE_MASK_XTILE_DATA = 1 << 18;

/**
 * kvm_check_cpuid(): CPUID.0x80000008 may only give 0, 48 or 57 linear-address bits, and dynamic
 * xfeatures need the process's guest permission.
 */
function checkCpuid(entries: readonly CpuidEntry[]): void {
  const e = entries.find((x) => x.function === 0x80000008);
  if (e) {
    const vaddrBits = (e.eax >>> 8) & 0xff;
    if (vaddrBits !== 0 && vaddrBits !== 48 && vaddrBits !== 57)
      throw kerr('EINVAL', `kvm_check_cpuid: ${vaddrBits} virtual-address bits`);
  }
  // Dynamic xfeatures (XFEATURE_MASK_USER_DYNAMIC: AMX tile data, bit 18 of CPUID.0xD.0 EAX) need
  // fpu_enable_guest_xfd_features(), which refuses a feature the process was not granted with
  // arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM): the modelled host has no AMX, so none is ever granted.
  const xsave = entries.find((x) => x.function === 0xd && x.index === 0);
  if (xsave && xsave.eax & XFEATURE_MASK_XTILE_DATA)
    throw kerr('EPERM', '__xfd_enable_feature: AMX tile data not permitted (no ARCH_REQ_XCOMP_GUEST_PERM)');
}

/**
 * The CPUID bits kvm_update_cpuid_runtime() rewrites from the vCPU's state in both tables before
 * kvm_cpuid_check_equal() compares them (so a VMM's value there never makes them differ): CPUID.1
 * ECX.OSXSAVE and EDX.APIC, CPUID.7.0 ECX.OSPKE, CPUID.0xD.0 EBX and, when XSAVEC or XSAVES is
 * enumerated, CPUID.0xD.1 EBX (the XSAVE area sizes). As masks of [eax, ebx, ecx, edx] to ignore.
 */
function runtimeBits(e: CpuidEntry): readonly [number, number, number, number] {
  if (e.function === 1) return [0, 0, 1 << 27, 1 << 9];
  if (e.function === 7 && e.index === 0) return [0, 0, 1 << 4, 0];
  if (e.function === 0xd && e.index === 0) return [0, -1, 0, 0];
  if (e.function === 0xd && e.index === 1 && e.eax & 0b1010) return [0, -1, 0, 0];
  return [0, 0, 0, 0];
}

/** kvm_cpuid_check_equal(): the same entries, in the same order, once the runtime bits are set. */
function sameCpuid(a: readonly CpuidEntry[], b: readonly CpuidEntry[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    if (x.function !== y.function || x.index !== y.index || x.flags !== y.flags) return false;
    const [ma, mb, mc, md] = runtimeBits(y);
    return (
      ((x.eax ^ y.eax) & ~ma) === 0 &&
      ((x.ebx ^ y.ebx) & ~mb) === 0 &&
      ((x.ecx ^ y.ecx) & ~mc) === 0 &&
      ((x.edx ^ y.edx) & ~md) === 0
    );
  });
}

/**
 * kvm_vm_ioctl_set_tss_addr(): an address above 4 GiB less three pages is -EINVAL; then the vendor
 * hook, 0 for TDX VMs, on SVM and on VMX with unrestricted guest. Not modelled: VMX without
 * unrestricted guest, which would place KVM's private real-mode TSS memslot there.
 */
function setTssAddr(addr: bigint): number {
  if (BigInt.asUintN(64, addr) > 0xffff_d000n)
    throw kerr('EINVAL', 'KVM_SET_TSS_ADDR: above 4 GiB - 3 pages');
  return 0;
}
