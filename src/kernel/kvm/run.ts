/**
 * KVM_RUN: run the vCPU's guest program until the next exit. Mirrors the parts of
 * arch/x86/kvm/x86.c that decide exits and return values: kvm_arch_vcpu_ioctl_run()
 * (complete_userspace_io, immediate_exit), kvm_emulate_hypercall() for KVM_HC_MAP_GPA_RANGE and
 * complete_hypercall_exit(), the emulated-MMIO exit and its completion, and kvm_mmu_page_fault()'s
 * choice of the private bit. Versions v6.8 .. v7.0; one difference: whether the hypercall exit
 * clears hypercall.ret (profile x86.hypercallExitClearsRet). TDX
 * MapGPA and SNP page-state changes have their own paths (arch/tdx/tdvmcall.ts, arch/sev/psc.ts),
 * reached through ArchVm.guestMapGpa / completeMapGpa.
 *
 * Where a guest access gets its bytes: a private access reads and writes the guest_memfd page the
 * fault mapped; a shared access the memslot's userspace_addr backing through GUP, or (6.18+
 * GMEM_ONLY slots) the guest_memfd page.
 */
import * as K from '../../uapi/kvm.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { KernelError, kerr } from '../errors.js';
import type { GuestOp, GuestOpResultRecord, GuestProgram } from '../guest/program.js';
import { pageAlignedNum } from '../uaccess.js';
import { type Folio, folioChanged, type GmemInode } from './guest-memfd.js';
import { gfnToHvaMemslot } from './memslots.js';
import type { FaultKind } from './mmu.js';
import type { Vcpu } from './vcpu.js';
import type { Vm } from './vm.js';

/** KVM_EXIT_HYPERCALL_LONG_MODE as the u64 kvm_run.hypercall.flags holds it. */
export const KVM_EXIT_HYPERCALL_LONG_MODE = BigInt(K.KVM_EXIT_HYPERCALL_LONG_MODE);
/** -KVM_ENOSYS / -KVM_EINVAL as the guest sees them (include/uapi/linux/kvm_para.h). */
export const KVM_ENOSYS = 1000n;
export const KVM_EINVAL = 22n;

const U64_MASK = (1n << 64n) - 1n;
const READ: FaultKind = { write: false, prefetch: false };
const WRITE: FaultKind = { write: true, prefetch: false };
const ZERO_PAGE = new Uint8Array(4096);
/** The result of a hypercall that returned 0, the usual one: one frozen record for all of them. */
const RET_0: GuestOpResultRecord = Object.freeze({ ret: 0n });
const HC_MAP_GPA_RANGE = BigInt(K.KVM_HC_MAP_GPA_RANGE);
const MAP_GPA_RANGE_ENCRYPTED = BigInt(K.KVM_MAP_GPA_RANGE_ENCRYPTED);
/** The provenance frame a guest operation runs in (constant names: no string built per operation). */
function opFrame(op: GuestOp): string {
  switch (op.op) {
    case 'read':
    case 'write':
      return op.emulated ? 'x86_emulate_instruction' : 'kvm_mmu_page_fault';
    case 'map_gpa':
      return 'guest map_gpa';
    case 'accept':
      return 'guest accept';
    default:
      return `guest ${op.op}`;
  }
}

