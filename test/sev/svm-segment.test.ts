/**
 * KVM_SET_SREGS and KVM_SET_FPU on an SNP vCPU, as the VMSA records them. svm_set_segment() (arch/x86/kvm/svm/svm.c,
 * the same in every modelled version) builds the VMCB attrib from type, S, DPL, AVL, L, DB and G
 * whether or not the segment is unusable, and only P is `(var->present & 1) && !var->unusable`;
 * for SS, `svm->vmcb->save.cpl = (var->dpl & 3)`. sev_es_sync_vmsa() copies them into the VMSA
 * (struct sev_es_save_area: ds at 0x30, ss at 0x20, attrib at +2 of each segment; cpl at 0xcb).
 * kvm_arch_vcpu_ioctl_set_fpu() fills the fxsave image (fop = last_opcode, rip = last_ip, rdp =
 * last_dp, st_space = fpr, xmm_space = xmm; not mxcsr), and sev_es_sync_vmsa() (VM types other than
 * KVM_X86_DEFAULT_VM) copies x87_dp (0x400), x87_fop (0x412), x87_rip (0x418), fpreg_x87 (0x420:
 * bytes 0-7 of each register in 8-byte slots, then bytes 8-9 in 2-byte slots) and fpreg_xmm (0x470).
 */
import { describe, expect, it } from 'vitest';
import type { SevArchVm } from '../../src/kernel/arch/sev/sev.js';
import type { VmFile } from '../../src/kernel/kvm/vm.js';
import { MiB, SNP_KERNELS, snpVm } from './snp-vm.js';

const SEG = {
  base: 0,
  limit: 0xffff,
  selector: 0,
  type: 0,
  present: 0,
  dpl: 0,
  db: 0,
  s: 0,
  l: 0,
  g: 0,
  avl: 0,
  unusable: 0,
};

describe.each(SNP_KERNELS)('svm_set_segment() into the VMSA on %s', (kernel) => {
  it('an unusable segment keeps its attribute bits except P; CPL follows SS.DPL even when SS is unusable', () => {
    const s = snpVm(kernel, { size: 4 * MiB });
    const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    s.host.ioctl(vcpu, 'KVM_SET_SREGS', {
      cs: { ...SEG, type: 0xb, present: 1, s: 1 },
      ds: { ...SEG, type: 3, s: 1, db: 1, present: 1, unusable: 1 },
      es: SEG,
      fs: SEG,
      gs: SEG,
      ss: { ...SEG, dpl: 3, unusable: 1 },
      tr: { ...SEG, type: 0xb, present: 1 },
      ldt: { ...SEG, type: 2, present: 1 },
      gdt: { base: 0, limit: 0xffff },
      idt: { base: 0, limit: 0xffff },
      cr0: 0x60000010,
      cr3: 0,
      cr4: 0,
      efer: 0,
    });
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: 4096, type: 1 });
    s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
    const v = (s.host.fds.lookup(s.vm) as VmFile).vm;
    const vmsa = (v.arch as SevArchVm).vcpuOf(v.vcpus.get(0)!).vmsa!;
    const attrib = (off: number) => vmsa[off + 2]! | (vmsa[off + 3]! << 8);
    // DS: type 3 | S (bit 4) | DB (bit 10), no P (bit 7): 0x413. SS: DPL 3 (bits 5-6): 0x60.
    expect(attrib(0x30)).toBe(0x413);
    expect(attrib(0x20)).toBe(0x60);
    expect(vmsa[0xcb]).toBe(3);
  });

  it('KVM_SET_FPU: last opcode / ip / dp, ST0-ST7 and XMM0-XMM15 reach the VMSA in its layout', () => {
    const s = snpVm(kernel, { size: 4 * MiB });
    const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    const fpr = Array.from({ length: 8 }, (_, r) => Array.from({ length: 16 }, (_, b) => (r << 4) | b));
    const xmm = Array.from({ length: 16 }, (_, r) =>
      Array.from({ length: 16 }, (_, b) => 0x80 | (r << 3) | (b & 7)),
    );
    s.host.ioctl(vcpu, 'KVM_SET_FPU', {
      fpr,
      fcw: 0x37f,
      fsw: 0,
      ftwx: 0,
      last_opcode: 0x7ff,
      last_ip: 0x1234,
      last_dp: 0x5678,
      xmm,
      mxcsr: 0,
    });
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: 4096, type: 1 });
    s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
    const v = (s.host.fds.lookup(s.vm) as VmFile).vm;
    const vmsa = (v.arch as SevArchVm).vcpuOf(v.vcpus.get(0)!).vmsa!;
    const view = new DataView(vmsa.buffer, vmsa.byteOffset);
    expect(view.getBigUint64(0x400, true)).toBe(0x5678n);
    expect(view.getUint16(0x412, true)).toBe(0x7ff);
    expect(view.getBigUint64(0x418, true)).toBe(0x1234n);
    // kvm_arch_vcpu_ioctl_set_fpu() never copies mxcsr: the VMSA keeps the reset MXCSR.
    expect(view.getUint32(0x408, true)).toBe(0x1f80);
    // ST3: bytes 0-7 at 0x420 + 24, bytes 8-9 at 0x420 + 64 + 6.
    expect([...vmsa.subarray(0x420 + 24, 0x420 + 32)]).toEqual([
      0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ]);
    expect([vmsa[0x420 + 70], vmsa[0x420 + 71]]).toEqual([0x38, 0x39]);
    expect([...vmsa.subarray(0x470, 0x470 + 256)]).toEqual(xmm.flat());
  });
});
