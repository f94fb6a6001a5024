/**
 * What a vCPU's guest does when KVM_RUN runs it: a list of memory operations, run in order from
 * where the guest stopped. An operation that caused an exit runs again on the next KVM_RUN, as a
 * faulting instruction does, unless the exit completes it (a hypercall's return value, an emulated
 * MMIO access: complete_userspace_io).
 */
import { SyscallError } from '../errors.js';

export type GuestOp =
  /**
   * Read `length` bytes; `shared` is the guest's view on SNP/TDX (C-bit clear / shared bit set).
   * `emulated`: by an instruction KVM emulates (run.ts emulatedAccess: through userspace_addr, not
   * the fault path); VMs without private memory only.
   */
  | { op: 'read'; gpa: number | bigint; length: number; shared?: boolean; emulated?: boolean }
  | { op: 'write'; gpa: number | bigint; data: Uint8Array | number[]; shared?: boolean; emulated?: boolean }
  /** TDX TDG.MEM.PAGE.ACCEPT / SNP PVALIDATE of [gpa, gpa+size). */
  | { op: 'accept'; gpa: number | bigint; size: number | bigint }
  /**
   * A conversion request, reaching the VMM as KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE) by the path
   * `via` names (see MapGpaVia; default per VM type). `npages` 4 KiB pages from `gpa`.
   * - 'hypercall': a2 ("attributes") is `attrs` when given, else KVM_MAP_GPA_RANGE_ENCRYPTED iff
   *   `private`; KVM passes it through unchecked (private_mem_conversions_test puts its own flags there).
   * - 'tdvmcall': R12 = gpa, R13 = `size` bytes (default npages * 4096). `private` given: the guest
   *   passes the GPA with the shared bit clear (true) or set (false), as `shared` does for reads;
   *   absent: `gpa` as written, its shared bit decides. `attrs` is not expressible (KVM derives a2).
   * - 'psc_msr' / 'psc_ghcb': `private` is the requested page state (shared when absent).
   */
  | {
      op: 'map_gpa';
      gpa: number | bigint;
      npages: number | bigint;
      private?: boolean;
      attrs?: number | bigint;
      via?: MapGpaVia;
      size?: number | bigint;
    }
  /**
   * SEV-ES/SNP: the GHCB MSR protocol termination request (GHCB_MSR_TERM_REQ, 0x100) with its reason
   * set (GHCBData[15:12]) and code (GHCBData[23:16]), 0 when absent; the selftests' guests end so.
   */
  | { op: 'terminate'; reasonSet?: number; reasonCode?: number }
  /** A triple fault (the selftests: #UD with the IDT cleared): KVM_EXIT_SHUTDOWN. */
  | { op: 'shutdown' }
  | { op: 'hlt' };

/**
 * How the guest asks for a conversion:
 * - 'hypercall': VMCALL/VMMCALL KVM_HC_MAP_GPA_RANGE (x86.c ____kvm_emulate_hypercall). Default on
 *   VMs other than TDX and SNP. A TD issues it as TDG.VP.VMCALL with R10 = the hypercall number
 *   (tdx_emulate_vmcall), an SEV-ES/SNP guest through the GHCB (VMMCALL exit).
 * - 'tdvmcall': TDG.VP.VMCALL<MapGPA> (tdx.c tdx_map_gpa). Default on TDX VMs.
 * - 'psc_msr': GHCB MSR protocol page-state change, one request per page (sev.c snp_begin_psc_msr),
 *   as Linux's early_set_pages_state() issues them.
 * - 'psc_ghcb': SVM_VMGEXIT_PSC with a PSC buffer of 4 KiB entries (sev.c snp_begin_psc), at most
 *   VMGEXIT_PSC_MAX_ENTRY (64) entries per VMGEXIT as Linux's __set_pages_state() fills it. Default on
 *   SNP VMs.
 */
export type MapGpaVia = 'hypercall' | 'tdvmcall' | 'psc_msr' | 'psc_ghcb';

