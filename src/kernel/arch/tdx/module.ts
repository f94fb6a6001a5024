/**
 * The Intel TDX module as KVM drives it: the SEAMCALLs of arch/x86/virt/vmx/tdx/tdx.c that
 * arch/x86/kvm/vmx/tdx.c issues, with the state they act on (TDR/TDCS lifecycle, HKIDs, TD vCPUs,
 * the Secure EPT, the build-time measurement MRTD).
 * Status codes: arch/x86/include/asm/shared/tdx_errno.h (values checked against that header).
 * Parity: TDH.MNG.CREATE/KEY.CONFIG/ADDCX/INIT, TDH.VP.CREATE/ADDCX/INIT, TDH.MEM.SEPT.ADD,
 * TDH.MEM.PAGE.ADD/AUG, TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE, TDH.MR.EXTEND,
 * TDH.MR.FINALIZE, TDH.MNG.KEY.FREEID, and the guest's TDG.MEM.PAGE.ACCEPT.
 * Not modelled: large pages (every leaf is 4 KiB, as KVM maps TD private memory), TD migration,
 * TDH.MNG.RD/WR metadata beyond what KVM reads back, contention (TDX_OPERAND_BUSY never happens:
 * the model is single threaded), entropy failures (TDX_RND_NO_ENTROPY).
 */
import { ExtentMap } from '../../../ranges/extent-map.js';
import type { GmemInode } from '../../kvm/guest-memfd.js';
import { TDX_EXTENDMR_CHUNKSIZE, TDX_PAGE_SIZE, TdMeasurement } from './mrtd.js';

/** SEAMCALL completion status (RAX). 0 is TDX_SUCCESS. */
export type TdxStatus = bigint;

export const TDX_SUCCESS = 0n;
export const TDX_OPERAND_INVALID = 0xc000010000000000n;
export const TDX_OPERAND_BUSY = 0x8000020000000000n;
export const TDX_EPT_WALK_FAILED = 0xc0000b0000000000n;
export const TDX_EPT_ENTRY_NOT_FREE = 0xc0000b0200000000n;
export const TDX_EPT_ENTRY_STATE_INCORRECT = 0xc0000b0d00000000n;
export const TDX_KEY_STATE_INCORRECT = 0xc000081100000000n;
/** Operand id in bits 31:0: RCX (the GPA/level operand). */
export const TDX_OPERAND_ID_RCX = 0x01n;
/**
 * The TD (or TD vCPU) is not in the lifecycle state the SEAMCALL needs (e.g. PAGE.ADD after
 * MR.FINALIZE). Name from the TDX module ABI; the value is UNCONFIRMED (not in the kernel's
 * tdx_errno.h, which KVM never needs because its own state checks come first).
 */
export const TDX_OP_STATE_INCORRECT = 0xc000060800000000n;
/** TDG.MEM.PAGE.ACCEPT of a page already accepted (guest-side status; value UNCONFIRMED). */
export const TDX_PAGE_ALREADY_ACCEPTED = 0x00000b0a00000000n;
export const TDX_SEAMCALL_STATUS_MASK = 0xffffffff00000000n;

/** TD attributes (arch/x86/include/asm/shared/tdx.h). */
export const TDX_TD_ATTR_DEBUG = 1n << 0n;
export const TDX_TD_ATTR_SEPT_VE_DISABLE = 1n << 28n;
export const TDX_TD_ATTR_PKS = 1n << 30n;
export const TDX_TD_ATTR_KL = 1n << 31n;
export const TDX_TD_ATTR_PERFMON = 1n << 63n;

/** A CPUID leaf the module lets the VMM configure (TDX sysinfo CPUID_CONFIG_LEAVES/VALUES). */
export interface CpuidConfig {
  readonly leaf: number;
  /** undefined = no sub-leaf (KVM_TDX_CPUID_NO_SUBLEAF). */
  readonly subleaf?: number;
  /** Configurable bits: eax, ebx, ecx, edx. */
  readonly values: readonly [number, number, number, number];
}