export function kvmArchVcpuIoctlRun(vcpu: Vcpu): number {
  const vm = vcpu.vm;
  const run = vcpu.run;
  const prog = vm.host.guest(vcpu).program;
  // complete_userspace_io: finish the instruction that exited with what userspace wrote back. A
  // completion that makes another exit (TDX MapGPA's next chunk) returns to userspace at once
  // (kvm_arch_vcpu_ioctl_run: cui() <= 0 -> out), before the immediate_exit check.
  if (completeUserspaceIo(vcpu, prog)) return 0;
  // !vcpu->wants_to_run (immediate_exit), checked after the completion. kvm_run is left as it was:
  // exit_reason too (KVM_EXIT_INTR is only for a pending signal).
  if (run.immediate_exit) throw kerr('EINTR', 'kvm_arch_vcpu_ioctl_run: immediate_exit');
  // kvm_x86_vcpu_pre_run() (TDX: the vCPU must be initialized and the TD finalized).
  vm.arch.vcpuPreRun?.(vcpu);
  // kvm_mmu_reload() allocates a root before entering (-ENOSPC with no page budget). Not
  // modelled: on VMX/SVM an in-kernel local APIC gets KVM's APIC-access-page memslot, whose
  // creation sets a budget too.
  // kvm_vcpu_has_run() (last_vmentry_cpu) is set on the first entry; the root load comes first.
  vm.mmu.reload();
  vcpu.hasRun = true;
  // The previous exit's union member goes (kvm_run has one shape: see Vcpu.run).
  if (run.memory_fault !== undefined) run.memory_fault = undefined;
  if (run.hypercall !== undefined) {
    vcpu.staleHypercall = run.hypercall;
    run.hypercall = undefined;
  }
  if (run.mmio !== undefined) run.mmio = undefined;
  if (run.internal !== undefined) run.internal = undefined;
  if (run.system_event !== undefined) run.system_event = undefined;
  // With no memslot at all the first instruction fetch cannot be emulated (set_memory_region_test
  // test_zero_memory_regions): an emulation failure exit. prepare_emulation_failure_exit() puts
  // the flags (0: no instruction bytes were fetched) and the vendor's five exit-info words in
  // data[]; the model has no VMCS/VMCB exit info, so those read as 0.
  if (vm.memslots.count === 0) {
    run.exit_reason = K.KVM_EXIT_INTERNAL_ERROR;
    run.internal = { suberror: K.KVM_INTERNAL_ERROR_EMULATION, ndata: 6, data: [0n, 0n, 0n, 0n, 0n, 0n] };
    return 0;
  }
  for (;;) {
    const op = prog.ops[prog.pc];
    if (!op || op.op === 'hlt') {
      if (op) prog.pc++;
      run.exit_reason = K.KVM_EXIT_HLT;
      return 0;
    }
    if (runOpFramed(vcpu, prog, op)) return 0;
    prog.pc++;
    prog.partial = 0;
  }
}

/** Returns true if the completion made another exit (nothing else to do in this KVM_RUN). */
function completeUserspaceIo(vcpu: Vcpu, prog: GuestProgram): boolean {
  const pending = vcpu.pendingCompletion;
  if (!pending) return false;
  vcpu.pendingCompletion = undefined;
  const run = vcpu.run;
  if (pending === 'hypercall') {
    // complete_hypercall_exit(): RAX = hypercall.ret, then skip the VMCALL.
    const ret = run.hypercall?.ret ?? 0n;
    prog.complete(ret === 0n ? RET_0 : { ret: BigInt.asIntN(64, ret) });
    return false;
  }
  // tdx_complete_vmcall_map_gpa(), snp_complete_psc_msr(), snp_complete_one_psc().
  if (pending === 'map_gpa') return vcpu.vm.arch.completeMapGpa?.(vcpu, prog) ?? false;
  // complete_emulated_mmio(): a read takes the bytes userspace put in run.mmio.data.
  const m = prog.pendingMmio;
  prog.pendingMmio = undefined;
  if (!m) return false;
  if (m.read) {
    const out = prog.readBuffer;
    const src = run.mmio?.data;
    if (out && src) out.set(src.subarray(0, m.len), prog.partial);
  }
  prog.partial += m.len;
  // complete_emulated_mmio() goes on with the access itself: the next MMIO piece is another exit
  // made by the completion (so before the immediate_exit check), and the last one finishes the
  // instruction (a read's register is written even if this KVM_RUN then stops at immediate_exit).
  // Not modelled: the kernel copies RAM pieces of the access before its first MMIO exit.
  const op = prog.ops[prog.pc];
  if (op === undefined) return false;
  if (runOpFramed(vcpu, prog, op)) return true;
  prog.pc++;
  prog.partial = 0;
  return false;
}

