/**
 * Constants of include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h that gmemlab uses,
 * with their kernel names and values. Struct sizes are those of the x86-64 ABI.
 */
import { _IO, _IOR, _IOW, _IOWR } from './ioctl.js';

export const KVMIO = 0xae;
export const KVM_API_VERSION = 12;

// struct sizes (x86-64)
export const SIZEOF_KVM_USERSPACE_MEMORY_REGION = 32;
export const SIZEOF_KVM_USERSPACE_MEMORY_REGION2 = 160;
export const SIZEOF_KVM_ENABLE_CAP = 104;
export const SIZEOF_KVM_MEMORY_ATTRIBUTES = 32;
export const SIZEOF_KVM_CREATE_GUEST_MEMFD = 64;
export const SIZEOF_KVM_PRE_FAULT_MEMORY = 64;
export const SIZEOF_KVM_REGS = 144;
export const SIZEOF_KVM_SREGS = 312;
export const SIZEOF_KVM_CPUID2 = 8;
export const SIZEOF_KVM_ENC_REGION = 16;
export const SIZEOF_KVM_FPU = 416;
export const SIZEOF_KVM_MSRS = 8;
export const SIZEOF_KVM_DEVICE_ATTR = 24;

// /dev/kvm ioctls
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
export const KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, SIZEOF_KVM_CPUID2);
// Device attribute ioctls, on /dev/kvm for the system attributes (kvm_arch_dev_ioctl).
export const KVM_GET_DEVICE_ATTR = _IOW(KVMIO, 0xe2, SIZEOF_KVM_DEVICE_ATTR);
export const KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xe3, SIZEOF_KVM_DEVICE_ATTR);
/** Group 0 system attribute: kvm_caps.supported_xcr0. */
export const KVM_X86_XCOMP_GUEST_SUPP = 0;

// VM ioctls
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
/** x86: the PIC and IOAPIC in KVM, and a local APIC for every vCPU created afterwards. */
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
export const KVM_SET_NR_MMU_PAGES = _IO(KVMIO, 0x44);
export const KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
/** struct kvm_pit_config flags: a dummy PC speaker port (0x61) so guest writes do not exit. */
export const KVM_PIT_SPEAKER_DUMMY = 1;
/** struct kvm_irq_level: irq, level. */
export const KVM_IRQ_LINE = _IOW(KVMIO, 0x61, 8);
/** struct kvm_pit_config: flags, pad[15]. */
export const KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, 64);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION);
export const KVM_SET_USER_MEMORY_REGION2 = _IOW(KVMIO, 0x49, SIZEOF_KVM_USERSPACE_MEMORY_REGION2);
export const KVM_ENABLE_CAP = _IOW(KVMIO, 0xa3, SIZEOF_KVM_ENABLE_CAP);
export const KVM_MEMORY_ENCRYPT_OP = _IOWR(KVMIO, 0xba, 8);
export const KVM_MEMORY_ENCRYPT_REG_REGION = _IOR(KVMIO, 0xbb, SIZEOF_KVM_ENC_REGION);
export const KVM_MEMORY_ENCRYPT_UNREG_REGION = _IOR(KVMIO, 0xbc, SIZEOF_KVM_ENC_REGION);
export const KVM_SET_MEMORY_ATTRIBUTES = _IOW(KVMIO, 0xd2, SIZEOF_KVM_MEMORY_ATTRIBUTES);
export const KVM_CREATE_GUEST_MEMFD = _IOWR(KVMIO, 0xd4, SIZEOF_KVM_CREATE_GUEST_MEMFD);

// vCPU ioctls
export const KVM_RUN = _IO(KVMIO, 0x80);
/** struct kvm_regs's fields, in their order. */
export const KVM_REGS_FIELDS = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const;
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, SIZEOF_KVM_REGS);
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, SIZEOF_KVM_REGS);
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, SIZEOF_KVM_SREGS);
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, SIZEOF_KVM_SREGS);
export const KVM_SET_MSRS = _IOW(KVMIO, 0x89, SIZEOF_KVM_MSRS);
export const KVM_GET_FPU = _IOR(KVMIO, 0x8c, SIZEOF_KVM_FPU);
export const KVM_SET_FPU = _IOW(KVMIO, 0x8d, SIZEOF_KVM_FPU);
export const KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, SIZEOF_KVM_CPUID2);
export const KVM_PRE_FAULT_MEMORY = _IOWR(KVMIO, 0xd5, SIZEOF_KVM_PRE_FAULT_MEMORY);

// KVM_CAP_*
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_MMU_SHADOW_CACHE_CONTROL = 2;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_SYNC_MMU = 16;
export const KVM_CAP_DESTROY_MEMORY_REGION_WORKS = 21;
export const KVM_CAP_JOIN_MEMORY_REGIONS_WORKS = 30;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_ENABLE_CAP_VM = 98;
export const KVM_CAP_CHECK_EXTENSION_VM = 105;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_MAX_VCPU_ID = 128;
export const KVM_CAP_EXIT_HYPERCALL = 201;
export const KVM_CAP_X86_SMM = 117;
export const KVM_CAP_MULTI_ADDRESS_SPACE = 118;
export const KVM_CAP_SPLIT_IRQCHIP = 121;
/**
 * The most IOAPIC pins a split IRQCHIP may reserve for userspace: arch/x86/kvm/ioapic.h defines it
 * as KVM_MAX_IRQ_ROUTES (include/linux/kvm_host.h, 4096). A 6.18.44 host accepts 1000.
 */
