/**
 * kvm_gmem_populate()'s run path (guest-memfd.ts populateRun + sev.ts postPopulateRun) is an
 * optimisation of the per-page path: the kernel loops page by page. These tests replay the same
 * SNP_LAUNCH_UPDATE sequences with runs on and off and compare everything a caller or a later step
 * can see: each ioctl's result (errno, firmware error, struct copied back), the launch digest, and
 * per page the RMP entry, the folio (content, up to date, provenance) and the bytes. Sequences
 * include runs cut short: an already assigned page in the middle, a source crossing into an
 * unmapped hole, a pending-in-RMP page, page types that go page by page (CPUID, SECRETS).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SnpPlatform } from '../../src/kernel/arch/sev/platform.js';
import { snpGuestContext } from '../../src/kernel/arch/sev/report.js';
import { type GmemFile, setPopulateRuns } from '../../src/kernel/kvm/guest-memfd.js';
import { getProfile } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import { folioView, prov } from '../state-views.js';
import { MiB, SNP_KERNELS, snpVm } from './snp-vm.js';

const PAGE = 4096;
const NPAGES = (2 * MiB) / PAGE;

afterEach(() => setPopulateRuns(true));

/** One sequence of launch updates; returns everything observable, per call and per page. */
function replay(kernel: string, runs: boolean) {
  setPopulateRuns(runs);
  const s = snpVm(kernel);
  const h = s.host;
  // Source bytes: distinct non-zero pages, with zero pages in between (stored as 'zero' folios).
  for (let i = 0; i < 96; i++) {
    if (i % 7 === 3) continue;
    h.memory.write(
      s.hva + i * PAGE,
      Uint8Array.from({ length: PAGE }, (_, k) => (i * 31 + k) & 0xff || 1),
    );
  }
  // A separate source buffer followed by an unmapped hole (the hole stops the copy: EFAULT).
  const holeSrc = h.mmap({
    length: 8 * PAGE,
    prot: uapi.PROT_READ | uapi.PROT_WRITE,
    flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
  });
  h.memory.write(holeSrc, new Uint8Array(8 * PAGE).fill(0x5a));
  h.munmap(holeSrc + 5 * PAGE, 3 * PAGE);
  const calls: unknown[] = [];
  const update = (gfn: number, uaddr: number, npages: number, type: number) => {
    const data = { gfn_start: gfn, uaddr, len: npages * PAGE, type };
    const cmd = { id: 'KVM_SEV_SNP_LAUNCH_UPDATE', sev_fd: s.sev, data, error: 0 };
    let errno = 'ok';
    try {
      h.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
    } catch (e) {
      errno = (e as { code: string }).code;
    }
    calls.push({ errno, error: cmd.error, data: { ...data } });
  };
  update(40, s.hva + 40 * PAGE, 1, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL); // assigned before the big run
  update(0, s.hva, 64, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL); // stops at gfn 40: partial progress
  update(40, s.hva + 40 * PAGE, 24, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL); // first page assigned: EIO
  update(41, s.hva + 41 * PAGE, 23, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  update(64, 0, 16, uapi.KVM_SEV_SNP_PAGE_TYPE_ZERO);
  update(80, s.hva + 80 * PAGE, 8, uapi.KVM_SEV_SNP_PAGE_TYPE_UNMEASURED);
  update(88, s.hva + 88 * PAGE, 1, uapi.KVM_SEV_SNP_PAGE_TYPE_SECRETS);
  update(89, holeSrc, 8, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL); // 5 pages, then EFAULT
  update(94, holeSrc + 5 * PAGE, 3, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL); // first page EFAULT: EIO
  update(100, s.hva + 100 * PAGE, 4, uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  update(NPAGES - 2, s.hva + (NPAGES - 2) * PAGE, 4, uapi.KVM_SEV_SNP_PAGE_TYPE_ZERO); // clipped at the slot end

  const platform = h.platform as SnpPlatform;
  const inode = (h.fds.lookup(s.gmem) as GmemFile).inode;
  const pages: unknown[] = [];
  for (let i = 0; i < NPAGES; i++) {
    const pfn = inode.pfn(i);
    const r = platform.rmp.lookup(pfn);
    const f = inode.folios.get(i);
    const bytes = inode.readPage(i);
    pages.push({
      i,
      rmp: r && { ...r, since: prov(r.since) },
      folio: folioView(f),
      bytes: bytes ? Buffer.from(bytes).toString('base64') : null,
    });
  }
  const digest = Buffer.from(snpGuestContext(h, s.vm)!.launchDigest.digest).toString('hex');
  return { calls, digest, pages };
}

describe.each(SNP_KERNELS)('populate runs on %s', (kernel) => {
  it('SNP_LAUNCH_UPDATE sequences give the same results, digest and page state with runs on and off', () => {
    const perPage = replay(kernel, false);
    const withRuns = replay(kernel, true);
    expect(withRuns.calls).toEqual(perPage.calls);
    expect(withRuns.digest).toBe(perPage.digest);
    expect(withRuns.pages).toEqual(perPage.pages);
    // The sequence did what it says: the big run stopped at the assigned page (40 pages copied back).
    expect(perPage.calls[1]).toMatchObject({ errno: 'ok', data: { gfn_start: 40, len: 24 * PAGE } });
    expect(perPage.calls[2]).toMatchObject({ errno: 'EIO' });
    expect(perPage.calls[7]).toMatchObject({ errno: 'ok', data: { gfn_start: 94, len: 3 * PAGE } });
    expect(perPage.calls[8]).toMatchObject({ errno: 'EIO' });
  });
});

describe.each(SNP_KERNELS.filter((k) => !getProfile(k)!.sev.launchUpdateSrcAligned))(
  'unaligned source on %s',
  (kernel) => {
    it('sev.c sev_gmem_post_populate: copy_from_user() takes the 4 KiB at uaddr, across two source pages', () => {
      const s = snpVm(kernel);
      const src = Uint8Array.from({ length: 2 * PAGE }, (_, k) => (k >> 4) & 0xff);
      s.host.memory.write(s.hva, src);
      s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', {
        gfn_start: 0,
        uaddr: s.hva + 8,
        len: PAGE,
        type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
      });
      const inode = (s.host.fds.lookup(s.gmem) as GmemFile).inode;
      expect(inode.readPage(0)).toEqual(src.subarray(8, 8 + PAGE));
    });

    it('sev.c sev_gmem_post_populate: a rejected CPUID page is copied back with copy_to_user() at uaddr itself', () => {
      const s = snpVm(kernel);
      // A CPUID table with count > SNP_CPUID_COUNT_MAX (64): the firmware fails with INVALID_PARAM
      // after writing the table back with count = 64.
      const table = new Uint8Array(PAGE);
      new DataView(table.buffer).setUint32(0, 0xffff, true);
      table[100] = 0x77;
      const before = new Uint8Array(2 * PAGE).fill(0x11);
      before.set(table, 8);
      s.host.memory.write(s.hva, before);
      const cmd = {
        id: 'KVM_SEV_SNP_LAUNCH_UPDATE',
        sev_fd: s.sev,
        data: { gfn_start: 0, uaddr: s.hva + 8, len: PAGE, type: uapi.KVM_SEV_SNP_PAGE_TYPE_CPUID },
        error: 0,
      };
      expect(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd)).toThrow(/EIO/);
      expect(cmd.error).toBe(uapi.SEV_RET_INVALID_PARAM);
      const after = s.host.memory.read(s.hva, 2 * PAGE);
      const expected = before.slice();
      new DataView(expected.buffer).setUint32(8, 64, true);
      expect(after).toEqual(expected);
    });
  },
);

