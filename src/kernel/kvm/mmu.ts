/**
 * The TDP MMU as guest_memfd sees it: SPTEs per gfn (none / shared / private), the page-fault path
 * and zapping. Mirrors arch/x86/kvm/mmu/mmu.c (kvm_mmu_faultin_pfn, __kvm_mmu_faultin_pfn,
 * kvm_mmu_faultin_pfn_gmem (named kvm_faultin_pfn_private before 6.18), kvm_handle_noslot_fault,
 * kvm_handle_error_pfn, kvm_mmu_prepare_memory_fault_exit) and the zap side of tdp_mmu.c
 * (kvm_tdp_mmu_unmap_gfn_range and its root filter). Versions v6.8 .. v7.0.
 *
 * Every mapping is 4 KiB: guest_memfd folios are order 0 (kvm_gmem_get_folio WARNs otherwise), and
 * the model does not build huge SPTEs for shared memory either (so a pre-fault progresses 4 KiB per
 * step where the kernel may map 2 MiB of THP-backed shared memory at once).
 */
import { PointExtentMap } from '../../ranges/point-extent-map.js';
import {
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEM_READONLY,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  KVM_X86_DEFAULT_VM,
  KVM_X86_TDX_VM,
} from '../../uapi/kvm.js';
import { KernelError, kerr } from '../errors.js';
import type { KernelProfile } from '../profiles/types.js';
import { describeProvenance, type Provenance, type Site, type Tracer } from '../provenance.js';
import { type Folio, type GmemInode, kvmGmemGetIndex, kvmGmemGetPfn } from './guest-memfd.js';
import { gfnToHvaMemslot, gmemSlotCause, type Memslot } from './memslots.js';
import type { Vcpu } from './vcpu.js';
import type { Vm } from './vm.js';

/**
 * The fault-in functions' names in a profile's release, for reasons: the private/shared check sits
 * in __kvm_faultin_pfn() in 6.8 and moved up into kvm_faultin_pfn() in 6.10; 447c375c9104 (6.13)
 * added the "mmu" prefix; 6.18's guest_memfd mmap series renamed the private path to _gmem.
 */
function faultinNames(p: KernelProfile): { check: string; inner: string; gmem: string; noslot: string } {
  let n = FAULTIN_NAMES.get(p);
  if (n === undefined) {
    const [maj, min] = (/^(\d+)\.(\d+)/.exec(p.base) ?? ['', '7', '0']).slice(1).map(Number) as [
      number,
      number,
    ];
    const r = maj * 100 + min;
    n =
      r >= 613
        ? {
            check: 'kvm_mmu_faultin_pfn',
            inner: '__kvm_mmu_faultin_pfn',
            gmem: r >= 618 ? 'kvm_mmu_faultin_pfn_gmem' : 'kvm_mmu_faultin_pfn_private',
            noslot: 'kvm_handle_noslot_fault',
          }
        : {
            check: r >= 610 ? 'kvm_faultin_pfn' : '__kvm_faultin_pfn',
            inner: '__kvm_faultin_pfn',
            gmem: 'kvm_faultin_pfn_private',
            // 6.10 moved the no-slot check for private faults into kvm_handle_noslot_fault().
            noslot: r >= 610 ? 'kvm_handle_noslot_fault' : 'kvm_faultin_pfn_private',
          };
    FAULTIN_NAMES.set(p, n);
  }
  return n;
}
const FAULTIN_NAMES = new WeakMap<
  KernelProfile,
  { check: string; inner: string; gmem: string; noslot: string }
>();

/** KVM_MIN_ALLOC_MMU_PAGES (arch/x86/include/asm/kvm_host.h). */
const KVM_MIN_ALLOC_MMU_PAGES = 64;

/**
 * A leaf SPTE. Its provenance is kept as the syscall's seq and the site, not as a record object:
 * a million-page trace keeps an SPTE per page, and its record was one more object per page for
 * the garbage collector to copy and promote. `since` builds the record when an explanation asks.
 */
