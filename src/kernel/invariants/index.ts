/**
 * Safety invariants, checked after every syscall over the pages that syscall touched (so the cost
 * follows the work done, not the guest size). Each has a name, a statement and the defect it catches;
 * test/invariants.test.ts breaks a profile on purpose to show each one fires.
 *
 * - no-stale-host-data: no guest-visible page exposes memory that was never cleared or written
 *   (a mapped guest_memfd folio must not hold host garbage).
 * - no-host-access-to-private: the host never reads or writes, through a guest_memfd mapping, a page
 *   that a VM holds private.
 * - no-mapping-of-freed-folio: no SPTE points at a guest_memfd folio that was freed (or replaced).
 * - attributes-match-mappings: a private SPTE only for a private gfn, a shared SPTE only for a shared one.
 */
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { InvariantViolation } from '../errors.js';
import type { GmemInode } from '../kvm/guest-memfd.js';
import type { Vm } from '../kvm/vm.js';
import { describeProvenance } from '../provenance.js';

export const INVARIANTS = [
  'no-stale-host-data',
  'no-host-access-to-private',
  'no-mapping-of-freed-folio',
  'attributes-match-mappings',
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

export class Invariants {
  private readonly touchedGfns: Array<[Vm, number, number]> = [];
  private pending: InvariantViolation | undefined;

  constructor(public enabled: boolean) {}

  touchGfns(vm: Vm, start: number, end: number): void {
    if (this.enabled) this.touchedGfns.push([vm, start, end]);
  }

  /** guest_memfd pages changed: re-check every VM mapping them. */
  touchGmem(inode: GmemInode, start: number, end: number): void {
    if (!this.enabled) return;
    for (const f of inode.files) {
      for (const e of f.bindings.entries(start, end)) {
        const gfn = e.value.baseGfn + (e.start - e.value.gmem!.pgoff);
        this.touchedGfns.push([f.vm, gfn, gfn + (e.end - e.start)]);
      }
    }
  }

  foliosFreed(inode: GmemInode, start: number, end: number): void {
    this.touchGmem(inode, start, end);
  }

  /** The host touched guest_memfd page `index` through a user mapping. */
  hostAccess(inode: GmemInode, index: number): void {
    if (!this.enabled) return;
    for (const f of inode.files) {
      const slot = f.bindings.get(index);
      if (!slot) continue;
      const gfn = slot.baseGfn + (index - slot.gmem!.pgoff);
      if (f.vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) {
        this.fail(
          'no-host-access-to-private',
          `host touched guest_memfd page ${index}, private gfn 0x${gfn.toString(16)} of VM ${f.vm.id}`,
        );
      }
    }
  }

  /** A guest access went through (after the fault path mapped it). */
  guestAccess(vm: Vm, gfn: number, _private: boolean): void {
    if (this.enabled) this.touchedGfns.push([vm, gfn, gfn + 1]);
  }

  private fail(name: InvariantName, detail: string): void {
    this.pending ??= new InvariantViolation(name, detail);
  }

  /** After a syscall: check what it touched; throws the first violation. */
  check(): void {
    if (!this.enabled) return;
    try {
      for (const [vm, start, end] of this.touchedGfns) this.checkRange(vm, start, end);
    } finally {
      this.touchedGfns.length = 0;
    }
    const v = this.pending;
    this.pending = undefined;
    if (v) throw v;
  }

  private checkRange(vm: Vm, start: number, end: number): void {
    for (const e of vm.mmu.sptes.entries(start, end)) {
      const spte = e.value;
      const attrPrivate = vm.arch.hasPrivateMem;
      for (const a of vm.attributes.segments(e.start, e.end)) {
        const isPrivate = attrPrivate && ((a.value?.attributes ?? 0) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
        if (isPrivate !== spte.private) {
          this.fail(
            'attributes-match-mappings',
            `VM ${vm.id} gfn 0x${a.start.toString(16)}: ${spte.private ? 'private' : 'shared'} SPTE (${describeProvenance(spte.since)}) but the gfn is ${isPrivate ? 'private' : 'shared'}`,
          );
          return;
        }
      }
      if (!spte.inode) continue;
      for (let gfn = e.start; gfn < e.end; gfn++) {
        const index = gfn + spte.pfnDelta! - spte.inode.pfnBase;
        const folio = spte.inode.folios.get(index);
        if (!folio || folio.gen !== spte.gen) {
          this.fail(
            'no-mapping-of-freed-folio',
            `VM ${vm.id} gfn 0x${gfn.toString(16)} maps guest_memfd page ${index}, which was freed (mapped by ${describeProvenance(spte.since)})`,
          );
          return;
        }
        if (folio.content === 'garbage') {
          this.fail(
            'no-stale-host-data',
            `VM ${vm.id} gfn 0x${gfn.toString(16)} maps guest_memfd page ${index}, never cleared (allocated by ${describeProvenance(folio.since)})`,
          );
          return;
        }
      }
    }
  }
}