/**
 * The module's global metadata KVM reads at load (struct tdx_sys_info_td_conf / td_ctrl).
 * The defaults describe a plausible TDX 1.5 module on a 5-level-EPT host; tests may override.
 */
export interface TdxModuleConfig {
  readonly attributesFixed0: bigint;
  readonly attributesFixed1: bigint;
  readonly xfamFixed0: bigint;
  readonly xfamFixed1: bigint;
  readonly cpuidConfigs: readonly CpuidConfig[];
  /** TDCS pages per TD (tdcs_base_size / 4096) and TDVPS pages per vCPU (tdvps_base_size / 4096). */
  readonly tdcsPages: number;
  readonly tdvpsPages: number;
  /** Private HKIDs the platform has for TDs (tdx_get_nr_guest_keyids). */
  readonly nrGuestKeyids: number;
  /** cpu_has_vmx_ept_5levels(): GPAW 52 allowed. */
  readonly ept5Level: boolean;
  /** What KVM may enable (kvm_caps.supported_xcr0 | supported_xss) on this host. */
  readonly hostXfam: bigint;
}

export const DEFAULT_TDX_MODULE_CONFIG: TdxModuleConfig = {
  attributesFixed0: TDX_TD_ATTR_DEBUG | TDX_TD_ATTR_SEPT_VE_DISABLE | TDX_TD_ATTR_PKS | TDX_TD_ATTR_PERFMON,
  attributesFixed1: 0n,
  xfamFixed0: 0x61affn,
  xfamFixed1: 0x3n,
  cpuidConfigs: [
    { leaf: 0x1, values: [0x0fff3fff, 0, 0xffbffeff, 0xffffffff] },
    { leaf: 0x7, subleaf: 0, values: [0, 0xffffffff, 0xffffffff, 0xffffffff] },
    { leaf: 0xd, subleaf: 0, values: [0x000602e7, 0, 0, 0] },
    { leaf: 0xd, subleaf: 1, values: [0x0000001f, 0, 0x00001800, 0] },
    { leaf: 0x80000008, values: [0x00ff00ff, 0, 0, 0] },
  ],
  tdcsPages: 4,
  tdvpsPages: 6,
  nrGuestKeyids: 63,
  ept5Level: true,
  hostXfam: 0x2e7n,
};

/** TD lifecycle in the module (TDR.LIFECYCLE_STATE and TDCS.OP_STATE, simplified to KVM's view). */
export type TdLifecycle = 'created' | 'keys-configured' | 'initialized' | 'finalized' | 'teardown';

/** An S-EPT leaf: MAPPED (PAGE.ADD, or AUG then accepted), PENDING (AUG, not accepted), BLOCKED. */
export type SeptLeafState = 'mapped' | 'pending' | 'blocked';

/** Leaf value; `delta` = guest_memfd page index - gfn, so runs of one file merge into one extent. */
export interface SeptLeaf {
  readonly state: SeptLeafState;
  readonly inode: GmemInode;
  readonly delta: number;
}

const leafEquals = (a: SeptLeaf, b: SeptLeaf): boolean =>
  a.state === b.state && a.inode === b.inode && a.delta === b.delta;

/** A TD vCPU (TDVPR + TDCX pages). */
export interface TdVcpu {
  state: 'created' | 'initialized';
  tdcx: number;
  rcx: bigint;
}

/** One TD as the module holds it (TDR + TDCS). */
export class Td {
  lifecycle: TdLifecycle = 'created';
  tdcsAdded = 0;
  /** TLB epoch, bumped by TDH.MEM.TRACK. */
  epoch = 0;
  attributes = 0n;
  xfam = 0n;
  /** EPT levels (4 for GPAW 48, 5 for GPAW 52). */
  eptLevels = 4;
  readonly measurement = new TdMeasurement();
  mrtd: Uint8Array | undefined;
  /** S-EPT leaves by gfn. */
  readonly sept = new ExtentMap<SeptLeaf>(leafEquals);
  /** S-EPT page-table pages added by TDH.MEM.SEPT.ADD, per level (1 = the table mapping 4 KiB leaves), keyed by gfn >> (9 * level). */
  readonly septTables: ExtentMap<true>[] = [0, 1, 2, 3, 4].map(() => new ExtentMap<true>());
  readonly vcpus = new Set<TdVcpu>();
  /** Counts of SEAMCALLs issued, for tests and reports. */
  readonly calls = new Map<string, number>();

