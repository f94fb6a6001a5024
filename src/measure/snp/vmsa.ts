/**
 * The reset register state a VMM gives a vCPU of an SEV-ES/SNP guest, which KVM turns into the
 * VMSA page at SNP_LAUNCH_FINISH. The save-area layout and its encoder live in the kernel model
 * (kernel/arch/sev/vmsa.ts, re-exported here): KVM's sev_es_sync_vmsa() writes the page.
 * Layout: AMD APM vol. 2 Table B-4 (VMSA layout, state save area for SEV-ES), Linux
 * arch/x86/include/asm/svm.h struct sev_es_save_area. Reset values: KVM kvm_vcpu_reset() /
 * svm init_vmcb() + sev_es_sync_vmsa() and QEMU x86_cpu_reset(), as captured by
 * virtee/sev-snp-measure sevsnpmeasure/vmsa.py VMSA.build_save_area() at 8f2b337e.
 * Not modelled: SSP/CET state, debug address masks, LBR registers, the x87/XMM/YMM register file
 * (zero at reset), SVSM's flat 64-bit VMSA.
 */

import type { SevVcpuState, VmcbSegment } from '../../kernel/arch/sev/vmsa.js';

export { encodeVmsa, type SevVcpuState, VMSA_SIZE, type VmcbSegment } from '../../kernel/arch/sev/vmsa.js';

export type SevVmmType = 'qemu' | 'ec2' | 'gce';

export interface VcpuResetOptions {
  /** AP reset EIP from the OVMF SEV-ES reset block; required for an AP. */
  apEip?: number;
  /** CPUID Fn0000_0001_EAX: RDX at reset (qemu); ec2 and gce put 0x600 there instead. */
  vcpuSig: number;
  vmmType: SevVmmType;
  /** SEV_FEATURES. */
  guestFeatures: bigint;
  /** The BSP starts at the architectural reset vector 0xFFFFFFF0; APs at apEip. */
  bsp: boolean;
}

/** Architectural reset vector (Intel SDM / AMD APM: CS.base 0xFFFF0000, RIP 0xFFF0). */
export const BSP_RESET_EIP = 0xfffffff0;

function seg(selector: number, attrib: number, limit: number, base = 0n): VmcbSegment {
  return { selector, attrib, limit, base };
}

/**
 * The vCPU's state at reset as the named VMM gives it (sev-snp-measure VMSA.build_save_area):
 * real mode, CS.base = EIP & 0xFFFF0000, RIP = EIP & 0xFFFF.
 */
export function vcpuResetState(opts: VcpuResetOptions): SevVcpuState {
  let eip: number;
  if (opts.bsp) {
    eip = BSP_RESET_EIP;
  } else {
    if (opts.apEip === undefined) throw new RangeError('an AP needs the SEV-ES reset block EIP');
    eip = opts.apEip >>> 0;
  }
  // QEMU defaults (KVM: segment attributes from svm init_vmcb(), EFER.SVME, CR4.MCE;
  // QEMU: RDX = CPUID signature, MXCSR 0x1F80, FCW 0x37F).
  let csAttrib = 0x9b;
  let ssAttrib = 0x93;
  let trAttrib = 0x8b;
  let gPat = 0x0007040600070406n; // PAT reset value, AMD APM vol. 2 §A.3
  let rdx = BigInt(opts.vcpuSig >>> 0);
  let mxcsr = 0x1f80;
  let fcw = 0x37f;
  switch (opts.vmmType) {
    case 'qemu':
      break;
    case 'ec2':
      // EC2's VMM: CS not accessed for the BSP only, SS/TR types differ, RDX 0x600, no FPU init.
      if (eip === BSP_RESET_EIP) csAttrib = 0x9a;
      ssAttrib = 0x92;
      trAttrib = 0x83;
      rdx = 0x600n;
      mxcsr = 0;
      fcw = 0;
      break;
    case 'gce':
      // GCE's hypervisor overwrites the default G_PAT; RDX 0x600, no FPU init.
      gPat = 0x00070106n;
      rdx = 0x600n;
      mxcsr = 0;
      fcw = 0;
      break;
    default:
      throw new RangeError(`unknown VMM type '${String(opts.vmmType)}'`);
  }
  return {
    es: seg(0, 0x93, 0xffff),
    cs: seg(0xf000, csAttrib, 0xffff, BigInt((eip & 0xffff0000) >>> 0)),
    ss: seg(0, ssAttrib, 0xffff),
    ds: seg(0, 0x93, 0xffff),
    fs: seg(0, 0x93, 0xffff),
    gs: seg(0, 0x93, 0xffff),
    gdtr: seg(0, 0, 0xffff),
    ldtr: seg(0, 0x82, 0xffff),
    idtr: seg(0, 0, 0xffff),
    tr: seg(0, trAttrib, 0xffff),
    vmpl: 0,
    cpl: 0,
    efer: 0x1000n, // EFER.SVME: KVM sets it for SVM guests
    xss: 0n,
    cr4: 0x40n, // CR4.MCE: KVM
    cr3: 0n,
    cr0: 0x10n, // CR0.ET
    dr7: 0x400n,
    dr6: 0xffff0ff0n,
    rflags: 0x2n,
    rip: BigInt(eip & 0xffff),
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
    gPat,
    pkru: 0,
    tscAux: 0,
    rcx: 0n,
    rdx,
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
    sevFeatures: opts.guestFeatures,
    virtualTom: 0n,
    xcr0: 0x1n, // XCR0.X87
    mxcsr,
    x87Ftw: 0,
    x87Fsw: 0,
    x87Fcw: fcw,
  };
}