export const MAX_NR_RESERVED_IOAPIC_PINS = 4096;
export const KVM_CAP_USER_MEMORY2 = 231;
export const KVM_CAP_MEMORY_FAULT_INFO = 232;
export const KVM_CAP_MEMORY_ATTRIBUTES = 233;
export const KVM_CAP_GUEST_MEMFD = 234;
export const KVM_CAP_VM_TYPES = 235;
export const KVM_CAP_PRE_FAULT_MEMORY = 236;
/** Named KVM_CAP_GUEST_MEMFD_MMAP during the 6.18 merge window, renamed in 6.18-rc2 (d2042d8f96dd). */
export const KVM_CAP_GUEST_MEMFD_FLAGS = 244;

// VM types (arch/x86/include/uapi/asm/kvm.h)
export const KVM_X86_DEFAULT_VM = 0;
export const KVM_X86_SW_PROTECTED_VM = 1;
export const KVM_X86_SEV_VM = 2;
export const KVM_X86_SEV_ES_VM = 3;
export const KVM_X86_SNP_VM = 4;
export const KVM_X86_TDX_VM = 5;
/** A VM type as its KVM_X86_*_VM name (the number when it has none). */
export function vmTypeName(type: bigint | number): string {
  const names = ['DEFAULT', 'SW_PROTECTED', 'SEV', 'SEV_ES', 'SNP', 'TDX'];
  const n = Number(type);
  return Number.isInteger(n) && n >= 0 && n < names.length ? `KVM_X86_${names[n]}_VM` : `VM type ${type}`;
}

// memslot flags
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;

/** x86: KVM_MEM_SLOTS_NUM (SHRT_MAX) - KVM_INTERNAL_MEM_SLOTS (3). */
export const KVM_USER_MEM_SLOTS = 32764;
/** x86 has two address spaces (normal and SMM). */
export const KVM_ADDRESS_SPACE_NUM = 2;
/** x86 KVM_MAX_VCPUS (arch/x86/include/asm/kvm_host.h, 6.x): CONFIG_KVM_MAX_NR_VCPUS with MAXSMP. */
export const KVM_MAX_VCPUS = 4096;
/** KVM_MAX_VCPUS * KVM_VCPU_ID_RATIO (4): vCPU ids are sparse (x2APIC ids). */
export const KVM_MAX_VCPU_IDS = 16384;

// guest_memfd
export const GUEST_MEMFD_FLAG_MMAP = 1 << 0;
export const GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1;
/** Out of tree (direct map removal, v12): profile v6.18+no-direct-map only. */
export const GUEST_MEMFD_FLAG_NO_DIRECT_MAP = 1 << 2;

// memory attributes
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3;

// exits
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_MEMORY_FAULT = 39;
export const KVM_EXIT_TDX = 40;

export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;
export const KVM_SYSTEM_EVENT_WAKEUP = 4;
export const KVM_SYSTEM_EVENT_SUSPEND = 5;
export const KVM_SYSTEM_EVENT_SEV_TERM = 6;
export const KVM_SYSTEM_EVENT_TDX_FATAL = 7;

/** kvm_run.hypercall.flags (x86): the guest issued the hypercall in 64-bit mode. */
export const KVM_EXIT_HYPERCALL_LONG_MODE = 1;

export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3;

// hypercalls (include/uapi/linux/kvm_para.h, arch/x86/include/uapi/asm/kvm_para.h)
export const KVM_HC_MAP_GPA_RANGE = 12;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_4K = 0;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1 << 0;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_1G = 1 << 1;
export const KVM_MAP_GPA_RANGE_ENCRYPTED = 1 << 4;
export const KVM_MAP_GPA_RANGE_DECRYPTED = 0 << 4;

/** The ioctl requests gmemlab models, by name (what `host.ioctl(fd, 'NAME', arg)` accepts). */
export const KVM_IOCTLS: Readonly<Record<string, number>> = {
  KVM_GET_API_VERSION,
  KVM_CREATE_VM,
  KVM_CHECK_EXTENSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_GET_SUPPORTED_CPUID,
  KVM_GET_DEVICE_ATTR,
  KVM_HAS_DEVICE_ATTR,
  KVM_CREATE_VCPU,
  KVM_CREATE_IRQCHIP,
  KVM_SET_NR_MMU_PAGES,
  KVM_SET_TSS_ADDR,
  KVM_IRQ_LINE,
  KVM_CREATE_PIT2,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_ENABLE_CAP,
  KVM_MEMORY_ENCRYPT_OP,
  KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_MEMORY_ENCRYPT_UNREG_REGION,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_CREATE_GUEST_MEMFD,
  KVM_RUN,
  KVM_GET_REGS,
  KVM_SET_REGS,
  KVM_GET_SREGS,
  KVM_SET_SREGS,
  KVM_SET_MSRS,
  KVM_GET_FPU,
  KVM_SET_FPU,
  KVM_SET_CPUID2,
  KVM_PRE_FAULT_MEMORY,
};
