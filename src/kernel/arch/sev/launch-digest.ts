/**
 * The PSP firmware's SNP launch digest (the guest context's MEASUREMENT while the guest is being
 * launched). Mirrors SNP_LAUNCH_UPDATE's measurement step: AMD SEV-SNP Firmware ABI spec §8.17
 * (SNP_LAUNCH_UPDATE), PAGE_INFO layout in §8.17.2 Table 67; checked against
 * virtee/sev-snp-measure sevsnpmeasure/gctx.py GCTX._update() at 8f2b337e.
 * Parity: the digest chain byte for byte, for every page type. Not modelled: firmware status codes
 * (the caller validates pages, the RMP and the guest state before calling update()).
 *
 *   LD_new = SHA-384(PAGE_INFO), PAGE_INFO (0x70 bytes, little endian):
 *   0x00 DIGEST_CUR[48] | 0x30 CONTENTS[48] | 0x60 LENGTH u16 = 0x70 | 0x62 PAGE_TYPE u8 |
 *   0x63 IMI_PAGE u8 | 0x64 VMPL3_PERMS | 0x65 VMPL2_PERMS | 0x66 VMPL1_PERMS | 0x67 reserved |
 *   0x68 GPA u64
 */

import { hash } from 'node:crypto';

/** SNP ABI §8.17 Table 66 (PAGE_TYPE field of SNP_LAUNCH_UPDATE). */
export const SNP_PAGE_TYPE_NORMAL = 0x1;
export const SNP_PAGE_TYPE_VMSA = 0x2;
export const SNP_PAGE_TYPE_ZERO = 0x3;
export const SNP_PAGE_TYPE_UNMEASURED = 0x4;
export const SNP_PAGE_TYPE_SECRETS = 0x5;
export const SNP_PAGE_TYPE_CPUID = 0x6;

export type SnpPageType =
  | typeof SNP_PAGE_TYPE_NORMAL
  | typeof SNP_PAGE_TYPE_VMSA
  | typeof SNP_PAGE_TYPE_ZERO
  | typeof SNP_PAGE_TYPE_UNMEASURED
  | typeof SNP_PAGE_TYPE_SECRETS
  | typeof SNP_PAGE_TYPE_CPUID;

/** The ABI names, for traces and errors. */
export const SNP_PAGE_TYPE_NAMES: Readonly<Record<number, string>> = {
  [SNP_PAGE_TYPE_NORMAL]: 'SNP_PAGE_TYPE_NORMAL',
  [SNP_PAGE_TYPE_VMSA]: 'SNP_PAGE_TYPE_VMSA',
  [SNP_PAGE_TYPE_ZERO]: 'SNP_PAGE_TYPE_ZERO',
  [SNP_PAGE_TYPE_UNMEASURED]: 'SNP_PAGE_TYPE_UNMEASURED',
  [SNP_PAGE_TYPE_SECRETS]: 'SNP_PAGE_TYPE_SECRETS',
  [SNP_PAGE_TYPE_CPUID]: 'SNP_PAGE_TYPE_CPUID',
};

/** SHA-384: the launch digest is 48 bytes. */
export const SNP_LAUNCH_DIGEST_SIZE = 48;
/** sizeof(PAGE_INFO) (SNP ABI Table 67). */
export const SNP_PAGE_INFO_SIZE = 0x70;
/** Every SNP_LAUNCH_UPDATE page is 4 KiB. */
export const SNP_PAGE_SIZE = 4096;
/**
 * GPA the firmware records for a VMSA page: the RMP holds (u64)-1, page-aligned with bits above 51
 * cleared (sev-snp-measure gctx.py GCTX.VMSA_GPA).
 */
export const SNP_VMSA_GPA = 0xfffffffff000n;

const U64_MASK = (1n << 64n) - 1n;

/** One page given to SNP_LAUNCH_UPDATE, as far as the measurement sees it. */
export interface SnpPageMeasurement {
  /** SNP_PAGE_TYPE_* firmware value. */
  pageType: number;
  /** Guest-physical address recorded in PAGE_INFO.GPA (a number: a non-negative safe integer). */
  gpa: bigint | number;
  /** The 4096 page bytes; required for NORMAL and VMSA (the only types whose contents are measured). */
  contents?: Uint8Array;
  vmpl3Perms?: number;
  vmpl2Perms?: number;
  vmpl1Perms?: number;
  /** IMI_PAGE: the page is part of the migration image. */
  imi?: boolean;
}

/** True for the page types whose CONTENTS field is SHA-384 of the page (SNP ABI Table 67). */
export function snpPageTypeMeasuresContents(pageType: number): boolean {
  return pageType === SNP_PAGE_TYPE_NORMAL || pageType === SNP_PAGE_TYPE_VMSA;
}

/**
 * Writes a digest given as a 'binary' (latin1) string into `b` at `off`: Buffer's native
 * latin1Write(), the writer behind b.write(s, off, len, 'latin1') without its argument checks,
 * which cost about 3 ms for a launch's thousand digests before V8 has warmed up. It is not in
 * Node's typings: fall back to write() where it is missing.
 */
const nativeLatin1Write = (Buffer.prototype as unknown as { latin1Write?: Latin1Write }).latin1Write;
type Latin1Write = (this: Buffer, s: string, off: number, len: number) => number;
function putDigest(b: Buffer, s: string, off: number): void {
  if (nativeLatin1Write) nativeLatin1Write.call(b, s, off, SNP_LAUNCH_DIGEST_SIZE);
  else b.write(s, off, SNP_LAUNCH_DIGEST_SIZE, 'binary');
}

