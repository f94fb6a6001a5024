/**
 * The VMSA page (SEV-ES save area) of a vCPU, as KVM hands it to LAUNCH_UPDATE_VMSA at
 * SNP_LAUNCH_FINISH: (a) the reset register state a VMM gives a vCPU, (b) its encoding at the
 * architectural offsets.
 * Layout: AMD APM vol. 2 Table B-4 (VMSA layout, state save area for SEV-ES), Linux
 * arch/x86/include/asm/svm.h struct sev_es_save_area. Reset values: KVM kvm_vcpu_reset() /
 * svm init_vmcb() + sev_es_sync_vmsa() and QEMU x86_cpu_reset(), as captured by
 * virtee/sev-snp-measure sevsnpmeasure/vmsa.py VMSA.build_save_area() at 8f2b337e.
 * Not modelled: SSP/CET state, debug address masks, LBR registers, the x87/XMM/YMM register file
 * (zero at reset), SVSM's flat 64-bit VMSA.
 */

/** A VMCB segment (struct vmcb_seg): u16 selector, u16 attrib, u32 limit, u64 base. */
export interface VmcbSegment {
  selector: number;
  attrib: number;
  limit: number;
  base: bigint;
}

/** The register state recorded in the VMSA; 64-bit registers are bigint. Every unlisted field is 0. */
export interface SevVcpuState {
  es: VmcbSegment;
  cs: VmcbSegment;
  ss: VmcbSegment;
  ds: VmcbSegment;
  fs: VmcbSegment;
  gs: VmcbSegment;
  gdtr: VmcbSegment;
  ldtr: VmcbSegment;
  idtr: VmcbSegment;
  tr: VmcbSegment;
  vmpl: number;
  cpl: number;
  efer: bigint;
  xss: bigint;
  cr4: bigint;
  cr3: bigint;
  cr0: bigint;
  dr7: bigint;
  dr6: bigint;
  rflags: bigint;
  rip: bigint;
  rsp: bigint;
  rax: bigint;
  star: bigint;
  lstar: bigint;
  cstar: bigint;
  sfmask: bigint;
  kernelGsBase: bigint;
  sysenterCs: bigint;
  sysenterEsp: bigint;
  sysenterEip: bigint;
  cr2: bigint;
  gPat: bigint;
  pkru: number;
  tscAux: number;
  rcx: bigint;
  rdx: bigint;
  rbx: bigint;
  rbp: bigint;
  rsi: bigint;
  rdi: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  /** SEV_FEATURES (guest features): bit 0 SNPActive, 5 DebugSwap, ... */
  sevFeatures: bigint;
  virtualTom: bigint;
  xcr0: bigint;
  mxcsr: number;
  x87Ftw: number;
  x87Fsw: number;
  x87Fcw: number;
}

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
export const VMSA_SIZE = 4096;

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

/** Segment offsets in the save area (APM Table B-4). */
const SEGMENT_OFFSETS = [
  ['es', 0x00],
  ['cs', 0x10],
  ['ss', 0x20],
  ['ds', 0x30],
  ['fs', 0x40],
  ['gs', 0x50],
  ['gdtr', 0x60],
  ['ldtr', 0x70],
  ['idtr', 0x80],
  ['tr', 0x90],
] as const;

type U64Field = { [K in keyof SevVcpuState]: SevVcpuState[K] extends bigint ? K : never }[keyof SevVcpuState];

/** 64-bit fields and their offsets (APM Table B-4 / struct sev_es_save_area). */
const U64_OFFSETS: ReadonlyArray<readonly [U64Field, number]> = [
  ['efer', 0xd0],
  ['xss', 0x140],
  ['cr4', 0x148],
  ['cr3', 0x150],
  ['cr0', 0x158],
  ['dr7', 0x160],
  ['dr6', 0x168],
  ['rflags', 0x170],
  ['rip', 0x178],
  ['rsp', 0x1d8],
  ['rax', 0x1f8],
  ['star', 0x200],
  ['lstar', 0x208],
  ['cstar', 0x210],
  ['sfmask', 0x218],
  ['kernelGsBase', 0x220],
  ['sysenterCs', 0x228],
  ['sysenterEsp', 0x230],
  ['sysenterEip', 0x238],
  ['cr2', 0x240],
  ['gPat', 0x268],
  ['rcx', 0x308],
  ['rdx', 0x310],
  ['rbx', 0x318],
  ['rbp', 0x328],
  ['rsi', 0x330],
  ['rdi', 0x338],
  ['r8', 0x340],
  ['r9', 0x348],
  ['r10', 0x350],
  ['r11', 0x358],
  ['r12', 0x360],
  ['r13', 0x368],
  ['r14', 0x370],
  ['r15', 0x378],
  ['sevFeatures', 0x3b0],
  ['virtualTom', 0x3c8],
  ['xcr0', 0x3e8],
];

const U64_MASK = (1n << 64n) - 1n;

/** Lay the state out as the 4096-byte VMSA page; every byte not covered by SevVcpuState is zero. */
export function encodeVmsa(state: SevVcpuState): Uint8Array {
  const page = new Uint8Array(VMSA_SIZE);
  const v = new DataView(page.buffer);
  for (const [name, off] of SEGMENT_OFFSETS) {
    const s = state[name];
    v.setUint16(off, s.selector, true);
    v.setUint16(off + 2, s.attrib, true);
    v.setUint32(off + 4, s.limit >>> 0, true);
    v.setBigUint64(off + 8, s.base & U64_MASK, true);
  }
  page[0xca] = state.vmpl;
  page[0xcb] = state.cpl;
  for (const [name, off] of U64_OFFSETS) v.setBigUint64(off, state[name] & U64_MASK, true);
  v.setUint32(0x2e8, state.pkru >>> 0, true);
  v.setUint32(0x2ec, state.tscAux >>> 0, true);
  v.setUint32(0x408, state.mxcsr >>> 0, true);
  v.setUint16(0x40c, state.x87Ftw, true);
  v.setUint16(0x40e, state.x87Fsw, true);
  v.setUint16(0x410, state.x87Fcw, true);
  return page;
}