describe.each(SNP_KERNELS)('populated pages are copy-on-write on %s', (kernel) => {
  const launchedFrom = (bytes: Uint8Array) => {
    const s = snpVm(kernel);
    const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    s.host.memory.write(s.hva, bytes);
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', {
      gfn_start: 0,
      uaddr: s.hva,
      len: bytes.length,
      type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
    });
    const inode = (s.host.fds.lookup(s.gmem) as GmemFile).inode;
    return { ...s, vcpu, inode };
  };
  const pattern = Uint8Array.from({ length: 4 * PAGE }, (_, k) => (k % 251) + 1);

  it('a host write to the source after SNP_LAUNCH_UPDATE leaves the private page as it was copied', () => {
    const s = launchedFrom(pattern);
    s.host.memory.write(s.hva + PAGE + 16, Uint8Array.of(0, 0, 0, 0));
    expect(s.inode.readPage(1)).toEqual(pattern.subarray(PAGE, 2 * PAGE));
    expect(s.host.memory.read(s.hva + PAGE + 16, 4)).toEqual(Uint8Array.of(0, 0, 0, 0));
  });

  it("a guest write to the private page leaves the VMM's source page as it was", () => {
    const s = launchedFrom(pattern);
    s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
    s.host.guest(s.vcpu).load([{ op: 'write', gpa: 2 * PAGE + 8, data: Uint8Array.of(9, 9) }, { op: 'hlt' }]);
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(s.host.kvmRun(s.vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(s.inode.readPage(2)!.subarray(8, 10)).toEqual(Uint8Array.of(9, 9));
    expect(s.host.memory.read(s.hva + 2 * PAGE, PAGE)).toEqual(pattern.subarray(2 * PAGE, 3 * PAGE));
  });
});

describe('host.memory.writeShared', () => {
  it('maps whole pages without a copy; a later write changes the mapping, never the caller bytes', () => {
    const s = snpVm('v7.0');
    const image = new Uint8Array(2 * PAGE).fill(0x11);
    s.host.memory.writeShared(s.hva, image);
    expect(s.host.memory.read(s.hva + PAGE, 2)).toEqual(Uint8Array.of(0x11, 0x11));
    s.host.memory.write(s.hva + PAGE, Uint8Array.of(0x22));
    expect(s.host.memory.read(s.hva + PAGE, 2)).toEqual(Uint8Array.of(0x22, 0x11));
    expect(image[PAGE]).toBe(0x11);
  });

  it('faults as write() does outside every mapping', () => {
    const s = snpVm('v7.0');
    expect(() => s.host.memory.writeShared(0x1000, new Uint8Array(PAGE))).toThrow(/SIGSEGV/);
  });
});
