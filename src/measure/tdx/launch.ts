/**
 * QEMU's TD launch for a TDVF image, run through a modelled host: the MRTD is what the modelled
 * TDX module computed from the pages KVM asked it to add and extend (never recomputed here).
 * Sequence after QEMU target/i386/kvm/tdx.c (tdx_kvm_init / tdx_pre_create_vcpu /
 * tdx_init_fw_mem_region / tdx_finalize_vm) and Documentation/virt/kvm/x86/intel-tdx.rst's
 * creation flow: KVM_CREATE_VM(KVM_X86_TDX_VM), split IRQCHIP, KVM_TDX_CAPABILITIES, KVM_TDX_INIT_VM,
 * KVM_CREATE_VCPU + KVM_TDX_INIT_VCPU, guest_memfd + memslots (RAM at 0, the firmware at
 * 4 GiB - image size) + private attributes, one KVM_TDX_INIT_MEM_REGION per TDVF section (MEASURE
 * where the section says MR.EXTEND; PAGE.AUG sections skipped), KVM_TDX_FINALIZE_VM.
 *
 * Orders: 'single' is what upstream KVM does (per page: PAGE.ADD, then its 16 MR.EXTENDs inside
 * INIT_MEM_REGION). 'two-pass' (per section: all PAGE.ADDs, then all MR.EXTENDs; older TDX stacks)
 * cannot be expressed with upstream KVM's ioctls: INIT_MEM_REGION extends a page only while adding
 * it, and a second INIT_MEM_REGION of the same GPA fails (-EEXIST up to 6.19, -EIO on 7.0). The
 * builder models it as a documented option: INIT_MEM_REGION without MEASURE, then TDH.MR.EXTEND
 * issued to the modelled module directly for each chunk of the section (tdhMrExtendDirect).
 * Not modelled: the TD HOB QEMU writes into the TD_HOB section (added, never extended), TSC/MSR
 * setup, KVM_SET_CPUID2.
 */
import { SyscallError } from '../../kernel/errors.js';
import type { Host } from '../../kernel/host.js';
import { createHost } from '../../kernel/host.js';
import '../../kernel/arch/register.js';
import { tdhMrExtendDirect, tdMrtd } from '../../kernel/arch/tdx/index.js';
import { TDX_SUCCESS } from '../../kernel/arch/tdx/module.js';
import { TDX_EXTENDMR_CHUNKSIZE, TDX_PAGE_SIZE } from '../../kernel/arch/tdx/mrtd.js';
import {
  KVM_CAP_SPLIT_IRQCHIP,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_TDX_VM,
} from '../../uapi/kvm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../uapi/mman.js';
import { KVM_TDX_MEASURE_MEMORY_REGION } from '../../uapi/tdx.js';
import { FirmwareFormatError } from '../errors.js';
import { planTdLaunch, type TdInitMemRegion, type TdPageOrder } from './launch-plan.js';

export interface TdLaunchRunOptions {
  readonly order?: TdPageOrder;
  /** Kernel profile name (default v6.16, the first upstream TDX). */
  readonly kernel?: string;
  /** Guest RAM at GPA 0 (default 2 GiB, QEMU's -m 2G): must cover the RAM sections. */
  readonly ramBytes?: number;
  /** File name for error messages. */
  readonly file?: string;
  /** Check the safety invariants after every syscall (default false: the launch is the benchmark). */
  readonly invariants?: boolean;
}

export interface TdLaunchResult {
  /** The 48-byte MRTD the modelled TDX module holds after TDH.MR.FINALIZE. */
  readonly mrtd: Uint8Array;
  readonly host: Host;
  readonly vmFd: number;
  /** The INIT_MEM_REGION calls made (section index, gpa, pages, measured). */
  readonly regions: readonly TdInitMemRegion[];
  /** Number of syscalls the launch made. */
  readonly syscalls: number;
}

/** A launch step the model refused: which step, and the kernel's errno. */
export class TdLaunchError extends Error {
  constructor(
    readonly step: string,
    readonly error: SyscallError,
  ) {
    super(`${step}: ${error.message}`);
    this.name = 'TdLaunchError';
  }
}

const FOUR_GIB = 1n << 32n;
const DEFAULT_RAM = 2n << 30n;
/** GPAW 48 in CPUID 0x80000008 EAX[23:16] (QEMU's default for TDs). */
const GPAW_48 = 48 << 16;
/** TD HOB GPA for KVM_TDX_INIT_VCPU's RCX: QEMU passes the TD_HOB section's address. */
const TD_HOB_TYPE = 2;

interface Slot {
  readonly base: bigint;
  readonly size: bigint;
}

function step<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SyscallError) throw new TdLaunchError(name, e);
    throw e;
  }
}