  constructor(
    readonly module: TdxModule,
    readonly hkid: number,
  ) {}

  count(leaf: string, n = 1): void {
    this.calls.set(leaf, (this.calls.get(leaf) ?? 0) + n);
  }
}

/** Status helper: an error with the operand id of RCX (how the module reports a bad GPA/level). */
const rcx = (status: bigint): bigint => status | TDX_OPERAND_ID_RCX;

/** The module: global state (HKIDs) and the SEAMCALL leaves. */
export class TdxModule {
  private readonly hkids = new Set<number>();

  constructor(readonly config: TdxModuleConfig = DEFAULT_TDX_MODULE_CONFIG) {}

  /** tdx_guest_keyid_alloc(): the lowest free private HKID, or -ENOSPC (ida_alloc_range). */
  allocHkid(): number | undefined {
    for (let id = 1; id <= this.config.nrGuestKeyids; id++) {
      if (!this.hkids.has(id)) {
        this.hkids.add(id);
        return id;
      }
    }
    return undefined;
  }

  freeHkid(hkid: number): void {
    this.hkids.delete(hkid);
  }

  /** TDH.MNG.CREATE: a TDR bound to the HKID. */
  mngCreate(hkid: number): Td {
    const td = new Td(this, hkid);
    td.count('TDH.MNG.CREATE');
    return td;
  }

  /** TDH.MNG.KEY.CONFIG (once per package; the model has one package). */
  mngKeyConfig(td: Td): TdxStatus {
    td.count('TDH.MNG.KEY.CONFIG');
    if (td.lifecycle !== 'created') return TDX_KEY_STATE_INCORRECT;
    td.lifecycle = 'keys-configured';
    return TDX_SUCCESS;
  }

  /** TDH.MNG.ADDCX: one TDCS page. */
  mngAddcx(td: Td): TdxStatus {
    td.count('TDH.MNG.ADDCX');
    if (td.lifecycle !== 'keys-configured' || td.tdcsAdded >= this.config.tdcsPages)
      return TDX_OP_STATE_INCORRECT;
    td.tdcsAdded++;
    return TDX_SUCCESS;
  }

  /** TDH.MNG.INIT(TD_PARAMS): attributes/xfam must respect the fixed bits; all TDCS pages added. */
  mngInit(td: Td, params: { attributes: bigint; xfam: bigint; eptLevels: number }): TdxStatus {
    td.count('TDH.MNG.INIT');
    if (td.lifecycle !== 'keys-configured' || td.tdcsAdded !== this.config.tdcsPages)
      return TDX_OP_STATE_INCORRECT;
    const c = this.config;
    if (
      (params.attributes & c.attributesFixed1) !== c.attributesFixed1 ||
      params.attributes & ~c.attributesFixed0
    )
      return TDX_OPERAND_INVALID;
    if ((params.xfam & c.xfamFixed1) !== c.xfamFixed1 || params.xfam & ~c.xfamFixed0)
      return TDX_OPERAND_INVALID;
    td.attributes = params.attributes;
    td.xfam = params.xfam;
    td.eptLevels = params.eptLevels;
    td.lifecycle = 'initialized';
    return TDX_SUCCESS;
  }

  /** TDH.VP.CREATE + TDH.VP.ADDCX (tdvps - 1 pages) + TDH.VP.INIT(rcx). */
  vpCreate(td: Td): TdVcpu | TdxStatus {
    td.count('TDH.VP.CREATE');
    if (td.lifecycle !== 'initialized') return TDX_OP_STATE_INCORRECT;
    const vp: TdVcpu = { state: 'created', tdcx: 0, rcx: 0n };
    td.vcpus.add(vp);
    return vp;
  }

