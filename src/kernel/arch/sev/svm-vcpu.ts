/**
 * The SVM vCPU state an SEV-ES/SNP VMSA is built from: KVM's reset state (arch/x86/kvm/svm/svm.c
 * init_vmcb(), x86.c kvm_vcpu_reset()), what the VMM sets with KVM_SET_REGS / KVM_SET_SREGS /
 * KVM_SET_FPU / KVM_SET_MSRS (svm_set_segment(), svm_set_cr0/cr4, svm_set_efer()), and
 * sev_es_sync_vmsa() (arch/x86/kvm/svm/sev.c), which copies it into the save area with SEV_FEATURES
 * = the VM's vmsa_features. Not modelled: XSAVE/XCRS ioctls (XCR0 stays at reset, x87/XMM/YMM
 * register files are zero), debug registers set by the VMM (DR6/DR7 stay at reset), CET/LBR state.
 */

import { KVM_REGS_FIELDS } from '../../../uapi/kvm.js';
import { kvmPatValid, MSR_IA32_CR_PAT, msrIo } from '../../kvm/msr.js';
import type { Provenance } from '../../provenance.js';
import { copyFromUser, type UStruct, u16n, u32n, u64 } from '../../uaccess.js';
import type { PscVcpu } from './psc.js';
import type { SevVcpuState, VmcbSegment } from './vmsa.js';

export { KVM_SET_FPU, KVM_SET_MSRS } from '../../../uapi/kvm.js';
/** MSR_IA32_CR_PAT, which the VMCB keeps as G_PAT. */
export { MSR_IA32_CR_PAT };

const X86_CR0_CD = 1n << 30n;
const X86_CR0_NW = 1n << 29n;
const X86_CR4_MCE = 1n << 6n;
const EFER_SVME = 1n << 12n;
/** MSR_IA32_CR_PAT_DEFAULT. */
const PAT_DEFAULT = 0x0007040600070406n;

const seg = (selector: number, attrib: number, limit: number, base = 0n): VmcbSegment => ({
  selector,
  attrib,
  limit,
  base,
});

/** The vCPU's VMCB save area and arch registers right after KVM_CREATE_VCPU (kvm_vcpu_reset). */
export function svmResetState(): SevVcpuState {
  return {
    es: seg(0, 0x93, 0xffff),
    cs: seg(0xf000, 0x9b, 0xffff, 0xffff0000n),
    ss: seg(0, 0x93, 0xffff),
    ds: seg(0, 0x93, 0xffff),
    fs: seg(0, 0x93, 0xffff),
    gs: seg(0, 0x93, 0xffff),
    gdtr: seg(0, 0, 0xffff),
    ldtr: seg(0, 0x82, 0xffff),
    idtr: seg(0, 0, 0xffff),
    tr: seg(0, 0x8b, 0xffff),
    vmpl: 0,
    cpl: 0,
    efer: EFER_SVME,
    xss: 0n,
    // CR0 = CD|NW|ET at reset; KVM_X86_QUIRK_CD_NW_CLEARED keeps CD/NW out of the hardware CR0.
    cr0: 0x10n,
    cr3: 0n,
    // svm_set_cr4(): the host's CR4.MCE is always set in the hardware CR4.
    cr4: X86_CR4_MCE,
    dr7: 0x400n,
    dr6: 0xffff0ff0n,
    rflags: 0x2n,
    rip: 0xfff0n,
    rsp: 0n,
    rax: 0n,
    star: 0n,
    lstar: 0n,
    cstar: 0n,
    sfmask: 0n,
    kernelGsBase: 0n,
    sysenterCs: 0n,
    sysenterEsp: 0n,
    sysenterEip: 0n,
    cr2: 0n,
    gPat: PAT_DEFAULT,
    pkru: 0,
    tscAux: 0,
    rcx: 0n,
    // kvm_vcpu_reset(): RDX = CPUID.1.EAX, or 0x600 when userspace has set no CPUID yet.
    rdx: 0x600n,
    rbx: 0n,
    rbp: 0n,
    rsi: 0n,
    rdi: 0n,
    r8: 0n,
    r9: 0n,
    r10: 0n,
    r11: 0n,
    r12: 0n,
    r13: 0n,
    r14: 0n,
    r15: 0n,
    sevFeatures: 0n,
    virtualTom: 0n,
    xcr0: 1n, // XFEATURE_MASK_FP
    // fpstate_init(): FCW 0x37F, MXCSR 0x1F80.
    mxcsr: 0x1f80,
    x87Ftw: 0,
    x87Fsw: 0,
    x87Fcw: 0x37f,
    x87Fop: 0,
    x87Rip: 0n,
    x87Dp: 0n,
    fpr: [],
    xmm: new Uint8Array(256),
  };
}

/** Per-vCPU SEV state: the VMSA page and whether it is encrypted (guest_state_protected). */
export interface SevVcpu extends PscVcpu {
  /** Host pfn of the VMSA page (snp_safe_alloc_page at vCPU creation). */
  readonly vmsaPfn: number;
  /** The save area as KVM holds it before encryption. */
  state: SevVcpuState;
  /** The VMSA bytes, written by sev_es_sync_vmsa(). */
  vmsa: Uint8Array | undefined;
  guestStateProtected: boolean;
  /** The VMSA's SNP_LAUNCH_UPDATE that set guest_state_protected. */
  protectedSince?: Provenance;
}

/**
 * svm_set_segment(): struct kvm_segment -> VMCB attrib / limit / base / selector. An unusable
 * segment keeps its other attribute bits and only loses P (QEMU passes unusable = !present).
 */
