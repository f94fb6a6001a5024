/**
 * The safety invariants of src/kernel/invariants: each one is silent on the real kernel profile and
 * fires on a deliberately broken one (KernelProfile.bugs) that violates it, with the same call
 * sequence. With invariants switched off the broken behaviour is observable instead.
 */
import { describe, expect, it } from 'vitest';
import {
  createHost,
  getProfile,
  type Host,
  INVARIANTS,
  type KernelProfile,
  type ProfileBugs,
  uapi,
} from '../src/index.js';
import { violationOf } from './errno-of.js';
import { snpVm } from './sev/snp-vm.js';

const GPA = 1 << 30;

function broken(base: string, bugs: ProfileBugs): KernelProfile {
  const p = getProfile(base)!;
  return { ...p, name: `${base}+bugs`, bugs };
}

/** SW_PROTECTED VM, one guest_memfd slot of 4 pages at GPA, private, and a vCPU. */
function setup(kernel: string | KernelProfile, invariants = true, gmemFlags = 0) {
  const host = createHost({ kernel, invariants });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * 4096, flags: gmemFlags });
  const hva = host.mmap({ length: 4 * 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 1,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: GPA,
    memory_size: 4 * 4096,
    userspace_addr: hva,
    guest_memfd: gmem,
  });
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: GPA,
    size: 4 * 4096,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  return { host, vm, gmem, vcpu, hva };
}

function guestRead(host: Host, vcpu: number, page = 0): Uint8Array {
  host.guest(vcpu).load([{ op: 'read', gpa: GPA + page * 4096, length: 8 }]);
  host.ioctl(vcpu, 'KVM_RUN');
  return host.guest(vcpu).results[0]!.data!;
}

