/**
 * The TDX module's MRTD accumulator (TDCS measurement state of a TD being built).
 * Mirrors the TDX module ABI: TDH.MEM.PAGE.ADD and TDH.MR.EXTEND each extend the build-time
 * measurement, TDH.MR.FINALIZE closes it (Intel TDX Module ABI spec; layout as in
 * confidential-containers/td-shim td-shim-tools/src/tee_info_hash.rs build_mrtd()).
 * Parity: the hashed stream byte for byte. Not modelled: SEAMCALL status codes (the caller maps
 * TdMeasurementError to them), RTMRs, TD_INFO hashing.
 *
 * MRTD is ONE SHA-384 over a stream of 128-byte extension buffers (not a chain):
 *   PAGE.ADD  -> 1 buffer:  "MEM.PAGE.ADD" (12 B), 0 pad to 16, GPA u64 LE at 16, 0 pad to 128
 *   MR.EXTEND -> 3 buffers: "MR.EXTEND" (9 B), 0 pad to 16, GPA u64 LE at 16, 0 pad to 128,
 *                           then the 256 bytes of the chunk as two buffers.
 * Bytes are staged in a fixed buffer and handed to the hash in large updates: the digest is the
 * same as one update per buffer, with far fewer calls across the JS/OpenSSL boundary. A measured
 * page (PAGE.ADD + 16 x MR.EXTEND) is staged as a whole, over headers already in place.
 */

import { createHash, type Hash } from 'node:crypto';

/** One extension buffer (td-shim MRTD_EXTENSION_BUFFER_SIZE). */
export const MRTD_EXTENSION_BUFFER_SIZE = 128;
/** TDH.MR.EXTEND granularity (arch/x86/include/asm/tdx.h TDX_EXTENDMR_CHUNKSIZE). */
export const TDX_EXTENDMR_CHUNKSIZE = 256;
/** TDH.MEM.PAGE.ADD adds one 4 KiB page. */
export const TDX_PAGE_SIZE = 4096;
/** SHA-384 digest size: MRTD is 48 bytes. */
export const MRTD_SIZE = 48;

/** Offset of the GPA in both extension-buffer headers (td-shim MEM_PAGE_ADD_GPA_OFFSET / MR_EXTEND_GPA_OFFSET). */
const GPA_OFFSET = 16;
const U64_MAX = (1n << 64n) - 1n;
const PAGE_OFFSET_MASK = BigInt(TDX_PAGE_SIZE - 1);
const CHUNK_OFFSET_MASK = BigInt(TDX_EXTENDMR_CHUNKSIZE - 1);

/** The SEAMCALL leaf that failed, by its ABI name. */
export type TdMeasurementOp = 'TDH.MEM.PAGE.ADD' | 'TDH.MR.EXTEND' | 'TDH.MR.FINALIZE';

/**
 * Why the accumulator refused an operation:
 * - 'finalized': MRTD already finalized; the module refuses further build-time operations
 *   (TDX module: TD is no longer in the build state).
 * - 'operand': a malformed operand (misaligned GPA, chunk not 256 bytes).
 */
export type TdMeasurementErrorReason = 'finalized' | 'operand';

/** A refused measurement operation. The lead maps `reason` to the module's status code. */
export class TdMeasurementError extends Error {
  constructor(
    message: string,
    public readonly op: TdMeasurementOp,
    public readonly reason: TdMeasurementErrorReason,
  ) {
    super(message);
    this.name = 'TdMeasurementError';
  }
}

/**
 * What one measured page adds to the stream (KVM's TDH.MEM.PAGE.ADD then its 16 TDH.MR.EXTEND), a
 * "page block": its "MEM.PAGE.ADD" buffer, then per chunk k the "MR.EXTEND" buffer at headerAt(k)
 * and the chunk's 256 bytes right after it. 6272 bytes.
 */