function toVmcbSeg(s: unknown, what: string): VmcbSegment {
  const k = copyFromUser(s, what);
  const bit = (name: string, shift: number, width = 1): number =>
    (u32n(k, name) & ((1 << width) - 1)) << shift;
  const present = (u32n(k, 'present') & 1) === 1 && u32n(k, 'unusable') === 0;
  const attrib =
    bit('type', 0, 4) |
    bit('s', 4) |
    bit('dpl', 5, 2) |
    (present ? 1 << 7 : 0) |
    bit('avl', 8) |
    bit('l', 9) |
    bit('db', 10) |
    bit('g', 11);
  return { selector: u16n(k, 'selector'), attrib, limit: u32n(k, 'limit'), base: u64(k, 'base') };
}

/**
 * The state KVM_SET_SREGS stored (vm.ts keeps the structs in vcpu.archState). __set_sregs() takes
 * every field of struct kvm_sregs: one the caller left out is 0, as in C.
 */
export function applySregs(st: SevVcpuState, sregs: UStruct): void {
  for (const [name, field] of [
    ['cs', 'cs'],
    ['ds', 'ds'],
    ['es', 'es'],
    ['fs', 'fs'],
    ['gs', 'gs'],
    ['ss', 'ss'],
    ['tr', 'tr'],
    ['ldt', 'ldtr'],
  ] as const) {
    st[field] = toVmcbSeg(sregs[name] ?? {}, `kvm_sregs.${name}`);
  }
  // svm_set_segment(SS): CPL follows SS.DPL, unusable or not.
  st.cpl = (st.ss.attrib >> 5) & 3;
  for (const [name, field] of [
    ['gdt', 'gdtr'],
    ['idt', 'idtr'],
  ] as const) {
    const d = copyFromUser(sregs[name] ?? {}, `kvm_sregs.${name}`);
    st[field] = { selector: 0, attrib: 0, limit: u16n(d, 'limit'), base: u64(d, 'base') };
  }
  st.cr0 = u64(sregs, 'cr0') & ~(X86_CR0_CD | X86_CR0_NW);
  st.cr3 = u64(sregs, 'cr3');
  st.cr4 = u64(sregs, 'cr4') | X86_CR4_MCE;
  st.efer = u64(sregs, 'efer') | EFER_SVME; // svm_set_efer()
}

export function applyRegs(st: SevVcpuState, regs: UStruct): void {
  // __set_regs() writes every register of struct kvm_regs (a field the caller left out is 0), and
  // RFLAGS with its fixed bit.
  for (const r of KVM_REGS_FIELDS) st[r] = u64(regs, r);
  st.rflags |= 2n;
}

/**
 * KVM_SET_FPU (kvm_arch_vcpu_ioctl_set_fpu): struct kvm_fpu into the guest fxsave image, which
 * sev_es_sync_vmsa() copies into the VMSA for the SEV-ES/SNP VM types: control, status and
 * abridged tag words, last opcode / instruction / data pointers, ST0-ST7 (`fpr`: 8 x 16 bytes) and
 * XMM0-XMM15 (`xmm`: 16 x 16 bytes), as bytes or arrays of byte rows. Not MXCSR: the kernel never
 * copies kvm_fpu.mxcsr in (a patch to do so was refused: it would need vetting against the feature mask);
 * KVM_SET_XSAVE sets it, which the model does not offer.
 */
export function setFpu(st: SevVcpuState, arg: unknown): number {
  const f = copyFromUser(arg, 'kvm_fpu');
  st.x87Fcw = u16n(f, 'fcw');
  st.x87Fsw = u16n(f, 'fsw');
  st.x87Ftw = u16n(f, 'ftwx') & 0xff;
  st.x87Fop = u16n(f, 'last_opcode');
  st.x87Rip = u64(f, 'last_ip');
  st.x87Dp = u64(f, 'last_dp');
  const fpr = fpuBytes(f['fpr'], 8);
  st.fpr = Array.from({ length: 8 }, (_, i) => fpr.slice(i * 16, i * 16 + 16));
  st.xmm = fpuBytes(f['xmm'], 16);
  return 0;
}

/**
 * A kvm_fpu byte array of `rows` x 16 bytes, given flat or as rows (row i at byte 16 * i);
 * missing bytes are 0, as in C.
 */
function fpuBytes(v: unknown, rows: number): Uint8Array {
  const out = new Uint8Array(rows * 16);
  const put = (at: number, bytes: ArrayLike<unknown>, max: number): void => {
    for (let i = 0; i < Math.min(bytes.length, max); i++) out[at + i] = Number(bytes[i]) & 0xff;
  };
  if (v instanceof Uint8Array || (Array.isArray(v) && !v.some((r) => typeof r === 'object')))
    put(0, v as ArrayLike<unknown>, out.length);
  else if (Array.isArray(v))
    v.slice(0, rows).forEach((r, i) => {
      if (r instanceof Uint8Array || Array.isArray(r)) put(i * 16, r, 16);
    });
  return out;
}

/**
 * KVM_SET_MSRS: the MSRs the VMSA records (PAT only), through msr_io(). Once the VMSA is encrypted
 * (guest_state_protected), svm_set_msr()'s sev_es_prevent_msr_access() refuses PAT, whose
 * interception SEV-ES guests do not have: -EINVAL with has_protected_state (the SNP VM type), which
 * __msr_io() turns into the end of the count.
 */
export function setMsrs(sv: SevVcpu, arg: unknown): number {
  return msrIo(arg, (index, data) => {
    if (sv.guestStateProtected || index !== MSR_IA32_CR_PAT || !kvmPatValid(data)) return false;
    sv.state.gPat = data;
    return true;
  });
}
