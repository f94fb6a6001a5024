/**
 * Runs QEMU's SEV-SNP launch of a planned firmware image through a modelled host and reads the
 * digest the modelled PSP holds. The sequence follows QEMU target/i386/sev.c (sev_snp_kvm_init /
 * sev_common_kvm_init: /dev/sev, KVM_SEV_INIT2, KVM_SEV_SNP_LAUNCH_START; guest_memfd-backed RAM and
 * flash set private; sev_snp_launch_update for the flash, snp_populate_metadata_pages at
 * sev_snp_launch_finish, the vCPU registers put before KVM_SEV_SNP_LAUNCH_FINISH), with the
 * KVM_SEV_SNP_LAUNCH_UPDATE retry loop QEMU runs while len != 0.
 * Nothing here hashes a page: the digest is the PSP guest context's.
 */
import '../../kernel/arch/register.js';
import type { SnpMeasuredPage } from '../../kernel/arch/sev/psp.js';
import { snpAttestationReport, snpGuestContext, snpSeedLaunchDigest } from '../../kernel/arch/sev/report.js';
import type { SevArchVm } from '../../kernel/arch/sev/sev.js';
import { KVM_SET_FPU, KVM_SET_MSRS, MSR_IA32_CR_PAT } from '../../kernel/arch/sev/svm-vcpu.js';
import { SyscallError } from '../../kernel/errors.js';
import { FdTable } from '../../kernel/file.js';
import { createHost, type Host } from '../../kernel/host.js';
import type { VcpuFile } from '../../kernel/kvm/vcpu.js';
import {
  KVM_CAP_MAX_VCPUS,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_SNP_VM,
} from '../../uapi/kvm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../uapi/mman.js';
import {
  KVM_SEV_INIT2,
  KVM_SEV_SNP_LAUNCH_FINISH,
  KVM_SEV_SNP_LAUNCH_START,
  KVM_SEV_SNP_LAUNCH_UPDATE,
  SNP_POLICY_MASK_RSVD_MBO,
  SNP_POLICY_MASK_SMT,
  SVM_SEV_FEAT_SNP_ACTIVE,
} from '../../uapi/sev.js';
import type { SnpLaunchPlan, SnpLaunchRegion } from './launch-plan.js';
import type { SevVcpuState, VmcbSegment } from './vmsa.js';

/** QEMU's default sev-snp-guest policy (0x30000: SMT allowed, reserved bit 17). */
export const QEMU_SNP_DEFAULT_POLICY = SNP_POLICY_MASK_SMT | SNP_POLICY_MASK_RSVD_MBO;
/** Guest RAM the launch maps below the firmware (every SEV metadata section lies in it). */
const DEFAULT_RAM_SIZE = 0x8000_0000;
const FOUR_GIB = 0x1_0000_0000;

export interface SnpHostLaunchOptions {
  /** Kernel profile (default 'v7.0'). */
  kernel?: string;
  policy?: bigint;
  /** Check the safety invariants after every call (default false: the CLI wants speed). */
  invariants?: boolean;
  /** Called for every page the PSP measures, with the digest after it. */
  onPage?: (p: SnpMeasuredPage) => void;
}

export interface SnpHostLaunchResult {
  /** Mode 'snp': the MEASUREMENT of the attestation report; 'snp:ovmf-hash': the digest after the firmware. */
  digest: Uint8Array;
  host: Host;
  vmFd: number;
}

/** A launch step the modelled kernel refused: the message is the call and its errno. */
export class SnpLaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnpLaunchError';
  }
}

interface Slot {
  gpa: number;
  size: number;
  hva: number;
}

/** QEMU kvm_init()'s refusal of more vCPUs than KVM_CAP_MAX_VCPUS (x86 KVM_MAX_VCPUS). */
function checkMaxVcpus(host: Host, kvm: number, count: number | bigint): void {
  const max = host.ioctl(kvm, 'KVM_CHECK_EXTENSION', KVM_CAP_MAX_VCPUS);
  if (BigInt(count) > BigInt(max)) {
    throw new SnpLaunchError(
      `Number of SMP cpus requested (${count}) exceeds the maximum cpus supported by KVM (${max})`,
    );
  }
}