export interface GuestOpResultRecord {
  /**
   * Bytes read, for 'read'. A small read's bytes are a view of a buffer shared with other reads
   * (as a Node Buffer from its pool): use the view, not `data.buffer`.
   */
  data?: Uint8Array;
  /**
   * For 'map_gpa', what the guest read back, by `via`: 'hypercall' RAX (R10 on TDX), negative =
   * -KVM_Exxx; 'tdvmcall' the TDVMCALL status in R10 (u64: 0 success, 0x8000000000000000
   * INVALID_OPERAND, ...); 'psc_msr' the GHCB MSR value of the last request (0x15 success,
   * GHCB_MSR_PSC_RESP_ERROR on error); 'psc_ghcb' SW_EXITINFO2 of the last VMGEXIT (0 success).
   */
  ret?: bigint;
  /** 'tdvmcall' failure or retry: R11, the GPA the guest should resume the MapGPA from. */
  r11?: bigint;
  /** 'psc_ghcb' VMGEXIT that KVM refused as malformed: SW_EXITINFO1 (2; `ret` holds the reason). */
  exitInfo1?: bigint;
  /**
   * 'read' / 'write' that the hardware turned into an exception in the guest instead of completing
   * it (SNP: #VC PAGE_NOT_VALIDATED), with why; a read then has no `data`. What the guest's handler
   * does next is the program's business (a Linux guest terminates: the 'terminate' op).
   */
  exception?: string;
}

export class GuestProgram {
  pc = 0;
  /** By operation index; sized for the whole program up front (no growth as operations complete). */
  readonly results: GuestOpResultRecord[];
  /** Progress inside a multi-page operation (bytes already done), so a re-run resumes there. */
  partial = 0;
  /** An emulated MMIO access of `len` bytes waiting for its completion on the next KVM_RUN. */
  pendingMmio: { len: number; read: boolean } | undefined;
  /** The bytes of the read at `pc` gathered so far; results[pc] gets them once the read completes. */
  readBuffer: Uint8Array | undefined;
  constructor(readonly ops: readonly GuestOp[]) {
    this.results = new Array<GuestOpResultRecord>(ops.length);
  }

  get done(): boolean {
    return this.pc >= this.ops.length;
  }

  /** The operation at pc completed (an exit's completion resumed the guest past it) with `result`. */
  complete(result: GuestOpResultRecord): void {
    this.results[this.pc] = result;
    this.pc++;
    this.partial = 0;
  }
}

/** host.guest(vcpu): the handle tests and flows use. */
export class Guest {
  program: GuestProgram = new GuestProgram([]);

  /** `emulationRefusal`: why this VM's instructions cannot be `emulated` (asked at load), if so. */
  constructor(private readonly emulationRefusal: () => string | undefined = () => undefined) {}

  /**
   * Give the guest a new program; it starts at its first operation on the next KVM_RUN. A malformed
   * operation is refused here (EINVAL, naming it), not found later as a crash inside KVM_RUN.
   */
  load(ops: readonly GuestOp[]): void {
    if (!Array.isArray(ops)) throw badProgram('the program must be an array of guest operations');
    for (let i = 0; i < ops.length; i++) {
      const why = checkOp(ops[i]);
      if (why !== undefined) throw badProgram(`operation ${i}: ${why}`);
      if ((ops[i] as { emulated?: boolean }).emulated) {
        const why = this.emulationRefusal();
        if (why !== undefined) throw badProgram(`operation ${i}: ${why}`);
      }
    }
    this.program = new GuestProgram(ops);
  }

  get results(): GuestOpResultRecord[] {
    return this.program.results;
  }

  get pc(): number {
    return this.program.pc;
  }

  get done(): boolean {
    return this.program.done;
  }
}

function badProgram(why: string): SyscallError {
  return new SyscallError('EINVAL', 'guest', undefined, `guest.load: ${why}`);
}

