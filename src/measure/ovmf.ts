/**
 * OVMF firmware image metadata: the GUIDed footer table, the SEV metadata (SEV_METADATA sections),
 * the SEV-ES reset block and the SEV hash-table descriptor.
 * Sources: edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm (footer table),
 * OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm (SEV metadata), QEMU hw/i386/pc_sysfw_ovmf.c
 * (pc_system_parse_ovmf_flash / pc_system_ovmf_table_find), checked against
 * virtee/sev-snp-measure sevsnpmeasure/ovmf.py at 8f2b337e.
 * Parity: the table walk and the SEV entries. Not parsed here: TDX metadata (measure/tdvf*), SVSM info.
 */

import { FirmwareFormatError } from './errors.js';

export const OVMF_TABLE_FOOTER_GUID = '96b582de-1fb2-45f7-baea-a366c55a082d';
export const OVMF_SEV_METADATA_GUID = 'dc886566-984a-4798-a75e-5585a7bf67cc';
export const SEV_ES_RESET_BLOCK_GUID = '00f771de-1a7e-4fcb-890e-68c77e2fb44e';
export const SEV_HASH_TABLE_RV_GUID = '7255371f-3a3b-4b04-927b-1da6efa8d454';
export const SEV_SECRET_BLOCK_GUID = '4c2eb361-7d9b-4cc3-8081-127c90d3d294';
export const TDX_METADATA_OFFSET_GUID = 'e47a6535-984a-4798-865e-4685a7bf8ec2';

/** SEV metadata section types (edk2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm). */
export const SEV_SECTION_SNP_SEC_MEM = 1;
export const SEV_SECTION_SNP_SECRETS = 2;
export const SEV_SECTION_CPUID = 3;
export const SEV_SECTION_SVSM_CAA = 4;
export const SEV_SECTION_SNP_KERNEL_HASHES = 0x10;

export const SEV_SECTION_NAMES: Readonly<Record<number, string>> = {
  [SEV_SECTION_SNP_SEC_MEM]: 'SNP_SEC_MEM',
  [SEV_SECTION_SNP_SECRETS]: 'SNP_SECRETS',
  [SEV_SECTION_CPUID]: 'CPUID',
  [SEV_SECTION_SVSM_CAA]: 'SVSM_CAA',
  [SEV_SECTION_SNP_KERNEL_HASHES]: 'SNP_KERNEL_HASHES',
};

/** The image is mapped so that it ends at 4 GiB (QEMU pc_system_flash_map / x86_bios_rom_init). */
export const FOUR_GIB = 0x1_0000_0000;

/** Footer-table entry header: u16 length then GUID (16), i.e. 18 bytes, stored after the data. */
const ENTRY_HEADER_SIZE = 18;
/** The table ends 32 bytes before the end of the image (edk2 ResetVectorVtf0.asm). */
const TABLE_END_FROM_IMAGE_END = 32;
/** "ASEV" header: signature, u32 size, u32 version, u32 num_items. */
const SEV_METADATA_HEADER_SIZE = 16;
/** Each section descriptor: u32 gpa, u32 size, u32 type. */
const SEV_METADATA_DESC_SIZE = 12;

/** One SEV metadata section descriptor (OvmfSevMetadata.asm). */
export interface SevMetadataSection {
  gpa: number;
  size: number;
  /** SEV_SECTION_* value, kept raw: an unknown type is the launch builder's error, as in the tool. */
  type: number;
}

/** The parsed firmware image. */
export interface OvmfImage {
  /** The whole image (not copied). */
  readonly data: Uint8Array;
  /** GPA of the image's first byte: it ends at `endAt` (4 GiB by default). */
  readonly gpa: number;
  /** Footer-table entries by lower-case GUID string; each value is the entry's data (a view). */
  readonly table: ReadonlyMap<string, Uint8Array>;
  /** SEV metadata sections in table order; undefined when the image has no SEV metadata entry. */
  readonly sevMetadata: readonly SevMetadataSection[] | undefined;
  /** AP reset EIP from the SEV-ES reset block; undefined when the entry is absent. */
  readonly sevEsResetEip: number | undefined;
  /** SEV hash-table location; undefined when the entry is absent (gpa 0 means unsupported). */
  readonly sevHashTable: { readonly gpa: number; readonly size: number } | undefined;
}

export interface ParseOvmfOptions {
  /** GPA where the image ends (default 4 GiB). */
  endAt?: number;
  /** File name, carried into FirmwareFormatError. */
  file?: string;
}

/** Two lowercase hex digits per byte value (a launch parses a dozen GUIDs; this keeps that cheap). */
const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Format a 16-byte EFI GUID (first three fields little endian) as the usual lower-case string. */
export function guidFromBytes(b: Uint8Array, offset = 0): string {
  const h = (i: number): string => HEX_BYTE[b[offset + i]!]!;
  return `${h(3)}${h(2)}${h(1)}${h(0)}-${h(5)}${h(4)}-${h(7)}${h(6)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}

/** The 16 stored bytes of a GUID string (EFI mixed-endian form). */
export function guidToBytes(guid: string): Uint8Array {
  const hex = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a GUID: ${guid}`);
  const raw = Uint8Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  return Uint8Array.from(order, (i) => raw[i]!);
}

