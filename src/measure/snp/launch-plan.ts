/**
 * The SNP launch a VMM performs for an OVMF image, as data: the ordered SNP_LAUNCH_UPDATE pages
 * (firmware, SEV metadata sections, VMSAs) and the vCPU reset states behind the VMSAs.
 * Order and page types: QEMU target/i386/sev.c (sev_snp_launch_update for the flash,
 * snp_populate_metadata_pages at sev_snp_launch_finish, then KVM's LAUNCH_UPDATE of each vCPU's
 * VMSA), as reproduced by virtee/sev-snp-measure sevsnpmeasure/guest.py snp_calc_launch_digest()
 * at 8f2b337e, including its ec2 and gce variants and the snp:ovmf-hash split.
 * Parity: every SNP-mode option of sev-snp-measure except snp:svsm.
 *
 * The plan is not a measurement: the modelled PSP firmware computes the digest from the pages it is
 * given. The digest itself is only ever the modelled PSP's (launch.ts).
 */

import {
  SNP_PAGE_SIZE,
  SNP_PAGE_TYPE_CPUID,
  SNP_PAGE_TYPE_NORMAL,
  SNP_PAGE_TYPE_SECRETS,
  SNP_PAGE_TYPE_UNMEASURED,
  SNP_PAGE_TYPE_VMSA,
  SNP_PAGE_TYPE_ZERO,
  SNP_VMSA_GPA,
  type SnpPageType,
} from '../../kernel/arch/sev/launch-digest.js';
import { FirmwareFormatError } from '../errors.js';
import {
  OVMF_SEV_METADATA_GUID,
  type OvmfImage,
  parseOvmf,
  SEV_SECTION_CPUID,
  SEV_SECTION_NAMES,
  SEV_SECTION_SNP_KERNEL_HASHES,
  SEV_SECTION_SNP_SEC_MEM,
  SEV_SECTION_SNP_SECRETS,
  SEV_SECTION_SVSM_CAA,
  type SevMetadataSection,
} from '../ovmf.js';
import { buildSevHashesPage, computeSevHashes } from './kernel-hashes.js';
import { encodeVmsa, type SevVcpuState, type SevVmmType, vcpuResetState } from './vmsa.js';

export type SnpMeasureMode = 'snp' | 'snp:ovmf-hash';

/** sev-snp-measure's SNP options (its CLI names in the comments). */
export interface SnpMeasureOptions {
  /** --mode: 'snp' (default) or 'snp:ovmf-hash' (firmware pages only, to hand the hash over). */
  mode?: SnpMeasureMode;
  /** --vcpus; required in 'snp' mode. 0 launches no vCPU (no VMSA page), as sev-snp-measure computes it. */
  vcpus?: number;
  /**
   * --vcpu-sig / --vcpu-type / --vcpu-family..; required for qemu, unused by ec2 and gce (RDX 0x600).
   * The 64-bit RDX: a bigint above 32 bits is kept as sev-snp-measure keeps it (modulo 2^64).
   */
  vcpuSig?: number | bigint;
  /** --vmm-type, default 'qemu'. */
  vmmType?: SevVmmType;
  /** --guest-features (SEV_FEATURES), default 0x1. */
  guestFeatures?: bigint;
  /** --kernel contents: measured direct boot through the SNP_KERNEL_HASHES page. */
  kernel?: Uint8Array;
  /** --initrd contents (needs kernel). */
  initrd?: Uint8Array;
  /** --append (needs kernel). */
  append?: string;
  /** --snp-ovmf-hash: start from this digest (48 bytes) and skip the firmware pages. */
  ovmfHash?: Uint8Array;
  /** File name for FirmwareFormatError. */
  file?: string;
}

/** Where a launch region comes from. */
export type SnpRegionSource = 'firmware' | 'metadata' | 'vmsa';

/** One SNP_LAUNCH_UPDATE call of the VMM (or, for 'vmsa', of KVM at LAUNCH_FINISH). */
export interface SnpLaunchRegion {
  source: SnpRegionSource;
  pageType: SnpPageType;
  gpa: bigint;
  /** Bytes, a multiple of 4096. */
  size: number;
  /** Page bytes for NORMAL and VMSA regions (views into the image where possible). */
  contents?: Uint8Array;
  /** The metadata section, for source 'metadata'. */
  section?: SevMetadataSection;
  /** vCPU index, for source 'vmsa'. */
  vcpu?: number;
}