/**
 * SHA-384 of page contents already hashed in this launch, found by comparing bytes. Firmware
 * images repeat pages (erased flash reads 0xFF: a quarter of Debian's OVMF.fd) and the APs' VMSAs
 * are identical; a 4 KiB compare costs ~0.2 us against ~7.5 us for the hash. A page is copied in
 * only on the second sighting of its fingerprint, so pages seen once cost no memory. The copy is
 * Uint8Array's own slice(): a Buffer's slice() would be a view of the caller's bytes.
 */
class ContentsDigests {
  /** Fingerprint -> pages (private copies) with that fingerprint and their digests. */
  private readonly seen = new Map<number, { page: Uint8Array; digest: string }[]>();

  /** SHA-384 of c as a 'binary' string. */
  digest(c: Uint8Array): string {
    // Bytes spread over the page: erased and zeroed pages agree on all of them and meet; others
    // rarely do, and a wrong candidate fails the compare on its first differing byte.
    // Pages that repeat are erased or zeroed flash and the APs' VMSAs, mostly one byte value; a
    // page whose first, middle and last bytes differ is code or data, hashed without the memo.
    if (c[0] !== c[4095] || c[0] !== c[2048] || c[0] !== c[1024]) return hash('sha384', c, 'binary');
    const fp =
      (c[0]! | (c[1]! << 8) | (c[2048]! << 16) | (c[4095]! << 24)) ^
      Math.imul(c[512]! | (c[1024]! << 8) | (c[1536]! << 16) | (c[3072]! << 24), 0x9e3779b1);
    const known = this.seen.get(fp);
    if (known !== undefined) for (const k of known) if (Buffer.compare(k.page, c) === 0) return k.digest;
    const d = hash('sha384', c, 'binary');
    if (known === undefined) {
      if (this.seen.size < MEMO_FINGERPRINTS) this.seen.set(fp, []);
    } else if (known.length < MEMO_PAGES_PER_FINGERPRINT)
      known.push({ page: Uint8Array.prototype.slice.call(c), digest: d });
    return d;
  }
}
/** Bounds on the memo: a launch of many distinct pages gains nothing from it. */
const MEMO_FINGERPRINTS = 1 << 16;
const MEMO_PAGES_PER_FINGERPRINT = 4;

/** The running launch digest of one guest (SNP ABI §8.17.2). */
export class SnpLaunchDigest {
  /** PAGE_INFO staging buffer; DIGEST_CUR (bytes 0..47) always holds the current digest. */
  private readonly pageInfo = Buffer.alloc(SNP_PAGE_INFO_SIZE);
  private readonly view = new DataView(this.pageInfo.buffer);
  private readonly contents = new ContentsDigests();
  private count = 0;

  /** @param initial seed digest (48 bytes), e.g. a precomputed OVMF hash; zeros when absent. */
  constructor(initial?: Uint8Array) {
    if (initial !== undefined) {
      if (initial.length !== SNP_LAUNCH_DIGEST_SIZE) {
        throw new RangeError(
          `launch digest seed must be ${SNP_LAUNCH_DIGEST_SIZE} bytes, got ${initial.length}`,
        );
      }
      this.pageInfo.set(initial, 0);
    }
  }

  /** Measure one page: LD = SHA-384(PAGE_INFO). */
  update(page: SnpPageMeasurement): void {
    const info = this.pageInfo;
    const v = this.view;
    if (snpPageTypeMeasuresContents(page.pageType)) {
      const c = page.contents;
      if (c === undefined || c.length !== SNP_PAGE_SIZE) {
        throw new RangeError(
          `${SNP_PAGE_TYPE_NAMES[page.pageType]} page needs ${SNP_PAGE_SIZE} bytes of contents, got ${c?.length ?? 0}`,
        );
      }
      // CONTENTS = SHA-384(page). Digests come back as 'binary' (latin1) strings, one char per
      // byte, written straight into PAGE_INFO: node's 'buffer' output costs ~1 us more per call.
      putDigest(info, this.contents.digest(c), 0x30);
    } else {
      info.fill(0, 0x30, 0x60); // CONTENTS = 0 for ZERO, UNMEASURED, SECRETS, CPUID
    }
    v.setUint16(0x60, SNP_PAGE_INFO_SIZE, true); // LENGTH
    info[0x62] = page.pageType & 0xff; // PAGE_TYPE
    info[0x63] = page.imi ? 1 : 0; // IMI_PAGE
    info[0x64] = (page.vmpl3Perms ?? 0) & 0xff;
    info[0x65] = (page.vmpl2Perms ?? 0) & 0xff;
    info[0x66] = (page.vmpl1Perms ?? 0) & 0xff;
    info[0x67] = 0; // reserved
    const gpa = page.gpa;
    if (typeof gpa === 'number') {
      // No BigInt per page: a safe integer's two 32-bit halves.
      v.setUint32(0x68, gpa >>> 0, true);
      v.setUint32(0x6c, Math.floor(gpa / 0x1_0000_0000), true);
    } else v.setBigUint64(0x68, gpa & U64_MASK, true); // GPA
    putDigest(info, hash('sha384', info, 'binary'), 0); // DIGEST_CUR <- new LD
    this.count++;
  }

  /** A copy of the current launch digest (48 bytes). */
  get digest(): Uint8Array {
    return new Uint8Array(this.pageInfo.subarray(0, SNP_LAUNCH_DIGEST_SIZE));
  }

  /** Number of pages measured since construction. */
  get updates(): number {
    return this.count;
  }
}