/** runOp() inside the operation's provenance frame. */
function runOpFramed(vcpu: Vcpu, prog: GuestProgram, op: GuestOp): boolean {
  const t = vcpu.vm.host.tracer;
  t.enter(opFrame(op));
  try {
    return runOp(vcpu, prog, op);
  } finally {
    t.leave();
  }
}

/** Runs one operation; returns true if it exited to userspace (op not complete). */
function runOp(vcpu: Vcpu, prog: GuestProgram, op: GuestOp): boolean {
  const vm = vcpu.vm;
  switch (op.op) {
    case 'read':
    case 'write':
      return op.emulated ? emulatedAccess(vcpu, prog, op) : access(vcpu, prog, op);
    case 'accept': {
      const r = vm.arch.guestAccept?.(vcpu, Number(op.gpa), Number(op.size));
      if (!r) throw kerr('EINVAL', `guest accept/PVALIDATE is not available on ${vm.arch.name} VMs`);
      return r.kind === 'exit';
    }
    case 'map_gpa': {
      // TDX TDG.VP.VMCALL<MapGPA>, SNP page-state change: the arch's path; else the KVM hypercall.
      const r = vm.arch.guestMapGpa?.(vcpu, prog, op);
      if (r !== undefined) return r;
      if (op.via !== undefined && op.via !== 'hypercall')
        throw kerr('EINVAL', `guest map_gpa via ${op.via} is not available on ${vm.arch.name} VMs`);
      return mapGpaHypercall(vcpu, prog, op);
    }
    case 'terminate': {
      const t = vm.arch.guestTerminate?.(vcpu, op);
      if (t === undefined)
        throw kerr('EINVAL', `guest terminate (GHCB MSR protocol) is not available on ${vm.arch.name} VMs`);
      return t;
    }
    case 'shutdown':
      // A triple fault: SVM shutdown_interception(), VMX handle_triple_fault(), TDX's
      // EXIT_REASON_TRIPLE_FAULT all exit with KVM_EXIT_SHUTDOWN. What the vCPU is afterwards (SVM
      // INITs a vCPU without protected state) is not modelled: the op stays, so running the vCPU
      // again shuts it down again.
      vcpu.run.exit_reason = K.KVM_EXIT_SHUTDOWN;
      return true;
    default:
      return false;
  }
}

/**
 * kvm_emulate_hypercall() (____kvm_emulate_hypercall from 6.14), case KVM_HC_MAP_GPA_RANGE: checks
 * in its order. A TD reaches it by TDG.VP.VMCALL with R10 = the hypercall number
 * (tdx_emulate_vmcall), the return value going to R10; the GPA is passed as the guest wrote it.
 */
function mapGpaHypercall(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'map_gpa' }>): boolean {
  const vm = vcpu.vm;
  const g = op.gpa;
  const np = op.npages;
  if (
    typeof g === 'number' &&
    typeof np === 'number' &&
    op.attrs === undefined &&
    !vm.arch.decodeGpa &&
    Number.isSafeInteger(g) &&
    Number.isSafeInteger(np) &&
    g >= 0 &&
    np >= 0
  )
    return mapGpaHypercallNum(vcpu, prog, g, np, Boolean(op.private));
  const gpa = BigInt.asUintN(64, BigInt(g));
  const npages = BigInt.asUintN(64, BigInt(np));
  const attrs =
    op.attrs !== undefined ? BigInt.asUintN(64, BigInt(op.attrs)) : op.private ? MAP_GPA_RANGE_ENCRYPTED : 0n;
  // user_exit_on_hypercall(): not enabled with KVM_CAP_EXIT_HYPERCALL -> -KVM_ENOSYS to the guest.
  if (!vm.userExitOnHypercall(HC_MAP_GPA_RANGE)) {
    prog.results[prog.pc] = { ret: -KVM_ENOSYS };
    return false;
  }
  // !PAGE_ALIGNED(gpa) || !npages || gpa_to_gfn(gpa) + npages <= gpa_to_gfn(gpa) (u64) -> -KVM_EINVAL.
  const gfn = gpa >> 12n;
  if (gpa & 0xfffn || npages === 0n || ((gfn + npages) & U64_MASK) <= gfn) {
    prog.results[prog.pc] = { ret: -KVM_EINVAL };
    return false;
  }
  // a0 as the guest passed it: only TDX's MapGPA path (__tdx_map_gpa) strips the shared bit.
  hypercallExit(vcpu, gpa, npages, attrs);
  if (gfn + npages <= BigInt(Number.MAX_SAFE_INTEGER))
    vm.noteConversion(Number(gfn), Number(npages), (attrs & MAP_GPA_RANGE_ENCRYPTED) !== 0n);
  return true;
}

