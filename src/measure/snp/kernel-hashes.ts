/**
 * The SEV hashes table for measured direct boot (-kernel/-initrd/-append with an OVMF built with
 * kernel-hashes support). QEMU target/i386/sev.c sev_add_kernel_loader_hashes() (SevHashTable,
 * PaddedSevHashTable); checked against virtee/sev-snp-measure sevsnpmeasure/sev_hashes.py at 8f2b337e.
 *
 *   SevHashTable (168 bytes, packed): GUID header, u16 length = 168,
 *     then 3 entries {GUID, u16 length = 50, sha256[32]}: cmdline, initrd, kernel;
 *   padded with zeros to a multiple of 16 (176 bytes).
 * For SNP the table sits in an otherwise zero page at (hash table GPA & 0xFFF).
 */

import { hash } from 'node:crypto';
import { guidToBytes } from '../ovmf.js';

export const SEV_HASH_TABLE_HEADER_GUID = '9438d606-4f22-4cc9-b479-a793d411fd21';
export const SEV_CMDLINE_ENTRY_GUID = '97d02dd8-bd20-4c94-aa78-e7714d36ab2a';
export const SEV_INITRD_ENTRY_GUID = '44baf731-3a2f-4bd7-9af1-41e29169781d';
export const SEV_KERNEL_ENTRY_GUID = '4de79437-abd2-427f-b835-d5b172d2045b';

/** sizeof(SevHashTableEntry): GUID + u16 + SHA-256. */
export const SEV_HASH_TABLE_ENTRY_SIZE = 16 + 2 + 32;
/** sizeof(SevHashTable): GUID + u16 + 3 entries. */
export const SEV_HASH_TABLE_SIZE = 16 + 2 + 3 * SEV_HASH_TABLE_ENTRY_SIZE;
/** sizeof(PaddedSevHashTable): rounded up to 16. */
export const SEV_PADDED_HASH_TABLE_SIZE = (SEV_HASH_TABLE_SIZE + 15) & ~15;

const PAGE_SIZE = 4096;

/** The three SHA-256 digests the table records. */
export interface SevHashes {
  kernel: Uint8Array;
  initrd: Uint8Array;
  cmdline: Uint8Array;
}

export interface SevHashInputs {
  kernel: Uint8Array;
  /** Absent: hashed as empty (no -initrd). */
  initrd?: Uint8Array;
  /** -append; the kernel sees it NUL-terminated, so the hash covers append + "\0" (just "\0" if absent or empty). */
  append?: string;
}

/** SHA-256 of kernel, initrd and command line, as QEMU computes them. */
export function computeSevHashes(inputs: SevHashInputs): SevHashes {
  const cmdline = Buffer.from(`${inputs.append ?? ''}\0`, 'utf8');
  return {
    kernel: hash('sha256', inputs.kernel, 'buffer'),
    initrd: hash('sha256', inputs.initrd ?? new Uint8Array(0), 'buffer'),
    cmdline: hash('sha256', cmdline, 'buffer'),
  };
}

/** The padded table (176 bytes): header, then cmdline, initrd, kernel entries, then zero padding. */
export function encodeSevHashTable(h: SevHashes): Uint8Array {
  const out = new Uint8Array(SEV_PADDED_HASH_TABLE_SIZE);
  const put = (at: number, guid: string, length: number): number => {
    out.set(guidToBytes(guid), at);
    out[at + 16] = length & 0xff;
    out[at + 17] = length >> 8;
    return at + 18;
  };
  let at = put(0, SEV_HASH_TABLE_HEADER_GUID, SEV_HASH_TABLE_SIZE);
  for (const [guid, digest] of [
    [SEV_CMDLINE_ENTRY_GUID, h.cmdline],
    [SEV_INITRD_ENTRY_GUID, h.initrd],
    [SEV_KERNEL_ENTRY_GUID, h.kernel],
  ] as const) {
    if (digest.length !== 32) throw new RangeError(`SEV hash table entry ${guid} needs a SHA-256 digest`);
    at = put(at, guid, SEV_HASH_TABLE_ENTRY_SIZE);
    out.set(digest, at);
    at += 32;
  }
  return out;
}

/** The 4 KiB kernel-hashes page: zeros with the padded table at `offsetInPage` (hash table GPA & 0xFFF). */
export function buildSevHashesPage(h: SevHashes, offsetInPage: number): Uint8Array {
  if (offsetInPage < 0 || offsetInPage + SEV_PADDED_HASH_TABLE_SIZE > PAGE_SIZE) {
    throw new RangeError(`SEV hash table at offset 0x${offsetInPage.toString(16)} does not fit in its page`);
  }
  const page = new Uint8Array(PAGE_SIZE);
  page.set(encodeSevHashTable(h), offsetInPage);
  return page;
}
