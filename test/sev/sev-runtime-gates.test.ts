/**
 * SEV runtime and dispatch details checked against arch/x86/kvm/svm/{svm,sev}.c (a 6.11/6.12-era
 * sev.c and the 6.17 tree 0097f9df996f read for this test; the KVM_SEV_INIT2 series for
 * svm_vcpu_pre_run()):
 * - svm_vcpu_pre_run(): `if (to_kvm_sev_info(vcpu->kvm)->need_init) return -EINVAL;`, called after
 *   the immediate_exit check (kvm_arch_vcpu_ioctl_run()).
 * - snp_complete_one_psc() ends with snp_begin_psc(), whose first check is the
 *   KVM_HC_MAP_GPA_RANGE exit: disabled meanwhile -> VMGEXIT_PSC_ERROR_GENERIC. The MSR protocol's
 *   snp_complete_psc_msr() does not look again.
 * - sev_handle_vmgexit_msr_protocol(), GHCB_MSR_PSC_REQ on a guest that is not SNP: out_terminate,
 *   KVM_EXIT_SYSTEM_EVENT / KVM_SYSTEM_EVENT_SEV_TERM, ndata 1, data[0] = the GHCB MSR; and
 *   sev_es_validate_vmgexit(), SVM_VMGEXIT_PSC on such a guest: SW_EXITINFO1 = 2, SW_EXITINFO2 =
 *   GHCB_ERR_MISSING_INPUT (4, sev-common.h), guest resumed.
 * - The PSC exits write kvm_run.hypercall, one page shared with the generic hypercall exit.
 * - sev_receive_update_data(): `if (!sev_guest(kvm)) return -EINVAL;` (every other legacy handler:
 *   -ENOTTY). v6.8's sev_mem_enc_ioctl() has no SNP or INIT2 case: its default is -EINVAL.
 */
import { describe, expect, it } from 'vitest';
import { GHCB_MSR_PSC_RESP, VMGEXIT_PSC_ERROR_GENERIC } from '../../src/kernel/arch/sev/psc.js';
import { createHost } from '../../src/kernel/host.js';
import { allProfiles } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import * as S from '../../src/uapi/sev.js';
import { errnoOf, MiB, SNP_KERNELS, snpVm } from './snp-vm.js';

const PAGE = 4096;
const SEV_TYPES = [
  ['SEV', uapi.KVM_X86_SEV_VM],
  ['SEV-ES', uapi.KVM_X86_SEV_ES_VM],
  ['SNP', uapi.KVM_X86_SNP_VM],
] as const;

/** An SEV-family VM on the 'snp' host with 1 MiB of plain memory at gpa 0, INIT2 run or not. */
function sevVm(kernel: string, type: number, init2: boolean) {
  const host = createHost({ kernel, platform: 'snp' });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', type);
  const hva = host.mmap({
    length: MiB,
    prot: uapi.PROT_READ | uapi.PROT_WRITE,
    flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
  });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
    slot: 0,
    flags: 0,
    guest_phys_addr: 0,
    memory_size: MiB,
    userspace_addr: hva,
  });
  if (init2)
    host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
      id: 'KVM_SEV_INIT2',
      data: { vmsa_features: 0, flags: 0, ghcb_version: 0 },
    });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  return { host, vm, vcpu, run: host.kvmRun(vcpu) };
}