/**
 * The KVM_EXIT_HYPERCALL of KVM_HC_MAP_GPA_RANGE, every field written as
 * ____kvm_emulate_hypercall() writes them. kvm_run is one shared page: the vCPU's hypercall member
 * is one object, filled in place (a caller that kept it sees the next exit, as a VMM that kept a
 * pointer into kvm_run would). args[3..5] are not written by KVM; the model reports them as 0.
 */
function hypercallExit(vcpu: Vcpu, a0: bigint, a1: bigint, a2: bigint): void {
  const hc = vcpu.hypercallMember;
  hc.nr = HC_MAP_GPA_RANGE;
  const args = hc.args;
  args[0] = a0;
  args[1] = a1;
  args[2] = a2;
  args[3] = 0n;
  args[4] = 0n;
  args[5] = 0n;
  // 9a1dfeff4414 (profile x86.hypercallExitClearsRet): ret = 0; before, what the last hypercall
  // exit left in kvm_run (the member as userspace last wrote it, 0 on a fresh vCPU).
  hc.ret = vcpu.vm.profile.x86.hypercallExitClearsRet ? 0n : (vcpu.staleHypercall?.ret ?? hc.ret);
  hc.flags = KVM_EXIT_HYPERCALL_LONG_MODE;
  vcpu.run.exit_reason = K.KVM_EXIT_HYPERCALL;
  vcpu.run.hypercall = hc;
  vcpu.pendingCompletion = 'hypercall';
}

/**
 * mapGpaHypercall() for the common case, in exact Number arithmetic: gpa and npages are
 * non-negative safe integers (no u64 truncation; gfn + npages < 2^54 cannot wrap), no explicit
 * attrs, no GPA decoding. The same checks in the same order.
 */
function mapGpaHypercallNum(
  vcpu: Vcpu,
  prog: GuestProgram,
  gpa: number,
  npages: number,
  priv: boolean,
): boolean {
  if (!vcpu.vm.userExitOnHypercall(HC_MAP_GPA_RANGE)) {
    prog.results[prog.pc] = { ret: -KVM_ENOSYS };
    return false;
  }
  if (!pageAlignedNum(gpa) || npages === 0) {
    prog.results[prog.pc] = { ret: -KVM_EINVAL };
    return false;
  }
  // A literal for the usual single page: BigInt() allocates.
  hypercallExit(
    vcpu,
    gpaBigInt(gpa),
    npages === 1 ? 1n : BigInt(npages),
    priv ? MAP_GPA_RANGE_ENCRYPTED : 0n,
  );
  vcpu.vm.noteConversion(gpa / 4096, npages, priv);
  return true;
}

/**
 * The last gpa a hypercall exit reported, as a number and as the bigint kvm_run carries. A guest
 * that converts a page asks twice for the same gpa (to shared, then back to private), and BigInt()
 * of a number above 2^32 allocates and normalizes (~70 ns). `num` starts as a non-integer so that
 * its field holds doubles in place (no heap number per store).
 */