describe('invariants', () => {
  it('are named and exported', () => {
    expect([...INVARIANTS]).toEqual([
      'no-stale-host-data',
      'no-host-access-to-private',
      'no-mapping-of-freed-folio',
      'attributes-match-mappings',
      'no-freed-memslot-binding',
    ]);
  });

  describe('no-stale-host-data (bugs.noClearOnPrepare)', () => {
    // 6.11..6.19 clear in kvm_gmem_prepare_folio(), 7.0 in kvm_gmem_get_pfn(), 6.8 in get_folio().
    for (const k of ['v6.8', 'v6.11', 'v7.0']) {
      it(`a private fault maps an uncleared folio -> violation [${k}]`, () => {
        const ok = setup(k);
        expect(guestRead(ok.host, ok.vcpu)).toEqual(new Uint8Array(8));
        const bad = setup(broken(k, { noClearOnPrepare: true }));
        const v = violationOf(() => guestRead(bad.host, bad.vcpu));
        expect(v?.invariant).toBe('no-stale-host-data');
        expect(v?.detail).toMatch(/never cleared/);
      });
    }
    it("with invariants off, the guest reads the host's stale bytes [v6.11]", () => {
      const bad = setup(broken('v6.11', { noClearOnPrepare: true }), false);
      expect(guestRead(bad.host, bad.vcpu)).toEqual(new Uint8Array(8).fill(0xcc));
    });
    it('guest_memfd.c kvm_gmem_fault_user_mapping: a host store into the up-to-date, never-cleared page keeps its other stale bytes [v7.0]', () => {
      // 7.0 clears in the user fault only a folio that is not up to date; get_pfn marked it so.
      const host = createHost({ kernel: broken('v7.0', { noClearOnPrepare: true }), invariants: false });
      const kvm = host.open('/dev/kvm');
      const vm = host.ioctl(kvm, 'KVM_CREATE_VM', 0);
      const flags = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
      const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4096, flags });
      const m = host.mmap({ length: 4096, prot: 3, flags: uapi.MAP_SHARED, fd: gmem });
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: 0,
        flags: uapi.KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: 0,
        memory_size: 4096,
        userspace_addr: m,
        guest_memfd: gmem,
      });
      const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
      host.guest(vcpu).load([{ op: 'read', gpa: 0, length: 4 }]);
      host.ioctl(vcpu, 'KVM_RUN');
      expect(host.guest(vcpu).results[0]!.data).toEqual(new Uint8Array(4).fill(0xcc));
      host.memory.write(m, [1]);
      expect(host.memory.read(m, 4)).toEqual(Uint8Array.of(1, 0xcc, 0xcc, 0xcc));
    });
  });

  describe('no-host-access-to-private (bugs.hostMapsPrivate)', () => {
    it('the host writes a private page through a guest_memfd mapping -> violation [v6.18]', () => {
      // Without INIT_SHARED, kvm_gmem_fault_user_mapping() answers SIGBUS.
      const ok = setup('v6.18', true, uapi.GUEST_MEMFD_FLAG_MMAP);
      const m = ok.host.mmap({ length: 4096, prot: 3, flags: uapi.MAP_SHARED, fd: ok.gmem });
      expect(() => ok.host.memory.write(m, [1])).toThrow(/SIGBUS/);
      const bad = setup(broken('v6.18', { hostMapsPrivate: true }), true, uapi.GUEST_MEMFD_FLAG_MMAP);
      const mb = bad.host.mmap({ length: 4096, prot: 3, flags: uapi.MAP_SHARED, fd: bad.gmem });
      const v = violationOf(() => bad.host.memory.write(mb, [1]));
      expect(v?.invariant).toBe('no-host-access-to-private');
    });
    it('a write that touches a private page and then faults (SIGBUS past i_size) reports the violation itself [v6.18]', () => {
      const bad = setup(broken('v6.18', { hostMapsPrivate: true }), true, uapi.GUEST_MEMFD_FLAG_MMAP);
      const m = bad.host.mmap({ length: 8 * 4096, prot: 3, flags: uapi.MAP_SHARED, fd: bad.gmem });
      // Pages 0..3 are the file (private); page 4 is beyond i_size.
      const v = violationOf(() => bad.host.memory.write(m + 3 * 4096 + 4090, new Uint8Array(12).fill(1)));
      expect(v?.invariant).toBe('no-host-access-to-private');
      // Nothing is left over for the next, unrelated call.
      expect(typeof bad.host.open('/dev/kvm')).toBe('number');
    });
  });

  describe('no-mapping-of-freed-folio (bugs.noZapOnPunchHole)', () => {
    for (const k of ['v6.8', 'v6.11', 'v7.0']) {
      it(`PUNCH_HOLE frees a folio a private SPTE still maps -> violation [${k}]`, () => {
        const punch = uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE;
        const ok = setup(k);
        guestRead(ok.host, ok.vcpu);
        expect(ok.host.fallocate(ok.gmem, punch, 0, 4096)).toBe(0);
        const bad = setup(broken(k, { noZapOnPunchHole: true }));
        guestRead(bad.host, bad.vcpu);
        const v = violationOf(() => bad.host.fallocate(bad.gmem, punch, 0, 4096));
        expect(v?.invariant).toBe('no-mapping-of-freed-folio');
      });
    }
  });

  describe('no-host-access-to-private: hardware ownership outlives the attribute and the memslot (SNP, bugs.hostMapsPrivate)', () => {
    // An RMP entry goes back to the hypervisor only when the folio is freed (sev_gmem_invalidate()
    // from free_folio): neither KVM_SET_MEMORY_ATTRIBUTES nor a memslot deletion does it, so a host
    // write to such a page would take an RMP #PF whatever the attribute says.
    function snpLaunched(kernel: KernelProfile) {
      const s = snpVm(kernel, { size: 4 * 4096, gmemFlags: uapi.GUEST_MEMFD_FLAG_MMAP });
      s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', {
        gfn_start: 0,
        uaddr: s.hva,
        len: 4 * 4096,
        type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
      });
      const gm = s.host.mmap({ length: 4 * 4096, prot: 3, flags: uapi.MAP_SHARED, fd: s.gmem });
      const slot = {
        slot: 0,
        flags: uapi.KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: 0,
        userspace_addr: s.hva,
        guest_memfd: s.gmem,
      };
      return { ...s, gm, slot };
    }
    it('a page made shared without a punch-hole is still guest-owned; once punched, the host may touch it [v6.18]', () => {
      const s = snpLaunched(broken('v6.18', { hostMapsPrivate: true }));
      s.host.ioctl(s.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: 0x1000,
        size: 0x1000,
        attributes: 0,
        flags: 0,
      });
      const v = violationOf(() => s.host.memory.write(s.gm + 0x1000, [1, 2, 3]));
      expect(v?.invariant).toBe('no-host-access-to-private');
      expect(v?.detail).toMatch(/pfn 0x[0-9a-f]+ is guest-valid \(ASID 1/);
      const punch = uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE;
      expect(s.host.fallocate(s.gmem, punch, 0x1000, 0x1000)).toBe(0);
      s.host.memory.write(s.gm + 0x1000, [1, 2, 3]);
      expect(s.host.memory.read(s.gm + 0x1000, 3)).toEqual(Uint8Array.of(1, 2, 3));
    });
    it('after the memslot is deleted the page is still guest-owned [v6.18]', () => {
      const s = snpLaunched(broken('v6.18', { hostMapsPrivate: true }));
      s.host.ioctl(s.vm, 'KVM_SET_USER_MEMORY_REGION2', { ...s.slot, memory_size: 0 });
      const v = violationOf(() => s.host.memory.read(s.gm + 0x2000, 4));
      expect(v?.invariant).toBe('no-host-access-to-private');
    });
  });

  describe('no-mapping-of-freed-folio: a hardware-poisoned folio (a kernel gap on 6.18+, no bug switch needed)', () => {
    // A TD's MMAP-only guest_memfd (6.18+) backs shared accesses too (GMEM_ONLY slot), so a shared
    // SPTE in the direct root points at a guest_memfd folio. kvm_gmem_error_folio() invalidates with
    // kvm_gmem_get_invalidate_filter(): KVM_FILTER_PRIVATE without INIT_SHARED, which on a TD reaches
    // only the mirror root: the shared SPTE keeps mapping the poisoned page (as PUNCH_HOLE leaves it
    // mapping a freed one: flows/tdx-gmem-mmap-shared-punch.yaml).
    for (const kernel of ['v6.18', 'v7.0']) {
      it(`memory_failure() of a folio a TD maps shared -> violation [${kernel}]`, () => {
        const host = createHost({ kernel, platform: 'tdx' });
        const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_TDX_VM);
        host.ioctl(vm, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [24] });
        const ram = host.mmap({ length: 0x200000, prot: 3, flags: uapi.MAP_SHARED | uapi.MAP_ANONYMOUS });
        const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', {
          size: 0x200000,
          flags: uapi.GUEST_MEMFD_FLAG_MMAP,
        });
        const cpuid = (eax: number) => ({
          function: 0x80000008,
          index: 0,
          flags: 0,
          eax,
          ebx: 0,
          ecx: 0,
          edx: 0,
        });
        host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
          id: uapi.KVM_TDX_INIT_VM,
          flags: 0,
          data: { attributes: 0x10000000, xfam: 3, cpuid: { nent: 1, entries: [cpuid((48 << 16) | 48)] } },
        });
        const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
        host.ioctl(vcpu, 'KVM_SET_CPUID2', {
          nent: 3,
          entries: [
            { function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 1 << 21, edx: 0 },
            { function: 0x80000000, index: 0, flags: 0, eax: 0x80000008, ebx: 0, ecx: 0, edx: 0 },
            cpuid(0x3030),
          ],
        });
        host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
          slot: 0,
          flags: uapi.KVM_MEM_GUEST_MEMFD,
          guest_phys_addr: 0,
          memory_size: 0x200000,
          userspace_addr: ram,
          guest_memfd: gmem,
          guest_memfd_offset: 0,
        });
        host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', { id: uapi.KVM_TDX_INIT_VCPU, flags: 0, data: 0 });
        host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', { id: uapi.KVM_TDX_FINALIZE_VM, flags: 0, data: 0 });
        // A shared write (GPAW 48: the shared bit is bit 47) maps page 0x103 of the file.
        host.guest(vcpu).load([{ op: 'write', gpa: 2 ** 47 + 0x103000, data: [0xaa, 0xbb] }, { op: 'hlt' }]);
        host.ioctl(vcpu, 'KVM_RUN');
        const v = violationOf(() => host.memoryFailure(gmem, 0x103000));
        expect(v?.invariant).toBe('no-mapping-of-freed-folio');
        expect(v?.detail).toMatch(/gfn 0x103 maps guest_memfd page 259, which is hardware-poisoned/);
      });
    }
    it('on a SW_PROTECTED VM memory_failure() zaps every mapping of the folio: no violation [v7.0]', () => {
      const { host, gmem, vcpu } = setup('v7.0');
      guestRead(host, vcpu);
      expect(host.memoryFailure(gmem, 0)).toBe(0);
    });
  });

  describe('no-freed-memslot-binding: a kernel bug before 6.19 (9935df5333aa), no bug switch needed', () => {
    // Re-issuing a guest_memfd slot without KVM_MEM_GUEST_MEMFD was a flags-only change: the new slot
    // has no guest_memfd, the old one is freed, and kvm_gmem_unbind() never runs, so the file's
    // bindings lead to freed memory; the next invalidation walks into it.
    const reissue = ({ host, vm, hva }: ReturnType<typeof setup>) =>
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: 1,
        flags: 0,
        guest_phys_addr: GPA,
        memory_size: 4 * 4096,
        userspace_addr: hva,
      });
    for (const k of ['v6.8', 'v6.11', 'v6.18']) {
      it(`dropping KVM_MEM_GUEST_MEMFD, then PUNCH_HOLE walks the freed slot -> violation [${k}]`, () => {
        const s = setup(k);
        const { host, gmem, vcpu } = s;
        guestRead(host, vcpu);
        expect(reissue(s)).toBe(0);
        const v = violationOf(() =>
          host.fallocate(gmem, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 0, 4096),
        );
        expect(v?.invariant).toBe('no-freed-memslot-binding');
        expect(v?.detail).toMatch(/memslot 1 .* freed without kvm_gmem_unbind\(\)/);
      });
    }
    it('allocation does not walk the bindings (kvm_gmem_allocate): no violation until an invalidation does [v6.18]', () => {
      const s = setup('v6.18');
      expect(reissue(s)).toBe(0);
      expect(s.host.fallocate(s.gmem, uapi.FALLOC_FL_KEEP_SIZE, 0, 4096)).toBe(0);
      const v = violationOf(() => s.host.close(s.gmem));
      expect(v?.invariant).toBe('no-freed-memslot-binding');
    });
    it('6.19 refuses the re-issue (-EINVAL), so the binding stays live [v6.19]', () => {
      const s = setup('v6.19');
      const { host, gmem, vcpu } = s;
      guestRead(host, vcpu);
      expect(() => reissue(s)).toThrow(/EINVAL/);
      expect(host.fallocate(gmem, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 0, 4096)).toBe(0);
    });
  });

  describe('no-mapping-of-freed-folio (bugs.noZapOnMemslotDelete)', () => {
    // The slot is gone, so no binding leads from the freed folio to the SPTE: the checker has to find
    // it from the SPTE side.
    for (const k of ['v6.8', 'v6.11', 'v7.0']) {
      it(`a deleted slot's private SPTE, then PUNCH_HOLE of its folio -> violation [${k}]`, () => {
        const punch = uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE;
        const del = { slot: 1, flags: uapi.KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: 0 };
        const ok = setup(k);
        guestRead(ok.host, ok.vcpu);
        ok.host.ioctl(ok.vm, 'KVM_SET_USER_MEMORY_REGION2', del);
        expect(ok.host.fallocate(ok.gmem, punch, 0, 4096)).toBe(0);
        const bad = setup(broken(k, { noZapOnMemslotDelete: true }));
        guestRead(bad.host, bad.vcpu);
        bad.host.ioctl(bad.vm, 'KVM_SET_USER_MEMORY_REGION2', del);
        const v = violationOf(() => bad.host.fallocate(bad.gmem, punch, 0, 4096));
        expect(v?.invariant).toBe('no-mapping-of-freed-folio');
      });
    }
  });

  describe('no-mapping-of-freed-folio (bugs.noZapOnRelease)', () => {
    // kvm_gmem_release() zaps through every binding before the last reference to the inode (and
    // its folios) goes; without the zap the private SPTE points at a freed folio.
    for (const k of ['v6.8', 'v6.11', 'v7.0']) {
      it(`close(guest_memfd) with a private SPTE still installed -> violation [${k}]`, () => {
        const ok = setup(k);
        guestRead(ok.host, ok.vcpu);
        expect(ok.host.close(ok.gmem)).toBe(0);
        const bad = setup(broken(k, { noZapOnRelease: true }));
        guestRead(bad.host, bad.vcpu);
        const v = violationOf(() => bad.host.close(bad.gmem));
        expect(v?.invariant).toBe('no-mapping-of-freed-folio');
        expect(v?.detail).toMatch(/which was freed/);
      });
    }
  });

  describe('attributes-match-mappings (bugs.noZapOnAttributeChange)', () => {
    for (const k of ['v6.8', 'v6.11', 'v7.0']) {
      it(`a private SPTE survives conversion to shared -> violation [${k}]`, () => {
        const toShared = { address: GPA, size: 4096, attributes: 0, flags: 0 };
        const ok = setup(k);
        guestRead(ok.host, ok.vcpu);
        expect(ok.host.ioctl(ok.vm, 'KVM_SET_MEMORY_ATTRIBUTES', toShared)).toBe(0);
        const bad = setup(broken(k, { noZapOnAttributeChange: true }));
        guestRead(bad.host, bad.vcpu);
        const v = violationOf(() => bad.host.ioctl(bad.vm, 'KVM_SET_MEMORY_ATTRIBUTES', toShared));
        expect(v?.invariant).toBe('attributes-match-mappings');
        expect(v?.detail).toMatch(/private SPTE/);
      });
    }
    it('with invariants off, the guest keeps reading the private page through the stale SPTE [v6.11]', () => {
      const bad = setup(broken('v6.11', { noZapOnAttributeChange: true }), false);
      bad.host.guest(bad.vcpu).load([{ op: 'write', gpa: GPA, data: [0x42] }]);
      bad.host.ioctl(bad.vcpu, 'KVM_RUN');
      bad.host.ioctl(bad.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: GPA,
        size: 4096,
        attributes: 0,
        flags: 0,
      });
      // Shared memory (the anonymous backing) holds 0; the stale private mapping still shows 0x42.
      expect(guestRead(bad.host, bad.vcpu)[0]).toBe(0x42);
    });
  });
});
