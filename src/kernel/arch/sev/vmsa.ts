/**
 * The VMSA page (struct sev_es_save_area, the SEV-ES/SNP save area) as KVM's sev_es_sync_vmsa()
 * lays it out before LAUNCH_UPDATE of type VMSA. Layout: AMD APM vol. 2 Table B-4 and Linux
 * arch/x86/include/asm/svm.h struct sev_es_save_area. Every byte not listed here is zero (the YMM
 * upper halves come from KVM_SET_XSAVE, which the model does not offer; SSP/CET and LBR state are
 * not modelled).
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
  /** x87 last opcode, instruction and data pointers (KVM_SET_FPU last_opcode, last_ip, last_dp). */
  x87Fop: number;
  x87Rip: bigint;
  x87Dp: bigint;
  /** ST0..ST7, 10 bytes each as fxsave keeps them (16-byte slots: only bytes 0-9 count). */
  fpr: readonly Uint8Array[];
  /** XMM0..XMM15, 256 bytes. */
  xmm: Uint8Array;
}

export const VMSA_SIZE = 4096;

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

/** Lay the state out as the 4096-byte VMSA page; every byte not covered by SevVcpuState is zero. */
export function encodeVmsa(state: SevVcpuState): Uint8Array {
  const page = new Uint8Array(VMSA_SIZE);
  const v = new DataView(page.buffer);
  for (const [name, off] of SEGMENT_OFFSETS) {
    const s = state[name];
    v.setUint16(off, s.selector, true);
    v.setUint16(off + 2, s.attrib, true);
    v.setUint32(off + 4, s.limit >>> 0, true);
    v.setBigUint64(off + 8, s.base, true); // setBigUint64 stores modulo 2^64
  }
  page[0xca] = state.vmpl;
  page[0xcb] = state.cpl;
  for (const [name, off] of U64_OFFSETS) v.setBigUint64(off, state[name], true);
  v.setUint32(0x2e8, state.pkru >>> 0, true);
  v.setUint32(0x2ec, state.tscAux >>> 0, true);
  v.setUint32(0x408, state.mxcsr >>> 0, true);
  v.setUint16(0x40c, state.x87Ftw, true);
  v.setUint16(0x40e, state.x87Fsw, true);
  v.setUint16(0x410, state.x87Fcw, true);
  v.setBigUint64(0x400, state.x87Dp, true);
  v.setUint16(0x412, state.x87Fop, true);
  v.setBigUint64(0x418, state.x87Rip, true);
  // fpreg_x87 (0x420): bytes 0-7 of each register in 8-byte slots, then bytes 8-9 of each in
  // 2-byte slots (sev_es_sync_vmsa(): "undocumented and definitely not what you would expect").
  for (let i = 0; i < 8; i++) {
    const r = state.fpr[i];
    if (!r) continue;
    page.set(r.subarray(0, 8), 0x420 + i * 8);
    page[0x420 + 64 + i * 2] = r[8] ?? 0;
    page[0x420 + 64 + i * 2 + 1] = r[9] ?? 0;
  }
  page.set(state.xmm.subarray(0, 256), 0x470);
  return page;
}