export class Spte {
  // Declared, not defined: fields defined by the class would be set twice per SPTE (ES2022 class
  // fields), once to undefined; the constructor's stores give the object literal's shape.
  declare readonly private: boolean;
  /** The memslot the mapping was made through (kvm_mmu_page's gfn -> slot, for the fast path). */
  declare readonly slot: Memslot | undefined;
  /** For guest_memfd-backed SPTEs: the folio mapped (inode, gen, pfn - gfn) so stale mappings can be detected. */
  declare readonly inode: GmemInode | undefined;
  declare readonly gen: number | undefined;
  declare readonly pfnDelta: number | undefined;
  declare readonly seq: number;
  declare readonly site: Site;

  constructor(
    isPrivate: boolean,
    slot: Memslot | undefined,
    inode: GmemInode | undefined,
    gen: number | undefined,
    pfnDelta: number | undefined,
    seq: number,
    site: Site,
  ) {
    this.private = isPrivate;
    this.slot = slot;
    this.inode = inode;
    this.gen = gen;
    this.pfnDelta = pfnDelta;
    this.seq = seq;
    this.site = site;
  }

  /** The change that made this SPTE. */
  get since(): Provenance {
    return this.site.at(this.seq);
  }

  /** The guest_memfd page this SPTE maps at gfn (a guest_memfd-backed SPTE). */
  index(gfn: number): number {
    return gfn + this.pfnDelta! - this.inode!.pfnBase;
  }

  /** The userspace address whose page backs gfn in this SPTE's memslot. */
  hva(gfn: number): number {
    return gfnToHvaMemslot(this.slot!, gfn);
  }
}

const spteEquals = (a: Spte, b: Spte): boolean =>
  a.private === b.private &&
  a.slot === b.slot &&
  a.inode === b.inode &&
  a.gen === b.gen &&
  a.pfnDelta === b.pfnDelta &&
  a.seq === b.seq &&
  a.site === b.site;

/**
 * What a fault resolved to: RET_PF_FIXED, as the leaf SPTE that now maps the gfn (its backing is
 * the guest_memfd page, `inode`, or the slot's userspace page); or RET_PF_EMULATE (MMIO).
 */
export type FaultResult = Spte | 'emulate';

/** KVM_FILTER_PRIVATE / KVM_FILTER_SHARED (6.14+), or both. */
export type ZapFilter = 'all' | 'private' | 'shared';

/** The kind of fault: a vCPU's guest access (KVM_RUN) or KVM_PRE_FAULT_MEMORY (fault->prefetch). */
export interface FaultKind {
  readonly write: boolean;
  readonly prefetch: boolean;
}

/**
 * Provenance of a leaf SPTE: arch/x86/kvm/mmu/tdp_mmu.c kvm_tdp_mmu_map() installs it in
 * tdp_mmu_map_handle_target_level() (whether the SPTE is private is in the SPTE, not the path).
 */
const TDP_MMU_MAP = ['kvm_tdp_mmu_map'] as const;
const SET_LEAF_SPTE = 'tdp_mmu_map_handle_target_level';

/**
 * A mirror (private) SPTE reaches the TDX module from the same place: kvm_tdp_mmu_map() >
 * tdp_mmu_map_handle_target_level() > ... > the set_external_spte hook (tdx_sept_set_private_spte).
 */
function withinTdpMmuMap(t: Tracer, fn: () => void): void {
  t.enter('kvm_tdp_mmu_map');
  t.enter(SET_LEAF_SPTE);
  try {
    fn();
  } finally {
    t.leave();
    t.leave();
  }
}