describe.each(SNP_KERNELS)('%s', (kernel) => {
  it.each(SEV_TYPES)(
    'svm_vcpu_pre_run: a %s VM without KVM_SEV_INIT2 cannot run (-EINVAL); immediate_exit is checked first (-EINTR)',
    (_n, type) => {
      const s = sevVm(kernel, type, false);
      s.host.guest(s.vcpu).load([{ op: 'hlt' }]);
      s.run.immediate_exit = 1;
      expect(errnoOf(() => s.host.ioctl(s.vcpu, 'KVM_RUN'))).toBe('EINTR');
      s.run.immediate_exit = 0;
      expect(errnoOf(() => s.host.ioctl(s.vcpu, 'KVM_RUN'))).toBe('EINVAL');
      // INIT2 cannot come later either: a vCPU exists (__sev_guest_init: created_vcpus).
      expect(
        errnoOf(() =>
          s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', {
            id: 'KVM_SEV_INIT2',
            data: { vmsa_features: 0, flags: 0, ghcb_version: 0 },
          }),
        ),
      ).toBe('EINVAL');
    },
  );

  it.each(SEV_TYPES)('svm_vcpu_pre_run: after KVM_SEV_INIT2 a %s vCPU runs', (_n, type) => {
    const s = sevVm(kernel, type, true);
    s.host.guest(s.vcpu).load([{ op: 'hlt' }]);
    expect(s.host.ioctl(s.vcpu, 'KVM_RUN')).toBe(0);
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
  });

  it('SEV-ES (not SNP) guest, GHCB MSR protocol PSC: KVM_RUN returns 0 with KVM_EXIT_SYSTEM_EVENT(SEV_TERM), data[0] = the request', () => {
    const s = sevVm(kernel, uapi.KVM_X86_SEV_ES_VM, true);
    s.host.ioctl(s.vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
    });
    s.host.guest(s.vcpu).load([{ op: 'map_gpa', via: 'psc_msr', gpa: 0x5000, npages: 1, private: false }]);
    expect(s.host.ioctl(s.vcpu, 'KVM_RUN')).toBe(0);
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_SYSTEM_EVENT);
    // GHCB_MSR_PSC_REQ_GFN(5, SNP_PAGE_STATE_SHARED): op 2 in [55:52], gfn in [51:12], 0x014.
    expect(s.run.system_event).toEqual({
      type: uapi.KVM_SYSTEM_EVENT_SEV_TERM,
      ndata: 1,
      data: [(2n << 52n) | (5n << 12n) | 0x14n],
    });
    expect(s.run.hypercall).toBeUndefined();
    // The guest got no response: running it again asks again, and the previous exit's member goes.
    expect(s.host.ioctl(s.vcpu, 'KVM_RUN')).toBe(0);
    expect(s.run.system_event?.type).toBe(uapi.KVM_SYSTEM_EVENT_SEV_TERM);
  });

  it('SEV-ES (not SNP) guest, GHCB PSC: SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_MISSING_INPUT, guest resumed', () => {
    const s = sevVm(kernel, uapi.KVM_X86_SEV_ES_VM, true);
    const g = s.host.guest(s.vcpu);
    g.load([{ op: 'map_gpa', via: 'psc_ghcb', gpa: 0x5000, npages: 1, private: true }, { op: 'hlt' }]);
    expect(s.host.ioctl(s.vcpu, 'KVM_RUN')).toBe(0);
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]).toEqual({ ret: 4n, exitInfo1: 2n });
  });

  it('a plain SEV guest has no GHCB: the model refuses PSC ops', () => {
    const s = sevVm(kernel, uapi.KVM_X86_SEV_VM, true);
    s.host.guest(s.vcpu).load([{ op: 'map_gpa', via: 'psc_msr', gpa: 0x5000, npages: 1, private: true }]);
    expect(() => s.host.ioctl(s.vcpu, 'KVM_RUN')).toThrow(/not available on sev VMs/);
  });
});

/** An SNP guest after LAUNCH_FINISH with the KVM_HC_MAP_GPA_RANGE exit enabled. */
function launchedSnp(kernel: string) {
  const s = snpVm(kernel, { size: 4 * MiB });
  const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
  s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: 4 * PAGE, type: 1 });
  s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
  const exit = (on: boolean) =>
    s.host.ioctl(s.vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      args: [on ? 1 << uapi.KVM_HC_MAP_GPA_RANGE : 0],
    });
  exit(true);
  return { ...s, vcpu, run: s.host.kvmRun(vcpu), exit };
}

