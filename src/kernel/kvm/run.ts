/**
 * KVM_RUN: run the vCPU's guest program until the next exit. Mirrors the parts of
 * arch/x86/kvm/x86.c (kvm_arch_vcpu_ioctl_run, kvm_emulate_hypercall for KVM_HC_MAP_GPA_RANGE,
 * complete_hypercall_exit) and the x86 MMU fault path that decide exits and return values.
 */
import * as K from '../../uapi/kvm.js';
import { KernelError, kerr } from '../errors.js';
import type { GuestOp, GuestProgram } from '../guest/program.js';
import type { Vcpu } from './vcpu.js';
import type { Vm } from './vm.js';

/** KVM_EXIT_HYPERCALL_LONG_MODE: the guest ran in 64-bit mode. */
export const KVM_EXIT_HYPERCALL_LONG_MODE = 1n;
/** -KVM_ENOSYS / -KVM_EINVAL as the guest sees them (include/uapi/linux/kvm_para.h). */
export const KVM_ENOSYS = 1000n;
export const KVM_EINVAL = 22n;

export function kvmArchVcpuIoctlRun(vcpu: Vcpu): number {
  const vm = vcpu.vm;
  const run = vcpu.run;
  vm.arch.vcpuPreRun?.(vcpu);
  const prog = vm.host.guest(vcpu).program;
  // complete_userspace_io: a hypercall exit completes with the return value userspace wrote.
  if (vcpu.pendingCompletion === 'hypercall') {
    vcpu.pendingCompletion = undefined;
    prog.results[prog.pc] = { ret: run.hypercall?.ret ?? 0n };
    prog.pc++;
    prog.partial = 0;
  }
  delete run.memory_fault;
  delete run.hypercall;
  delete run.mmio;
  delete run.internal;
  if (run.immediate_exit) {
    run.exit_reason = K.KVM_EXIT_INTR;
    throw kerr('EINTR', 'kvm_arch_vcpu_ioctl_run: immediate_exit');
  }
  // With no memslot at all the first instruction fetch cannot be emulated (set_memory_region_test
  // test_zero_memory_regions): an internal error exit.
  if (vm.memslots.count === 0) {
    run.exit_reason = K.KVM_EXIT_INTERNAL_ERROR;
    run.internal = { suberror: K.KVM_INTERNAL_ERROR_EMULATION, ndata: 0, data: [] };
    return 0;
  }
  for (;;) {
    const op = prog.ops[prog.pc];
    if (!op || op.op === 'hlt') {
      if (op) prog.pc++;
      run.exit_reason = K.KVM_EXIT_HLT;
      return 0;
    }
    const exited = vm.host.tracer.within(`guest op #${prog.pc} ${op.op}`, () => runOp(vcpu, prog, op));
    if (exited) return 0;
    prog.pc++;
    prog.partial = 0;
  }
}

/** Runs one operation; returns true if it exited to userspace (op not complete). */
function runOp(vcpu: Vcpu, prog: GuestProgram, op: GuestOp): boolean {
  const vm = vcpu.vm;
  switch (op.op) {
    case 'read':
    case 'write':
      return access(vcpu, prog, op);
    case 'accept': {
      const r = vm.arch.guestAccept?.(vcpu, Number(op.gpa), Number(op.size));
      if (!r) throw kerr('EINVAL', `guest accept/PVALIDATE is not available on ${vm.arch.name} VMs`);
      if (r.kind === 'exit') return true;
      return false;
    }
    case 'map_gpa':
      return mapGpaHypercall(vcpu, prog, op);
    default:
      return false;
  }
}

/** KVM_HC_MAP_GPA_RANGE (kvm_emulate_hypercall; SNP PSC and TDX MapGPA arrive here as the same exit). */
function mapGpaHypercall(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'map_gpa' }>): boolean {
  const vm = vcpu.vm;
  const gpa = BigInt(op.gpa);
  const npages = BigInt(op.npages);
  const attrs = op.private ? BigInt(K.KVM_MAP_GPA_RANGE_ENCRYPTED) : 0n;
  if (!(vm.hypercallExitEnabled & (1n << BigInt(K.KVM_HC_MAP_GPA_RANGE)))) {
    prog.results[prog.pc] = { ret: -KVM_ENOSYS };
    return false;
  }
  if (gpa & 0xfffn || npages === 0n || (gpa >> 12n) + npages <= gpa >> 12n) {
    prog.results[prog.pc] = { ret: -KVM_EINVAL };
    return false;
  }
  vcpu.run.exit_reason = K.KVM_EXIT_HYPERCALL;
  vcpu.run.hypercall = {
    nr: BigInt(K.KVM_HC_MAP_GPA_RANGE),
    args: [gpa, npages, attrs, 0n, 0n, 0n],
    ret: 0n,
    flags: KVM_EXIT_HYPERCALL_LONG_MODE,
  };
  vcpu.pendingCompletion = 'hypercall';
  return true;
}

