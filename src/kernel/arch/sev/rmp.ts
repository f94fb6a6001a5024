/**
 * The Reverse Map Table: one entry per host 4 KiB page, saying who owns it. Mirrors the RMP as
 * arch/x86/virt/svm/sev.c drives it (rmp_make_private / rmp_make_shared / snp_lookup_rmpentry) and the
 * page states of the SEV-SNP Firmware ABI ("Page States": Hypervisor, Pre-Guest, Guest-Invalid,
 * Guest-Valid, Firmware). Hypervisor-owned pages have no entry (the default), so the table costs
 * memory per extent of assigned pages: the GPA is kept as (gfn - pfn), which stays equal across a
 * run of pages assigned together. Only 4 KiB entries: guest_memfd folios are order 0 in the model.
 */
import { ExtentMap } from '../../../ranges/extent-map.js';
import { describeProvenance, type Provenance } from '../../provenance.js';

/**
 * - 'pre-guest': assigned and immutable, not yet handed to the guest (rmp_make_private(immutable)
 *   before SNP_LAUNCH_UPDATE, and VMSA pages before their LAUNCH_UPDATE);
 * - 'guest-valid': assigned and validated (after SNP_LAUNCH_UPDATE, or a guest PVALIDATE);
 * - 'guest-invalid': assigned, not validated (sev_gmem_prepare() at runtime);
 * - 'firmware': owned by the PSP (guest context pages).
 */
export type RmpState = 'pre-guest' | 'guest-valid' | 'guest-invalid' | 'firmware';

export interface RmpEntry {
  readonly state: RmpState;
  readonly asid: number;
  /** GPA page number minus host pfn (GPA = (pfn + gfnDelta) << 12). */
  readonly gfnDelta: number;
  readonly immutable: boolean;
  /** The page holds a VMSA (RMP.VMSA bit). */
  readonly vmsa: boolean;
  /** Measured by SNP_LAUNCH_UPDATE (for explanations and invariants). */
  readonly launched: boolean;
  readonly since: Provenance;
}

const rmpEquals = (a: RmpEntry, b: RmpEntry): boolean =>
  a.state === b.state &&
  a.asid === b.asid &&
  a.gfnDelta === b.gfnDelta &&
  a.immutable === b.immutable &&
  a.vmsa === b.vmsa &&
  a.launched === b.launched &&
  a.since === b.since;

export class Rmp {
  readonly entries = new ExtentMap<RmpEntry>(rmpEquals);

  /** snp_lookup_rmpentry(): undefined = hypervisor-owned (not assigned). */
  lookup(pfn: number): RmpEntry | undefined {
    return this.entries.get(pfn);
  }

  assigned(pfn: number): boolean {
    return this.entries.get(pfn) !== undefined;
  }

  /** RMPUPDATE to assigned: rmp_make_private(pfn, gpa, 4K, asid, immutable). */
  makePrivate(
    pfn: number,
    gfn: number,
    asid: number,
    immutable: boolean,
    state: RmpState,
    since: Provenance,
  ): void {
    this.makePrivateRun(pfn, 1, gfn, asid, immutable, state, since);
  }

  /** makePrivate() of `n` pages from pfn, mapped to the gfns from `gfn` (one extent). */
  makePrivateRun(
    pfn: number,
    n: number,
    gfn: number,
    asid: number,
    immutable: boolean,
    state: RmpState,
    since: Provenance,
  ): void {
    this.entries.set(pfn, pfn + n, {
      state,
      asid,
      gfnDelta: gfn - pfn,
      immutable,
      vmsa: false,
      launched: false,
      since,
    });
  }

  /** A change of state of an assigned entry (firmware LAUNCH_UPDATE, guest PVALIDATE). */
  update(pfn: number, patch: Partial<Omit<RmpEntry, 'since'>>, since: Provenance): void {
    const cur = this.entries.get(pfn);
    if (!cur) return;
    // Field by field: object spread is several times slower on Node 20's V8.
    this.entries.set(pfn, pfn + 1, {
      state: patch.state ?? cur.state,
      asid: patch.asid ?? cur.asid,
      gfnDelta: patch.gfnDelta ?? cur.gfnDelta,
      immutable: patch.immutable ?? cur.immutable,
      vmsa: patch.vmsa ?? cur.vmsa,
      launched: patch.launched ?? cur.launched,
      since,
    });
  }

  /** RMPUPDATE to hypervisor-owned for [start, end): rmp_make_shared(). */
  makeShared(start: number, end: number): void {
    this.entries.set(start, end, undefined);
  }

  /** GPA the entry records, for messages. */
  static gpaOf(pfn: number, e: RmpEntry): bigint {
    return BigInt(pfn + e.gfnDelta) << 12n;
  }

  describe(pfn: number): string {
    const e = this.entries.get(pfn);
    if (!e) return `pfn 0x${pfn.toString(16)} is hypervisor-owned`;
    return `pfn 0x${pfn.toString(16)} is ${e.state} (ASID ${e.asid}, GPA 0x${Rmp.gpaOf(pfn, e).toString(16)}${e.immutable ? ', immutable' : ''}) since ${describeProvenance(e.since)}`;
  }

  clone(): Rmp {
    const r = new Rmp();
    for (const e of this.entries.entries()) r.entries.set(e.start, e.end, e.value);
    return r;
  }
}
