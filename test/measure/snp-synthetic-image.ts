/**
 * Synthetic OVMF-like images for the SNP tests, laid out as measurement.md §2.3 describes: a GUIDed
 * footer table ending 32 bytes before the image end, entries `data | u16 length | GUID` walked
 * backwards from the footer, and an "ASEV" SEV metadata header located by its offset from the end.
 */
import {
  guidToBytes,
  OVMF_SEV_METADATA_GUID,
  OVMF_TABLE_FOOTER_GUID,
  SEV_ES_RESET_BLOCK_GUID,
  SEV_HASH_TABLE_RV_GUID,
  type SevMetadataSection,
} from '../../src/measure/ovmf.js';

export interface SyntheticImage {
  size?: number;
  /** undefined: no SEV metadata entry at all. */
  sections?: SevMetadataSection[];
  /** undefined: no reset block entry. Default 0x80b004. */
  resetEip?: number | null;
  hashTable?: { gpa: number; size: number };
  signature?: string;
  version?: number;
  /** Where the ASEV header goes, from the image start. */
  metadataAt?: number;
}

function le(n: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUIntLE(n, 0, bytes);
  return b;
}

export function buildImage(spec: SyntheticImage): Buffer {
  const size = spec.size ?? 0x2000;
  const image = Buffer.alloc(size);
  const entries: Buffer[] = [];
  const entry = (guid: string, data: Buffer): void => {
    entries.push(Buffer.concat([data, le(data.length + 18, 2), guidToBytes(guid)]));
  };
  if (spec.sections !== undefined) {
    const at = spec.metadataAt ?? 0x100;
    const header = Buffer.concat([
      Buffer.from(spec.signature ?? 'ASEV', 'latin1'),
      le(16 + 12 * spec.sections.length, 4),
      le(spec.version ?? 1, 4),
      le(spec.sections.length, 4),
      ...spec.sections.flatMap((s) => [le(s.gpa, 4), le(s.size, 4), le(s.type, 4)]),
    ]);
    header.copy(image, at);
    entry(OVMF_SEV_METADATA_GUID, le(size - at, 4));
  }
  const eip = spec.resetEip === undefined ? 0x80b004 : spec.resetEip;
  if (eip !== null) entry(SEV_ES_RESET_BLOCK_GUID, le(eip, 4));
  if (spec.hashTable)
    entry(SEV_HASH_TABLE_RV_GUID, Buffer.concat([le(spec.hashTable.gpa, 4), le(spec.hashTable.size, 4)]));
  const body = Buffer.concat(entries);
  const table = Buffer.concat([body, le(body.length + 18, 2), guidToBytes(OVMF_TABLE_FOOTER_GUID)]);
  table.copy(image, size - 32 - table.length);
  return image;
}
