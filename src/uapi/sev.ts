/**
 * SEV / SEV-SNP uAPI constants, with their kernel names and values:
 * arch/x86/include/uapi/asm/kvm.h (enum sev_cmd_id, KVM_SEV_SNP_PAGE_TYPE_*, KVM_X86_GRP_SEV) and
 * include/uapi/linux/psp-sev.h (sev_ret_code, SEV_ISSUE_CMD). Policy bits and VMSA feature bits are
 * the kernel's (arch/x86/kvm/svm/sev.c SNP_POLICY_MASK_*, arch/x86/include/asm/svm.h SVM_SEV_FEAT_*),
 * which follow the SEV-SNP Firmware ABI "Guest Policy" and the APM SEV_FEATURES field.
 */
import { _IOWR } from './ioctl.js';

// enum sev_cmd_id: KVM_MEMORY_ENCRYPT_OP command ids.
export const KVM_SEV_INIT = 0;
export const KVM_SEV_ES_INIT = 1;
export const KVM_SEV_LAUNCH_START = 2;
export const KVM_SEV_LAUNCH_UPDATE_DATA = 3;
export const KVM_SEV_LAUNCH_UPDATE_VMSA = 4;
export const KVM_SEV_LAUNCH_SECRET = 5;
export const KVM_SEV_LAUNCH_MEASURE = 6;
export const KVM_SEV_LAUNCH_FINISH = 7;
export const KVM_SEV_SEND_START = 8;
export const KVM_SEV_SEND_UPDATE_DATA = 9;
export const KVM_SEV_SEND_UPDATE_VMSA = 10;
export const KVM_SEV_SEND_FINISH = 11;
export const KVM_SEV_RECEIVE_START = 12;
export const KVM_SEV_RECEIVE_UPDATE_DATA = 13;
export const KVM_SEV_RECEIVE_UPDATE_VMSA = 14;
export const KVM_SEV_RECEIVE_FINISH = 15;
export const KVM_SEV_GUEST_STATUS = 16;
export const KVM_SEV_DBG_DECRYPT = 17;
export const KVM_SEV_DBG_ENCRYPT = 18;
export const KVM_SEV_CERT_EXPORT = 19;
export const KVM_SEV_GET_ATTESTATION_REPORT = 20;
export const KVM_SEV_SEND_CANCEL = 21;
export const KVM_SEV_INIT2 = 22;
export const KVM_SEV_SNP_LAUNCH_START = 100;
export const KVM_SEV_SNP_LAUNCH_UPDATE = 101;
export const KVM_SEV_SNP_LAUNCH_FINISH = 102;
/** 7.0: let the VMM serve the guest's extended attestation requests (KVM_EXIT_SNP_REQ_CERTS). */
export const KVM_SEV_SNP_ENABLE_REQ_CERTS = 103;

/** Command id by name, for `{ id: 'KVM_SEV_SNP_LAUNCH_UPDATE' }`. */
export const KVM_SEV_CMDS: Readonly<Record<string, number>> = {
  KVM_SEV_INIT,
  KVM_SEV_ES_INIT,
  KVM_SEV_LAUNCH_START,
  KVM_SEV_LAUNCH_UPDATE_DATA,
  KVM_SEV_LAUNCH_UPDATE_VMSA,
  KVM_SEV_LAUNCH_SECRET,
  KVM_SEV_LAUNCH_MEASURE,
  KVM_SEV_LAUNCH_FINISH,
  KVM_SEV_SEND_START,
  KVM_SEV_SEND_UPDATE_DATA,
  KVM_SEV_SEND_UPDATE_VMSA,
  KVM_SEV_SEND_FINISH,
  KVM_SEV_RECEIVE_START,
  KVM_SEV_RECEIVE_UPDATE_DATA,
  KVM_SEV_RECEIVE_UPDATE_VMSA,
  KVM_SEV_RECEIVE_FINISH,
  KVM_SEV_GUEST_STATUS,
  KVM_SEV_DBG_DECRYPT,
  KVM_SEV_DBG_ENCRYPT,
  KVM_SEV_CERT_EXPORT,
  KVM_SEV_GET_ATTESTATION_REPORT,
  KVM_SEV_SEND_CANCEL,
  KVM_SEV_INIT2,
  KVM_SEV_SNP_LAUNCH_START,
  KVM_SEV_SNP_LAUNCH_UPDATE,
  KVM_SEV_SNP_LAUNCH_FINISH,
  KVM_SEV_SNP_ENABLE_REQ_CERTS,
};