/** A guest read or write, page by page through the TDP fault path. */
function access(vcpu: Vcpu, prog: GuestProgram, op: Extract<GuestOp, { op: 'read' | 'write' }>): boolean {
  const vm = vcpu.vm;
  const data = op.op === 'write' ? Uint8Array.from(op.data) : undefined;
  const length = op.op === 'write' ? data!.length : op.length;
  const decoded = decode(vm, BigInt(op.gpa), op.shared);
  const start = Number(decoded.gpa);
  const out =
    op.op === 'read'
      ? ((prog.results[prog.pc]?.data as Uint8Array | undefined) ?? new Uint8Array(length))
      : undefined;
  let done = prog.partial;
  while (done < length) {
    const addr = start + done;
    const gfn = Math.floor(addr / 4096);
    const off = addr - gfn * 4096;
    const n = Math.min(4096 - off, length - done);
    const r = vm.mmu.fault(vcpu, gfn, decoded.private, op.op === 'write');
    if (r.kind === 'emulate') {
      // kvm_handle_noslot_fault(): emulated MMIO, one exit per access.
      vcpu.run.exit_reason = K.KVM_EXIT_MMIO;
      vcpu.run.mmio = {
        phys_addr: BigInt(addr),
        data: op.op === 'write' ? data!.slice(done, done + Math.min(n, 8)) : new Uint8Array(8),
        len: Math.min(n, 8),
        is_write: op.op === 'write' ? 1 : 0,
      };
      prog.partial = done;
      if (out) prog.results[prog.pc] = { data: out };
      return true;
    }
    if (r.private) {
      if (op.op === 'write') writeGmem(vm, r.inode, r.index, off, data!.subarray(done, done + n));
      else out!.set(readGmem(vm, r.inode, r.index).subarray(off, off + n), done);
    } else if (r.gmem) {
      if (op.op === 'write') writeGmem(vm, r.gmem.inode, r.gmem.index, off, data!.subarray(done, done + n));
      else out!.set(readGmem(vm, r.gmem.inode, r.gmem.index).subarray(off, off + n), done);
    } else {
      try {
        if (op.op === 'write') vm.host.mm.gupWrite(r.hva + off, off, data!.subarray(done, done + n));
        else {
          const page = vm.host.mm.gupRead(r.hva + off);
          if (page) out!.set(page.subarray(off, off + n), done);
        }
      } catch (e) {
        if (e instanceof KernelError) vm.mmu.memoryFaultExit(vcpu, gfn, false, op.op === 'write');
        throw e;
      }
    }
    vm.host.invariants.guestAccess(vm, gfn, r.private);
    done += n;
    prog.partial = done;
  }
  if (out) prog.results[prog.pc] = { data: out };
  return false;
}

function decode(vm: Vm, gpa: bigint, shared: boolean | undefined): { gpa: bigint; private: boolean } {
  if (vm.arch.decodeGpa) {
    const d = vm.arch.decodeGpa(gpa);
    return shared === undefined ? d : { gpa: d.gpa, private: !shared };
  }
  if (vm.arch.privacySource === 'guest') return { gpa, private: !shared };
  // SW_PROTECTED and default VMs: the attribute decides (the 'shared' hint is ignored, as in KVM).
  const gfn = Number(gpa >> 12n);
  return {
    gpa,
    private: vm.arch.hasPrivateMem && (vm.memoryAttributes(gfn) & K.KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0,
  };
}

function readGmem(vm: Vm, inode: import('./guest-memfd.js').GmemInode, index: number): Uint8Array {
  return inode.readPage(index) ?? ZERO_PAGE;
}

const ZERO_PAGE = new Uint8Array(4096);

function writeGmem(
  vm: Vm,
  inode: import('./guest-memfd.js').GmemInode,
  index: number,
  off: number,
  bytes: Uint8Array,
): void {
  const folio = inode.folios.get(index)!;
  let page = inode.data.get(index);
  if (!page || folio.content !== 'data') {
    const prev = inode.readPage(index);
    page = prev ? prev.slice() : new Uint8Array(4096);
    inode.data.set(index, page);
    inode.folios.set(index, index + 1, {
      ...folio,
      content: 'data',
      since: vm.host.tracer.here('guest write'),
    });
  }
  page.set(bytes, off);
}
