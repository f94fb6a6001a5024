/**
 * Safety invariants, checked after every syscall (and host memory access) over the pages that call
 * touched, so the cost follows the work done, not the guest size. On by default; a host created
 * with `invariants: false` (or `host.invariants.enabled = false`) skips them. A violation is an
 * InvariantViolation thrown from the syscall, never an errno. test/invariants.test.ts breaks a
 * profile on purpose (KernelProfile.bugs) to show that each one fires.
 *
 * - no-stale-host-data: no page the guest can reach exposes memory that was never cleared or
 *   written. A guest_memfd folio starts as host garbage; the kernel clears it before the guest sees
 *   it (kvm_gmem_get_folio in 6.8 / 6.11-rc1, kvm_gmem_prepare_folio in 6.11..6.19, kvm_gmem_get_pfn
 *   in 7.0, the user fault handler from 6.18). Checked when an SPTE maps the folio and on every SPTE
 *   in the touched range. Broken by bugs.noClearOnPrepare.
 * - no-host-access-to-private: the host never reads or writes, through a guest_memfd mapping, a
 *   page that a VM holds private (kvm_gmem_fault_user_mapping refuses files without INIT_SHARED,
 *   and x86 VMs with private memory cannot create INIT_SHARED files): private by attribute, or owned
 *   by the guest in hardware whatever the attribute and memslots say now (SNP: an assigned RMP
 *   entry, until the folio is freed; TDX: an S-EPT leaf). Broken by bugs.hostMapsPrivate.
 * - no-mapping-of-freed-folio: no SPTE points at a guest_memfd folio that was freed, replaced or
 *   hardware-poisoned (punch-hole, release and memory failure zap through
 *   kvm_gmem_invalidate_begin before the page cache is truncated or the folio is isolated). Broken
 *   by bugs.noZapOnPunchHole.
 * - attributes-match-mappings: a private SPTE only for a private gfn, a shared SPTE only for a
 *   shared one (kvm_arch_pre_set_memory_attributes zaps the range before the attribute changes).
 *   Broken by bugs.noZapOnAttributeChange.
 * - no-freed-memslot-binding: a guest_memfd's bindings lead only to live memslots; a walk that
 *   reaches a freed one is a use-after-free in the kernel. Before 6.19 (9935df5333aa) a flags-only
 *   KVM_SET_USER_MEMORY_REGION2 could drop KVM_MEM_GUEST_MEMFD without kvm_gmem_unbind(): the next
 *   invalidation (punch-hole, release, memory failure) walks into the freed slot. A real kernel bug,
 *   so no bug switch: profile memslots.rejectGmemFlagToggle is the fix.
 */
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { InvariantViolation } from '../errors.js';
import { type MemAttrWord, wordIsPrivate } from '../kvm/attributes.js';
import { type Folio, type GmemFile, type GmemInode, gmemInvalidateFilter } from '../kvm/guest-memfd.js';
import type { Memslot } from '../kvm/memslots.js';
import type { Spte } from '../kvm/mmu.js';
import type { Vm } from '../kvm/vm.js';
import { describeProvenance } from '../provenance.js';

