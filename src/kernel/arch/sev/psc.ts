/**
 * SEV-SNP page-state change requests from the guest, forwarded to userspace as
 * KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE). Mirrors arch/x86/kvm/svm/sev.c snp_begin_psc_msr() /
 * snp_complete_psc_msr() (GHCB MSR protocol) and snp_begin_psc() / snp_complete_one_psc() (the
 * SVM_VMGEXIT_PSC buffer), 6.11 .. 7.0 (torvalds/linux sev.c @4b4193256c8d; the original 6.11 pull
 * <20240510211024.556136-9-michael.roth@amd.com>). Both leave hypercall.flags as it was (KVM never
 * writes it on these paths); 6.13+ clears hypercall.ret ("KVM: x86: clear vcpu->run->hypercall.ret
 * before exiting for KVM_EXIT_HYPERCALL", December 2024): profile.x86.hypercallExitClearsRet.
 * Not modelled: 2 MiB PSC entries and PSMASH/UNSMASH operations (the guest ops only ask for 4 KiB
 * private/shared), an invalid PSC header (the modelled guest always builds a valid one), the post-7.0
 * check of hypercall.ret (kvm-x86 5d40e5b49442: values other than 0/EINVAL/EAGAIN fail KVM_RUN).
 */
import * as K from '../../../uapi/kvm.js';
import type { GuestOp, GuestProgram } from '../../guest/program.js';
import type { Vcpu } from '../../kvm/vcpu.js';

/** arch/x86/include/asm/sev-common.h: GHCB MSR protocol PSC response, and its error form (bit 63). */
export const GHCB_MSR_PSC_RESP = 0x015n;
export const GHCB_MSR_PSC_RESP_ERROR = (1n << 63n) | GHCB_MSR_PSC_RESP;
/** arch/x86/include/asm/sev-common.h VMGEXIT_PSC_ERROR_*. */
export const VMGEXIT_PSC_ERROR_GENERIC = 0x100n << 32n;
export const VMGEXIT_PSC_ERROR_INVALID_HDR = (1n << 32n) | 1n;
export const VMGEXIT_PSC_ERROR_INVALID_ENTRY = (1n << 32n) | 2n;
/** Entries the Linux guest puts in one PSC buffer (VMGEXIT_PSC_MAX_ENTRY, __set_pages_state()). */
export const VMGEXIT_PSC_MAX_ENTRY = 64;