describe.each(SNP_KERNELS)('SNP page-state change completion on %s', (kernel) => {
  it('GHCB buffer: the exit disabled while the request is out -> VMGEXIT_PSC_ERROR_GENERIC, though ret is 0', () => {
    const s = launchedSnp(kernel);
    const g = s.host.guest(s.vcpu);
    g.load([{ op: 'map_gpa', via: 'psc_ghcb', gpa: MiB, npages: 2, private: false }, { op: 'hlt' }]);
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
    s.exit(false);
    s.run.hypercall!.ret = 0n;
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]).toEqual({ ret: VMGEXIT_PSC_ERROR_GENERIC });
  });

  it('MSR protocol: snp_complete_psc_msr() does not look at the exit again -> GHCB_MSR_PSC_RESP', () => {
    const s = launchedSnp(kernel);
    const g = s.host.guest(s.vcpu);
    g.load([{ op: 'map_gpa', via: 'psc_msr', gpa: MiB, npages: 1, private: false }, { op: 'hlt' }]);
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    s.exit(false);
    s.run.hypercall!.ret = 0n;
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]).toEqual({ ret: GHCB_MSR_PSC_RESP });
  });

  it('kvm_run is one page: a VMM that kept run.hypercall from a generic exit sees the PSC exit in it and completes it through it', () => {
    const s = launchedSnp(kernel);
    const g = s.host.guest(s.vcpu);
    g.load([
      { op: 'map_gpa', via: 'hypercall', gpa: MiB, npages: 1, private: false },
      { op: 'map_gpa', via: 'psc_ghcb', gpa: 2 * MiB, npages: 1, private: false },
      { op: 'hlt' },
    ]);
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    const kept = s.run.hypercall!;
    expect(kept.args[0]).toBe(BigInt(MiB));
    kept.ret = 0n;
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(s.run.hypercall).toBe(kept);
    expect(kept.args[0]).toBe(BigInt(2 * MiB));
    kept.ret = 22n;
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(g.results[1]).toEqual({ ret: VMGEXIT_PSC_ERROR_GENERIC });
  });
});