export const INVARIANTS = [
  'no-stale-host-data',
  'no-host-access-to-private',
  'no-mapping-of-freed-folio',
  'attributes-match-mappings',
  'no-freed-memslot-binding',
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

const isPrivateAttr = (w: MemAttrWord | undefined): boolean => wordIsPrivate(w);
const isSharedAttr = (w: MemAttrWord | undefined): boolean => !wordIsPrivate(w);

export class Invariants {
  private readonly touchedVms: Vm[] = [];
  private readonly touchedStarts: number[] = [];
  private readonly touchedEnds: number[] = [];
  /** Entries of the touched* arrays in use (they are reused, not truncated, between syscalls). */
  private touched = 0;
  private pending: InvariantViolation | undefined;

  constructor(public enabled: boolean) {}

  /** SPTEs or attributes of [start, end) changed: re-check them after the call. */
  touchGfns(vm: Vm, start: number, end: number): void {
    if (!this.enabled) return;
    const n = this.touched;
    // Consecutive touches of the same page (fault, then access) are recorded once.
    if (
      n > 0 &&
      this.touchedVms[n - 1] === vm &&
      this.touchedStarts[n - 1] === start &&
      this.touchedEnds[n - 1] === end
    )
      return;
    this.touchedVms[n] = vm;
    this.touchedStarts[n] = start;
    this.touchedEnds[n] = end;
    this.touched = n + 1;
  }

  /** guest_memfd pages changed: re-check every VM mapping them. */
  touchGmem(inode: GmemInode, start: number, end: number): void {
    if (!this.enabled) return;
    for (const f of inode.files) {
      if (end - start === 1) {
        // One page (every fault): its binding, without an iterator.
        const slot = f.bindings.get(start);
        if (slot !== undefined) {
          const gfn = slot.baseGfn + (start - slot.gmem!.pgoff);
          this.touchGfns(f.vm, gfn, gfn + 1);
        }
        continue;
      }
      for (const e of f.bindings.entries(start, end)) {
        const gfn = e.value.baseGfn + (e.start - e.value.gmem!.pgoff);
        this.touchGfns(f.vm, gfn, gfn + (e.end - e.start));
      }
    }
  }

  /**
   * kvm_gmem_invalidate_begin() (punch-hole, release, memory failure) walks `file`'s bindings in
   * [start, end) and reads each slot: every one must still be a memslot of the VM. (Allocation and
   * preparation do not walk the bindings.)
   */
  gmemInvalidateWalk(file: GmemFile, start: number, end: number): void {
    if (!this.enabled) return;
    if (end - start === 1) {
      const slot = file.bindings.get(start);
      if (slot !== undefined) this.bindingLive(file.vm, slot);
      return;
    }
    for (const e of file.bindings.entries(start, end)) this.bindingLive(file.vm, e.value);
  }

  /** no-freed-memslot-binding: the slot a binding leads to is still one of the VM's memslots. */
  private bindingLive(vm: Vm, slot: Memslot): void {
    if (vm.memslots.space(slot.asId).byId.get(slot.id) === slot) return;
    this.fail(
      'no-freed-memslot-binding',
      `a guest_memfd binding of VM ${vm.id} leads to memslot ${slot.id} (made by ${describeProvenance(slot.since)}), which was freed without kvm_gmem_unbind(): use-after-free (fixed by 9935df5333aa, 6.19)`,
    );
  }

  foliosFreed(inode: GmemInode, start: number, end: number): void {
    if (!this.enabled) return;
    this.touchGmem(inode, start, end);
    // Pages no binding covers any more (memslot deleted, file released): an SPTE left behind can
    // only be found from the SPTE side. Rare, so a scan of the owner's SPTEs is affordable.
    let bound = 0;
    for (const f of inode.files)
      if (f.vm === inode.owner) for (const e of f.bindings.entries(start, end)) bound += e.end - e.start;
    if (bound >= end - start) return;
    for (const e of inode.owner.mmu.sptes.entries()) {
      const s = e.value;
      if (s.inode !== inode) continue;
      const first = e.start + s.pfnDelta! - inode.pfnBase;
      if (first < end && first + (e.end - e.start) > start) this.touchGfns(inode.owner, e.start, e.end);
    }
  }

  /** An SPTE is being installed for guest_memfd page `index` (checked now: a write may follow). */
  gmemMapped(vm: Vm, gfn: number, index: number, folio: Folio): void {
    if (!this.enabled || folio.content !== 'garbage') return;
    this.fail(
      'no-stale-host-data',
      `VM ${vm.id} gfn 0x${gfn.toString(16)} is being mapped to guest_memfd page ${index}, which was never cleared (allocated by ${describeProvenance(folio.since)})`,
    );
  }

  /** The host touched guest_memfd page `index` through a user mapping. */
  hostAccess(inode: GmemInode, index: number): void {
    if (!this.enabled) return;
    const owned = inode.owner.arch.guestOwnedPage?.(inode, index);
    if (owned !== undefined) {
      this.fail(
        'no-host-access-to-private',
        `host touched guest_memfd page ${index}, which VM ${inode.owner.id}'s guest owns: ${owned}`,
      );
      return;
    }
    for (const f of inode.files) {
      const slot = f.bindings.get(index);
      if (!slot) continue;
      const gfn = slot.baseGfn + (index - slot.gmem!.pgoff);
      if (f.vm.arch.hasPrivateMem && f.vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) {
        this.fail(
          'no-host-access-to-private',
          `host touched guest_memfd page ${index}, private gfn 0x${gfn.toString(16)} of VM ${f.vm.id} (${f.vm.attributeCause(gfn)})`,
        );
      }
    }
  }

  /** A guest access went through (after the fault path mapped it). */
  guestAccess(vm: Vm, gfn: number, _private: boolean): void {
    if (this.enabled) this.touchGfns(vm, gfn, gfn + 1);
  }

  private fail(name: InvariantName, detail: string): void {
    this.pending ??= new InvariantViolation(name, detail);
  }

  /** After a syscall: check what it touched; throws the first violation. */
  check(): void {
    if (!this.enabled) {
      this.pending = undefined;
      return;
    }
    const vms = this.touchedVms;
    const n = this.touched;
    try {
      for (let i = 0; i < n && !this.pending; i++)
        this.checkRange(vms[i]!, this.touchedStarts[i]!, this.touchedEnds[i]!);
    } finally {
      this.touched = 0;
      // Keep the arrays for the next syscall; drop them after a big one (and its VM references).
      if (n > 256) {
        vms.length = 0;
        this.touchedStarts.length = 0;
        this.touchedEnds.length = 0;
      }
    }
    const v = this.pending;
    this.pending = undefined;
    if (v) throw v;
  }

  private checkRange(vm: Vm, start: number, end: number): void {
    const sptes = vm.mmu.sptes;
    if (end - start === 1) {
      // One page (every fault, conversion and access of a page): a lookup, not an iterator.
      const spte = sptes.get(start);
      if (spte !== undefined) this.checkSptes(vm, spte, start, end);
      return;
    }
    for (const e of sptes.entries(start, end)) if (!this.checkSptes(vm, e.value, e.start, e.end)) return;
  }

  /** Check the SPTE `spte` mapping [start, end); false once a violation is recorded. */
  private checkSptes(vm: Vm, spte: Spte, start: number, end: number): boolean {
    // attributes-match-mappings (kvm_mem_is_private() is false on VMs without private memory).
    const want = spte.private ? isPrivateAttr : isSharedAttr;
    const ok = !vm.arch.hasPrivateMem
      ? !spte.private
      : end - start === 1
        ? want(vm.attributes.get(start))
        : vm.attributes.every(start, end, want);
    if (!ok) {
      let gfn = start;
      for (const a of vm.attributes.segments(start, end)) {
        if (isPrivateAttr(a.value) !== spte.private) {
          gfn = a.start;
          break;
        }
      }
      this.fail(
        'attributes-match-mappings',
        `VM ${vm.id} gfn 0x${gfn.toString(16)}: ${spte.private ? 'private' : 'shared'} SPTE (${describeProvenance(spte.since)}) but ${vm.attributeCause(gfn)}`,
      );
      return false;
    }
    if (!spte.inode) return true;
    for (let gfn = start; gfn < end; gfn++) {
      const index = gfn + spte.pfnDelta! - spte.inode.pfnBase;
      const folio = spte.inode.folios.get(index);
      if (!folio || folio.gen !== spte.gen) {
        this.fail(
          'no-mapping-of-freed-folio',
          `VM ${vm.id} gfn 0x${gfn.toString(16)} maps guest_memfd page ${index}, which was freed${folio ? ' and reallocated' : ''} (mapped by ${describeProvenance(spte.since)})${missedBy(vm, spte)}`,
        );
        return false;
      }
      if (folio.hwpoison) {
        this.fail(
          'no-mapping-of-freed-folio',
          `VM ${vm.id} gfn 0x${gfn.toString(16)} maps guest_memfd page ${index}, which is hardware-poisoned (since ${describeProvenance(folio.since)}; mapped by ${describeProvenance(spte.since)})${missedBy(vm, spte)}`,
        );
        return false;
      }
      if (folio.content === 'garbage') {
        this.fail(
          'no-stale-host-data',
          `VM ${vm.id} gfn 0x${gfn.toString(16)} maps guest_memfd page ${index}, never cleared (allocated by ${describeProvenance(folio.since)})`,
        );
        return false;
      }
    }
    return true;
  }
}

/**
 * Why a guest_memfd invalidation left this SPTE, when the kernel's filter explains it: only a TD
 * keeps private and shared roots apart, and a filter of one kind spares the other.
 */
function missedBy(vm: Vm, spte: Spte): string {
  if (vm.arch.name !== 'tdx' || !spte.inode) return '';
  const filter = gmemInvalidateFilter(vm, spte.inode);
  if (filter === 'all' || (filter === 'private') === spte.private) return '';
  const why =
    filter === 'shared'
      ? 'kvm_gmem_get_invalidate_filter(): INIT_SHARED'
      : vm.profile.gmem.mmap
        ? 'kvm_gmem_get_invalidate_filter(): no INIT_SHARED'
        : 'KVM_FILTER_PRIVATE';
  return `; guest_memfd invalidations of this file zap only ${filter} mappings (${why}), and this SPTE is ${spte.private ? 'private' : 'shared'}`;
}