  vpAddcx(td: Td, vp: TdVcpu): TdxStatus {
    td.count('TDH.VP.ADDCX');
    if (vp.state !== 'created' || vp.tdcx >= this.config.tdvpsPages - 1) return TDX_OP_STATE_INCORRECT;
    vp.tdcx++;
    return TDX_SUCCESS;
  }

  vpInit(td: Td, vp: TdVcpu, rcxValue: bigint): TdxStatus {
    td.count('TDH.VP.INIT');
    if (vp.state !== 'created' || vp.tdcx !== this.config.tdvpsPages - 1) return TDX_OP_STATE_INCORRECT;
    vp.state = 'initialized';
    vp.rcx = rcxValue;
    return TDX_SUCCESS;
  }

  /** Is the S-EPT table of `level` covering gfn present? */
  private hasTable(td: Td, gfn: number, level: number): boolean {
    return td.septTables[level]!.get(Math.floor(gfn / 2 ** (9 * level))) !== undefined;
  }

  /**
   * The S-EPT levels missing for a leaf at gfn, highest first (what KVM links with TDH.MEM.SEPT.ADD
   * while it builds the mirror page-table path). Level `eptLevels` is the root (TDCS), always there.
   */
  missingTables(td: Td, gfn: number): number[] {
    const out: number[] = [];
    for (let level = td.eptLevels - 1; level >= 1; level--)
      if (!this.hasTable(td, gfn, level)) out.push(level);
    return out;
  }

  /** TDH.MEM.SEPT.ADD(gpa, level): a new S-EPT page mapping the range of `level` at gfn. */
  memSeptAdd(td: Td, gfn: number, level: number): TdxStatus {
    td.count('TDH.MEM.SEPT.ADD');
    if (td.lifecycle !== 'initialized' && td.lifecycle !== 'finalized') return TDX_OP_STATE_INCORRECT;
    if (level < 1 || level >= td.eptLevels) return rcx(TDX_OPERAND_INVALID);
    // The parent table must exist (walk), and the entry must be free.
    if (level + 1 < td.eptLevels && !this.hasTable(td, gfn, level + 1)) return rcx(TDX_EPT_WALK_FAILED);
    if (this.hasTable(td, gfn, level)) return rcx(TDX_EPT_ENTRY_NOT_FREE);
    const idx = Math.floor(gfn / 2 ** (9 * level));
    td.septTables[level]!.set(idx, idx + 1, true);
    return TDX_SUCCESS;
  }

  /** Common leaf checks: the walk reaches the level-1 table and the leaf entry is free. */
  private leafFree(td: Td, gfn: number): TdxStatus {
    if (!this.hasTable(td, gfn, 1)) return rcx(TDX_EPT_WALK_FAILED);
    if (td.sept.get(gfn) !== undefined) return rcx(TDX_EPT_ENTRY_NOT_FREE);
    return TDX_SUCCESS;
  }

  /**
   * TDH.MEM.PAGE.ADD(gpa, hpa, source): copy the source page into the TD page (encrypting it),
   * map it MAPPED in the S-EPT, and extend MRTD with a "MEM.PAGE.ADD" block. Build time only.
   */
  memPageAdd(
    td: Td,
    gfn: number,
    page: { inode: GmemInode; index: number },
    write: (src: Uint8Array | null) => void,
    src: Uint8Array | null,
  ): TdxStatus {
    td.count('TDH.MEM.PAGE.ADD');
    if (td.lifecycle !== 'initialized') return TDX_OP_STATE_INCORRECT;
    const free = this.leafFree(td, gfn);
    if (free !== TDX_SUCCESS) return free;
    write(src);
    td.sept.set(gfn, gfn + 1, { state: 'mapped', inode: page.inode, delta: page.index - gfn });
    td.measurement.memPageAddChecked(gfn * TDX_PAGE_SIZE); // gfn is a page number: 4 KiB aligned
    return TDX_SUCCESS;
  }

