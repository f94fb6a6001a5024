/**
 * KVM_SET_MSRS framing, shared by every VM type: arch/x86/kvm/x86.c msr_io() and __msr_io(). The
 * model knows one MSR, IA32_CR_PAT; what a write of it does is the VM type's business.
 */
import { kerr } from '../errors.js';
import { copyFromUser, u32, u64 } from '../uaccess.js';

/** msr_io(): at most MAX_IO_MSRS - 1 entries per call. */
const MAX_IO_MSRS = 256;
/** MSR_IA32_CR_PAT. */
export const MSR_IA32_CR_PAT = 0x277;

/**
 * msr_io(): the kvm_msrs header (-EFAULT), nmsrs >= MAX_IO_MSRS -E2BIG before the entries are read,
 * the entries (-EFAULT); then __msr_io() sets them one by one and stops at the first that fails
 * (`set` returns false). The result is the count set, never an errno for a refused MSR.
 */
export function msrIo(arg: unknown, set: (index: number, data: bigint) => boolean): number {
  const m = copyFromUser(arg, 'kvm_msrs');
  const nmsrs = Number(u32(m, 'nmsrs'));
  if (nmsrs >= MAX_IO_MSRS) throw kerr('E2BIG', `msr_io: nmsrs ${nmsrs} >= MAX_IO_MSRS`);
  const entries = Array.isArray(m['entries']) ? (m['entries'] as unknown[]) : [];
  if (entries.length < nmsrs) throw kerr('EFAULT', 'msr_io: fewer entries than nmsrs');
  const parsed = entries.slice(0, nmsrs).map((e) => copyFromUser(e, 'kvm_msr_entry'));
  let done = 0;
  for (const e of parsed) {
    if (!set(Number(u32(e, 'index')), u64(e, 'data'))) break;
    done++;
  }
  return done;
}

/** kvm_pat_valid(): every byte a valid memory type (0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-). */
export function kvmPatValid(data: bigint): boolean {
  for (let i = 0n; i < 64n; i += 8n) {
    const t = Number((data >> i) & 0xffn);
    if (t === 2 || t === 3 || t > 7) return false;
  }
  return true;
}
