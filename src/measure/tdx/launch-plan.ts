/**
 * The TD launch a VMM does for a TDVF image, as data: the KVM_TDX_INIT_MEM_REGION calls and the
 * TDX-module operations (TDH.MEM.PAGE.ADD, TDH.MR.EXTEND) they cause, in order.
 * Sources: QEMU target/i386/kvm/tdx.c tdx_init_fw_mem_region() (one INIT_MEM_REGION per TDVF
 * section, MEASURE iff MR.EXTEND); KVM arch/x86/kvm/vmx/tdx.c tdx_gmem_post_populate() (per page:
 * PAGE.ADD, then 16 x MR.EXTEND of 256 bytes when MEASURE); orders as in measurement.md 5.4.
 * Parity: the operation stream of td-shim's tee-info-hash (single pass) and of the two-pass tools.
 * Not modelled: the TD HOB QEMU writes into the TD_HOB section (added, never extended).
 */

import { TDX_EXTENDMR_CHUNKSIZE, TDX_PAGE_SIZE, TdMeasurement } from '../../kernel/arch/tdx/mrtd.js';
import { FirmwareFormatError } from '../errors.js';
import { parseTdvfMetadata, type TdvfMetadata, type TdvfSection } from '../tdvf.js';

/**
 * 'single': per page, PAGE.ADD then its 16 MR.EXTENDs (upstream KVM KVM_TDX_INIT_MEM_REGION,
 * td-shim tee-info-hash, dstack-mr for QEMU >= 9). 'two-pass': per section, every PAGE.ADD, then
 * every MR.EXTEND (older TDX QEMU/KVM stacks; dstack-mr for QEMU 8.x, quex td-report-web).
 */
export type TdPageOrder = 'single' | 'two-pass';

export interface TdLaunchOptions {
  readonly order: TdPageOrder;
  /** File name for error messages. */
  readonly file?: string;
}

/** One KVM_TDX_INIT_MEM_REGION call (struct kvm_tdx_init_mem_region plus its flag). */
export interface TdInitMemRegion {
  /** The TDVF section it loads. */
  readonly section: number;
  readonly gpa: bigint;
  readonly nrPages: number;
  /** nrPages * 4096 bytes: the raw data, zero-padded to MemoryDataSize (td-shim tee_info_hash.rs). */
  readonly source: Uint8Array;
  /** KVM_TDX_MEASURE_MEMORY_REGION: the section has the MR.EXTEND attribute. */
  readonly measure: boolean;
}

/** A TDX-module operation the launch causes. `source` and `chunk` are views into the region's source. */
export type TdModuleOp =
  | { readonly kind: 'page_add'; readonly gpa: bigint; readonly source: Uint8Array; readonly region: number }
  | { readonly kind: 'mr_extend'; readonly gpa: bigint; readonly chunk: Uint8Array; readonly region: number };

export interface TdLaunchPlan {
  readonly order: TdPageOrder;
  readonly metadata: TdvfMetadata;
  /** In TDVF metadata order (QEMU for_each_tdx_fw_entry). */
  readonly regions: readonly TdInitMemRegion[];
  readonly ops: readonly TdModuleOp[];
}

/** Largest section modelled as one region (its source is materialised in memory). */
const MAX_REGION_BYTES = 1n << 30n;
const PAGE_SIZE_N = BigInt(TDX_PAGE_SIZE);
const CHUNK_SIZE_N = BigInt(TDX_EXTENDMR_CHUNKSIZE);

/** The source bytes of a section: a view when the raw data fills it, else a zero-padded copy. */
function sectionSource(image: Uint8Array, section: TdvfSection, bytes: number): Uint8Array {
  const raw = image.subarray(section.dataOffset, section.dataOffset + section.rawDataSize);
  if (section.rawDataSize === bytes) return raw;
  // td-shim tee_info_hash.rs build_mrtd(): section_data.resize(MemoryDataSize) pads with zeros.
  const padded = new Uint8Array(bytes);
  padded.set(raw);
  return padded;
}