  /**
   * TDH.MEM.PAGE.ADD of `n` consecutive pages of one guest_memfd run, with the results of n
   * memPageAdd() calls and, with `extend`, of KVM's 16 TDH.MR.EXTEND after each page (the MRTD
   * stream is page by page: "MEM.PAGE.ADD", then its chunks). `srcAt(i)` is page i's source
   * (null = zeroes), written through `write`. The caller checked every leaf free and its tables
   * linked; returns 0 with nothing done if the TD is not being built.
   */
  memPageAddRun(
    td: Td,
    gfn: number,
    n: number,
    page: { inode: GmemInode; index: number },
    srcAt: (i: number) => Uint8Array | null,
    write: (i: number, src: Uint8Array | null) => void,
    extend: boolean,
  ): number {
    if (td.lifecycle !== 'initialized') return 0;
    const m = td.measurement;
    td.count('TDH.MEM.PAGE.ADD', n);
    if (extend) td.count('TDH.MR.EXTEND', n * (TDX_PAGE_SIZE / TDX_EXTENDMR_CHUNKSIZE));
    for (let i = 0; i < n; i++) {
      const src = srcAt(i);
      write(i, src);
      const gpa = (gfn + i) * TDX_PAGE_SIZE;
      if (extend) m.memPageAddExtendChecked(gpa, src);
      else m.memPageAddChecked(gpa);
    }
    td.sept.set(gfn, gfn + n, { state: 'mapped', inode: page.inode, delta: page.index - gfn });
    return n;
  }

  /** TDH.MEM.PAGE.AUG(gpa, hpa): a page for a running TD, PENDING until the guest accepts it. */
  memPageAug(td: Td, gfn: number, page: { inode: GmemInode; index: number }): TdxStatus {
    td.count('TDH.MEM.PAGE.AUG');
    if (td.lifecycle !== 'finalized') return TDX_OP_STATE_INCORRECT;
    const free = this.leafFree(td, gfn);
    if (free !== TDX_SUCCESS) return free;
    td.sept.set(gfn, gfn + 1, { state: 'pending', inode: page.inode, delta: page.index - gfn });
    return TDX_SUCCESS;
  }

  /** TDH.MR.EXTEND(gpa): one 256-byte chunk of a MAPPED (PAGE.ADDed) page into MRTD. */
  mrExtend(td: Td, gpa: bigint): TdxStatus {
    // Beyond 2^53 a GPA has no S-EPT leaf: only the operand checks can tell such calls apart.
    if (gpa < 0n || gpa > MAX_SAFE_GPA) {
      td.count('TDH.MR.EXTEND');
      if (td.lifecycle !== 'initialized') return TDX_OP_STATE_INCORRECT;
      return rcx(gpa % CHUNK_N !== 0n ? TDX_OPERAND_INVALID : TDX_EPT_ENTRY_STATE_INCORRECT);
    }
    return this.mrExtendAt(td, Number(gpa));
  }

  /** mrExtend() with the GPA as a number (exact below 2^53): KVM's per-chunk loop, without a BigInt per chunk. */
  mrExtendAt(td: Td, gpa: number): TdxStatus {
    td.count('TDH.MR.EXTEND');
    if (td.lifecycle !== 'initialized') return TDX_OP_STATE_INCORRECT;
    if (gpa % TDX_EXTENDMR_CHUNKSIZE !== 0) return rcx(TDX_OPERAND_INVALID);
    const gfn = Math.floor(gpa / TDX_PAGE_SIZE);
    const leaf = td.sept.get(gfn);
    if (leaf?.state !== 'mapped') return rcx(TDX_EPT_ENTRY_STATE_INCORRECT);
    // The measurement copies the chunk into its staging buffer: hand it the page and the offset.
    td.measurement.mrExtendChecked(gpa, leaf.inode.readPage(gfn + leaf.delta), gpa % TDX_PAGE_SIZE);
    return TDX_SUCCESS;
  }