/** One measured page, in firmware order. */
export interface SnpPageUpdate {
  pageType: SnpPageType;
  gpa: bigint;
  /** 4096 bytes for NORMAL and VMSA pages. */
  contents?: Uint8Array;
  /** Index into SnpLaunchPlan.regions. */
  region: number;
}

export interface SnpLaunchPlan {
  mode: SnpMeasureMode;
  ovmf: OvmfImage;
  /** Seed of the launch digest (--snp-ovmf-hash); zeros when absent. */
  initialDigest?: Uint8Array;
  regions: SnpLaunchRegion[];
  updates: SnpPageUpdate[];
  /** vCPU reset states, vCPU 0 (BSP) first; their encodings are the VMSA regions' contents. */
  vcpus: SevVcpuState[];
}

const PAGE_MASK = 0xfff;
const FOUR_GIB = 0x1_0000_0000;

class PlanBuilder {
  readonly regions: SnpLaunchRegion[] = [];

  add(region: SnpLaunchRegion): void {
    this.regions.push(region);
  }

  plan(fields: Omit<SnpLaunchPlan, 'regions' | 'updates'>): SnpLaunchPlan {
    return new Plan(fields, this.regions);
  }
}

/**
 * A plan whose per-page `updates` (an object and a view per page) are built on first use: the
 * launch itself only needs the regions; tests read the pages. A class, not an object literal with
 * a getter: V8 (Node 20) kept such literals alive through young-generation GCs.
 */
class Plan implements SnpLaunchPlan {
  readonly mode: SnpMeasureMode;
  readonly ovmf: OvmfImage;
  readonly initialDigest?: Uint8Array;
  readonly vcpus: SevVcpuState[];
  private pages: SnpPageUpdate[] | undefined;

  constructor(
    fields: Omit<SnpLaunchPlan, 'regions' | 'updates'>,
    readonly regions: SnpLaunchRegion[],
  ) {
    this.mode = fields.mode;
    this.ovmf = fields.ovmf;
    if (fields.initialDigest !== undefined) this.initialDigest = fields.initialDigest;
    this.vcpus = fields.vcpus;
  }

  get updates(): SnpPageUpdate[] {
    this.pages ??= pageUpdates(this.regions);
    return this.pages;
  }
}

/** A VMSA region: its page is encoded on first read (the launch itself does not read it). */
class VmsaRegion implements SnpLaunchRegion {
  readonly source = 'vmsa';
  readonly pageType = SNP_PAGE_TYPE_VMSA;
  readonly gpa = SNP_VMSA_GPA;
  readonly size = SNP_PAGE_SIZE;
  constructor(
    private readonly page: () => Uint8Array,
    readonly vcpu: number,
  ) {}
  get contents(): Uint8Array {
    return this.page();
  }
}

function pageUpdates(regions: readonly SnpLaunchRegion[]): SnpPageUpdate[] {
  const updates: SnpPageUpdate[] = [];
  regions.forEach((region, index) => {
    const measured = region.pageType === SNP_PAGE_TYPE_NORMAL || region.pageType === SNP_PAGE_TYPE_VMSA;
    for (let off = 0; off < region.size; off += SNP_PAGE_SIZE) {
      const gpa = region.gpa + BigInt(off);
      if (measured) {
        const contents = region.contents!.subarray(off, off + SNP_PAGE_SIZE);
        updates.push({ pageType: region.pageType, gpa, contents, region: index });
      } else {
        updates.push({ pageType: region.pageType, gpa, region: index });
      }
    }
  });
  return updates;
}

/** encodeVmsa(state), computed on the first call and shared after. */
function encodedOnce(state: SevVcpuState): () => Uint8Array {
  let page: Uint8Array | undefined;
  return () => {
    page ??= encodeVmsa(state);
    return page;
  };
}

function sectionLabel(index: number, s: SevMetadataSection): string {
  const name = SEV_SECTION_NAMES[s.type] ?? `type 0x${s.type.toString(16)}`;
  return `SEV metadata section ${index} (${name}, gpa 0x${s.gpa.toString(16)}, size 0x${s.size.toString(16)})`;
}

/** Firmware pages: the whole image, NORMAL, in increasing GPA (sev-snp-measure update_normal_pages). */
function addFirmware(b: PlanBuilder, ovmf: OvmfImage, file?: string): void {
  const size = ovmf.data.length;
  if (size === 0 || size % SNP_PAGE_SIZE !== 0 || size > FOUR_GIB) {
    throw new FirmwareFormatError(
      `OVMF image size ${size} is not a non-zero multiple of 4096 below 4 GiB`,
      file,
    );
  }
  b.add({
    source: 'firmware',
    pageType: SNP_PAGE_TYPE_NORMAL,
    gpa: BigInt(ovmf.gpa),
    size,
    contents: ovmf.data,
  });
}