const lastGpa = { num: -0.5, big: 0n };

function gpaBigInt(gpa: number): bigint {
  if (gpa !== lastGpa.num) {
    lastGpa.big = BigInt(gpa);
    lastGpa.num = gpa;
  }
  return lastGpa.big;
}

/**
 * Why the model refuses `emulated` accesses on this VM, or undefined. KVM does not emulate the
 * instructions of a guest with protected state (SEV-ES, SNP, TDX); on a VM with private memory
 * (SW_PROTECTED) or an SEV guest the emulator's view of private or encrypted memory is not modelled.
 */
export function emulationRefusal(vm: Vm): string | undefined {
  if (vm.hasProtectedState) return 'KVM does not emulate instructions of a guest with protected state';
  if (vm.arch.hasPrivateMem)
    return 'emulated accesses are not modelled on VMs with private memory (the emulator ignores attributes)';
  if ((vm.arch as { sev?: { sevGuest: boolean } }).sev?.sevGuest)
    return 'emulated accesses are not modelled on SEV guests (the emulator would read ciphertext)';
  return undefined;
}

/**
 * A read or write by an instruction KVM emulates (x86_emulate_instruction: a host whose vendor
 * module emulates the guest, as PVM does, or force_emulation_prefix). The emulator reaches memory
 * with kvm_vcpu_read_guest() / kvm_vcpu_write_guest(), i.e. __copy_from_user() /
 * __copy_to_user() at the memslot's userspace_addr, page by page (emulator_read_write_onepage):
 * no SPTE is made and guest_memfd is not looked at, even for a guest_memfd-only memslot. Where
 * that copy cannot be made (no memslot, a write to a read-only one, a userspace page that is not
 * there) the access is MMIO: a KVM_EXIT_MMIO of up to 8 bytes.
 */
function emulatedAccess(
  vcpu: Vcpu,
  prog: GuestProgram,
  op: Extract<GuestOp, { op: 'read' | 'write' }>,
): boolean {
  const vm = vcpu.vm;
  const gpa = decodeAccess(op);
  const data = aData;
  const isWrite = data !== undefined;
  const length = aLength;
  const out = isWrite ? undefined : readBuffer(prog, length);
  let done = prog.partial;
  while (done < length) {
    const addr = gpa + done;
    const gfn = Math.floor(addr / 4096);
    const off = addr - gfn * 4096;
    const n = Math.min(4096 - off, length - done);
    const slot = vm.memslots.lookup(gfn);
    let copied = false;
    if (slot && !(isWrite && slot.flags & K.KVM_MEM_READONLY)) {
      const hva = gfnToHvaMemslot(slot, gfn) + off;
      try {
        if (isWrite) vm.host.mm.copyToUser(hva, chunk(data!, done, n));
        else out!.set(vm.host.mm.copyFromUser(hva, n), done);
        copied = true;
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
      }
    }
    if (!copied) return mmioExit(vcpu, prog, addr, data, done, n);
    done += n;
    prog.partial = done;
  }
  if (out) publishRead(prog, out);
  return false;
}

// decodeAccess() results besides the gpa: a write's bytes (undefined for a read), the access's length.
// (A gpa is returned, not kept here: a number above 2^31 stored in a module variable is a new heap
// number each time.)
let aData: Uint8Array | undefined;
let aLength = 0;

/** A read or write operation's gpa; its bytes and length into aData and aLength (no allocation). */
function decodeAccess(op: Extract<GuestOp, { op: 'read' | 'write' }>): number {
  if (op.op === 'write') {
    aData = op.data instanceof Uint8Array ? op.data : Uint8Array.from(op.data);
    aLength = aData.length;
  } else {
    aData = undefined;
    aLength = op.length;
  }
  return typeof op.gpa === 'number' ? op.gpa : Number(op.gpa);
}