const U64_MAX = (1n << 64n) - 1n;
const MAP_GPA_VIA = new Set(['hypercall', 'tdvmcall', 'psc_msr', 'psc_ghcb']);

/** A guest-physical address or a count: a non-negative safe integer, or a bigint within u64. */
function isU64(v: unknown): boolean {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0;
  return typeof v === 'bigint' && v >= 0n && v <= U64_MAX;
}

/** Guest-physical addresses stop at 2^52 (x86 MAXPHYADDR at most 52): no guest can reach beyond. */
const PHYS_ADDR_LIMIT = 2n ** 52n;
const PHYS_ADDR_LIMIT_NUM = 2 ** 52;

/** Why an access of `length` bytes at `gpa` is out of any guest's reach, or undefined. */
function beyondPhysAddr(gpa: number | bigint, length: number): string | undefined {
  if (length === 0) return undefined;
  // Safe integers: a sum up to 2^53 is exact, and one beyond cannot round down to 2^52. No BigInt
  // per operation (load() checks every operation of a long program).
  if (typeof gpa === 'number' ? gpa + length <= PHYS_ADDR_LIMIT_NUM : gpa + BigInt(length) <= PHYS_ADDR_LIMIT)
    return undefined;
  return 'the access goes beyond 2^52, the largest guest-physical address space (MAXPHYADDR 52)';
}

/** Why `op` is not a valid GuestOp, or undefined. */
function checkOp(op: unknown): string | undefined {
  if (typeof op !== 'object' || op === null) return 'not an object';
  const o = op as Record<string, unknown>;
  switch (o['op']) {
    case 'hlt':
    case 'shutdown':
      return undefined;
    case 'terminate':
      for (const [k, max] of [
        ['reasonSet', 0xf],
        ['reasonCode', 0xff],
      ] as const) {
        const v = o[k];
        if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max))
          return `terminate '${k}' must be an integer 0..${max}`;
      }
      return undefined;
    case 'read':
      if (o['emulated'] !== undefined && typeof o['emulated'] !== 'boolean')
        return "'emulated' must be a boolean";
      if (!isU64(o['gpa'])) return "read needs 'gpa', a non-negative integer";
      if (typeof o['length'] !== 'number' || !Number.isSafeInteger(o['length']) || o['length'] < 0)
        return "read needs 'length', a non-negative integer";
      return beyondPhysAddr(o['gpa'] as number | bigint, o['length']);
    case 'write': {
      if (o['emulated'] !== undefined && typeof o['emulated'] !== 'boolean')
        return "'emulated' must be a boolean";
      if (!isU64(o['gpa'])) return "write needs 'gpa', a non-negative integer";
      const d = o['data'];
      if (!(d instanceof Uint8Array) && !Array.isArray(d)) return "write needs 'data', bytes";
      const tooFar = beyondPhysAddr(o['gpa'] as number | bigint, d.length);
      if (tooFar !== undefined) return tooFar;
      return undefined;
    }
    case 'accept':
      if (!isU64(o['gpa']) || !isU64(o['size']))
        return "accept needs 'gpa' and 'size', non-negative integers";
      return undefined;
    case 'map_gpa':
      if (!isU64(o['gpa']) || !isU64(o['npages']))
        return "map_gpa needs 'gpa' and 'npages', non-negative integers";
      // Named loads, not a loop over the names: load() checks every operation of a long program.
      if (o['attrs'] !== undefined && !isU64(o['attrs']))
        return "map_gpa 'attrs' must be a non-negative integer";
      if (o['size'] !== undefined && !isU64(o['size']))
        return "map_gpa 'size' must be a non-negative integer";
      if (o['via'] !== undefined && !MAP_GPA_VIA.has(o['via'] as string))
        return `map_gpa 'via' must be one of ${[...MAP_GPA_VIA].join(', ')}`;
      return undefined;
    default:
      return `unknown op ${JSON.stringify(o['op'])} (read, write, accept, map_gpa, terminate, shutdown, hlt)`;
  }
}
