/**
 * The rest of the SNP launch in KVM and the platform: sev_mem_enc_ioctl() dispatch,
 * KVM_SEV_SNP_LAUNCH_START / _FINISH, KVM_PRE_FAULT_MEMORY before and after finish, the July 2024
 * thread's SNP counter-example, sev_gmem_prepare / sev_gmem_invalidate and the guest's PVALIDATE and
 * page-state changes. Expected values: arch/x86/kvm/svm/sev.c at torvalds/linux 0097f9df996f,
 * 5932ca411e53 (pre_fault_allowed), 9b9f7962e3e8 (second LAUNCH_FINISH), kvm-x86-svm-6.17
 * (9f4701e05fae, 24be2b7956a5: SMT and SINGLE_SOCKET policy checks left to the firmware), and the seed mail
 * (M. Roth: KVM_PRE_FAULT_MEMORY and SNP_LAUNCH_UPDATE are mutually exclusive before finish).
 */
import { describe, expect, it } from 'vitest';
import type { SnpPlatform } from '../../src/kernel/arch/sev/platform.js';
import { snpAttestationReport, snpGuestContext } from '../../src/kernel/arch/sev/report.js';
import { InvariantViolation } from '../../src/kernel/errors.js';
import { createHost } from '../../src/kernel/host.js';
import { getProfile } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import { errnoOf, MiB, releaseAtLeast, SNP_KERNELS, type SnpVm, snpVm } from './snp-vm.js';

const PAGE = 4096;
const NORMAL = uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL;

/** KVM_SEV_SNP_LAUNCH_UPDATE of one NORMAL page at `gfn`: its errno and the firmware error copied back. */
function launchUpdate(s: SnpVm, gfn: number): { errno: string; error: unknown } {
  const cmd = {
    id: 'KVM_SEV_SNP_LAUNCH_UPDATE',
    sev_fd: s.sev,
    data: { gfn_start: gfn, uaddr: s.hva, len: PAGE, type: NORMAL },
    error: 0,
  };
  const errno = errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd));
  return { errno, error: cmd.error };
}

function launched(kernel: string) {
  const s = snpVm(kernel);
  const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
  s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: 4 * PAGE, type: NORMAL });
  s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
  return { ...s, vcpu };
}