/** The buffer of the read at pc: the bytes gathered so far (a read resumed after an exit). */
function readBuffer(prog: GuestProgram, length: number): Uint8Array {
  let out = prog.readBuffer;
  if (!out) {
    out = length <= SMALL_READ ? smallReadBytes(length) : new Uint8Array(length);
    prog.readBuffer = out;
  }
  return out;
}

/**
 * Small reads (a guest's loads are a few bytes) get views of a shared slab, as Node's Buffer pool
 * does: a view costs one object, a Uint8Array of its own three (view, ArrayBuffer, bytes). A slab
 * is never reused, so each view starts zeroed and stays the read's own.
 */
const SMALL_READ = 64;
const SLAB = 8192;
let slab = new ArrayBuffer(SLAB);
let slabUsed = 0;

function smallReadBytes(length: number): Uint8Array {
  if (slabUsed + length > SLAB) {
    slab = new ArrayBuffer(SLAB);
    slabUsed = 0;
  }
  const bytes = new Uint8Array(slab, slabUsed, length);
  slabUsed += length;
  return bytes;
}

/** The read at pc is complete: its bytes become its result. */
function publishRead(prog: GuestProgram, out: Uint8Array): void {
  prog.results[prog.pc] = { data: out };
  prog.readBuffer = undefined;
}

/**
 * Emulated MMIO of bytes [done, done + n) of the access at `gpa - done`: one exit per piece of up
 * to 8 bytes (a write carries its bytes); complete_emulated_mmio() finishes it on the next KVM_RUN.
 */
function mmioExit(
  vcpu: Vcpu,
  prog: GuestProgram,
  gpa: number,
  write: Uint8Array | undefined,
  done: number,
  n: number,
): true {
  const len = Math.min(n, 8);
  vcpu.run.exit_reason = K.KVM_EXIT_MMIO;
  vcpu.run.mmio = {
    phys_addr: BigInt(gpa),
    data: write ? write.slice(done, done + len) : new Uint8Array(8),
    len,
    is_write: write ? 1 : 0,
  };
  vcpu.pendingCompletion = 'mmio';
  prog.pendingMmio = { len, read: !write };
  prog.partial = done;
  return true;
}

/** A guest read or write, page by page through the TDP fault path. */
function access(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'read' | 'write' }>): boolean {
  const vm = vcpu.vm;
  const raw = decodeAccess(op);
  const data = aData;
  const isWrite = data !== undefined;
  const length = aLength;
  const out = isWrite ? undefined : readBuffer(prog, length);
  const kind = isWrite ? WRITE : READ;
  let done = prog.partial;
  while (done < length) {
    const addr = raw + done;
    const viewGpa = guestView(vm, addr, op.shared);
    const viewPrivate = vPrivate;
    const gfn = Math.floor(viewGpa / 4096);
    const off = viewGpa - gfn * 4096;
    const n = Math.min(4096 - off, length - done);
    const r = vm.mmu.fault(vcpu, gfn, viewPrivate, kind);
    // Emulated MMIO (kvm_handle_noslot_fault -> RET_PF_EMULATE).
    if (r === 'emulate') return mmioExit(vcpu, prog, viewGpa, data, done, n);
    // TDX: an access to a PENDING (not accepted) private page (tdx_handle_ept_violation).
    if (r.private && vm.arch.guestPrivateAccess) {
      prog.partial = done;
      const exception = vm.arch.guestPrivateAccess(vcpu, gfn);
      if (exception !== undefined) {
        // The guest's handler takes over: the access completes with no bytes (no exit to KVM).
        prog.results[prog.pc] = { exception };
        prog.readBuffer = undefined;
        return false;
      }
    }
    // A private page, or a shared one of a GMEM_ONLY slot: the bytes are guest_memfd's.
    const inode = r.inode;
    if (inode !== undefined) {
      const index = r.index(gfn);
      const folio = inode.folios.get(index);
      if (isWrite) writeGmem(vm, inode, index, folio, off, chunk(data!, done, n));
      else copyBytes(out!, done, inode.folioBytes(index, folio) ?? ZERO_PAGE, off, n);
    } else {
      try {
        const hva = r.hva(gfn);
        if (isWrite) vm.host.mm.gupWrite(hva + off, off, chunk(data!, done, n));
        else {
          const page = vm.host.mm.gupRead(hva + off);
          if (page) copyBytes(out!, done, page, off, n);
        }
      } catch (e) {
        // The mapping changed under the SPTE (e.g. write to a read-only VMA): KVM_PFN_ERR_FAULT,
        // a bare -EFAULT from kvm_handle_error_pfn() (no memory-fault exit).
        prog.partial = done;
        throw e;
      }
    }
    vm.host.invariants.guestAccess(vm, gfn, r.private);
    done += n;
    prog.partial = done;
  }
  if (out) publishRead(prog, out);
  return false;
}

