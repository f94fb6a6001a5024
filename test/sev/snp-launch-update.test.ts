/**
 * KVM_SEV_SNP_LAUNCH_UPDATE, every error path and the partial-progress contract, per profile.
 * Expected values: arch/x86/kvm/svm/sev.c snp_launch_update() / sev_gmem_post_populate() at
 * torvalds/linux 0097f9df996f, the 09/12 patch (de80252414f3: assigned RMP entry -EINVAL -> -EEXIST),
 * b2e648758038 (7.0: 4K-aligned uaddr) and virt/kvm/guest_memfd.c kvm_gmem_populate()
 * (`ret && !i ? ret : i`; a failure on the first page is -EIO at the ioctl, with the firmware status).
 */
import { describe, expect, it } from 'vitest';
import type { SnpPlatform } from '../../src/kernel/arch/sev/platform.js';
import { snpGuestContext } from '../../src/kernel/arch/sev/report.js';
import { getProfile } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import { errnoOf, MiB, SNP_KERNELS, snpVm } from './snp-vm.js';

const NORMAL = uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL;
const PAGE = 4096;

describe.each(SNP_KERNELS)('snp_launch_update on %s', (kernel) => {
  const profile = getProfile(kernel)!;

  it('sev.c snp_launch_update: not an SNP guest yet (no KVM_SEV_INIT2) -> EINVAL', () => {
    const s = snpVm(kernel, { init2: false });
    expect(
      errnoOf(() =>
        s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL }),
      ),
    ).toBe('EINVAL');
  });

  it('sev.c snp_launch_update: no SNP context (no LAUNCH_START) -> EINVAL', () => {
    const s = snpVm(kernel, { start: false });
    expect(
      errnoOf(() =>
        s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL }),
      ),
    ).toBe('EINVAL');
  });

  it('sev.c snp_launch_update: copy_from_user of params fails -> EFAULT', () => {
    const s = snpVm(kernel);
    const cmd = { id: uapi.KVM_SEV_SNP_LAUNCH_UPDATE, sev_fd: s.sev, data: 7, error: 0 };
    expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EFAULT');
  });

  it.each([
    ['len not page aligned', { len: 100 }],
    ['flags set', { flags: 1 }],
    ['type VMSA (2) is not a LAUNCH_UPDATE type', { type: 2 }],
    ['type 7 unknown', { type: 7 }],
  ])('sev.c snp_launch_update: %s -> EINVAL', (_what, patch) => {
    const s = snpVm(kernel);
    const data = { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL, ...patch };
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data))).toBe('EINVAL');
  });

  it('sev.c snp_launch_update: gfn_start outside every guest_memfd memslot -> EINVAL', () => {
    const s = snpVm(kernel);
    const data = { gfn_start: (4 * MiB) / PAGE, uaddr: s.hva, len: PAGE, type: NORMAL };
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data))).toBe('EINVAL');
  });

  it(`sev.c snp_launch_update: unaligned uaddr ${profile.sev.launchUpdateSrcAligned ? 'is EINVAL (b2e648758038)' : 'is accepted before 7.0'}`, () => {
    const s = snpVm(kernel);
    const data = { gfn_start: 0, uaddr: s.hva + 8, len: PAGE, type: NORMAL };
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data))).toBe(
      profile.sev.launchUpdateSrcAligned ? 'EINVAL' : 'ok',
    );
  });

  it('first page fails (unmapped source: copy_from_user / GUP -EFAULT) -> EIO, error 0', () => {
    const s = snpVm(kernel);
    const cmd = s.host.ioctl.bind(s.host);
    const data = { gfn_start: 0, uaddr: 0x1000_0000, len: PAGE, type: NORMAL };
    const c = { id: 'KVM_SEV_SNP_LAUNCH_UPDATE', sev_fd: s.sev, data, error: 0xdead };
    expect(errnoOf(() => cmd(s.vm, 'KVM_MEMORY_ENCRYPT_OP', c))).toBe('EIO');
    expect(c.error).toBe(0); // argp->error = fw_error, 0: the firmware was never called
    expect(data.len).toBe(PAGE); // nothing copied back on failure
  });

  it('first page fails (sev_fd is not /dev/sev: __sev_issue_cmd -EBADF) -> EIO; the page is hypervisor-owned again', () => {
    const s = snpVm(kernel);
    const data = { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL };
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data, s.kvm))).toBe('EIO');
    const p = s.host.platform as SnpPlatform;
    expect(p.rmp.entries.size).toBe(0); // snp_page_reclaim() + rmp_make_shared()
  });

  it('non-ZERO type with uaddr 0 (NULL source): WARN in sev_gmem_post_populate -> EIO', () => {
    const s = snpVm(kernel);
    expect(
      errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: 0, len: PAGE, type: NORMAL })),
    ).toBe('EIO');
  });

  it('partial progress: a failure after page 0 returns 0 with gfn_start/uaddr/len advanced; the retry is EIO', () => {
    const s = snpVm(kernel);
    // Source: two mapped pages, then a hole.
    const src = s.host.mmap({ length: 2 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    const data = { gfn_start: 16, uaddr: src, len: 4 * PAGE, type: NORMAL };
    expect(s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data).error).toBe(0);
    expect(data).toEqual({ gfn_start: 18, uaddr: src + 2 * PAGE, len: 2 * PAGE, type: NORMAL });
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data))).toBe('EIO');
    expect(snpGuestContext(s.host, s.vm)!.launchDigest.updates).toBe(2);
  });

  it('a range crossing the end of the memslot stops there (npages clipped); ZERO keeps uaddr', () => {
    const s = snpVm(kernel);
    const data = { gfn_start: 510, uaddr: 0x1234, len: 4 * PAGE, type: uapi.KVM_SEV_SNP_PAGE_TYPE_ZERO };
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data);
    expect(data).toEqual({
      gfn_start: 512,
      uaddr: 0x1234,
      len: 2 * PAGE,
      type: uapi.KVM_SEV_SNP_PAGE_TYPE_ZERO,
    });
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data))).toBe('EINVAL'); // no memslot at gfn 512
  });

  it(`populating a page twice: first page -> EIO (${profile.gmem.populateRejectsUptodate ? 'EEXIST in kvm_gmem_populate' : profile.sev.postPopulateAssignedEexist ? 'EEXIST from the RMP check' : 'EINVAL from the RMP check'})`, () => {
    const s = snpVm(kernel);
    const data = { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL };
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { ...data });
    let reason = '';
    try {
      s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { ...data });
    } catch (e) {
      expect((e as { code: string }).code).toBe('EIO');
      reason = (e as Error).message;
    }
    const inner =
      profile.gmem.populateRejectsUptodate || profile.sev.postPopulateAssignedEexist ? 'EEXIST' : 'EINVAL';
    expect(reason).toContain(`(${inner}:`);
  });

  // Where the shared-gfn refusal lives: the SEV callback in 6.11-rc1 (dee5a47cc7a4), common code
  // from rc2 (e4ee54479273). Both are -EINVAL on the first page, flattened to -EIO.
  const where = profile.gmem.populateRequiresPrivate
    ? 'kvm_gmem_populate'
    : profile.sev.postPopulateChecksPrivate
      ? 'sev_gmem_post_populate'
      : undefined;
  if (where) {
    it(`a shared gfn: ${where} -EINVAL -> EIO, error 0, nothing measured`, () => {
      const s = snpVm(kernel);
      s.host.ioctl(s.vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: 0, size: PAGE, attributes: 0, flags: 0 });
      const data = { gfn_start: 0, uaddr: s.hva, len: 2 * PAGE, type: NORMAL };
      const cmd = { id: 'KVM_SEV_SNP_LAUNCH_UPDATE', sev_fd: s.sev, data, error: 77 };
      let reason = '';
      try {
        s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
      } catch (e) {
        expect((e as { code: string }).code).toBe('EIO');
        reason = (e as Error).message;
      }
      expect(reason).toContain('(EINVAL:');
      expect(reason).toContain(where === 'kvm_gmem_populate' ? 'not private' : 'sev_gmem_post_populate');
      expect(cmd.error).toBe(0);
      expect(data.len).toBe(2 * PAGE);
    });
  }

  it('CPUID page the firmware rejects: EIO, error INVALID_PARAM, corrected table written back; the retry succeeds', () => {
    const s = snpVm(kernel);
    const table = new Uint8Array(PAGE);
    const v = new DataView(table.buffer);
    v.setUint32(0, 1, true); // count
    v.setUint32(16, 0x8000001f, true); // eax_in: SEV capabilities
    v.setUint32(16 + 24, 0xffffffff, true); // eax claims every feature
    s.host.memory.write(s.hva, table);
    const data = { gfn_start: 0, uaddr: s.hva, len: PAGE, type: uapi.KVM_SEV_SNP_PAGE_TYPE_CPUID };
    const cmd = { id: 'KVM_SEV_SNP_LAUNCH_UPDATE', sev_fd: s.sev, data, error: 0 };
    expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EIO');
    expect(cmd.error).toBe(uapi.SEV_RET_INVALID_PARAM);
    const back = new DataView(s.host.memory.read(s.hva, PAGE).buffer);
    expect(back.getUint32(16 + 24, true)).not.toBe(0xffffffff);
    // The page went back to the hypervisor and its folio is not up to date: the retry is legal.
    expect(s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', data).error).toBe(0);
    expect(data.len).toBe(0);
  });
});
