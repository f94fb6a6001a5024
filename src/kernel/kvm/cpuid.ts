/**
 * Guest CPUID as KVM holds it: struct kvm_cpuid_entry2 lists copied from userspace
 * (KVM_SET_CPUID2, KVM_TDX_INIT_VM) and the lookups arch/x86/kvm/cpuid.c makes on them.
 */
import { kerr } from '../errors.js';
import { copyFromUser, type UStruct, u32 } from '../uaccess.js';

/** struct kvm_cpuid_entry2 (padding left out). */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX (arch/x86/include/uapi/asm/kvm.h). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;
/** arch/x86/include/asm/kvm_host.h: the most entries KVM_SET_CPUID2 takes. */
export const KVM_MAX_CPUID_ENTRIES = 256;

/** struct kvm_cpuid2 from user memory: nent entries must be readable (else -EFAULT). */
export function readCpuidEntries(cpuid: UStruct, nent: number, what: string): CpuidEntry[] {
  const raw = cpuid['entries'];
  const list = Array.isArray(raw) ? raw : [];
  if (list.length < nent) throw kerr('EFAULT', `copy_from_user: ${what} has fewer than nent=${nent} entries`);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < nent; i++) {
    const e = copyFromUser(list[i], `${what}[${i}]`);
    out.push({
      function: Number(u32(e, 'function')),
      index: Number(u32(e, 'index')),
      flags: Number(u32(e, 'flags')),
      eax: Number(u32(e, 'eax')),
      ebx: Number(u32(e, 'ebx')),
      ecx: Number(u32(e, 'ecx')),
      edx: Number(u32(e, 'edx')),
    });
  }
  return out;
}

/** kvm_find_cpuid_entry2(): the index only counts where the entry says it is significant. */
export function findCpuid(entries: readonly CpuidEntry[], fn: number, index = 0): CpuidEntry | undefined {
  return entries.find(
    (e) => e.function === fn && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index === index),
  );
}

/** cpuid_query_maxphyaddr(): CPUID.0x80000008.EAX[7:0], 36 without the leaf. */
export function cpuidMaxPhyAddr(entries: readonly CpuidEntry[]): number {
  const base = findCpuid(entries, 0x80000000);
  if (!base || base.eax < 0x80000008) return 36;
  const e = findCpuid(entries, 0x80000008);
  return e ? e.eax & 0xff : 36;
}

/** X86_FEATURE_X2APIC: CPUID.1:ECX[21]. */
export function cpuidHasX2apic(entries: readonly CpuidEntry[]): boolean {
  const e = findCpuid(entries, 1);
  return e !== undefined && (e.ecx & (1 << 21)) !== 0;
}