/**
 * The vCPU-count check QEMU makes before it creates the VM's vCPUs, on a fresh host of profile
 * `kernel`, for callers that must not build a plan for a count KVM refuses. Throws SnpLaunchError.
 */
export function checkSnpVcpuCount(count: number | bigint, kernel = 'v7.0'): void {
  const host = createHost({ kernel, platform: 'snp', invariants: false });
  checkMaxVcpus(host, host.open('/dev/kvm'), count);
}

/** Run the plan's launch through a fresh 'snp' host. Throws SnpLaunchError if a step fails. */
export function runSnpLaunch(plan: SnpLaunchPlan, opts: SnpHostLaunchOptions = {}): SnpHostLaunchResult {
  const host = createHost({
    kernel: opts.kernel ?? 'v7.0',
    platform: 'snp',
    invariants: opts.invariants ?? false,
  });
  let step = 'open';
  const call = <T>(what: string, fn: () => T): T => {
    step = what;
    return fn();
  };
  try {
    return launch(host, plan, opts, call);
  } catch (e) {
    if (e instanceof SyscallError) throw new SnpLaunchError(`${step}: ${e.message}`);
    throw e;
  }
}

function launch(
  host: Host,
  plan: SnpLaunchPlan,
  opts: SnpHostLaunchOptions,
  call: <T>(what: string, fn: () => T) => T,
): SnpHostLaunchResult {
  // QEMU os_setup_limits() (qemu_init): the soft RLIMIT_NOFILE is raised to the hard limit, so one fd
  // per vCPU does not run into the 1024 of a login session.
  call('setrlimit RLIMIT_NOFILE', () => host.fds.setSoftLimit(FdTable.RLIMIT_NOFILE_MAX));
  const kvm = call('open /dev/kvm', () => host.open('/dev/kvm'));
  const vm = call('KVM_CREATE_VM', () => host.ioctl(kvm, 'KVM_CREATE_VM', KVM_X86_SNP_VM));
  // QEMU kvm_init(): more vCPUs than KVM_CAP_MAX_VCPUS (x86 KVM_MAX_VCPUS, CONFIG_KVM_MAX_NR_VCPUS)
  // is refused before any vCPU exists, with this message.
  call('KVM_CHECK_EXTENSION', () => checkMaxVcpus(host, kvm, plan.vcpus.length));
  const sevFd = call('open /dev/sev', () => host.open('/dev/sev'));
  const encOp = (name: string, id: number, data: Record<string, unknown>): void => {
    call(name, () => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', { id, sev_fd: sevFd, data, error: 0 }));
  };

  // KVM_SEV_INIT2: KVM sets SNPActive itself; the other SEV_FEATURES are vmsa_features.
  const features = plan.vcpus[0]?.sevFeatures ?? BigInt(SVM_SEV_FEAT_SNP_ACTIVE);
  if (!(features & BigInt(SVM_SEV_FEAT_SNP_ACTIVE))) {
    throw new SnpLaunchError(
      `guest features 0x${features.toString(16)} lack SNPActive (bit 0): KVM sets it for every SNP guest`,
    );
  }
  encOp('KVM_SEV_INIT2', KVM_SEV_INIT2, {
    vmsa_features: features & ~BigInt(SVM_SEV_FEAT_SNP_ACTIVE),
    flags: 0,
    ghcb_version: 0,
  });
  encOp('KVM_SEV_SNP_LAUNCH_START', KVM_SEV_SNP_LAUNCH_START, {
    policy: opts.policy ?? QEMU_SNP_DEFAULT_POLICY,
    flags: 0,
  });
  const gctx = snpGuestContext(host, vm);
  if (opts.onPage && gctx) gctx.onMeasure = opts.onPage;
  if (plan.initialDigest) snpSeedLaunchDigest(host, vm, plan.initialDigest);

  const vcpus = plan.vcpus.map((_, i) =>
    call(`KVM_CREATE_VCPU ${i}`, () => host.ioctl(vm, 'KVM_CREATE_VCPU', i)),
  );

  // Memory: RAM from 0 and the flash ending at 4 GiB, each backed by a guest_memfd and set private.
  const slots: Slot[] = [];
  let ramSize = DEFAULT_RAM_SIZE;
  for (const r of plan.regions) {
    const end = Number(r.gpa) + r.size;
    if (r.source === 'metadata' && end > ramSize) ramSize = Math.ceil(end / 0x20_0000) * 0x20_0000;
  }
  const flashGpa = plan.ovmf.gpa;
  const flashSize = Math.min(plan.ovmf.data.length, FOUR_GIB - flashGpa);
  if (ramSize > flashGpa) ramSize = flashGpa;
  const addSlot = (gpa: number, size: number): Slot => {
    const id = slots.length;
    const gmem = call(`KVM_CREATE_GUEST_MEMFD slot ${id}`, () =>
      host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags: 0 }),
    );
    const hva = call('mmap', () =>
      host.mmap({ length: size, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS }),
    );
    call(`KVM_SET_USER_MEMORY_REGION2 slot ${id}`, () =>
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: id,
        flags: KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: hva,
        guest_memfd: gmem,
        guest_memfd_offset: 0,
      }),
    );
    call(`KVM_SET_MEMORY_ATTRIBUTES slot ${id}`, () =>
      host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: gpa,
        size,
        attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE,
        flags: 0,
      }),
    );
    const s = { gpa, size, hva };
    slots.push(s);
    return s;
  };
  if (ramSize > 0 && plan.mode === 'snp') addSlot(0, ramSize);
  const flash = addSlot(flashGpa, flashSize);
  // QEMU copies the firmware into the flash mapping; the image is not changed afterwards, so its
  // pages are mapped copy-on-write instead (mm.ts writeShared).
  host.memory.writeShared(flash.hva, plan.ovmf.data.subarray(0, flashSize));

  const hvaOf = (gpa: bigint): number => {
    const g = Number(gpa);
    const s = slots.find((x) => g >= x.gpa && g < x.gpa + x.size);
    if (!s) throw new SnpLaunchError(`launch region at GPA 0x${g.toString(16)} is outside guest memory`);
    return s.hva + (g - s.gpa);
  };

  for (const r of plan.regions) {
    if (r.source === 'vmsa') continue;
    if (r.source === 'firmware' && plan.initialDigest) continue;
    launchUpdate(host, vm, sevFd, r, hvaOf(r.gpa), call);
  }

  if (plan.mode === 'snp:ovmf-hash') {
    const g = snpGuestContext(host, vm);
    return { digest: g!.launchDigest.digest, host, vmFd: vm };
  }

  plan.vcpus.forEach((st, i) => {
    putRegisters(host, vcpus[i]!, st, i, call);
  });
  encOp('KVM_SEV_SNP_LAUNCH_FINISH', KVM_SEV_SNP_LAUNCH_FINISH, {
    id_block_uaddr: 0,
    id_auth_uaddr: 0,
    id_block_en: 0,
    auth_key_en: 0,
    vcek_disabled: 0,
    host_data: new Uint8Array(32),
    flags: 0,
  });
  const report = snpAttestationReport(host, vm);
  if (!report) throw new SnpLaunchError('no attestation report after KVM_SEV_SNP_LAUNCH_FINISH');
  return { digest: report.measurement, host, vmFd: vm };
}