/** data[done, done + n): the array itself when that is all of it (no view allocated). */
function chunk(data: Uint8Array, done: number, n: number): Uint8Array {
  return done === 0 && n === data.length ? data : data.subarray(done, done + n);
}

/** out[at, at + n) = src[off, off + n); a plain loop for the few bytes of a typical access. */
function copyBytes(out: Uint8Array, at: number, src: Uint8Array, off: number, n: number): void {
  if (n > 64) {
    out.set(src.subarray(off, off + n), at);
    return;
  }
  for (let i = 0; i < n; i++) out[at + i] = src[off + i]!;
}

/**
 * The gpa a guest access reaches; its private bit into vPrivate. SNP/TDX: the guest's own view
 * (`shared`, or the C-bit / shared bit the arch decodes). SW_PROTECTED: kvm_mmu_page_fault() sets
 * PFERR_PRIVATE_ACCESS from the attribute, the hint is ignored. Default VMs: always shared.
 */
function guestView(vm: Vm, gpa: number, shared: boolean | undefined): number {
  const arch = vm.arch;
  if (arch.decodeGpa) {
    const d = arch.decodeGpa(BigInt(gpa));
    vPrivate = shared === undefined ? d.private : !shared;
    return Number(d.gpa);
  }
  if (arch.privacySource === 'guest') vPrivate = !shared;
  else if (!arch.hasPrivateMem) vPrivate = false;
  else vPrivate = (vm.memoryAttributes(Math.floor(gpa / 4096)) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
  return gpa;
}
/** guestView()'s private bit (no object per access). */
let vPrivate = false;

/**
 * Size of a short page-data entry (GmemInode.data): V8 keeps typed arrays up to 64 bytes on its
 * heap, larger ones get a separately allocated backing store.
 */
const SHORT_PAGE = 64;

/** A guest store into a guest_memfd page (private, or shared through a GMEM_ONLY slot). */
function writeGmem(
  vm: Vm,
  inode: GmemInode,
  index: number,
  folio: Folio | undefined,
  off: number,
  bytes: Uint8Array,
): void {
  // Only through a stale SPTE (a deliberately broken profile): the store lands in a freed page.
  if (!folio) return;
  const cur = folio.content === 'data' ? inode.data.get(index) : undefined;
  if (cur === undefined) {
    const t = vm.host.tracer;
    inode.folios.set(index, index + 1, folioChanged(folio, 'data', t.seq, t.site('guest write')));
  }
  // Stored pages are never changed in place (page-bytes.ts pageWith()): the store makes a new
  // array. A zeroed folio keeps only the bytes up to the store while that is small (GmemInode.data).
  const base = cur ?? inode.folioBytes(index, folio);
  const end = off + bytes.length;
  let page: Uint8Array;
  if (base === null) page = new Uint8Array(end <= SHORT_PAGE ? SHORT_PAGE : 4096);
  else if (base.length >= end) page = base.slice();
  else {
    page = new Uint8Array(4096);
    page.set(base);
  }
  copyBytes(page, off, bytes, 0, bytes.length);
  inode.data.set(index, page);
}