const CHUNKS_PER_PAGE = TDX_PAGE_SIZE / TDX_EXTENDMR_CHUNKSIZE;
const EXTEND_STRIDE = MRTD_EXTENSION_BUFFER_SIZE + TDX_EXTENDMR_CHUNKSIZE;
const PAGE_BLOCK = MRTD_EXTENSION_BUFFER_SIZE + CHUNKS_PER_PAGE * EXTEND_STRIDE;
/** Offset in a page block of chunk k's "MR.EXTEND" buffer (its data follows at + 128). */
const headerAt = (k: number): number => MRTD_EXTENSION_BUFFER_SIZE + k * EXTEND_STRIDE;
/**
 * Staging size: whole page blocks, about 64 KiB, so that the pages of a measured run keep their
 * places and the headers written for one page are in place for the page staged there next.
 */
const STAGE_BLOCKS = 10;
const STAGE_SIZE = STAGE_BLOCKS * PAGE_BLOCK;
/**
 * A page block's chunks are moved from a copy of the page in a scratch page just past the stage:
 * moves within one buffer need no view per chunk (the cost of a subarray() each).
 */
const SCRATCH_AT = STAGE_SIZE;
/** A zero page: the source of a measured page that has no bytes (null). */
const ZERO_PAGE = new Uint8Array(TDX_PAGE_SIZE);

/** "MEM.PAGE.ADD" header template (the GPA field is filled per call). */
const PAGE_ADD_HEADER = headerTemplate('MEM.PAGE.ADD');
/** "MR.EXTEND" header template (the GPA field is filled per call). */
const MR_EXTEND_HEADER = headerTemplate('MR.EXTEND');

/** The headers of a page block without their GPAs (the chunks are zero): the stage's pattern. */
const PAGE_BLOCK_PATTERN = ((): Uint8Array => {
  const block = new Uint8Array(PAGE_BLOCK);
  block.set(PAGE_ADD_HEADER, 0);
  for (let k = 0; k < CHUNKS_PER_PAGE; k++) block.set(MR_EXTEND_HEADER, headerAt(k));
  return block;
})();

function headerTemplate(ascii: string): Uint8Array {
  const block = new Uint8Array(MRTD_EXTENSION_BUFFER_SIZE);
  for (let i = 0; i < ascii.length; i++) block[i] = ascii.charCodeAt(i);
  return block;
}

function hexGpa(gpa: bigint): string {
  return `0x${gpa.toString(16)}`;
}

/** The MRTD of one TD: fed by TDH.MEM.PAGE.ADD / TDH.MR.EXTEND, read by TDH.MR.FINALIZE. */
export class TdMeasurement {
  #hash: Hash = createHash('sha384');
  /** The stage, then the scratch page of #pageBlock. */
  #stage = new Uint8Array(STAGE_SIZE + TDX_PAGE_SIZE);
  #view = new DataView(this.#stage.buffer);
  #used = 0;
  /** Per page block of the stage: 1 while it holds PAGE_BLOCK_PATTERN's headers (see #pageBlock). */
  #patterned = new Uint8Array(STAGE_BLOCKS);
  #digest: Uint8Array | undefined;

  /** True once TDH.MR.FINALIZE has run. */
  get finalized(): boolean {
    return this.#digest !== undefined;
  }

  /** TDH.MEM.PAGE.ADD(gpa): one "MEM.PAGE.ADD" buffer. GPA must be 4 KiB aligned. */
  memPageAdd(gpa: bigint): void {
    this.#checkBuilding('TDH.MEM.PAGE.ADD');
    checkGpa('TDH.MEM.PAGE.ADD', gpa, PAGE_OFFSET_MASK);
    this.#header(PAGE_ADD_HEADER, gpa);
  }

  /**
   * TDH.MR.EXTEND(gpa): the "MR.EXTEND" buffer, then the 256 chunk bytes as two buffers.
   * GPA must be 256-byte aligned; `chunk` is the page content at that GPA (a view is fine).
   */
  mrExtend(gpa: bigint, chunk: Uint8Array): void {
    this.#checkBuilding('TDH.MR.EXTEND');
    checkGpa('TDH.MR.EXTEND', gpa, CHUNK_OFFSET_MASK);
    if (chunk.length !== TDX_EXTENDMR_CHUNKSIZE) {
      throw new TdMeasurementError(
        `TDH.MR.EXTEND: chunk is ${chunk.length} bytes, must be ${TDX_EXTENDMR_CHUNKSIZE}`,
        'TDH.MR.EXTEND',
        'operand',
      );
    }
    this.#header(MR_EXTEND_HEADER, gpa);
    this.#reserve(TDX_EXTENDMR_CHUNKSIZE);
    this.#stage.set(chunk, this.#used);
    this.#used += TDX_EXTENDMR_CHUNKSIZE;
  }