/** QEMU sev_snp_launch_update(): the source is put in shared memory, then LAUNCH_UPDATE until len is 0. */
function launchUpdate(
  host: Host,
  vm: number,
  sevFd: number,
  r: SnpLaunchRegion,
  hva: number,
  call: <T>(what: string, fn: () => T) => T,
): void {
  if (r.contents && r.source !== 'firmware') host.memory.write(hva, r.contents);
  const data = { gfn_start: r.gpa >> 12n, uaddr: hva, len: r.size, type: r.pageType, flags: 0 };
  const name = `KVM_SEV_SNP_LAUNCH_UPDATE gpa 0x${r.gpa.toString(16)} type ${r.pageType}`;
  while (BigInt(data.len) !== 0n) {
    call(name, () =>
      host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
        id: KVM_SEV_SNP_LAUNCH_UPDATE,
        sev_fd: sevFd,
        data,
        error: 0,
      }),
    );
  }
}

/** kvm_segment from a VMCB segment (the inverse of KVM's svm_set_segment()). */
function kvmSegment(s: VmcbSegment): Record<string, number | bigint> {
  const a = s.attrib;
  return {
    base: s.base,
    limit: s.limit,
    selector: s.selector,
    type: a & 0xf,
    s: (a >> 4) & 1,
    dpl: (a >> 5) & 3,
    present: (a >> 7) & 1,
    avl: (a >> 8) & 1,
    l: (a >> 9) & 1,
    db: (a >> 10) & 1,
    g: (a >> 11) & 1,
    unusable: 0,
  };
}

