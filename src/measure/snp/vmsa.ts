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

import { svmResetState } from '../../kernel/arch/sev/svm-vcpu.js';
import type { SevVcpuState, VmcbSegment } from '../../kernel/arch/sev/vmsa.js';

export { encodeVmsa, type SevVcpuState, VMSA_SIZE, type VmcbSegment } from '../../kernel/arch/sev/vmsa.js';

export type SevVmmType = 'qemu' | 'ec2' | 'gce';

export interface VcpuResetOptions {
  /** AP reset EIP from the OVMF SEV-ES reset block; required for an AP. */
  apEip?: number;
  /**
   * CPUID Fn0000_0001_EAX: RDX at reset (qemu); ec2 and gce put 0x600 there instead. RDX is 64 bits:
   * a larger signature is kept modulo 2^64, as sev-snp-measure's c_uint64 rdx field stores it.
   */
  vcpuSig: number | bigint;
  vmmType: SevVmmType;
  /** SEV_FEATURES. */
  guestFeatures: bigint;
  /** The BSP starts at the architectural reset vector 0xFFFFFFF0; APs at apEip. */
  bsp: boolean;
}

/** Architectural reset vector (Intel SDM / AMD APM: CS.base 0xFFFF0000, RIP 0xFFF0). */
export const BSP_RESET_EIP = 0xfffffff0;

/**
 * The vCPU's state at reset as the named VMM gives it (sev-snp-measure VMSA.build_save_area):
 * real mode, CS.base = EIP & 0xFFFF0000, RIP = EIP & 0xFFFF.
 */
/** A copy of `s` with another attrib and base (built field by field: no object spread per vCPU). */
function withSeg(s: VmcbSegment, attrib: number, base: bigint): VmcbSegment {
  return { selector: s.selector, attrib, limit: s.limit, base };
}

export function vcpuResetState(opts: VcpuResetOptions): SevVcpuState {
  let eip: number;
  if (opts.bsp) {
    eip = BSP_RESET_EIP;
  } else {
    if (opts.apEip === undefined) throw new RangeError('an AP needs the SEV-ES reset block EIP');
    eip = opts.apEip >>> 0;
  }
  // KVM's reset state (svm init_vmcb(), kvm_vcpu_reset(): segment attributes, EFER.SVME, CR4.MCE,
  // DR6/DR7, RFLAGS, XCR0, G_PAT, FCW/MXCSR) is the kernel model's, one source of truth; the VMM
  // then sets what differs through KVM_SET_SREGS / KVM_SET_REGS / KVM_SET_FPU / KVM_SET_MSRS.
  const st = svmResetState();
  st.cs = withSeg(st.cs, st.cs.attrib, BigInt((eip & 0xffff0000) >>> 0));
  st.rip = BigInt(eip & 0xffff);
  // QEMU: RDX = CPUID signature; KVM's FCW 0x37F and MXCSR 0x1F80 as they are.
  st.rdx = BigInt.asUintN(64, BigInt(opts.vcpuSig));
  switch (opts.vmmType) {
    case 'qemu':
      break;
    case 'ec2':
      // EC2's VMM: CS not accessed for the BSP only, SS/TR types differ, RDX 0x600, no FPU init.
      if (eip === BSP_RESET_EIP) st.cs = withSeg(st.cs, 0x9a, st.cs.base);
      st.ss = withSeg(st.ss, 0x92, st.ss.base);
      st.tr = withSeg(st.tr, 0x83, st.tr.base);
      st.rdx = 0x600n;
      st.mxcsr = 0;
      st.x87Fcw = 0;
      break;
    case 'gce':
      // GCE's hypervisor overwrites the default G_PAT; RDX 0x600, no FPU init.
      st.gPat = 0x00070106n;
      st.rdx = 0x600n;
      st.mxcsr = 0;
      st.x87Fcw = 0;
      break;
    default:
      throw new RangeError(`unknown VMM type '${String(opts.vmmType)}'`);
  }
  st.sevFeatures = opts.guestFeatures;
  return st;
}