describe('sev_mem_enc_ioctl() dispatch', () => {
  /** The errno of KVM_MEMORY_ENCRYPT_OP `id` on a default VM of the 'snp' host. */
  function onDefaultVm(kernel: string, id: number): string {
    const host = createHost({ kernel, platform: 'snp' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    return errnoOf(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', { id, data: {} }));
  }

  it.each(allProfiles().map((p) => p.name))(
    '%s: RECEIVE_UPDATE_DATA on a VM that is not an SEV guest is -EINVAL; GUEST_STATUS -ENOTTY',
    (kernel) => {
      expect(onDefaultVm(kernel, S.KVM_SEV_RECEIVE_UPDATE_DATA)).toBe('EINVAL');
      expect(onDefaultVm(kernel, S.KVM_SEV_GUEST_STATUS)).toBe('ENOTTY');
    },
  );

  it('v6.8: no case for the SNP commands or KVM_SEV_INIT2 -> the default, -EINVAL', () => {
    for (const id of [
      S.KVM_SEV_SNP_LAUNCH_START,
      S.KVM_SEV_SNP_LAUNCH_UPDATE,
      S.KVM_SEV_SNP_LAUNCH_FINISH,
      S.KVM_SEV_INIT2,
    ])
      expect(onDefaultVm('v6.8', id)).toBe('EINVAL');
  });

  it.each(SNP_KERNELS)(
    '%s: SNP commands on a default VM reach their handler: -ENOTTY (not an SNP guest)',
    (kernel) => {
      expect(onDefaultVm(kernel, S.KVM_SEV_SNP_LAUNCH_START)).toBe('ENOTTY');
    },
  );
});

/**
 * KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION: kvm_arch_vm_ioctl() copies struct kvm_enc_region in
 * (-EFAULT), then -ENOTTY without the vendor hook (VMX); sev_mem_enc_register_region(): not an SEV
 * guest -ENOTTY, sev_pin_memory() length 0 or a wrapping range -EINVAL, a pin short of the range
 * -ENOMEM; sev_mem_enc_unregister_region(): not an SEV guest -ENOTTY, no region of exactly this
 * (addr, size) -EINVAL.
 */
describe.each(SNP_KERNELS)('KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION on %s', (kernel) => {
  const reg = (
    s: { host: ReturnType<typeof createHost>; vm: number },
    addr: number | bigint,
    size: number | bigint,
  ) => errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_REG_REGION', { addr, size }));
  const unreg = (
    s: { host: ReturnType<typeof createHost>; vm: number },
    addr: number | bigint,
    size: number | bigint,
  ) => errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_UNREG_REGION', { addr, size }));

  it('an SNP guest registers its RAM (alioth EncryptPages); unregistering needs the same addr and size', () => {
    const s = snpVm(kernel, { start: false });
    expect(reg(s, s.hva, 2 * PAGE)).toBe('ok');
    // Unaligned is fine: the pages it touches are pinned.
    expect(reg(s, s.hva + 100, PAGE)).toBe('ok');
    expect(unreg(s, s.hva, PAGE)).toBe('EINVAL');
    expect(unreg(s, s.hva, 2 * PAGE)).toBe('ok');
    expect(unreg(s, s.hva, 2 * PAGE)).toBe('EINVAL');
    expect(unreg(s, s.hva + 100, PAGE)).toBe('ok');
  });

  it('sev_pin_memory: length 0 or a wrapping range -> EINVAL; memory that cannot be pinned for writing -> ENOMEM', () => {
    const s = snpVm(kernel, { start: false });
    expect(reg(s, s.hva, 0)).toBe('EINVAL');
    expect(reg(s, 0xffff_ffff_ffff_f000n, 0x2000n)).toBe('EINVAL');
    const ro = s.host.mmap({
      length: 2 * PAGE,
      prot: uapi.PROT_READ,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    expect(reg(s, ro, PAGE)).toBe('ENOMEM');
    s.host.munmap(ro, 2 * PAGE);
    expect(reg(s, ro, PAGE)).toBe('ENOMEM');
  });

  it('not an SEV guest (a default VM; an SNP VM before KVM_SEV_INIT2) -> ENOTTY; a bad struct -> EFAULT first', () => {
    const host = createHost({ kernel, platform: 'snp' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    const ram = host.mmap({
      length: PAGE,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    expect(reg({ host, vm }, ram, PAGE)).toBe('ENOTTY');
    expect(unreg({ host, vm }, ram, PAGE)).toBe('ENOTTY');
    expect(errnoOf(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_REG_REGION', 7))).toBe('EFAULT');
    const s = snpVm(kernel, { init2: false });
    expect(reg(s, s.hva, PAGE)).toBe('ENOTTY');
  });
});

it.each(['generic', 'tdx'] as const)(
  'KVM_MEMORY_ENCRYPT_REG_REGION on a %s host: no vendor hook -> ENOTTY',
  (platform) => {
    const host = createHost({ kernel: 'v7.0', platform });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    expect(
      errnoOf(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_REG_REGION', { addr: 0x1000, size: 0x1000 })),
    ).toBe('ENOTTY');
  },
);

/**
 * The RMP's Validated bit on a guest access: an SNP guest's private access to a page assigned to it
 * but not validated raises #VC (PAGE_NOT_VALIDATED) in the guest, with no exit to KVM (AMD APM vol.
 * 2, RMP checks). sev_gmem_prepare() assigns pages unvalidated; LAUNCH_UPDATE's pages are validated;
 * PVALIDATE validates.
 */
describe.each(SNP_KERNELS)('SNP guest access and the Validated bit on %s', (kernel) => {
  it('a launched page reads; after a punch-hole its fresh page is not validated: #VC, until PVALIDATE', () => {
    const s = launchedSnp(kernel);
    const g = s.host.guest(s.vcpu);
    g.load([{ op: 'read', gpa: 0x1000, length: 4 }, { op: 'hlt' }]);
    s.host.ioctl(s.vcpu, 'KVM_RUN');
    expect(g.results[0]?.data).toBeDefined();
    // The VMM discards the page (a PUNCH_HOLE after a conversion would): the guest touches it again.
    s.host.fallocate(s.gmem, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 0x1000, PAGE);
    g.load([
      { op: 'read', gpa: 0x1000, length: 4 },
      { op: 'accept', gpa: 0x1000, size: PAGE },
      { op: 'read', gpa: 0x1000, length: 4 },
      { op: 'hlt' },
    ]);
    expect(s.host.ioctl(s.vcpu, 'KVM_RUN')).toBe(0);
    expect(s.run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]?.data).toBeUndefined();
    expect(g.results[0]?.exception).toMatch(
      /^#VC PAGE_NOT_VALIDATED at gfn 0x1: pfn 0x[0-9a-f]+ is guest-invalid \(ASID \d+/,
    );
    expect(g.results[2]?.data).toEqual(new Uint8Array(4));
  });
});