export class Mmu {
  /** gfn -> SPTE; its page layer is shared with the VM's attributes (Vm.gfnCells). */
  readonly sptes: PointExtentMap<Spte>;
  /** Bumped on every memslot change. */
  memslotGeneration = 0;
  /**
   * Slots that a concurrent KVM_SET_USER_MEMORY_REGION is deleting or moving right now: the
   * window between kvm_invalidate_memslot() publishing the KVM_MEMSLOT_INVALID copy and
   * synchronize_srcu(). A deterministic stand-in for the race pre_fault_memory_test provokes with
   * a thread (see beginRacingMemslotUpdate); the next memslot change ends the window.
   */
  private readonly invalidSlots = new Set<Memslot>();

  /**
   * The shadow MMU's page budget (kvm->arch.n_max_mmu_pages) and the one userspace asked for
   * (n_requested_mmu_pages). It matters without TDP, and with it up to 6.8 (profile
   * mmu.rootAllocNeedsMmuPages): root allocation (make_mmu_pages_available) fails with -ENOSPC while
   * it is 0, i.e. before the first memslot CREATE or DELETE and before KVM_SET_NR_MMU_PAGES. That is
   * why set_memory_region_test's test_zero_memory_regions sets it.
   */
  nMaxMmuPages = 0;
  nRequestedMmuPages = 0n;

  constructor(private readonly vm: Vm) {
    this.sptes = new PointExtentMap<Spte>(spteEquals, vm.gfnCells);
  }

  /** kvm_arch_commit_memory_region() for KVM_MR_CREATE and KVM_MR_DELETE: the default budget. */
  memslotCreatedOrDeleted(nrMemslotPages: bigint): void {
    if (this.nRequestedMmuPages !== 0n) return;
    // KVM_MEMSLOT_PAGES_TO_MMU_PAGES_RATIO (one per 50 memslot pages), at least KVM_MIN_ALLOC_MMU_PAGES.
    this.nMaxMmuPages = Math.max(Number(nrMemslotPages / 50n), KVM_MIN_ALLOC_MMU_PAGES);
  }

  /** kvm_vm_ioctl_set_nr_mmu_pages(). */
  setNrMmuPages(nr: bigint): number {
    if (nr < BigInt(KVM_MIN_ALLOC_MMU_PAGES))
      throw kerr(
        'EINVAL',
        `KVM_SET_NR_MMU_PAGES: ${nr} < KVM_MIN_ALLOC_MMU_PAGES (${KVM_MIN_ALLOC_MMU_PAGES})`,
      );
    this.nMaxMmuPages = Number(nr);
    this.nRequestedMmuPages = nr;
    return 0;
  }

  memslotsChanged(): void {
    this.memslotGeneration++;
    this.invalidSlots.clear();
  }

  /**
   * kvm_mmu_reload() of a vCPU without a root: kvm_mmu_load() allocates one. Without TDP (or up to
   * 6.8 even with it, profile mmu.rootAllocNeedsMmuPages) that goes through
   * make_mmu_pages_available(): -ENOSPC while the page budget is 0. Once a root loads the budget
   * never returns to 0, so the check needs no root state of its own.
   */
  reload(): void {
    const vm = this.vm;
    if ((!vm.host.tdp || vm.profile.mmu.rootAllocNeedsMmuPages) && this.nMaxMmuPages === 0)
      throw kerr(
        'ENOSPC',
        'make_mmu_pages_available: no MMU page budget (no memslot yet, no KVM_SET_NR_MMU_PAGES)',
      );
  }

  /** Mark `slot` KVM_MEMSLOT_INVALID until the next memslot change (a racing delete or move). */
  beginRacingMemslotUpdate(slot: Memslot): void {
    this.invalidSlots.add(slot);
  }