/** One metadata section (sev-snp-measure snp_update_section; QEMU snp_populate_metadata_pages). */
function addSection(
  b: PlanBuilder,
  index: number,
  s: SevMetadataSection,
  ovmf: OvmfImage,
  opts: SnpMeasureOptions,
  vmmType: SevVmmType,
): void {
  const file = opts.file;
  const gpa = BigInt(s.gpa);
  // The section's region, field by field (no object spread: a plan is made per launch).
  const region = (pageType: SnpPageType, size: number, contents?: Uint8Array): SnpLaunchRegion =>
    contents === undefined
      ? { source: 'metadata', pageType, gpa, size, section: s }
      : { source: 'metadata', pageType, gpa, size, contents, section: s };
  if ((s.gpa & PAGE_MASK) !== 0) {
    throw new FirmwareFormatError(`${sectionLabel(index, s)} is not page aligned`, file);
  }
  const ranged = (pageType: SnpPageType): void => {
    if (s.size % SNP_PAGE_SIZE !== 0) {
      throw new FirmwareFormatError(`${sectionLabel(index, s)} size is not a multiple of 4096`, file);
    }
    if (s.size > 0) b.add(region(pageType, s.size));
  };
  switch (s.type) {
    case SEV_SECTION_SNP_SEC_MEM:
      // gce launches the pre-validated memory unmeasured.
      ranged(vmmType === 'gce' ? SNP_PAGE_TYPE_UNMEASURED : SNP_PAGE_TYPE_ZERO);
      return;
    case SEV_SECTION_SNP_SECRETS:
      // Always exactly one page, whatever the section's size.
      b.add(region(SNP_PAGE_TYPE_SECRETS, SNP_PAGE_SIZE));
      return;
    case SEV_SECTION_CPUID:
      // ec2 adds the CPUID page after all other sections (see planSnpLaunch).
      if (vmmType !== 'ec2') b.add(region(SNP_PAGE_TYPE_CPUID, SNP_PAGE_SIZE));
      return;
    case SEV_SECTION_SVSM_CAA:
      ranged(SNP_PAGE_TYPE_ZERO);
      return;
    case SEV_SECTION_SNP_KERNEL_HASHES: {
      if (opts.kernel === undefined) {
        ranged(SNP_PAGE_TYPE_ZERO);
        return;
      }
      // The table sits at the hash-table GPA's offset in its page (sev-snp-measure snp_update_kernel_hashes).
      if (ovmf.sevHashTable === undefined) {
        throw new FirmwareFormatError("Can't find SEV_HASH_TABLE_RV_GUID entry in OVMF table", file);
      }
      if (s.size !== SNP_PAGE_SIZE) {
        throw new FirmwareFormatError(
          `${sectionLabel(index, s)} must be one page to hold the kernel hashes`,
          file,
        );
      }
      const hashes = computeSevHashes({ kernel: opts.kernel, initrd: opts.initrd, append: opts.append });
      const offset = ovmf.sevHashTable.gpa & PAGE_MASK;
      let contents: Uint8Array;
      try {
        contents = buildSevHashesPage(hashes, offset);
      } catch {
        throw new FirmwareFormatError(
          `SEV hash table offset 0x${offset.toString(16)} leaves no room for the table`,
          file,
        );
      }
      b.add(region(SNP_PAGE_TYPE_NORMAL, SNP_PAGE_SIZE, contents));
      return;
    }
    default:
      throw new FirmwareFormatError(`unknown OVMF metadata section type in ${sectionLabel(index, s)}`, file);
  }
}

function checkOptions(opts: SnpMeasureOptions, vmmType: SevVmmType): void {
  if (vmmType !== 'qemu' && vmmType !== 'ec2' && vmmType !== 'gce') {
    throw new RangeError(`unknown VMM type '${String(vmmType)}'`);
  }
  if (opts.vcpus === undefined || !Number.isInteger(opts.vcpus) || opts.vcpus < 0) {
    throw new RangeError(`snp mode needs a vCPU count of 0 or more, got ${String(opts.vcpus)}`);
  }
  if (vmmType === 'qemu' && opts.vcpuSig === undefined) {
    throw new RangeError("missing vCPU signature (vcpu type, signature or family) for VMM type 'qemu'");
  }
  if (opts.kernel === undefined && (opts.initrd !== undefined || opts.append !== undefined)) {
    throw new RangeError('initrd and append need a kernel');
  }
  if (opts.ovmfHash !== undefined && opts.ovmfHash.length !== 48) {
    throw new RangeError(`the OVMF hash must be 48 bytes, got ${opts.ovmfHash.length}`);
  }
}

