/**
 * TDVF metadata: which parts of a TD firmware image are loaded where, and which are measured.
 * Layout: Intel TDVF Design Guide, "TDVF metadata" (descriptor + 32-byte TDVF_SECTION entries).
 * Location and checks as in QEMU hw/i386/tdvf.c tdvf_get_metadata()/tdvf_parse_metadata() and
 * td-shim td-shim-tools/src/tee_info_hash.rs build_mrtd() (the MRTD reference tool), see
 * shared/reference/measurement.md sections 5.2 and 5.3.
 * Parity: OVMF footer-table lookup, td-shim pointer fallback, descriptor and section checks.
 * Not handled: IGVM images. findOvmfFooterEntry() is a local copy until measure/ovmf.ts lands.
 */

import { FirmwareFormatError } from './errors.js';

/** OVMF GUIDed footer table terminator (edk2 OvmfPkg/ResetVector, measurement.md 2.3). */
export const OVMF_TABLE_FOOTER_GUID = '96b582de-1fb2-45f7-baea-a366c55a082d';
/** Footer-table entry whose first u32 is the TDVF descriptor's offset from the end of the file. */
export const TDX_METADATA_OFFSET_GUID = 'e47a6535-984a-4798-865e-4685a7bf8ec2';
/** GUID stored in the 16 bytes just before the "TDVF" descriptor (td-shim TdxMetadataGuid). */
export const TDX_METADATA_GUID = 'e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae';

/** "TDVF" read as a little-endian u32 (QEMU TDVF_SIGNATURE). */
export const TDVF_SIGNATURE = 0x46564454;
/** Only version 1 is defined (QEMU TDX_METADATA_VERSION). */
export const TDVF_VERSION = 1;
/** Section attribute bit 0: the pages are measured with TDH.MR.EXTEND (TDVF_SECTION_ATTRIBUTES_MR_EXTEND). */
export const TDVF_ATTR_MR_EXTEND = 0x1;
/** Section attribute bit 1: the pages are added later with TDH.MEM.PAGE.AUG, not PAGE.ADD at build time. */
export const TDVF_ATTR_PAGE_AUG = 0x2;

/** TDVF_SECTION.Type values (TDVF Design Guide; 7 and 8 are td-shim's). Types >= 9 are invalid. */
export const TdvfSectionType = {
  BFV: 0,
  CFV: 1,
  TD_HOB: 2,
  TempMem: 3,
  PermMem: 4,
  Payload: 5,
  PayloadParam: 6,
  TD_INFO: 7,
  TD_PARAMS: 8,
} as const;
export type TdvfSectionTypeName = keyof typeof TdvfSectionType;
const SECTION_TYPE_NAMES = Object.keys(TdvfSectionType) as TdvfSectionTypeName[];
/** td-shim TDX_METADATA_SECTION_TYPE_MAX. */
const SECTION_TYPE_MAX = 9;

/** One TDVF_SECTION (32 bytes: u32 DataOffset, u32 RawDataSize, u64 MemoryAddress, u64 MemoryDataSize, u32 Type, u32 Attributes). */
export interface TdvfSection {
  /** Position in the metadata table (table order is launch order). */
  readonly index: number;
  /** DataOffset: file offset of the raw data. */
  readonly dataOffset: number;
  /** RawDataSize: bytes of raw data in the file. */
  readonly rawDataSize: number;
  /** MemoryAddress: the GPA the section is loaded at (4 KiB aligned). */
  readonly memoryAddress: bigint;
  /** MemoryDataSize: bytes of guest memory (4 KiB aligned, >= RawDataSize except TD_INFO). */
  readonly memoryDataSize: bigint;
  readonly type: number;
  readonly typeName: TdvfSectionTypeName;
  readonly attributes: number;
  /** Attributes bit 0. */
  readonly mrExtend: boolean;
  /** Attributes bit 1 (td-shim calls it EXTEND_MEM_PAGE_ADD; set means NOT added at build time). */
  readonly pageAug: boolean;
}

export interface TdvfMetadata {
  /** How the descriptor was found. */
  readonly locatedBy: 'ovmf-footer' | 'td-shim-pointer';
  /** File offset of the "TDVF" descriptor. */
  readonly descriptorOffset: number;
  /** Descriptor Length field (16 + 32 * sections). */
  readonly length: number;
  readonly version: number;
  readonly sections: readonly TdvfSection[];
}

const GUID_SIZE = 16;
/** The footer entry (u16 length + GUID) ends 32 bytes before the end of the file. */
const FOOTER_END_FROM_EOF = 0x20;
/** Size of an entry's trailer: u16 length + GUID. */
const ENTRY_TRAILER = 2 + GUID_SIZE;
/** td-shim images: u32 at (file size - 0x20) = file offset of the descriptor (td-shim TDVF_DESCRIPTOR_OFFSET). */
const TD_SHIM_DESCRIPTOR_POINTER_FROM_EOF = 0x20;
const DESCRIPTOR_SIZE = 16;
const SECTION_SIZE = 32;
const PAGE_OFFSET_MASK = 0xfffn;
const U64_LIMIT = 1n << 64n;