  /**
   * Zap SPTEs in [start, end) (kvm_unmap_gfn_range / kvm_tdp_mmu_unmap_gfn_range). The filter
   * selects roots: only a VM with a mirror root (TDX: kvm_has_mirrored_tdp) keeps private and shared
   * SPTEs apart; every other VM has one direct root, so every filter zaps both
   * (kvm_gfn_range_filter_to_root_types).
   */
  zapGfnRange(start: number, end: number, filter: ZapFilter, why: string): void {
    if (start >= end || this.sptes.isEmpty()) return;
    const vm = this.vm;
    const f: ZapFilter = vm.type === KVM_X86_TDX_VM ? filter : 'all';
    const wantPrivateRuns = vm.arch.removePrivateSptes !== undefined;
    if (f === 'all' && !wantPrivateRuns) {
      // Every SPTE of the range goes and nobody needs to hear which: one clear, which itself does
      // nothing when nothing is mapped (the common case for conversions). Touching a range left
      // empty is harmless: the invariants find no SPTE there.
      this.sptes.set(start, end, undefined);
      vm.host.invariants.touchGfns(vm, start, end);
      return;
    }
    // Nothing mapped in the range: no walk, no update.
    const first = this.sptes.nextExtent(start);
    if (first === undefined || first.start >= end) return;
    let privateRuns: Array<[number, number]> | undefined;
    this.sptes.update(start, end, (s, a, b) => {
      if (!s) return s;
      if (f === 'private' && !s.private) return s;
      if (f === 'shared' && s.private) return s;
      if (s.private && wantPrivateRuns) {
        privateRuns ??= [];
        privateRuns.push([a, b]);
      }
      return undefined;
    });
    if (privateRuns) {
      const remove = vm.arch.removePrivateSptes!.bind(vm.arch);
      const t = vm.host.tracer;
      for (const [a, b] of privateRuns) t.within(why, () => remove(a, b - a));
    }
    vm.host.invariants.touchGfns(vm, start, end);
  }

  /**
   * kvm_arch_flush_shadow_memslot(): a deleted or moved slot loses its mappings, and with the fast
   * zap (profile mmu.memslotFlush) every other mapping of the VM goes too, SMM slots included.
   */
  zapSlot(slot: Memslot, why: string): void {
    const vm = this.vm;
    const zapAll =
      vm.type !== KVM_X86_TDX_VM &&
      (vm.profile.mmu.memslotFlush === 'zap-all' || vm.type === KVM_X86_DEFAULT_VM);
    if (zapAll) {
      this.zapGfnRange(0, Number.MAX_SAFE_INTEGER, 'all', 'kvm_mmu_zap_all_fast');
      return;
    }
    if (slot.asId !== 0) return;
    this.zapGfnRange(slot.baseGfn, slot.baseGfn + slot.npages, 'all', why);
  }

