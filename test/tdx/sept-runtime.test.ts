/**
 * The private-mapping hooks after KVM_TDX_FINALIZE_VM: the mirror SPTE becomes an S-EPT leaf with
 * TDH.MEM.PAGE.AUG (PENDING), the guest's TDG.MEM.PAGE.ACCEPT makes it usable and reads as zeroes,
 * an access before accepting kills the VM (tdx_handle_ept_violation: kvm_vm_dead, -EIO), zapping
 * issues BLOCK/TRACK/REMOVE, and MapGPA reaches the VMM as KVM_EXIT_HYPERCALL (tdx.c __tdx_map_gpa).
 * Sources: torvalds/linux tdx.c @3829d81b6958, kvm-x86/linux tdx.c @09c6f74ecb86.
 */
import { describe, expect, it } from 'vitest';
import { uapi } from '../../src/index.js';
import { tdxVmOf } from '../../src/kernel/arch/tdx/index.js';
import { buildTd, errnoOf, finalize, initMemRegion, MiB, syscallError, UPSTREAM } from './td.js';

for (const kernel of UPSTREAM) {
  describe(`S-EPT after finalization [${kernel}]`, () => {
    it('an added page is MAPPED and its content is the source; a guest read returns it', () => {
      const td = buildTd(kernel);
      initMemRegion(td, 0x1000, 1, uapi.KVM_TDX_MEASURE_MEMORY_REGION);
      finalize(td);
      const t = tdxVmOf(td.host, td.vm);
      expect(t.td!.sept.get(1)?.state).toBe('mapped');
      expect(t.td!.calls.get('TDH.MR.EXTEND')).toBe(16);
      const g = td.host.guest(td.vcpu);
      g.load([{ op: 'read', gpa: 0x1000, length: 4 }]);
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect([...g.results[0]!.data!]).toEqual([1, 8, 15, 22]);
    });

    it('a guest read of a page never added: PAGE.AUG (PENDING), the access kills the VM, KVM_RUN -> -EIO', () => {
      const td = buildTd(kernel);
      finalize(td);
      const g = td.host.guest(td.vcpu);
      g.load([{ op: 'read', gpa: 0x4000, length: 8 }]);
      const e = errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_RUN'));
      expect(e).toBe('EIO');
      expect(tdxVmOf(td.host, td.vm).td!.sept.get(4)?.state).toBe('pending');
      // kvm_vm_dead(): every later ioctl is -EIO.
      expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_RUN'))).toBe('EIO');
    });

    it('a punched added page: the next access AUGs a fresh one; the -EIO explanation names the punch that removed the added page', () => {
      const td = buildTd(kernel);
      initMemRegion(td, 0x1000, 1, uapi.KVM_TDX_MEASURE_MEMORY_REGION);
      finalize(td);
      td.host.fallocate(td.gmem, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 0x1000, 0x1000);
      const punched = td.host.seq;
      td.host.guest(td.vcpu).load([{ op: 'read', gpa: 0x1000, length: 4 }]);
      const e = syscallError(() => td.host.ioctl(td.vcpu, 'KVM_RUN'));
      expect(e.code).toBe('EIO');
      expect(e.explanation).toMatch(
        new RegExp(
          `never accepted; the TD's page before it was removed at call #${punched} \\(fallocate > .*TDH\\.MEM\\.PAGE\\.REMOVE\\)`,
        ),
      );
    });

    it('SEPT_VE_DISABLE clear: the access to a PENDING page is a #VE in the guest, not a TD exit (the VM lives on)', () => {
      const td = buildTd(kernel, 0, 2 * MiB, 0n);
      finalize(td);
      const g = td.host.guest(td.vcpu);
      g.load([
        { op: 'read', gpa: 0x4000, length: 8 },
        { op: 'accept', gpa: 0x4000, size: 4096 },
        { op: 'read', gpa: 0x4000, length: 8 },
      ]);
      expect(td.host.ioctl(td.vcpu, 'KVM_RUN')).toBe(0);
      expect(g.results[0]?.exception).toBe(
        '#VE EPT violation at gfn 0x4: PENDING in the S-EPT (AUGed, not accepted), SEPT_VE_DISABLE clear',
      );
      expect(g.results[2]?.data).toEqual(new Uint8Array(8));
    });

    it('accept, then read: the page reads as zeroes (TDG.MEM.PAGE.ACCEPT)', () => {
      const td = buildTd(kernel);
      finalize(td);
      td.host.memory.write(td.hva + 0x4000, [9, 9, 9]); // shared backing: not what the private page shows
      const g = td.host.guest(td.vcpu);
      g.load([
        { op: 'accept', gpa: 0x4000, size: 0x2000 },
        { op: 'write', gpa: 0x5000, data: [5] },
        { op: 'read', gpa: 0x4000, length: 3 },
      ]);
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(td.host.kvmRun(td.vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect([...g.results[2]!.data!]).toEqual([0, 0, 0]);
      const t = tdxVmOf(td.host, td.vm).td!;
      expect(t.sept.get(4)?.state).toBe('mapped');
      expect(t.calls.get('TDH.MEM.PAGE.AUG')).toBe(2);
    });

    it('KVM_PRE_FAULT_MEMORY after finalization AUGs the page (PENDING), never PAGE.ADD', () => {
      const td = buildTd(kernel);
      finalize(td);
      td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x8000, size: 0x2000, flags: 0 });
      const t = tdxVmOf(td.host, td.vm).td!;
      expect(t.sept.get(8)?.state).toBe('pending');
      expect(t.calls.get('TDH.MEM.PAGE.ADD')).toBeUndefined();
    });

    it('converting a mapped page to shared zaps it: BLOCK, TRACK, REMOVE; the page is cleared', () => {
      const td = buildTd(kernel);
      initMemRegion(td, 0x1000);
      finalize(td);
      td.host.ioctl(td.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: 0x1000,
        size: 4096,
        attributes: 0,
        flags: 0,
      });
      const t = tdxVmOf(td.host, td.vm).td!;
      expect(t.sept.get(1)).toBeUndefined();
      expect(
        ['TDH.MEM.RANGE.BLOCK', 'TDH.MEM.TRACK', 'TDH.MEM.PAGE.REMOVE'].map((c) => t.calls.get(c)),
      ).toEqual([1, 1, 1]);
    });

    it('MapGPA reaches the VMM as KVM_EXIT_HYPERCALL with the shared bit stripped', () => {
      const td = buildTd(kernel);
      finalize(td);
      td.host.ioctl(td.vm, 'KVM_ENABLE_CAP', {
        cap: uapi.KVM_CAP_EXIT_HYPERCALL,
        flags: 0,
        args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
      });
      const g = td.host.guest(td.vcpu);
      g.load([{ op: 'map_gpa', gpa: (1n << 47n) | 0x10000n, npages: 4, private: false }]);
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      const run = td.host.kvmRun(td.vcpu);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
      expect(run.hypercall!.nr).toBe(BigInt(uapi.KVM_HC_MAP_GPA_RANGE));
      expect(run.hypercall!.args.slice(0, 3)).toEqual([
        0x10000n,
        4n,
        BigInt(uapi.KVM_MAP_GPA_RANGE_DECRYPTED),
      ]);
    });
  });
}

describe('S-EPT build before finalization', () => {
  it('v6.16: kvm_tdp_map_page pre-maps (nr_premapped), then PAGE.ADD; SEPT.ADD links the missing levels once', () => {
    const td = buildTd('v6.16');
    initMemRegion(td, 0x1000, 2);
    const t = tdxVmOf(td.host, td.vm);
    expect(t.nrPremapped).toBe(0);
    // GPAW 48: 4 levels, 3 non-leaf tables under the root for the first page, none for the second.
    expect(t.td!.calls.get('TDH.MEM.SEPT.ADD')).toBe(3);
    expect(t.td!.calls.get('TDH.MEM.PAGE.ADD')).toBe(2);
  });
  it('v6.19: PAGE.ADD happens while the mirror SPTE is installed (no pre-map count)', () => {
    const td = buildTd('v6.19');
    initMemRegion(td, 0x1000, 2);
    const t = tdxVmOf(td.host, td.vm);
    expect(t.nrPremapped).toBe(0);
    expect(t.td!.calls.get('TDH.MEM.PAGE.ADD')).toBe(2);
  });
});