  /**
   * The same stream as mrExtend() for a caller that has already checked the operands (the module's
   * TDH.MR.EXTEND: GPA a 256-byte aligned 52-bit address, as a number): the chunk is read straight
   * from `page` at `offset` (null = a zero page), without a BigInt or a view per chunk.
   */
  mrExtendChecked(gpa: number, page: Uint8Array | null, offset: number): void {
    this.#checkBuilding('TDH.MR.EXTEND');
    this.#reserve(MRTD_EXTENSION_BUFFER_SIZE + TDX_EXTENDMR_CHUNKSIZE);
    this.#headerAt(MR_EXTEND_HEADER, gpa);
    const data = this.#used;
    if (page === null) this.#stage.fill(0, data, data + TDX_EXTENDMR_CHUNKSIZE);
    else this.#stage.set(page.subarray(offset, offset + TDX_EXTENDMR_CHUNKSIZE), data);
    this.#used = data + TDX_EXTENDMR_CHUNKSIZE;
  }

  /**
   * mrExtendChecked() of the chunks of the page at `gpa` (4 KiB aligned) from chunk `from` on, in
   * order (null = a zero page): one call per page instead of one per chunk.
   */
  mrExtendPageChecked(gpa: number, page: Uint8Array | null, from: number): void {
    this.#checkBuilding('TDH.MR.EXTEND');
    for (let off = from * TDX_EXTENDMR_CHUNKSIZE; off < TDX_PAGE_SIZE; off += TDX_EXTENDMR_CHUNKSIZE) {
      this.#reserve(MRTD_EXTENSION_BUFFER_SIZE + TDX_EXTENDMR_CHUNKSIZE);
      this.#headerAt(MR_EXTEND_HEADER, gpa + off);
      const data = this.#used;
      const stage = this.#stage;
      if (page === null) stage.fill(0, data, data + TDX_EXTENDMR_CHUNKSIZE);
      else stage.set(page.subarray(off, off + TDX_EXTENDMR_CHUNKSIZE), data);
      this.#used = data + TDX_EXTENDMR_CHUNKSIZE;
    }
  }

  /**
   * memPageAddChecked(gpa) then mrExtendPageChecked(gpa, page, 0): the whole stream of a page that
   * KVM adds with KVM_TDX_MEASURE_MEMORY_REGION (null = a zero page), built in place in the stage.
   */
  memPageAddExtendChecked(gpa: number, page: Uint8Array | null): void {
    this.#checkBuilding('TDH.MEM.PAGE.ADD');
    let src = page ?? ZERO_PAGE;
    if (src.length !== TDX_PAGE_SIZE) {
      // A short page reads as zeroes past its end.
      src = new Uint8Array(TDX_PAGE_SIZE);
      src.set(page!.subarray(0, TDX_PAGE_SIZE));
    }
    this.#pageBlock(gpa, src);
  }

  /** memPageAdd() for a caller that has already checked the GPA (a 4 KiB aligned 52-bit address, as a number). */
  memPageAddChecked(gpa: number): void {
    this.#checkBuilding('TDH.MEM.PAGE.ADD');
    this.#headerAt(PAGE_ADD_HEADER, gpa);
  }

  /** TDH.MR.FINALIZE: close the hash and return MRTD (48 bytes). A second call is refused. */
  finalize(): Uint8Array {
    this.#checkBuilding('TDH.MR.FINALIZE');
    this.#flush();
    const digest = new Uint8Array(this.#hash.digest());
    this.#digest = digest;
    return digest.slice();
  }

  #checkBuilding(op: TdMeasurementOp): void {
    if (this.#digest !== undefined) {
      throw new TdMeasurementError(`${op}: MRTD is already finalized`, op, 'finalized');
    }
  }