/** Run QEMU's TD launch of `image` through a fresh host and return the MRTD the module holds. */
export function runTdLaunch(image: Uint8Array, opts: TdLaunchRunOptions = {}): TdLaunchResult {
  const order = opts.order ?? 'single';
  const plan = planTdLaunch(image, { order, ...(opts.file === undefined ? {} : { file: opts.file }) });
  const ram = BigInt(opts.ramBytes ?? Number(DEFAULT_RAM));
  const fwSize = BigInt(Math.ceil(image.length / TDX_PAGE_SIZE) * TDX_PAGE_SIZE);
  const slots: Slot[] = [
    { base: 0n, size: ram },
    { base: FOUR_GIB - fwSize, size: fwSize },
  ];
  for (const r of plan.regions) {
    const end = r.gpa + BigInt(r.nrPages * TDX_PAGE_SIZE);
    if (!slots.some((s) => r.gpa >= s.base && end <= s.base + s.size)) {
      const what = `section ${r.section} at 0x${r.gpa.toString(16)}`;
      throw new FirmwareFormatError(
        `${opts.file === undefined ? '' : `${opts.file}: `}${what} is neither in RAM [0, 0x${ram.toString(16)}) nor in the firmware window below 4 GiB`,
        opts.file,
      );
    }
  }

  const host = createHost({
    kernel: opts.kernel ?? 'v6.16',
    platform: 'tdx',
    invariants: opts.invariants ?? false,
  });
  const kvm = step('open /dev/kvm', () => host.open('/dev/kvm'));
  const vm = step('KVM_CREATE_VM', () => host.ioctl(kvm, 'KVM_CREATE_VM', KVM_X86_TDX_VM));
  // QEMU requires kernel-irqchip=split for a TD: kvm_irqchip_create() at kvm_init().
  step('KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)', () =>
    host.ioctl(vm, 'KVM_ENABLE_CAP', { cap: KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [24] }),
  );
  const caps: Record<string, unknown> = { cpuid: { nent: 256 } };
  step('KVM_TDX_CAPABILITIES', () =>
    host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
      id: 'KVM_TDX_CAPABILITIES',
      flags: 0,
      data: caps,
      hw_error: 0,
    }),
  );
  // QEMU's default TD: SEPT_VE_DISABLE where supported, the XFAM KVM reports, GPAW 48.
  step('KVM_TDX_INIT_VM', () =>
    host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
      id: 'KVM_TDX_INIT_VM',
      flags: 0,
      data: {
        attributes: caps['supported_attrs'],
        xfam: caps['supported_xfam'],
        cpuid: { nent: 1, entries: [{ function: 0x80000008, index: 0, flags: 0, eax: GPAW_48 }] },
      },
      hw_error: 0,
    }),
  );
  const vcpu = step('KVM_CREATE_VCPU', () => host.ioctl(vm, 'KVM_CREATE_VCPU', 0));
  // kvm_arch_init_vcpu(): the vCPU's CPUID, with x2APIC (CPUID.1:ECX[21]), which a TD requires, and
  // MAXPHYADDR 48 (the GPAW).
  step('KVM_SET_CPUID2', () =>
    host.ioctl(vcpu, 'KVM_SET_CPUID2', {
      nent: 3,
      entries: [
        { function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 1 << 21, edx: 0 },
        { function: 0x80000000, index: 0, flags: 0, eax: 0x80000008, ebx: 0, ecx: 0, edx: 0 },
        { function: 0x80000008, index: 0, flags: 0, eax: 0x3030, ebx: 0, ecx: 0, edx: 0 },
      ],
    }),
  );
  const hob = plan.metadata.sections.find((s) => s.type === TD_HOB_TYPE);
  step('KVM_TDX_INIT_VCPU', () =>
    host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', {
      id: 'KVM_TDX_INIT_VCPU',
      flags: 0,
      data: hob?.memoryAddress ?? 0n,
      hw_error: 0,
    }),
  );

  slots.forEach((s, id) => {
    const gmem = step('KVM_CREATE_GUEST_MEMFD', () =>
      host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: s.size, flags: 0 }),
    );
    const hva = step('mmap', () =>
      host.mmap({ length: s.size, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS }),
    );
    step('KVM_SET_USER_MEMORY_REGION2', () =>
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: id,
        flags: KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: s.base,
        memory_size: s.size,
        userspace_addr: hva,
        guest_memfd: gmem,
        guest_memfd_offset: 0,
      }),
    );
    // QEMU sets all guest memory private for a TD (kvm_set_memory_attributes_private).
    step('KVM_SET_MEMORY_ATTRIBUTES', () =>
      host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: s.base,
        size: s.size,
        attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE,
        flags: 0,
      }),
    );
  });

  for (const r of plan.regions) {
    const bytes = r.nrPages * TDX_PAGE_SIZE;
    // The source: the section's bytes in host memory (QEMU: the firmware RAM block or a zeroed buffer).
    const src = step('mmap', () =>
      host.mmap({ length: bytes, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS }),
    );
    // The plan's bytes are not changed afterwards: mapped without a copy (a zero page reads as zero
    // either way, and INIT_MEM_REGION stores it as a zero page).
    host.memory.writeShared(src, r.source);
    const measureHere = r.measure && order === 'single';
    const region = { source_addr: src, gpa: r.gpa, nr_pages: r.nrPages };
    step(`KVM_TDX_INIT_MEM_REGION (section ${r.section})`, () =>
      host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', {
        id: 'KVM_TDX_INIT_MEM_REGION',
        flags: measureHere ? KVM_TDX_MEASURE_MEMORY_REGION : 0,
        data: region,
        hw_error: 0,
      }),
    );
    if (r.measure && order === 'two-pass') {
      // Not expressible through KVM: TDH.MR.EXTEND straight to the modelled module.
      for (let off = 0; off < bytes; off += TDX_EXTENDMR_CHUNKSIZE) {
        const s = tdhMrExtendDirect(host, vm, r.gpa + BigInt(off));
        if (s !== TDX_SUCCESS)
          throw new Error(
            `TDH.MR.EXTEND 0x${(r.gpa + BigInt(off)).toString(16)} failed: 0x${s.toString(16)}`,
          );
      }
    }
  }
  step('KVM_TDX_FINALIZE_VM', () =>
    host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', { id: 'KVM_TDX_FINALIZE_VM', flags: 0, data: 0, hw_error: 0 }),
  );
  const mrtd = tdMrtd(host, vm);
  if (!mrtd) throw new Error('model defect: finalized TD without MRTD');
  return { mrtd, host, vmFd: vm, regions: plan.regions, syscalls: host.seq };
}