/** The INIT_MEM_REGION calls: every section except PAGE.AUG ones (those pages are accepted later). */
function initMemRegions(image: Uint8Array, metadata: TdvfMetadata, file?: string): TdInitMemRegion[] {
  const fail = (msg: string): FirmwareFormatError =>
    new FirmwareFormatError(file === undefined ? msg : `${file}: ${msg}`, file);
  const regions: TdInitMemRegion[] = [];
  for (const section of metadata.sections) {
    const what = `section ${section.index} (${section.typeName})`;
    if (section.pageAug) {
      // MR.EXTEND needs a page added by PAGE.ADD: both bits together cannot be launched.
      if (section.mrExtend) {
        throw fail(`${what}: both MR.EXTEND and PAGE.AUG are set`);
      }
      continue;
    }
    if (section.memoryDataSize === 0n) continue; // no pages (e.g. td-shim TD_INFO)
    if (section.memoryDataSize > MAX_REGION_BYTES) {
      throw fail(`${what}: MemoryDataSize 0x${section.memoryDataSize.toString(16)} is too large to load`);
    }
    const bytes = Number(section.memoryDataSize);
    regions.push({
      section: section.index,
      gpa: section.memoryAddress,
      nrPages: bytes / TDX_PAGE_SIZE,
      source: sectionSource(image, section, bytes),
      measure: section.mrExtend,
    });
  }
  return regions;
}

function pushExtends(ops: TdModuleOp[], region: TdInitMemRegion, index: number, page: number): void {
  let gpa = region.gpa + BigInt(page) * PAGE_SIZE_N;
  for (let off = page * TDX_PAGE_SIZE, end = off + TDX_PAGE_SIZE; off < end; off += TDX_EXTENDMR_CHUNKSIZE) {
    ops.push({
      kind: 'mr_extend',
      gpa,
      chunk: region.source.subarray(off, off + TDX_EXTENDMR_CHUNKSIZE),
      region: index,
    });
    gpa += CHUNK_SIZE_N;
  }
}

function pushAdd(ops: TdModuleOp[], region: TdInitMemRegion, index: number, page: number): void {
  const off = page * TDX_PAGE_SIZE;
  ops.push({
    kind: 'page_add',
    gpa: region.gpa + BigInt(page) * PAGE_SIZE_N,
    source: region.source.subarray(off, off + TDX_PAGE_SIZE),
    region: index,
  });
}

/** Parse the TDVF metadata of `image` and lay out the launch in the chosen order. */
export function planTdLaunch(image: Uint8Array, opts: TdLaunchOptions): TdLaunchPlan {
  const metadata = parseTdvfMetadata(image, opts.file);
  const regions = initMemRegions(image, metadata, opts.file);
  // The per-chunk operation list (17 objects a page) is for tests and computeMrtdFromPlan(): the
  // launch itself only needs the regions, so the list is built on first use.
  let ops: TdModuleOp[] | undefined;
  return {
    order: opts.order,
    metadata,
    regions,
    get ops(): readonly TdModuleOp[] {
      ops ??= moduleOps(regions, opts.order);
      return ops;
    },
  };
}

function moduleOps(regions: readonly TdInitMemRegion[], order: TdPageOrder): TdModuleOp[] {
  const ops: TdModuleOp[] = [];
  regions.forEach((region, index) => {
    if (order === 'single') {
      // tdx_gmem_post_populate(): per page, TDH.MEM.PAGE.ADD then TDH.MR.EXTEND x 16.
      for (let page = 0; page < region.nrPages; page++) {
        pushAdd(ops, region, index, page);
        if (region.measure) pushExtends(ops, region, index, page);
      }
    } else {
      // Two pass: all of the section's PAGE.ADDs, then all of its MR.EXTENDs.
      for (let page = 0; page < region.nrPages; page++) pushAdd(ops, region, index, page);
      if (region.measure)
        for (let page = 0; page < region.nrPages; page++) pushExtends(ops, region, index, page);
    }
  });
  return ops;
}

/** Feed a plan's operations to a fresh TdMeasurement and finalize: the MRTD this launch yields. */
export function computeMrtdFromPlan(plan: TdLaunchPlan): Uint8Array {
  const mrtd = new TdMeasurement();
  for (const op of plan.ops) {
    if (op.kind === 'page_add') mrtd.memPageAdd(op.gpa);
    else mrtd.mrExtend(op.gpa, op.chunk);
  }
  return mrtd.finalize();
}
