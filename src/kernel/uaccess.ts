/**
 * copy_from_user / copy_to_user for struct arguments given as plain objects with the C field names.
 * Numeric fields accept number or bigint; missing fields read as 0 (a zeroed struct). A non-object
 * where a struct pointer is expected is -EFAULT, as a bad pointer would be.
 */
import { kerr } from './errors.js';

export type UStruct = Record<string, unknown>;

const U64_MASK = (1n << 64n) - 1n;

/** A NULL user pointer as a caller passes one: null, undefined or address 0. */
export function isNullUserPointer(arg: unknown): boolean {
  return arg === null || arg === undefined || arg === 0 || arg === 0n;
}

export function copyFromUser(arg: unknown, what: string): UStruct {
  if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) {
    throw kerr('EFAULT', `copy_from_user: ${what} is not a struct`);
  }
  return arg as UStruct;
}

/**
 * An unsigned field of `bits` width; values are truncated like a C assignment would. `max` is the
 * largest number that is its own truncation and converts exactly: 2^bits - 1, or for u64
 * Number.MAX_SAFE_INTEGER. Such a number (the common case: sizes, addresses, flags from JS) skips
 * the BigInt.asUintN round trip.
 */
function field(s: UStruct, name: string, bits: number, max: number): bigint {
  const v = s[name];
  if (typeof v === 'number' && v >= 0 && v <= max && Number.isInteger(v)) return BigInt(v);
  if (v === undefined || v === null) return 0n;
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
  else if (typeof v === 'boolean') b = v ? 1n : 0n;
  else throw kerr('EFAULT', `copy_from_user: field ${name} is not an integer`);
  return BigInt.asUintN(bits, b);
}

export const u64 = (s: UStruct, name: string): bigint => field(s, name, 64, Number.MAX_SAFE_INTEGER);
export const u32 = (s: UStruct, name: string): bigint => field(s, name, 32, 0xffff_ffff);
export const u16 = (s: UStruct, name: string): bigint => field(s, name, 16, 0xffff);
export const u8 = (s: UStruct, name: string): bigint => field(s, name, 8, 0xff);
/**
 * A field of at most 32 bits as a number: the same value as Number(u32(...)) and friends, without
 * a BigInt for the common case (register-state structs read dozens of these per vCPU).
 */
function fieldNum(s: UStruct, name: string, bits: number): number {
  const v = s[name];
  const max = 2 ** bits - 1;
  if (typeof v === 'number' && v >= 0 && v <= max && Number.isInteger(v)) return v;
  return Number(field(s, name, bits, max));
}
export const u32n = (s: UStruct, name: string): number => fieldNum(s, name, 32);
export const u16n = (s: UStruct, name: string): number => fieldNum(s, name, 16);
/** A signed 64-bit field (loff_t and friends). */
export const s64 = (s: UStruct, name: string): bigint => BigInt.asIntN(64, u64(s, name));

/** An integer scalar argument (ioctl arg passed by value, an fd, a length). */
export function scalar(v: unknown, what: string): bigint {
  if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v))
    return BigInt(v);
  if (typeof v === 'bigint') return BigInt.asUintN(64, v);
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt.asUintN(64, BigInt(v));
  if (v === undefined || v === null) return 0n;
  throw kerr('EINVAL', `${what} is not an integer`);
}

/** The user struct a copy_to_user() writes `what` into: -EFAULT if `arg` is none. */
export function userStructOut(arg: unknown, what: string): UStruct {
  if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) {
    throw kerr('EFAULT', `copy_to_user: ${what} is not a struct`);
  }
  return arg as UStruct;
}

/** Write back a field, keeping the caller's representation (number when it fits exactly). */
export function copyToUser(s: UStruct, name: string, value: bigint): void {
  const v = value & U64_MASK;
  const prev = s[name];
  s[name] = typeof prev === 'bigint' || v > BigInt(Number.MAX_SAFE_INTEGER) ? v : Number(v);
}

export const PAGE_SHIFT_N = 12n;
export const PAGE_SIZE_N = 4096n;
const PAGE_MASK_N = PAGE_SIZE_N - 1n;
export const pageAligned = (v: bigint): boolean => (v & PAGE_MASK_N) === 0n;
/**
 * A non-negative safe integer is a multiple of 4096. Not `x % 4096`: above 2^31 (any gpa past
 * 2 GiB, any host address) x is a double, and V8 computes a double's remainder by a call into C
 * (~15 ns against ~1 ns for this division, exact for a power of two).
 */
export const pageAlignedNum = (x: number): boolean => Number.isInteger(x / 4096);
/** x + y overflows u64. */
export const addOverflows = (x: bigint, y: bigint): boolean => x + y > U64_MASK;