function u16(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

function u32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/**
 * Walk the GUIDed footer table backwards from its footer entry (sev-snp-measure
 * OVMF._parse_footer_table; QEMU pc_system_parse_ovmf_flash). An image without the footer GUID at
 * its place has no table: the result is empty, not an error.
 */
export function parseFooterTable(image: Uint8Array, file?: string): Map<string, Uint8Array> {
  const table = new Map<string, Uint8Array>();
  const footerAt = image.length - TABLE_END_FROM_IMAGE_END - ENTRY_HEADER_SIZE;
  if (footerAt < 0) return table;
  if (guidFromBytes(image, footerAt + 2) !== OVMF_TABLE_FOOTER_GUID) return table;
  // The footer's length covers every entry plus the footer header itself.
  const tableSize = u16(image, footerAt) - ENTRY_HEADER_SIZE;
  if (tableSize < 0) return table;
  const tableStart = footerAt - tableSize;
  if (tableStart < 0) {
    throw new FirmwareFormatError(
      `OVMF footer table (${tableSize} bytes) extends before the start of the image`,
      file,
    );
  }
  let end = footerAt;
  while (end - tableStart >= ENTRY_HEADER_SIZE) {
    const headerAt = end - ENTRY_HEADER_SIZE;
    const size = u16(image, headerAt);
    // sev-snp-measure: "Invalid entry size"; an entry longer than what is left is invalid too.
    if (size < ENTRY_HEADER_SIZE || size > end - tableStart) {
      throw new FirmwareFormatError(`Invalid entry size ${size} in OVMF footer table`, file);
    }
    table.set(guidFromBytes(image, headerAt + 2), image.subarray(end - size, headerAt));
    end -= size;
  }
  return table;
}

function entryU32(
  table: Map<string, Uint8Array>,
  guid: string,
  name: string,
  file?: string,
): number | undefined {
  const data = table.get(guid);
  if (data === undefined) return undefined;
  if (data.length < 4) throw new FirmwareFormatError(`${name} entry in OVMF table is too short`, file);
  return u32(data, 0);
}

/**
 * SEV metadata: the entry holds the header's offset from the end of the image
 * (sev-snp-measure OVMF._parse_sev_metadata; QEMU pc_system_parse_sev_metadata).
 */
function parseSevMetadata(
  image: Uint8Array,
  table: Map<string, Uint8Array>,
  file?: string,
): SevMetadataSection[] | undefined {
  const offsetFromEnd = entryU32(table, OVMF_SEV_METADATA_GUID, 'SEV metadata', file);
  if (offsetFromEnd === undefined) return undefined;
  const start = image.length - offsetFromEnd;
  if (offsetFromEnd === 0 || start < 0 || start + SEV_METADATA_HEADER_SIZE > image.length) {
    throw new FirmwareFormatError(
      `SEV metadata offset 0x${offsetFromEnd.toString(16)} is outside the image`,
      file,
    );
  }
  const sig = String.fromCharCode(image[start]!, image[start + 1]!, image[start + 2]!, image[start + 3]!);
  if (sig !== 'ASEV') throw new FirmwareFormatError('Wrong SEV metadata signature', file);
  const size = u32(image, start + 4);
  if (u32(image, start + 8) !== 1) throw new FirmwareFormatError('Wrong SEV metadata version', file);
  const numItems = u32(image, start + 12);
  // The header's size covers the header and the descriptors (OvmfSevMetadata.asm).
  if (start + size > image.length || SEV_METADATA_HEADER_SIZE + numItems * SEV_METADATA_DESC_SIZE > size) {
    throw new FirmwareFormatError(
      `SEV metadata (size ${size}, ${numItems} sections) does not fit in the image`,
      file,
    );
  }
  const sections: SevMetadataSection[] = [];
  for (let i = 0; i < numItems; i++) {
    const at = start + SEV_METADATA_HEADER_SIZE + i * SEV_METADATA_DESC_SIZE;
    sections.push({ gpa: u32(image, at), size: u32(image, at + 4), type: u32(image, at + 8) });
  }
  return sections;
}

/** Parse the SEV-related metadata of an OVMF image. Throws FirmwareFormatError on a malformed table. */
export function parseOvmf(image: Uint8Array, opts: ParseOvmfOptions = {}): OvmfImage {
  const { file } = opts;
  const endAt = opts.endAt ?? FOUR_GIB;
  const table = parseFooterTable(image, file);
  const sevMetadata = parseSevMetadata(image, table, file);
  const sevEsResetEip = entryU32(table, SEV_ES_RESET_BLOCK_GUID, 'SEV-ES reset block', file);
  let sevHashTable: OvmfImage['sevHashTable'];
  const ht = table.get(SEV_HASH_TABLE_RV_GUID);
  if (ht !== undefined) {
    // QEMU SevHashTableDescriptor { u32 base; u32 size; }
    if (ht.length < 8) throw new FirmwareFormatError('SEV hash table entry in OVMF table is too short', file);
    sevHashTable = { gpa: u32(ht, 0), size: u32(ht, 4) };
  }
  return { data: image, gpa: endAt - image.length, table, sevMetadata, sevEsResetEip, sevHashTable };
}