/**
 * The SNP launch of `image` as a VMM does it. Mode 'snp:ovmf-hash' plans the firmware pages only
 * (their digest is the hash to hand over); mode 'snp' with `ovmfHash` starts from that digest and
 * skips the firmware pages. Throws FirmwareFormatError for an image that cannot be launched this way,
 * RangeError for inconsistent options.
 */
export function planSnpLaunch(image: Uint8Array, opts: SnpMeasureOptions = {}): SnpLaunchPlan {
  return planSnpLaunchForOvmf(parseOvmf(image, { file: opts.file }), opts);
}

/** planSnpLaunch() for an image already parsed with parseOvmf(). */
export function planSnpLaunchForOvmf(ovmf: OvmfImage, opts: SnpMeasureOptions = {}): SnpLaunchPlan {
  const mode = opts.mode ?? 'snp';
  const file = opts.file;
  const b = new PlanBuilder();

  if (mode === 'snp:ovmf-hash') {
    addFirmware(b, ovmf, file);
    return b.plan({ mode, ovmf, vcpus: [] });
  }
  if (mode !== 'snp') throw new RangeError(`unknown SNP measurement mode '${String(mode)}'`);

  const vmmType = opts.vmmType ?? 'qemu';
  checkOptions(opts, vmmType);
  if (opts.ovmfHash === undefined) addFirmware(b, ovmf, file);

  // QEMU sev_snp_launch_finish(): no metadata, no SNP launch.
  const sections = ovmf.sevMetadata;
  if (sections === undefined) {
    throw new FirmwareFormatError(
      `Failed to locate SEV metadata header (no ${OVMF_SEV_METADATA_GUID} entry in the OVMF footer table)`,
      file,
    );
  }
  sections.forEach((s, i) => {
    addSection(b, i, s, ovmf, opts, vmmType);
  });
  if (vmmType === 'ec2') {
    for (const s of sections) {
      if (s.type === SEV_SECTION_CPUID) {
        b.add({
          source: 'metadata',
          pageType: SNP_PAGE_TYPE_CPUID,
          gpa: BigInt(s.gpa),
          size: SNP_PAGE_SIZE,
          section: s,
        });
      }
    }
  }
  if (opts.kernel !== undefined && !sections.some((s) => s.type === SEV_SECTION_SNP_KERNEL_HASHES)) {
    throw new FirmwareFormatError(
      "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section",
      file,
    );
  }

  // VMSAs: BSP at the reset vector, APs at the SEV-ES reset block's EIP.
  const apEip = ovmf.sevEsResetEip;
  if (apEip === undefined) {
    throw new FirmwareFormatError("Can't find SEV_ES_RESET_BLOCK_GUID entry in OVMF table", file);
  }
  if (apEip === 0 && opts.vcpus! > 1) {
    throw new FirmwareFormatError('SEV-ES reset block gives AP reset EIP 0: APs cannot be started', file);
  }
  const reset = (bsp: boolean): SevVcpuState =>
    vcpuResetState({
      bsp,
      apEip,
      vcpuSig: opts.vcpuSig ?? 0,
      vmmType,
      guestFeatures: opts.guestFeatures ?? 0x1n,
    });
  // Every AP has the same reset state: one state object and one encoded page serve them all (read-only),
  // so a plan for thousands of vCPUs stays small. The pages are encoded on first read: the launch
  // itself does not read them (KVM encodes each VMSA from the registers the VMM puts).
  const vcpus: SevVcpuState[] = [];
  let ap: { state: SevVcpuState; page: () => Uint8Array } | undefined;
  for (let i = 0; i < opts.vcpus!; i++) {
    let state: SevVcpuState;
    let page: () => Uint8Array;
    if (i === 0) {
      state = reset(true);
      page = encodedOnce(state);
    } else {
      if (!ap) {
        const s = reset(false);
        ap = { state: s, page: encodedOnce(s) };
      }
      ({ state, page } = ap);
    }
    vcpus.push(state);
    b.add(new VmsaRegion(page, i));
  }
  return b.plan(
    opts.ovmfHash === undefined ? { mode, ovmf, vcpus } : { mode, ovmf, vcpus, initialDigest: opts.ovmfHash },
  );
}