/** Canonical GUID text -> its 16 stored bytes (EFI form: first three fields LE, last 8 as written). */
export function guidBytes(guid: string): Uint8Array {
  const hex = guid.replaceAll('-', '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a GUID: ${guid}`);
  const raw = new Uint8Array(GUID_SIZE);
  for (let i = 0; i < GUID_SIZE; i++) raw[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  // Swap data1 (u32), data2 (u16), data3 (u16) to little-endian.
  return Uint8Array.of(
    raw[3]!,
    raw[2]!,
    raw[1]!,
    raw[0]!,
    raw[5]!,
    raw[4]!,
    raw[7]!,
    raw[6]!,
    ...raw.subarray(8),
  );
}

const FOOTER_GUID_BYTES = guidBytes(OVMF_TABLE_FOOTER_GUID);
const OFFSET_GUID_BYTES = guidBytes(TDX_METADATA_OFFSET_GUID);
const METADATA_GUID_BYTES = guidBytes(TDX_METADATA_GUID);

function bytesEqual(image: Uint8Array, at: number, expected: Uint8Array): boolean {
  if (at < 0 || at + expected.length > image.length) return false;
  for (let i = 0; i < expected.length; i++) if (image[at + i] !== expected[i]) return false;
  return true;
}

function viewOf(image: Uint8Array): DataView {
  return new DataView(image.buffer, image.byteOffset, image.byteLength);
}

/**
 * The data of the OVMF footer-table entry named `guid` (a view into `image`), or undefined when the
 * image has no footer table or no such entry. Walk as in QEMU pc_system_parse_ovmf_flash() and
 * measurement.md 2.3: footer GUID at EOF-0x30, u16 total length before it; entries walk backwards,
 * each `data | u16 length | GUID` with length covering all three; stop at a malformed length.
 */
export function findOvmfFooterEntry(image: Uint8Array, guid: string | Uint8Array): Uint8Array | undefined {
  const want = typeof guid === 'string' ? guidBytes(guid) : guid;
  const footerEnd = image.length - FOOTER_END_FROM_EOF;
  if (footerEnd < ENTRY_TRAILER || !bytesEqual(image, footerEnd - GUID_SIZE, FOOTER_GUID_BYTES))
    return undefined;
  const view = viewOf(image);
  const total = view.getUint16(footerEnd - ENTRY_TRAILER, true);
  const tableStart = footerEnd - total; // total counts the footer entry itself
  if (total < ENTRY_TRAILER || tableStart < 0) return undefined;
  let end = footerEnd - ENTRY_TRAILER;
  while (end - tableStart >= ENTRY_TRAILER) {
    const len = view.getUint16(end - ENTRY_TRAILER, true);
    if (len < ENTRY_TRAILER || end - len < tableStart) return undefined;
    if (bytesEqual(image, end - GUID_SIZE, want)) return image.subarray(end - len, end - ENTRY_TRAILER);
    end -= len;
  }
  return undefined;
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** Where the "TDVF" descriptor is: OVMF footer entry first, else the td-shim pointer (measurement.md 5.3). */
function locateDescriptor(
  image: Uint8Array,
  fail: (msg: string) => FirmwareFormatError,
): { offset: number; locatedBy: TdvfMetadata['locatedBy'] } {
  const size = image.length;
  const entry = findOvmfFooterEntry(image, OFFSET_GUID_BYTES);
  if (entry !== undefined) {
    if (entry.length < 4) throw fail('TDX metadata offset entry in the OVMF footer table is too short');
    // QEMU tdvf_get_metadata(): descriptor at size - offset, must leave room for the 16-byte header.
    const fromEnd = viewOf(entry).getUint32(0, true);
    const offset = size - fromEnd;
    if (fromEnd === 0 || offset < 0 || offset + DESCRIPTOR_SIZE > size) {
      throw fail(`TDX metadata offset ${hex(fromEnd)} (from end) points outside the ${size}-byte file`);
    }
    return { offset, locatedBy: 'ovmf-footer' };
  }
  // A footer table without the entry: td-shim would read metadata at offset 0 and fail on the GUID.
  if (bytesEqual(image, size - FOOTER_END_FROM_EOF - GUID_SIZE, FOOTER_GUID_BYTES)) {
    throw fail(
      `no TDX metadata: the OVMF footer table has no TDX metadata offset entry (${TDX_METADATA_OFFSET_GUID})`,
    );
  }
  // td-shim build_mrtd(): no OVMF footer -> u32 at size - 0x20 is the descriptor's file offset.
  if (size < TD_SHIM_DESCRIPTOR_POINTER_FROM_EOF) throw fail(`no TDX metadata: file is only ${size} bytes`);
  const offset = viewOf(image).getUint32(size - TD_SHIM_DESCRIPTOR_POINTER_FROM_EOF, true);
  if (
    offset < GUID_SIZE ||
    offset + DESCRIPTOR_SIZE > size ||
    !bytesEqual(image, offset - GUID_SIZE, METADATA_GUID_BYTES)
  ) {
    throw fail('no TDX metadata: neither an OVMF footer table nor a td-shim metadata pointer');
  }
  return { offset, locatedBy: 'td-shim-pointer' };
}

/**
 * Parse and validate the TDVF metadata of a firmware image. Throws FirmwareFormatError (one line)
 * when the metadata is missing, malformed, or points outside the file (e.g. OVMF_CODE.fd alone,
 * whose BFV offsets are those of the combined OVMF.fd, measurement.md 5.6).
 */
export function parseTdvfMetadata(image: Uint8Array, file?: string): TdvfMetadata {
  const where = file === undefined ? '' : `${file}: `;
  const fail = (msg: string): FirmwareFormatError => new FirmwareFormatError(`${where}${msg}`, file);
  const size = image.length;
  const { offset, locatedBy } = locateDescriptor(image, fail);

  // td-shim build_mrtd(): the metadata GUID precedes the descriptor.
  if (!bytesEqual(image, offset - GUID_SIZE, METADATA_GUID_BYTES)) {
    throw fail(`no TDX metadata GUID (${TDX_METADATA_GUID}) before the descriptor at ${hex(offset)}`);
  }
  const view = viewOf(image);
  const signature = view.getUint32(offset, true);
  const length = view.getUint32(offset + 4, true);
  const version = view.getUint32(offset + 8, true);
  const count = view.getUint32(offset + 12, true);
  // Descriptor checks: td-shim TdxMetadataDescriptor::is_valid(), QEMU tdvf_get_metadata()/tdvf_parse_metadata().
  if (signature !== TDVF_SIGNATURE) {
    throw fail(`bad TDVF descriptor signature ${hex(signature)} at ${hex(offset)} (expected "TDVF")`);
  }
  if (version !== TDVF_VERSION) throw fail(`unsupported TDVF metadata version ${version} (expected 1)`);
  if (count === 0) throw fail('TDVF metadata has no sections');
  if (length !== DESCRIPTOR_SIZE + SECTION_SIZE * count) {
    throw fail(`TDVF metadata length ${hex(length)} does not match ${count} sections`);
  }
  if (offset + length > size) {
    throw fail(
      `TDVF metadata at ${hex(offset)} (${length} bytes) runs past the end of the ${size}-byte file`,
    );
  }

  const sections: TdvfSection[] = [];
  for (let index = 0; index < count; index++) {
    const at = offset + DESCRIPTOR_SIZE + index * SECTION_SIZE;
    const dataOffset = view.getUint32(at, true);
    const rawDataSize = view.getUint32(at + 4, true);
    const memoryAddress = view.getBigUint64(at + 8, true);
    const memoryDataSize = view.getBigUint64(at + 16, true);
    const type = view.getUint32(at + 24, true);
    const attributes = view.getUint32(at + 28, true);
    // Section checks: td-shim build_mrtd() sanity checks, QEMU tdvf_parse_and_check_section_entry().
    if (type >= SECTION_TYPE_MAX) throw fail(`section ${index}: invalid type ${type}`);
    const typeName = SECTION_TYPE_NAMES[type]!;
    const what = `section ${index} (${typeName})`;
    if ((memoryAddress & PAGE_OFFSET_MASK) !== 0n) {
      throw fail(`${what}: MemoryAddress ${hex(memoryAddress)} is not 4 KiB aligned`);
    }
    if ((memoryDataSize & PAGE_OFFSET_MASK) !== 0n) {
      throw fail(`${what}: MemoryDataSize ${hex(memoryDataSize)} is not 4 KiB aligned`);
    }
    if (memoryAddress + memoryDataSize > U64_LIMIT) {
      throw fail(`${what}: MemoryAddress ${hex(memoryAddress)} + ${hex(memoryDataSize)} wraps past 2^64`);
    }
    // TD_INFO has no memory (td-shim: MemoryAddress and MemoryDataSize are zero for it).
    const hasMemory = memoryAddress !== 0n || memoryDataSize !== 0n;
    if (type !== TdvfSectionType.TD_INFO && hasMemory && memoryDataSize < BigInt(rawDataSize)) {
      throw fail(`${what}: RawDataSize ${hex(rawDataSize)} exceeds MemoryDataSize ${hex(memoryDataSize)}`);
    }
    if (dataOffset + rawDataSize > size) {
      throw fail(
        `${what}: data ${hex(dataOffset)}+${hex(rawDataSize)} runs past the end of the ${size}-byte file`,
      );
    }
    sections.push({
      index,
      dataOffset,
      rawDataSize,
      memoryAddress,
      memoryDataSize,
      type,
      typeName,
      attributes,
      mrExtend: (attributes & TDVF_ATTR_MR_EXTEND) !== 0,
      pageAug: (attributes & TDVF_ATTR_PAGE_AUG) !== 0,
    });
  }
  return { locatedBy, descriptorOffset: offset, length, version, sections };
}