const HC_MAP_GPA_RANGE = BigInt(K.KVM_HC_MAP_GPA_RANGE);
const ENCRYPTED = BigInt(K.KVM_MAP_GPA_RANGE_ENCRYPTED);
const DECRYPTED = BigInt(K.KVM_MAP_GPA_RANGE_DECRYPTED);
const PAGE_SZ_4K = BigInt(K.KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
/** GHCB_MSR_PSC_REQ_TO_GFN(): GHCBData[51:12]; a PSC entry's gfn is 40 bits as well. */
const GFN_MASK = (1n << 40n) - 1n;

type MapGpaOp = Extract<GuestOp, { op: 'map_gpa' }>;

/** An in-flight request: which protocol, and (GHCB) how many pages the exit covers. */
export interface PscState {
  via: 'psc_msr' | 'psc_ghcb';
  npages: number;
}

/** The vCPU's SEV-ES state (struct vcpu_sev_es_state: psc_inflight and friends) as PSC keeps it. */
export interface PscVcpu {
  psc?: PscState | undefined;
}

/** The guest's request: first gfn, page count, and the page state it asks for. */
function request(op: MapGpaOp): { gfn: bigint; npages: bigint } {
  const gpa = BigInt.asUintN(64, BigInt(op.gpa));
  return { gfn: gpa >> 12n, npages: BigInt.asUintN(64, BigInt(op.npages)) };
}

/**
 * The KVM_EXIT_HYPERCALL both PSC paths make (args[2]: state | page size), filled into the vCPU's
 * one hypercall member as kvm_run is one shared page (run.ts hypercallExit()): flags is left as the
 * last exit or userspace left it (KVM never writes it here), and so is ret before 9a1dfeff4414.
 */
function pscExit(vcpu: Vcpu, gfn: bigint, npages: bigint, priv: boolean, clearsRet: boolean): void {
  const hc = vcpu.hypercallMember;
  hc.nr = HC_MAP_GPA_RANGE;
  // args[3..5] are not written by KVM; the model reports them as 0.
  const args = hc.args;
  args[0] = (gfn & GFN_MASK) << 12n;
  args[1] = npages;
  args[2] = (priv ? ENCRYPTED : DECRYPTED) | PAGE_SZ_4K;
  args[3] = 0n;
  args[4] = 0n;
  args[5] = 0n;
  // 6.13+: ret = 0 ("should have been -KVM_ENOSYS", QEMU <= 9.2); before, what the last exit left
  // (userspace may have put another object in run.hypercall: its fields are what kvm_run holds).
  const stale = vcpu.staleHypercall;
  hc.ret = clearsRet ? 0n : (stale?.ret ?? hc.ret);
  hc.flags = stale?.flags ?? hc.flags;
  vcpu.run.exit_reason = K.KVM_EXIT_HYPERCALL;
  vcpu.run.hypercall = hc;
  vcpu.pendingCompletion = 'map_gpa';
  vcpu.vm.noteConversion(Number(gfn & GFN_MASK), Number(npages), priv);
}

/**
 * The MSR protocol, one GHCB_MSR_PSC_REQ per page as Linux's early_set_pages_state() issues them
 * (it stops at the first error response). snp_begin_psc_msr(): op neither PRIVATE nor SHARED ->
 * error response (the guest ops cannot ask for another); KVM_HC_MAP_GPA_RANGE exit not enabled ->
 * GHCB_MSR_PSC_RESP_ERROR, guest resumes.
 */
export function snpBeginPscMsr(vcpu: Vcpu, es: PscVcpu, prog: GuestProgram, op: MapGpaOp): boolean {
  return beginPsc(vcpu, es, prog, op, 'psc_msr');
}

/**
 * SVM_VMGEXIT_PSC: the guest fills a buffer with up to VMGEXIT_PSC_MAX_ENTRY 4 KiB entries of the
 * same operation for consecutive gfns; snp_begin_psc() merges adjacent entries into one exit, so one
 * buffer is one exit. Exit not enabled -> VMGEXIT_PSC_ERROR_GENERIC in SW_EXITINFO2.
 */
export function snpBeginPsc(vcpu: Vcpu, es: PscVcpu, prog: GuestProgram, op: MapGpaOp): boolean {
  return beginPsc(vcpu, es, prog, op, 'psc_ghcb');
}

/**
 * The next request of either protocol for the rest of the op's range (prog.partial counts the pages
 * done): one page per MSR request (args[1] = 1), one buffer per VMGEXIT. The Linux guest makes no
 * request for an empty range.
 */
function beginPsc(vcpu: Vcpu, es: PscVcpu, prog: GuestProgram, op: MapGpaOp, via: PscState['via']): boolean {
  const { gfn, npages } = request(op);
  const done = BigInt(prog.partial);
  if (done >= npages) {
    prog.results[prog.pc] ??= {};
    return false;
  }
  const msr = via === 'psc_msr';
  if (!vcpu.vm.userExitOnHypercall(HC_MAP_GPA_RANGE)) {
    prog.results[prog.pc] = { ret: msr ? GHCB_MSR_PSC_RESP_ERROR : VMGEXIT_PSC_ERROR_GENERIC };
    return false;
  }
  const left = npages - done;
  const n = msr ? 1 : left > BigInt(VMGEXIT_PSC_MAX_ENTRY) ? VMGEXIT_PSC_MAX_ENTRY : Number(left);
  es.psc = { via, npages: n };
  // KVM_MAP_GPA_RANGE_PAGE_SZ_4K: every page (MSR request, GHCB entry) is 4 KiB.
  pscExit(vcpu, gfn + done, BigInt(n), op.private === true, vcpu.vm.profile.x86.hypercallExitClearsRet);
  return true;
}

/**
 * snp_complete_psc_msr() / snp_complete_one_psc(): hypercall.ret != 0 fails the request
 * (GHCB_MSR_PSC_RESP_ERROR, VMGEXIT_PSC_ERROR_GENERIC) and the guest stops; 0 completes the pages
 * (GHCB entries' cur_page set, hdr.cur_entry advanced; nothing left in the buffer ->
 * snp_complete_psc(0)) and the guest goes on with the rest of its range. Always resumes the guest.
 */
export function snpCompletePsc(vcpu: Vcpu, es: PscVcpu, prog: GuestProgram): boolean {
  const st = es.psc;
  if (!st) return false;
  es.psc = undefined;
  const failed = (vcpu.run.hypercall?.ret ?? 0n) !== 0n;
  const msr = st.via === 'psc_msr';
  if (failed) {
    prog.complete({ ret: msr ? GHCB_MSR_PSC_RESP_ERROR : VMGEXIT_PSC_ERROR_GENERIC });
    return false;
  }
  // snp_complete_one_psc() goes on with snp_begin_psc(), whose first check is the exit again: a VMM
  // that disabled KVM_HC_MAP_GPA_RANGE meanwhile fails the buffer, even with every entry done. The
  // MSR protocol's snp_complete_psc_msr() does not look again.
  if (!msr && !vcpu.vm.userExitOnHypercall(HC_MAP_GPA_RANGE)) {
    prog.complete({ ret: VMGEXIT_PSC_ERROR_GENERIC });
    return false;
  }
  prog.results[prog.pc] = { ret: msr ? GHCB_MSR_PSC_RESP : 0n };
  prog.partial += st.npages;
  return false;
}

/** arch/x86/include/asm/sev-common.h: GHCB_MSR_PSC_REQ and enum psc_op. */
const GHCB_MSR_PSC_REQ = 0x014n;
const SNP_PAGE_STATE_PRIVATE = 1n;
const SNP_PAGE_STATE_SHARED = 2n;
/** GHCB_ERR_MISSING_INPUT: sev_es_validate_vmgexit()'s reason for an exit code it cannot serve. */
export const GHCB_ERR_MISSING_INPUT = 4n;

/**
 * A page-state change from an SEV-ES guest that is not an SNP guest. MSR protocol:
 * sev_handle_vmgexit_msr_protocol() `goto out_terminate`: KVM_RUN returns 0 with
 * KVM_EXIT_SYSTEM_EVENT / KVM_SYSTEM_EVENT_SEV_TERM, data[0] = the GHCB MSR (the request), and the
 * guest gets no response (running it again asks again). GHCB: sev_es_validate_vmgexit() fails
 * SVM_VMGEXIT_PSC (SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_MISSING_INPUT) and resumes the guest.
 */
export function pscNotSnp(vcpu: Vcpu, prog: GuestProgram, op: MapGpaOp, via: PscState['via']): boolean {
  if (via === 'psc_ghcb') {
    prog.results[prog.pc] = { ret: GHCB_ERR_MISSING_INPUT, exitInfo1: 2n };
    return false;
  }
  const { gfn } = request(op);
  const msr =
    ((op.private === true ? SNP_PAGE_STATE_PRIVATE : SNP_PAGE_STATE_SHARED) << 52n) |
    (((gfn + BigInt(prog.partial)) & GFN_MASK) << 12n) |
    GHCB_MSR_PSC_REQ;
  sevTermExit(vcpu, msr);
  return true;
}

/**
 * sev_handle_vmgexit_msr_protocol() out_terminate: KVM_EXIT_SYSTEM_EVENT / KVM_SYSTEM_EVENT_SEV_TERM,
 * ndata 1, data[0] = the GHCB MSR the guest wrote (control->ghcb_gpa); KVM_RUN returns 0.
 */
export function sevTermExit(vcpu: Vcpu, ghcbMsr: bigint): void {
  const run = vcpu.run;
  run.exit_reason = K.KVM_EXIT_SYSTEM_EVENT;
  run.system_event = { type: K.KVM_SYSTEM_EVENT_SEV_TERM, ndata: 1, data: [ghcbMsr] };
}