  /**
   * KVM's TDH.MR.EXTEND loop over one page (16 chunks from gfn's GPA), stopping at the first
   * failure: the status of the failing chunk, or success. Once the first chunk found the leaf
   * MAPPED, the other chunks see the same leaf and page: they are extended without looking again.
   */
  mrExtendPage(td: Td, gfn: number): TdxStatus {
    const gpa = gfn * TDX_PAGE_SIZE;
    const first = this.mrExtendAt(td, gpa);
    if (first !== TDX_SUCCESS) return first;
    const leaf = td.sept.get(gfn)!;
    td.count('TDH.MR.EXTEND', TDX_PAGE_SIZE / TDX_EXTENDMR_CHUNKSIZE - 1);
    td.measurement.mrExtendPageChecked(gpa, leaf.inode.readPage(gfn + leaf.delta), 1);
    return TDX_SUCCESS;
  }

  /** TDH.MR.FINALIZE: MRTD is closed; PAGE.ADD / MR.EXTEND are refused from now on. */
  mrFinalize(td: Td): TdxStatus {
    td.count('TDH.MR.FINALIZE');
    if (td.lifecycle !== 'initialized') return TDX_OP_STATE_INCORRECT;
    td.mrtd = td.measurement.finalize();
    td.lifecycle = 'finalized';
    return TDX_SUCCESS;
  }

  /** TDH.MEM.RANGE.BLOCK(gpa, 4K): a present leaf becomes BLOCKED; a free one is ENTRY_STATE_INCORRECT. */
  memRangeBlock(td: Td, gfn: number): TdxStatus {
    td.count('TDH.MEM.RANGE.BLOCK');
    const leaf = td.sept.get(gfn);
    if (!leaf || leaf.state === 'blocked') return rcx(TDX_EPT_ENTRY_STATE_INCORRECT);
    td.sept.set(gfn, gfn + 1, { ...leaf, state: 'blocked' });
    return TDX_SUCCESS;
  }

  /** TDH.MEM.TRACK: new TLB epoch. */
  memTrack(td: Td): TdxStatus {
    td.count('TDH.MEM.TRACK');
    td.epoch++;
    return TDX_SUCCESS;
  }

  /** TDH.MEM.PAGE.REMOVE(gpa): a BLOCKED leaf is removed. */
  memPageRemove(td: Td, gfn: number): TdxStatus {
    td.count('TDH.MEM.PAGE.REMOVE');
    const leaf = td.sept.get(gfn);
    if (leaf?.state !== 'blocked') return rcx(TDX_EPT_ENTRY_STATE_INCORRECT);
    td.sept.set(gfn, gfn + 1, undefined);
    return TDX_SUCCESS;
  }

  /** TDH.MNG.KEY.FREEID (teardown): the HKID returns to the pool. */
  mngKeyFreeid(td: Td): TdxStatus {
    td.count('TDH.MNG.KEY.FREEID');
    td.lifecycle = 'teardown';
    this.freeHkid(td.hkid);
    return TDX_SUCCESS;
  }

  /**
   * TDG.MEM.PAGE.ACCEPT (the guest's TDCALL): PENDING -> MAPPED, the page reads as zeroes.
   * 'missing' = no leaf (an EPT violation exit to KVM, which maps the page and re-enters).
   */
  pageAccept(td: Td, gfn: number): 'accepted' | 'already' | 'missing' {
    const leaf = td.sept.get(gfn);
    if (!leaf || leaf.state === 'blocked') return 'missing';
    if (leaf.state === 'mapped') return 'already';
    td.sept.set(gfn, gfn + 1, { ...leaf, state: 'mapped' });
    return 'accepted';
  }
}

const MAX_SAFE_GPA = BigInt(Number.MAX_SAFE_INTEGER);
const CHUNK_N = BigInt(TDX_EXTENDMR_CHUNKSIZE);

export function hexStatus(s: TdxStatus): string {
  return `0x${s.toString(16).padStart(16, '0')}`;
}