/** QEMU kvm_arch_put_registers(): the reset state the VMM gives each vCPU. */
function putRegisters(
  host: Host,
  vcpu: number,
  st: SevVcpuState,
  i: number,
  call: <T>(what: string, fn: () => T) => T,
): void {
  call(`KVM_SET_SREGS vCPU ${i}`, () =>
    host.ioctl(vcpu, 'KVM_SET_SREGS', {
      cs: kvmSegment(st.cs),
      ds: kvmSegment(st.ds),
      es: kvmSegment(st.es),
      fs: kvmSegment(st.fs),
      gs: kvmSegment(st.gs),
      ss: kvmSegment(st.ss),
      tr: kvmSegment(st.tr),
      ldt: kvmSegment(st.ldtr),
      gdt: { base: st.gdtr.base, limit: st.gdtr.limit },
      idt: { base: st.idtr.base, limit: st.idtr.limit },
      // KVM adds EFER.SVME and CR4.MCE itself; the VMM's reset values lack them.
      cr0: st.cr0,
      cr2: st.cr2,
      cr3: st.cr3,
      cr4: st.cr4 & ~0x40n,
      efer: st.efer & ~0x1000n,
    }),
  );
  call(`KVM_SET_REGS vCPU ${i}`, () =>
    host.ioctl(vcpu, 'KVM_SET_REGS', {
      rax: st.rax,
      rbx: st.rbx,
      rcx: st.rcx,
      rdx: st.rdx,
      rsi: st.rsi,
      rdi: st.rdi,
      rsp: st.rsp,
      rbp: st.rbp,
      r8: st.r8,
      r9: st.r9,
      r10: st.r10,
      r11: st.r11,
      r12: st.r12,
      r13: st.r13,
      r14: st.r14,
      r15: st.r15,
      rip: st.rip,
      rflags: st.rflags,
    }),
  );
  call(`KVM_SET_FPU vCPU ${i}`, () =>
    host.ioctl(vcpu, KVM_SET_FPU, { fcw: st.x87Fcw, fsw: st.x87Fsw, ftwx: st.x87Ftw, mxcsr: st.mxcsr }),
  );
  // KVM_SET_FPU leaves MXCSR alone (KVM_SET_XSAVE would set it; not modelled). The EC2 and GCE
  // hypervisors, which are not Linux KVM, start their vCPUs with MXCSR 0: their save area is set
  // directly, as those VMMs do, rather than through an ioctl Linux would not honour.
  const v = (host.fds.lookup(vcpu) as VcpuFile).vcpu;
  (v.vm.arch as SevArchVm).vcpuOf(v).state.mxcsr = st.mxcsr;
  call(`KVM_SET_MSRS vCPU ${i}`, () =>
    host.ioctl(vcpu, KVM_SET_MSRS, { nmsrs: 1, entries: [{ index: MSR_IA32_CR_PAT, data: st.gPat }] }),
  );
}