  /**
   * The TDP page fault for one gfn, kvm_mmu_faultin_pfn() then the map. `isPrivate` is the fault's
   * private bit (SW_PROTECTED: the attribute, set by kvm_mmu_page_fault; SNP/TDX: the guest's view;
   * pre-fault: the attribute). On a memory-fault exit the vCPU's kvm_run is filled and the errno is
   * thrown, as the ioctl returns it. RET_PF_EMULATE is returned as 'emulate'.
   */
  fault(vcpu: Vcpu, gfn: number, isPrivate: boolean, kind: FaultKind): FaultResult {
    const vm = this.vm;
    // A guest access through a present SPTE: the hardware walk succeeds and KVM never sees it. No
    // get_pfn, no prepare hook. SNP and TDX guests reach private and shared SPTEs by their own
    // C-bit / shared bit, so the kind must match; SW_PROTECTED and default VMs have one table that
    // the guest cannot tell apart.
    // Not for a prefetch (KVM_PRE_FAULT_MEMORY, kvm_tdp_map_page): its error code has no
    // PFERR_PRESENT_MASK, so page_fault_can_be_fast() returns !kvm_ad_enabled, false with A/D bits
    // (TDX requires them: tdx_bringup checks enable_ept_ad_bits). The fault goes all the way through
    // kvm_mmu_faultin_pfn() (KVM_MEMSLOT_INVALID, kvm_gmem_get_pfn() and its prepare hook) and only
    // tdp_mmu_map_handle_target_level() finds the same SPTE: RET_PF_SPURIOUS, success.
    const cur = this.sptes.get(gfn);
    if (
      !kind.prefetch &&
      cur !== undefined &&
      cur.slot !== undefined &&
      (cur.private === isPrivate || vm.arch.privacySource !== 'guest')
    ) {
      if (!(kind.write && cur.slot.flags & KVM_MEM_READONLY)) return cur;
    }
    const slot = vm.memslots.lookup(gfn);
    // kvm_mmu_faultin_pfn(): a private/shared mismatch with the attribute is a memory-fault exit.
    // (kvm_mem_is_private() is false on VMs without private memory: they cannot set the attribute.)
    const attrPrivate = (vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
    if (isPrivate !== attrPrivate) {
      this.memoryFaultExit(vcpu, gfn, isPrivate);
      throw kerr(
        'EFAULT',
        `${faultinNames(vm.profile).check}: ${isPrivate ? 'private' : 'shared'} access to a ${attrPrivate ? 'private' : 'shared'} gfn`,
        vm.attributeCause(gfn),
      );
    }
    if (!slot) {
      // kvm_handle_noslot_fault(): private accesses cannot be emulated MMIO (v6.10+; v6.8's
      // kvm_faultin_pfn_private() rejected the NULL slot with the same exit).
      if (isPrivate) {
        this.memoryFaultExit(vcpu, gfn, true);
        throw kerr(
          'EFAULT',
          `${faultinNames(vm.profile).noslot}: private access to gfn 0x${gfn.toString(16)} with no memslot`,
          gmemSlotCause(vm, gfn),
        );
      }
      return 'emulate';
    }
    // A memslot being deleted or moved: RET_PF_RETRY for a vCPU (it re-enters the guest, dropping
    // SRCU, so the update completes). For a pre-fault, which holds SRCU across its whole loop:
    // 6.18+ punts -EAGAIN (3ccbf6f47098); before, kvm_tdp_map_page() retried forever while
    // synchronize_srcu() waited for it, and only a signal ended the ioctl.
    if (kind.prefetch && this.invalidSlots.has(slot)) {
      if (vm.profile.mmu.preFaultEagain)
        throw kerr('EAGAIN', `kvm_mmu_faultin_pfn: memslot ${slot.id} is being deleted or moved (prefetch)`);
      throw kerr(
        'EINTR',
        `kvm_tdp_map_page: RET_PF_RETRY on KVM_MEMSLOT_INVALID slot ${slot.id} livelocks against synchronize_srcu(); ended by a signal`,
      );
    }
    // __kvm_mmu_faultin_pfn(): private faults (and 6.18+ GMEM_ONLY slots) come from guest_memfd.
    if (isPrivate) {
      if (!slot.gmem) {
        this.memoryFaultExit(vcpu, gfn, true);
        throw kerr(
          'EFAULT',
          `${faultinNames(vm.profile).gmem}: memslot ${slot.id} has no guest_memfd for private gfn 0x${gfn.toString(16)}`,
          vm.attributeCause(gfn),
        );
      }
      return this.faultGmem(vcpu, slot, gfn, true, cur);
    }
    if (slot.gmemOnly) return this.faultGmem(vcpu, slot, gfn, false, cur);
    // A write to a read-only slot is emulated (KVM_PFN_ERR_RO_FAULT -> RET_PF_EMULATE): MMIO exit.
    if (kind.write && slot.flags & KVM_MEM_READONLY) return 'emulate';
    const hva = gfnToHvaMemslot(slot, gfn);
    // __kvm_faultin_pfn(): GUP of the shared mapping; no VMA is KVM_PFN_ERR_FAULT, which
    // kvm_handle_error_pfn() returns as a bare -EFAULT: unlike the guest_memfd paths it prepares no
    // memory-fault exit (Anish Moorthy's patch to add one was not merged), so kvm_run is untouched.
    const vma = vm.host.mm.find(hva);
    if (!vma) {
      const by = vm.host.mm.unmappedBy(hva);
      throw kerr(
        'EFAULT',
        `${faultinNames(vm.profile).inner}: hva 0x${hva.toString(16)} of memslot ${slot.id} is not mapped`,
        by ? `the memslot's memory was unmapped by ${describeProvenance(by)}` : undefined,
      );
    }
    // hva_to_pfn(): GUP faults the page in first, and a mapping it refuses (no direct map: an
    // out-of-tree NO_DIRECT_MAP guest_memfd as a plain memslot's memory; PROT_NONE, or read-only
    // for a write fault) or a fault that fails (a file page past EOF) is KVM_PFN_ERR_FAULT. So no
    // SPTE is made, and KVM_PRE_FAULT_MEMORY fails there too, though it never reads the bytes.
    try {
      vm.host.mm.gupFault(hva, kind.write);
    } catch (e) {
      if (e instanceof KernelError)
        throw kerr('EFAULT', `hva_to_pfn: hva 0x${hva.toString(16)} of memslot ${slot.id}: ${e.reason}`);
      throw e;
    }
    let spte = cur;
    if (!spte || spte.private || spte.inode || spte.slot !== slot) {
      const t = vm.host.tracer;
      const site = t.siteIn(TDP_MMU_MAP, SET_LEAF_SPTE);
      spte = new Spte(false, slot, undefined, undefined, undefined, t.seq, site);
      this.sptes.set(gfn, gfn + 1, spte);
    }
    vm.host.invariants.touchGfns(vm, gfn, gfn + 1);
    return spte;
  }

  /**
   * kvm_mmu_faultin_pfn_gmem() then the map: kvm_gmem_get_pfn() errors are memory-fault exits.
   * `seen` is the SPTE fault() found; re-read only if an arch prepare hook may have changed it.
   */
  private faultGmem(
    vcpu: Vcpu,
    slot: Memslot,
    gfn: number,
    isPrivate: boolean,
    seen: Spte | undefined,
  ): FaultResult {
    const vm = this.vm;
    const t = vm.host.tracer;
    let folio: Folio;
    try {
      folio = kvmGmemGetPfn(vm, slot, gfn);
    } catch (e) {
      if (e instanceof KernelError) this.memoryFaultExit(vcpu, gfn, isPrivate);
      throw e;
    }
    const inode = slot.gmem!.file!.inode;
    const index = kvmGmemGetIndex(slot, gfn);
    const pfn = inode.pfn(index);
    vm.host.invariants.gmemMapped(vm, gfn, index, folio);
    const gen = folio.gen;
    const pfnDelta = pfn - gfn;
    let spte = vm.arch.gmemPrepare === undefined ? seen : this.sptes.get(gfn);
    if (
      !spte ||
      spte.slot !== slot ||
      spte.private !== isPrivate ||
      spte.gen !== gen ||
      spte.inode !== inode ||
      spte.pfnDelta !== pfnDelta
    ) {
      if (isPrivate && vm.arch.setPrivateSpte) {
        const set = vm.arch.setPrivateSpte.bind(vm.arch);
        withinTdpMmuMap(t, () => set(gfn, pfn, slot));
      }
      const site = t.siteIn(TDP_MMU_MAP, SET_LEAF_SPTE);
      spte = new Spte(isPrivate, slot, inode, gen, pfnDelta, t.seq, site);
      this.sptes.set(gfn, gfn + 1, spte);
    }
    vm.host.invariants.touchGfns(vm, gfn, gfn + 1);
    return spte;
  }

  /**
   * kvm_tdp_mmu_map_private_pfn() (6.19+, TDX INIT_MEM_REGION): install a private leaf for a pfn the
   * caller (kvm_gmem_populate) already holds; no guest_memfd lookup, not a fault. A leaf already
   * present is RET_PF_SPURIOUS, which the function turns into -EIO (r != RET_PF_FIXED).
   */
  mapPrivatePfn(gfn: number, page: { inode: GmemInode; gen: number; pfn: number }, slot: Memslot): void {
    const vm = this.vm;
    const t = vm.host.tracer;
    const cur = this.sptes.get(gfn);
    if (cur?.private)
      throw kerr(
        'EIO',
        'kvm_tdp_mmu_map_private_pfn: mirror SPTE already present (RET_PF_SPURIOUS, not RET_PF_FIXED)',
        `gfn 0x${gfn.toString(16)} mapped since call #${cur.since.seq} (${cur.since.path})`,
      );
    if (vm.arch.setPrivateSpte) {
      const set = vm.arch.setPrivateSpte.bind(vm.arch);
      withinTdpMmuMap(t, () => set(gfn, page.pfn, slot));
    }
    const site = t.siteIn(TDP_MMU_MAP, SET_LEAF_SPTE);
    this.sptes.set(gfn, gfn + 1, new Spte(true, slot, page.inode, page.gen, page.pfn - gfn, t.seq, site));
    vm.host.invariants.touchGfns(vm, gfn, gfn + 1);
  }

  /**
   * For run paths (TDX INIT_MEM_REGION over a range): how many gfns from `gfn` (at most `max`)
   * have no SPTE, in a slot that is not being deleted or moved: gfns a private fault or
   * kvm_tdp_mmu_map_private_pfn() maps afresh, without a retry or a spurious fault.
   */
  freshRun(gfn: number, max: number, slot: Memslot): number {
    if (this.invalidSlots.has(slot)) return 0;
    const next = this.sptes.nextExtent(gfn);
    return next === undefined ? max : Math.max(0, Math.min(max, next.start - gfn));
  }

  /**
   * The private leaves a fault or kvm_tdp_mmu_map_private_pfn() installs for `n` gfns of one
   * folio run (pfn - gfn constant), recorded in the caller's frame as the per-page map records them.
   */
  setPrivateRun(
    gfn: number,
    n: number,
    slot: Memslot,
    page: { inode: GmemInode; gen: number; pfnDelta: number },
  ): void {
    const vm = this.vm;
    const t = vm.host.tracer;
    const site = t.siteIn(TDP_MMU_MAP, SET_LEAF_SPTE);
    this.sptes.set(gfn, gfn + n, new Spte(true, slot, page.inode, page.gen, page.pfnDelta, t.seq, site));
    vm.host.invariants.touchGfns(vm, gfn, gfn + n);
  }

  /**
   * The frames of the arch hook a fault calls for a new private leaf (kvm_tdp_mmu_map >
   * tdp_mmu_map_handle_target_level), for a run path that calls it itself.
   */
  withinMapLeaf(fn: () => void): void {
    withinTdpMmuMap(this.vm.host.tracer, fn);
  }

  /**
   * kvm_mmu_prepare_memory_fault_exit() -> kvm_prepare_memory_fault_exit(): gpa = gfn << PAGE_SHIFT,
   * size = PAGE_SIZE, flags = PRIVATE for a private access (no RWX flags are reported). Prefetch
   * faults too (KVM_PRE_FAULT_MEMORY, TDX's nested map in INIT_MEM_REGION): the kernel has no
   * exemption, so the vCPU's kvm_run shows the exit after the ioctl, even one that returns 0
   * after progress. Only exit_reason and the memory_fault member are written: the union's other
   * members are left as they were (a pending hypercall's ret lies beyond memory_fault's bytes).
   */
  memoryFaultExit(vcpu: Vcpu, gfn: number, isPrivate: boolean): void {
    vcpu.run.exit_reason = KVM_EXIT_MEMORY_FAULT;
    vcpu.run.memory_fault = {
      flags: isPrivate ? BigInt(KVM_MEMORY_EXIT_FLAG_PRIVATE) : 0n,
      gpa: BigInt(gfn) << 12n,
      size: 4096n,
    };
  }
}
