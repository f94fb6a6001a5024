/**
 * tools/testing/selftests/kvm/x86/sev_smoke_test.c test_sev_smoke(guest_snp_code, KVM_X86_SNP_VM,
 * snp_default_policy()) -> test_sev(), as the ioctl sequence lib/x86/sev.c runs
 * (vm_sev_create_with_one_vcpu: snp_vm_init = KVM_SEV_INIT2 with a zeroed struct before the vCPU;
 * vm_sev_launch: KVM_CAP_EXIT_HYPERCALL(MAP_GPA_RANGE), snp_vm_launch_start, encrypt_region =
 * vm_mem_set_private + KVM_SEV_SNP_LAUNCH_UPDATE(NORMAL) per protected range, snp_vm_launch_finish).
 * guest_snp_code() ends with the GHCB MSR protocol termination request (wrmsr(GHCB_MSR_TERM_REQ),
 * vmgexit()), and test_sev() asserts KVM_EXIT_SYSTEM_EVENT / KVM_SYSTEM_EVENT_SEV_TERM, ndata 1,
 * data[0] = GHCB_MSR_TERM_REQ (0x100); the ported guest first reads its launched code page privately
 * (the model runs no instructions: this read stands for fetching them). test_sev_shutdown(): the guest
 * clears its IDT and executes ud2, a triple fault: KVM_EXIT_SHUTDOWN (SVM shutdown_interception(),
 * which leaves an SEV-ES vCPU as it is). test_sync_vmsa checks XSAVE contents, which the model does
 * not keep (no KVM_SET_XSAVE).
 * Generated for every profile with KVM_X86_SNP_VM (v6.11-rc1 on).
 */
import { describe, expect, it } from 'vitest';
import type { SnpPlatform } from '../../src/kernel/arch/sev/platform.js';
import { snpAttestationReport } from '../../src/kernel/arch/sev/report.js';
import type { GuestOp } from '../../src/kernel/guest/program.js';
import { createHost } from '../../src/kernel/host.js';
import { allProfiles } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import '../../src/kernel/arch/register.js';

/** snp_default_policy(): reserved bit 17, plus SMT when SMT is active (it is on the modelled host). */
const SNP_DEFAULT_POLICY = uapi.SNP_POLICY_MASK_RSVD_MBO | uapi.SNP_POLICY_MASK_SMT;
const SNP_POLICY_DBG = uapi.SNP_POLICY_MASK_DEBUG;
const kernels = allProfiles()
  .filter((p) => p.vmTypes.snp)
  .map((p) => p.name);
const CODE_GPA = 0x10_0000;
const SLOT_SIZE = 0x40_0000;
/** guest_snp_code(): its code fetched from the launched page, then the termination request. */
const GUEST_SNP_CODE: GuestOp[] = [{ op: 'read', gpa: CODE_GPA, length: 4096 }, { op: 'terminate' }];

/** GHCB_MSR_TERM_REQ (arch/x86/include/asm/sev-common.h). */
const GHCB_MSR_TERM_REQ = 0x100n;

/** vm_sev_create_with_one_vcpu() + vm_sev_launch() of an SNP VM, then vcpu_run() of `guest`. */
function testSev(kernel: string, policy: bigint, guest: GuestOp[] = GUEST_SNP_CODE) {
  const host = createHost({ kernel, platform: 'snp' });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SNP_VM);
  const sevFd = host.open('/dev/sev');
  const sevIoctl = (id: number, data: object) => {
    const cmd = { id, data, sev_fd: sevFd, error: 0 };
    const r = host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
    expect(cmd.error).toBe(uapi.SEV_RET_SUCCESS); // vm_sev_ioctl asserts success
    return r;
  };
  // kvm_arch_vm_post_create() (lib/x86/processor.c): vm_create_irqchip() for every x86 VM, asserted
  // to succeed, then for a SEV VM snp_vm_init before vCPUs; one guest_memfd slot with the code.
  expect(host.ioctl(vm, 'KVM_CREATE_IRQCHIP')).toBe(0);
  sevIoctl(uapi.KVM_SEV_INIT2, {});
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: SLOT_SIZE, flags: 0 });
  const hva = host.mmap({
    length: SLOT_SIZE,
    prot: uapi.PROT_READ | uapi.PROT_WRITE,
    flags: uapi.MAP_SHARED | uapi.MAP_ANONYMOUS,
  });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 0,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: 0,
    memory_size: SLOT_SIZE,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  const code = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 1) & 0xff);
  host.memory.write(hva + CODE_GPA, code);
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  // vm_sev_launch()
  host.ioctl(vm, 'KVM_ENABLE_CAP', {
    cap: uapi.KVM_CAP_EXIT_HYPERCALL,
    args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
  });
  sevIoctl(uapi.KVM_SEV_SNP_LAUNCH_START, { policy });
  // encrypt_region(): the protected pages (here: the code page and the page tables after it).
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: CODE_GPA,
    size: 0x4000,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const upd = {
    gfn_start: CODE_GPA >> 12,
    uaddr: hva + CODE_GPA,
    len: 0x4000,
    type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
  };
  sevIoctl(uapi.KVM_SEV_SNP_LAUNCH_UPDATE, upd);
  expect(upd.len).toBe(0);
  sevIoctl(uapi.KVM_SEV_SNP_LAUNCH_FINISH, {});
  // vcpu_run(): the guest runs from its launched (encrypted, pre-validated) memory.
  host.guest(vcpu).load(guest);
  host.ioctl(vcpu, 'KVM_RUN');
  return { host, vm, vcpu, code };
}

describe.each(kernels)('sev_smoke_test.c on %s', (kernel) => {
  it.each([
    ['policy | SNP_POLICY_DBG', SNP_DEFAULT_POLICY | SNP_POLICY_DBG],
    ['policy', SNP_DEFAULT_POLICY],
  ] as const)(
    'sev_smoke_test.c test_sev_smoke(guest_snp_code, KVM_X86_SNP_VM) -> test_sev(%s)',
    (_w, policy) => {
      const { host, vm, vcpu, code } = testSev(kernel, policy);
      const run = host.kvmRun(vcpu);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_SYSTEM_EVENT);
      expect(run.system_event).toEqual({
        type: uapi.KVM_SYSTEM_EVENT_SEV_TERM,
        ndata: 1,
        data: [GHCB_MSR_TERM_REQ],
      });
      expect(host.guest(vcpu).results[0]!.data).toEqual(code);
      const report = snpAttestationReport(host, vm)!;
      expect(report.policy).toBe(policy);
      // 4 launched pages + 1 VMSA, all guest-valid in the RMP.
      const p = host.platform as SnpPlatform;
      expect(p.rmp.entries.count(0, Number.MAX_SAFE_INTEGER, (e) => e.state === 'guest-valid')).toBe(5);
    },
  );

  it.each([
    ['policy | SNP_POLICY_DBG', SNP_DEFAULT_POLICY | SNP_POLICY_DBG],
    ['policy', SNP_DEFAULT_POLICY],
  ] as const)(
    'sev_smoke_test.c test_sev_shutdown(KVM_X86_SNP_VM, %s): ud2 with no IDT -> KVM_EXIT_SHUTDOWN',
    (_w, policy) => {
      // guest_shutdown_code(): set_idt() of an empty IDT, then ud2.
      const { host, vcpu } = testSev(kernel, policy, [{ op: 'shutdown' }]);
      expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_SHUTDOWN);
    },
  );
});