describe.each(SNP_KERNELS)('SNP launch on %s', (kernel) => {
  const profile = getProfile(kernel)!;

  it('sev_mem_enc_ioctl: a legacy command on an SNP guest -> EPERM, error not copied back', () => {
    const s = snpVm(kernel);
    const cmd = { id: uapi.KVM_SEV_LAUNCH_START, sev_fd: s.sev, data: {}, error: 77 };
    expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EPERM');
    expect(cmd.error).toBe(77);
  });

  it('sev_mem_enc_ioctl: an unknown command id -> EINVAL, error not copied back', () => {
    const s = snpVm(kernel);
    const cmd = { id: 104, sev_fd: s.sev, data: {}, error: 77 };
    expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EINVAL');
    expect(cmd.error).toBe(77);
  });

  it('sev_mem_enc_ioctl: SEND_UPDATE_VMSA, RECEIVE_UPDATE_VMSA, CERT_EXPORT have uAPI ids but no case: EINVAL, not copied back (EPERM first on an SNP guest)', () => {
    const host = createHost({ kernel, platform: 'snp' });
    const kvm = host.open('/dev/kvm');
    const sev = host.open('/dev/sev');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    for (const id of [
      uapi.KVM_SEV_SEND_UPDATE_VMSA,
      uapi.KVM_SEV_RECEIVE_UPDATE_VMSA,
      uapi.KVM_SEV_CERT_EXPORT,
    ]) {
      const cmd = { id, sev_fd: sev, data: {}, error: 77 };
      expect(errnoOf(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EINVAL');
      expect(cmd.error).toBe(77);
      expect(errnoOf(() => snpVm(kernel).enc(id))).toBe('EPERM');
    }
  });

  it('sev_mem_enc_ioctl: a NULL argument is success before anything is read (if (!argp) return 0)', () => {
    const s = snpVm(kernel);
    for (const nul of [null, undefined, 0, 0n])
      expect(s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', nul)).toBe(0);
    expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', 5))).toBe('EFAULT');
  });

  const r70 = releaseAtLeast(kernel, '7.0');
  it(`KVM_SEV_SNP_ENABLE_REQ_CERTS (103): ${r70 ? 'snp_enable_certs(): 0 before vCPUs, EINVAL after them or on a non-SNP guest (7.0, 20c3c4108d58)' : 'no case before 7.0: EINVAL'}`, () => {
    const s = snpVm(kernel);
    if (!r70) {
      expect(errnoOf(() => s.enc(uapi.KVM_SEV_SNP_ENABLE_REQ_CERTS))).toBe('EINVAL');
      return;
    }
    expect(s.enc(uapi.KVM_SEV_SNP_ENABLE_REQ_CERTS).error).toBe(0);
    s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    expect(errnoOf(() => s.enc(uapi.KVM_SEV_SNP_ENABLE_REQ_CERTS))).toBe('EINVAL');
    expect(errnoOf(() => snpVm(kernel, { init2: false }).enc(uapi.KVM_SEV_SNP_ENABLE_REQ_CERTS))).toBe(
      'EINVAL',
    );
  });

  it('snp_launch_start: before KVM_SEV_INIT2 -> ENOTTY', () => {
    const s = snpVm(kernel, { init2: false });
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n }))).toBe('ENOTTY');
  });

  it.each([
    ['a second context', 0x30000n, 0, 'EINVAL', true],
    ['flags set', 0x30000n, 1, 'EINVAL', false],
    ['an unknown policy bit (18)', 0x30000n | (1n << 18n), 0, 'EINVAL', false],
    ['reserved-must-be-one bit 17 clear', 0x10000n, 0, 'EINVAL', false],
  ] as const)('snp_launch_start: %s -> %s', (_w, policy, flags, errno, second) => {
    const s = snpVm(kernel, { start: second ? 0x30000n : false });
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy, flags }))).toBe(errno);
  });

  it('snp_launch_start: sev_fd not /dev/sev: snp_context_create() fails -> ENOTTY', () => {
    const s = snpVm(kernel, { start: false });
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n }, s.kvm))).toBe('ENOTTY');
  });

  if (releaseAtLeast(kernel, '6.17')) {
    it('SNP_LAUNCH_START firmware policy check (6.17+, 9f4701e05fae: KVM leaves SMT to the firmware): SMT not allowed on an SMT host -> EIO, error POLICY_FAILURE', () => {
      const s = snpVm(kernel, { start: false });
      const cmd = { id: 'KVM_SEV_SNP_LAUNCH_START', sev_fd: s.sev, data: { policy: 0x20000n }, error: 0 };
      expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EIO');
      expect(cmd.error).toBe(uapi.SEV_RET_POLICY_FAILURE);
      // The context was decommissioned: a new LAUNCH_START is allowed.
      expect(s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n }).error).toBe(0);
    });
    it('snp_launch_start (6.17+, 24be2b7956a5): SINGLE_SOCKET (bit 20) is left to the firmware, which accepts it on one socket', () => {
      const s = snpVm(kernel, { start: false });
      expect(s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x130000n }).error).toBe(0);
    });
  } else {
    const leaks = !releaseAtLeast(kernel, '6.12');
    it(`snp_launch_start (before 6.17): policy without SMT (bit 16) -> EINVAL from KVM; ${leaks ? 'up to 6.11 the context was created first (SNP_GCTX_CREATE ran: error 0) and stays, so a retry is EINVAL (e3a7792d9676 fixed it in 6.12)' : 'no firmware command, error untouched, a retry works'}`, () => {
      const s = snpVm(kernel, { start: false });
      const cmd = { id: 'KVM_SEV_SNP_LAUNCH_START', sev_fd: s.sev, data: { policy: 0x20000n }, error: 77 };
      expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EINVAL');
      if (leaks) {
        expect(cmd.error).toBe(0);
        expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n }))).toBe('EINVAL');
        // The leaked context never had SNP_LAUNCH_START: LAUNCH_UPDATE reaches the firmware, which
        // refuses the guest's state.
        const up = launchUpdate(s, 0);
        expect(up.errno).toBe('EIO');
        expect(up.error).toBe(uapi.SEV_RET_INVALID_GUEST_STATE);
      } else {
        expect(cmd.error).toBe(77);
        expect(s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n }).error).toBe(0);
      }
    });
    if (leaks)
      it('snp_launch_start (up to 6.11): flags set with a bad sev_fd -> ENOTTY (snp_context_create() runs before the flags check)', () => {
        const s = snpVm(kernel, { start: false });
        expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n, flags: 1 }, s.kvm))).toBe(
          'ENOTTY',
        );
      });
    it('snp_launch_start (before 6.17): SINGLE_SOCKET (bit 20) -> EINVAL', () => {
      const s = snpVm(kernel, { start: false });
      expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x130000n }))).toBe('EINVAL');
    });
  }

  it('snp_launch_finish: flags set -> EINVAL; before LAUNCH_START -> EINVAL; before INIT2 -> ENOTTY', () => {
    expect(errnoOf(() => snpVm(kernel).enc('KVM_SEV_SNP_LAUNCH_FINISH', { flags: 1 }))).toBe('EINVAL');
    expect(errnoOf(() => snpVm(kernel, { start: false }).enc('KVM_SEV_SNP_LAUNCH_FINISH', {}))).toBe(
      'EINVAL',
    );
    expect(errnoOf(() => snpVm(kernel, { init2: false }).enc('KVM_SEV_SNP_LAUNCH_FINISH', {}))).toBe(
      'ENOTTY',
    );
  });

  it('snp_launch_finish: id_block_en with id_block_uaddr 0 -> EINVAL (psp_copy_user_blob: !uaddr), unmapped or unreadable -> EFAULT (memdup_user)', () => {
    const s = snpVm(kernel);
    const blob = s.host.mmap({
      length: 2 * PAGE,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    const gone = s.host.mmap({
      length: 2 * PAGE,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    s.host.munmap(gone, 2 * PAGE);
    const finish = (id_block_uaddr: number, id_auth_uaddr: number) =>
      errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_FINISH', { id_block_en: 1, id_block_uaddr, id_auth_uaddr }));
    expect(finish(0, blob)).toBe('EINVAL');
    expect(finish(blob, 0)).toBe('EINVAL');
    expect(finish(gone, blob)).toBe('EFAULT');
    expect(finish(blob, gone)).toBe('EFAULT');
    // Mapped but not readable: memdup_user() faults just the same (not a signal to the VMM).
    const none = s.host.mmap({
      length: PAGE,
      prot: uapi.PROT_NONE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    expect(finish(none, blob)).toBe('EFAULT');
    // Nothing reached the firmware: the launch can still be finished.
    expect(s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {}).error).toBe(0);
  });

  it('snp_launch_finish: each vCPU VMSA measured, MEASUREMENT reported, pre_fault_allowed set', () => {
    const s = launched(kernel);
    const g = snpGuestContext(s.host, s.vm)!;
    expect(g.state).toBe('RUNNING');
    expect(g.launchDigest.updates).toBe(4 + 1);
    expect(Buffer.from(snpAttestationReport(s.host, s.vm)!.measurement)).toEqual(
      Buffer.from(g.launchDigest.digest),
    );
    // After finish LAUNCH_UPDATE is refused by the firmware (KVM_SET_REGS by KVM: kvm/protected-state.test.ts).
    const c = launchUpdate(s, 8);
    expect(c.errno).toBe('EIO');
    expect(c.error).toBe(uapi.SEV_RET_INVALID_GUEST_STATE);
  });

  it('after LAUNCH_FINISH the VMSA page is guest-owned with the VMSA bit the firmware set, not immutable (rmp_make_private() has no VMSA bit; sev_free_vcpu() makes it shared without reclaim)', () => {
    const s = launched(kernel);
    const p = s.host.platform as SnpPlatform;
    const entries = [...p.rmp.entries.entries()];
    const vmsa = entries.filter((e) => e.value.vmsa);
    expect(vmsa.map((e) => e.end - e.start)).toEqual([1]);
    expect(vmsa[0]!.value).toMatchObject({ state: 'guest-valid', immutable: false });
    // VMSA GPA as the RMP records it: (u64)-1 page-aligned with bits above 51 cleared.
    expect(vmsa[0]!.start + vmsa[0]!.value.gfnDelta).toBe(0xfffffffff);
    const normal = entries.filter((e) => !e.value.vmsa);
    expect(normal.reduce((n, e) => n + e.end - e.start, 0)).toBe(4);
    for (const e of normal) expect(e.value).toMatchObject({ state: 'guest-valid', immutable: false });
  });

  it('a second LAUNCH_FINISH writes the encrypted VMSA: host RMP #PF (reported as an invariant violation; fixed after 7.0 by 9b9f7962e3e8)', () => {
    const s = launched(kernel);
    expect(() => s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {})).toThrow(InvariantViolation);
  });

  it('a second LAUNCH_FINISH with 9b9f7962e3e8 (sev_es_sync_vmsa refuses a protected vCPU) -> EINVAL', () => {
    const fixed = {
      ...profile,
      name: `${kernel}+9b9f7962e3e8`,
      sev: { ...profile.sev, syncVmsaRejectsProtected: true },
    };
    const host = createHost({ kernel: fixed, platform: 'snp' });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SNP_VM);
    const sev = host.open('/dev/sev');
    const enc = (id: string, data: object) =>
      host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', { id, sev_fd: sev, data, error: 0 });
    enc('KVM_SEV_INIT2', {});
    enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n });
    host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
    expect(errnoOf(() => enc('KVM_SEV_SNP_LAUNCH_FINISH', {}))).toBe('EINVAL');
  });

  if (profile.mmu.preFaultAllowedGate) {
    it('KVM_PRE_FAULT_MEMORY before LAUNCH_FINISH -> EOPNOTSUPP (5932ca411e53); after it, a private page is prepared (RMP guest-invalid)', () => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      expect(errnoOf(() => s.host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x10000, size: PAGE }))).toBe(
        'EOPNOTSUPP',
      );
      s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
      const range = { gpa: 0x10000, size: PAGE };
      s.host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', range);
      expect(range.size).toBe(0);
      const p = s.host.platform as SnpPlatform;
      expect([...p.rmp.entries.entries()].filter((e) => !e.value.vmsa).map((e) => e.value.state)).toEqual([
        'guest-invalid',
      ]);
    });

    it('seed thread counter-example: pre-fault before LAUNCH_UPDATE is refused (EOPNOTSUPP), so LAUNCH_UPDATE works', () => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      expect(errnoOf(() => s.host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0, size: PAGE }))).toBe(
        'EOPNOTSUPP',
      );
      expect(
        s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL }).error,
      ).toBe(0);
    });
  } else {
    it(`seed thread counter-example: pre-fault before LAUNCH_UPDATE succeeds (no pre_fault_allowed gate), then LAUNCH_UPDATE -> EIO (${profile.gmem.populateRejectsUptodate ? 'EEXIST: folio up to date' : 'EINVAL: RMP already assigned'})`, () => {
      const s = snpVm(kernel);
      const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
      const range = { gpa: 0, size: PAGE };
      s.host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', range);
      expect(range.size).toBe(0);
      const p = s.host.platform as SnpPlatform;
      expect(p.rmp.lookup(p.rmp.entries.entries().next().value!.start)?.state).toBe('guest-invalid');
      let msg = '';
      try {
        s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL });
      } catch (e) {
        expect((e as { code: string }).code).toBe('EIO');
        msg = (e as Error).message;
      }
      expect(msg).toContain(
        profile.gmem.populateRejectsUptodate
          ? '(EEXIST:'
          : '(EINVAL: sev_gmem_post_populate: RMP entry already assigned',
      );
    });
  }

  it('PUNCH_HOLE frees launched pages: sev_gmem_invalidate() gives them back to the hypervisor', () => {
    const s = launched(kernel);
    const p = s.host.platform as SnpPlatform;
    const before = p.rmp.entries.count(0, Number.MAX_SAFE_INTEGER, (e) => !e.vmsa);
    expect(before).toBe(4);
    s.host.fallocate(s.gmem, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 0, 2 * PAGE);
    expect(p.rmp.entries.count(0, Number.MAX_SAFE_INTEGER, (e) => !e.vmsa)).toBe(2);
  });

  it('guest page-state change (KVM_HC_MAP_GPA_RANGE exit) then PVALIDATE: guest-invalid -> guest-valid', () => {
    const s = launched(kernel);
    s.host.ioctl(s.vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
    });
    // The page starts shared; the guest asks for it private.
    s.host.ioctl(s.vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: MiB, size: PAGE, attributes: 0, flags: 0 });
    s.host
      .guest(s.vcpu)
      .load([
        { op: 'map_gpa', gpa: MiB, npages: 1, private: true },
        { op: 'accept', gpa: MiB, size: PAGE },
        { op: 'hlt' },
      ]);
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    const run = s.host.kvmRun(s.vcpu);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
    expect(run.hypercall!.args.slice(0, 3)).toEqual([
      BigInt(MiB),
      1n,
      BigInt(uapi.KVM_MAP_GPA_RANGE_ENCRYPTED),
    ]);
    s.host.ioctl(s.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
      address: MiB,
      size: PAGE,
      attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
      flags: 0,
    });
    run.hypercall!.ret = 0n;
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    const p = s.host.platform as SnpPlatform;
    const states = [...p.rmp.entries.entries()]
      .filter((e) => !e.value.vmsa && !e.value.launched)
      .map((e) => e.value.state);
    expect(states).toEqual(['guest-valid']);
  });
});