// struct kvm_sev_snp_launch_update.type ("kept in sync with firmware values").
export const KVM_SEV_SNP_PAGE_TYPE_NORMAL = 0x1;
export const KVM_SEV_SNP_PAGE_TYPE_ZERO = 0x3;
export const KVM_SEV_SNP_PAGE_TYPE_UNMEASURED = 0x4;
export const KVM_SEV_SNP_PAGE_TYPE_SECRETS = 0x5;
export const KVM_SEV_SNP_PAGE_TYPE_CPUID = 0x6;

/** struct kvm_sev_snp_launch_finish: sizes of the id block, id auth and host data. */
export const KVM_SEV_SNP_ID_BLOCK_SIZE = 96;
export const KVM_SEV_SNP_ID_AUTH_SIZE = 4096;
export const KVM_SEV_SNP_FINISH_DATA_SIZE = 32;

// KVM_GET_DEVICE_ATTR on /dev/kvm (vendor group; KVM_X86_SNP_POLICY_BITS since 6.19,
// KVM_X86_SEV_SNP_REQ_CERTS since 7.0).
export const KVM_X86_GRP_SEV = 1;
export const KVM_X86_SEV_VMSA_FEATURES = 0;
export const KVM_X86_SNP_POLICY_BITS = 1;
export const KVM_X86_SEV_SNP_REQ_CERTS = 2;

// SEV_FEATURES / vmsa_features bits (arch/x86/include/asm/svm.h).
export const SVM_SEV_FEAT_SNP_ACTIVE = 1 << 0;
export const SVM_SEV_FEAT_DEBUG_SWAP = 1 << 5;
export const SVM_SEV_FEAT_SECURE_TSC = 1 << 9;

// SNP guest policy (sev.c SNP_POLICY_MASK_*).
export const SNP_POLICY_MASK_API_MINOR = 0xffn;
export const SNP_POLICY_MASK_API_MAJOR = 0xff00n;
export const SNP_POLICY_MASK_SMT = 1n << 16n;
export const SNP_POLICY_MASK_RSVD_MBO = 1n << 17n;
export const SNP_POLICY_MASK_MIGRATE_MA = 1n << 18n;
export const SNP_POLICY_MASK_DEBUG = 1n << 19n;
export const SNP_POLICY_MASK_SINGLE_SOCKET = 1n << 20n;
// include/linux/psp-sev.h (6.19): bits 21-25, each needing firmware support.
export const SNP_POLICY_MASK_CXL_ALLOW = 1n << 21n;
export const SNP_POLICY_MASK_MEM_AES_256_XTS = 1n << 22n;
export const SNP_POLICY_MASK_RAPL_DIS = 1n << 23n;
export const SNP_POLICY_MASK_CIPHERTEXT_HIDING_DRAM = 1n << 24n;
export const SNP_POLICY_MASK_PAGE_SWAP_DISABLE = 1n << 25n;
export const SNP_POLICY_MASK_VALID =
  SNP_POLICY_MASK_API_MINOR |
  SNP_POLICY_MASK_API_MAJOR |
  SNP_POLICY_MASK_SMT |
  SNP_POLICY_MASK_RSVD_MBO |
  SNP_POLICY_MASK_DEBUG |
  SNP_POLICY_MASK_SINGLE_SOCKET;
/** psp-sev.h SNP_POLICY_MASK_BASE (6.19): what the oldest supported firmware accepts. */
export const SNP_POLICY_MASK_BASE = SNP_POLICY_MASK_VALID | SNP_POLICY_MASK_MIGRATE_MA;
/** sev.c KVM_SNP_POLICY_MASK_VALID (6.19): the bits KVM lets through (not MIGRATE_MA). */
export const KVM_SNP_POLICY_MASK_VALID =
  SNP_POLICY_MASK_VALID |
  SNP_POLICY_MASK_CXL_ALLOW |
  SNP_POLICY_MASK_MEM_AES_256_XTS |
  SNP_POLICY_MASK_RAPL_DIS |
  SNP_POLICY_MASK_CIPHERTEXT_HIDING_DRAM |
  SNP_POLICY_MASK_PAGE_SWAP_DISABLE;