  #header(template: Uint8Array, gpa: bigint): void {
    this.#reserve(MRTD_EXTENSION_BUFFER_SIZE);
    this.#stage.set(template, this.#used);
    this.#view.setBigUint64(this.#used + GPA_OFFSET, gpa, true);
    this.#used += MRTD_EXTENSION_BUFFER_SIZE;
  }

  /** #header() with a number GPA (below 2^53): no BigInt per buffer. */
  #headerAt(template: Uint8Array, gpa: number): void {
    this.#reserve(MRTD_EXTENSION_BUFFER_SIZE);
    const at = this.#used;
    this.#stage.set(template, at);
    this.#view.setUint32(at + GPA_OFFSET, gpa >>> 0, true);
    this.#view.setUint32(at + GPA_OFFSET + 4, Math.floor(gpa / 0x1_0000_0000), true);
    this.#used = at + MRTD_EXTENSION_BUFFER_SIZE;
  }

  /**
   * Room for `bytes` more at #used (at most one extension buffer and a chunk). The page blocks
   * they land in no longer hold the pattern.
   */
  #reserve(bytes: number): void {
    if (this.#used + bytes > STAGE_SIZE) this.#flush();
    const at = this.#used;
    this.#patterned[Math.floor(at / PAGE_BLOCK)] = 0;
    this.#patterned[Math.floor((at + bytes - 1) / PAGE_BLOCK)] = 0;
  }

  /**
   * One measured page's block (see PAGE_BLOCK) at a block boundary of the stage. Once the block
   * holds the pattern, only the chunks and the GPAs change from page to page.
   */
  #pageBlock(gpa: number, page: Uint8Array): void {
    let base = this.#used;
    // Not at a block boundary (a PAGE.ADD or MR.EXTEND on its own came before): hash what is staged.
    if (base % PAGE_BLOCK !== 0 || base + PAGE_BLOCK > STAGE_SIZE) {
      this.#flush();
      base = 0;
    }
    const stage = this.#stage;
    const block = base / PAGE_BLOCK;
    if (this.#patterned[block] === 0) {
      stage.set(PAGE_BLOCK_PATTERN, base);
      this.#patterned[block] = 1;
    }
    stage.set(page, SCRATCH_AT);
    for (let k = 0, from = SCRATCH_AT; k < CHUNKS_PER_PAGE; k++, from += TDX_EXTENDMR_CHUNKSIZE)
      stage.copyWithin(base + headerAt(k) + MRTD_EXTENSION_BUFFER_SIZE, from, from + TDX_EXTENDMR_CHUNKSIZE);
    // The GPAs: a page's chunks share the high word (gpa is 4 KiB aligned, so gpa + 0xf00 does not carry).
    const view = this.#view;
    const lo = gpa >>> 0;
    const hi = Math.floor(gpa / 0x1_0000_0000);
    view.setUint32(base + GPA_OFFSET, lo, true);
    view.setUint32(base + GPA_OFFSET + 4, hi, true);
    for (let k = 0, h = base + headerAt(0); k < CHUNKS_PER_PAGE; k++, h += EXTEND_STRIDE) {
      view.setUint32(h + GPA_OFFSET, lo + k * TDX_EXTENDMR_CHUNKSIZE, true);
      view.setUint32(h + GPA_OFFSET + 4, hi, true);
    }
    this.#used = base + PAGE_BLOCK;
  }

  #flush(): void {
    if (this.#used === 0) return;
    this.#hash.update(this.#stage.subarray(0, this.#used));
    this.#used = 0;
  }
}

/** GPA operand check: a u64 aligned to the operation's granularity (`mask` = granularity - 1). */
function checkGpa(op: TdMeasurementOp, gpa: bigint, mask: bigint): void {
  if (gpa < 0n || gpa > U64_MAX || (gpa & mask) !== 0n) {
    throw new TdMeasurementError(
      `${op}: GPA ${hexGpa(gpa)} is not a ${mask + 1n}-byte aligned 64-bit address`,
      op,
      'operand',
    );
  }
}