// sev_ret_code: firmware status codes written to kvm_sev_cmd.error.
export const SEV_RET_SUCCESS = 0x0;
export const SEV_RET_INVALID_PLATFORM_STATE = 0x1;
export const SEV_RET_INVALID_GUEST_STATE = 0x2;
export const SEV_RET_INVALID_CONFIG = 0x3;
export const SEV_RET_INVALID_LEN = 0x4;
export const SEV_RET_ALREADY_OWNED = 0x5;
export const SEV_RET_INVALID_CERTIFICATE = 0x6;
export const SEV_RET_POLICY_FAILURE = 0x7;
export const SEV_RET_INACTIVE = 0x8;
export const SEV_RET_INVALID_ADDRESS = 0x9;
export const SEV_RET_BAD_SIGNATURE = 0xa;
export const SEV_RET_BAD_MEASUREMENT = 0xb;
export const SEV_RET_ASID_OWNED = 0xc;
export const SEV_RET_INVALID_ASID = 0xd;
export const SEV_RET_WBINVD_REQUIRED = 0xe;
export const SEV_RET_DFFLUSH_REQUIRED = 0xf;
export const SEV_RET_INVALID_GUEST = 0x10;
export const SEV_RET_INVALID_COMMAND = 0x11;
export const SEV_RET_ACTIVE = 0x12;
export const SEV_RET_HWSEV_RET_PLATFORM = 0x13;
export const SEV_RET_HWSEV_RET_UNSAFE = 0x14;
export const SEV_RET_UNSUPPORTED = 0x15;
export const SEV_RET_INVALID_PARAM = 0x16;
export const SEV_RET_RESOURCE_LIMIT = 0x17;
export const SEV_RET_SECURE_DATA_INVALID = 0x18;
export const SEV_RET_INVALID_PAGE_SIZE = 0x19;
export const SEV_RET_INVALID_PAGE_STATE = 0x1a;
export const SEV_RET_INVALID_MDATA_ENTRY = 0x1b;
export const SEV_RET_INVALID_PAGE_OWNER = 0x1c;
export const SEV_RET_AEAD_OFLOW = 0x1d;
export const SEV_RET_RMP_INIT_REQUIRED = 0x20;
export const SEV_RET_INVALID_KEY = 0x27;

/** SEV_RET_* by name, for sevRetName(). */
const SEV_RET_NAMES: Readonly<Record<string, number>> = {
  SEV_RET_SUCCESS,
  SEV_RET_INVALID_PLATFORM_STATE,
  SEV_RET_INVALID_GUEST_STATE,
  SEV_RET_INVALID_CONFIG,
  SEV_RET_INVALID_LEN,
  SEV_RET_ALREADY_OWNED,
  SEV_RET_INVALID_CERTIFICATE,
  SEV_RET_POLICY_FAILURE,
  SEV_RET_INACTIVE,
  SEV_RET_INVALID_ADDRESS,
  SEV_RET_BAD_SIGNATURE,
  SEV_RET_BAD_MEASUREMENT,
  SEV_RET_ASID_OWNED,
  SEV_RET_INVALID_ASID,
  SEV_RET_WBINVD_REQUIRED,
  SEV_RET_DFFLUSH_REQUIRED,
  SEV_RET_INVALID_GUEST,
  SEV_RET_INVALID_COMMAND,
  SEV_RET_ACTIVE,
  SEV_RET_HWSEV_RET_PLATFORM,
  SEV_RET_HWSEV_RET_UNSAFE,
  SEV_RET_UNSUPPORTED,
  SEV_RET_INVALID_PARAM,
  SEV_RET_RESOURCE_LIMIT,
  SEV_RET_SECURE_DATA_INVALID,
  SEV_RET_INVALID_PAGE_SIZE,
  SEV_RET_INVALID_PAGE_STATE,
  SEV_RET_INVALID_MDATA_ENTRY,
  SEV_RET_INVALID_PAGE_OWNER,
  SEV_RET_AEAD_OFLOW,
  SEV_RET_RMP_INIT_REQUIRED,
  SEV_RET_INVALID_KEY,
};

/** A firmware status as its SEV_RET_ name (hex when the table has none). */
export function sevRetName(status: number): string {
  for (const [k, v] of Object.entries(SEV_RET_NAMES)) if (v === status) return k;
  return `0x${status.toString(16)}`;
}

/** /dev/sev: SEV_ISSUE_CMD = _IOWR('S', 0x0, struct sev_issue_cmd) (packed: u32, u64, u32 = 16 bytes). */
export const SEV_IOC_TYPE = 0x53;
export const SEV_ISSUE_CMD = _IOWR(SEV_IOC_TYPE, 0x0, 16);
// SEV_ISSUE_CMD platform commands (enum in psp-sev.h).
export const SEV_PLATFORM_STATUS = 1;
export const SNP_PLATFORM_STATUS = 9;
