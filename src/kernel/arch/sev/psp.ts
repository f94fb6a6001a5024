/**
 * The PSP's SEV-SNP firmware: guest contexts and the SNP commands KVM issues during a launch.
 * Mirrors the SEV-SNP Firmware ABI (AMD #56860): SNP_GCTX_CREATE, SNP_LAUNCH_START (guest policy
 * checks), SNP_ACTIVATE, SNP_LAUNCH_UPDATE (§8.17, per page type, with the launch digest of
 * launch-digest.ts), SNP_LAUNCH_FINISH, SNP_PAGE_RECLAIM, SNP_DECOMMISSION, and the MEASUREMENT an
 * attestation report carries. Status codes are sev_ret_code values (include/uapi/linux/psp-sev.h).
 * KVM sees a failed command as -EIO with the status in kvm_sev_cmd.error (sev_do_cmd()).
 *
 * Modelled platform: firmware API 1.55, SMT enabled, one socket. The CPUID page check is a model
 * of the ABI's contract (an entry the platform cannot honour fails with INVALID_PARAM and the
 * firmware writes the corrected table back into the page, left unencrypted), not AMD's per-leaf
 * rules: each entry's registers may only claim bits of the modelled CPU's own CPUID (SNP_CPUID_MASKS).
 * An enabled ID block is checked as id-block.ts describes (LD, policy, ECDSA P-384 signatures) and
 * what it identifies goes into attestation reports. Not modelled: migration agents, VMPLs other
 * than 0, IMI pages, VCEK_DISABLED.
 */
import { hash } from 'node:crypto';
import {
  SEV_RET_BAD_MEASUREMENT,
  SEV_RET_BAD_SIGNATURE,
  SEV_RET_INVALID_GUEST,
  SEV_RET_INVALID_GUEST_STATE,
  SEV_RET_INVALID_PAGE_STATE,
  SEV_RET_INVALID_PARAM,
  SEV_RET_POLICY_FAILURE,
  SEV_RET_SUCCESS,
  SNP_POLICY_MASK_BASE,
  SNP_POLICY_MASK_CIPHERTEXT_HIDING_DRAM,
  SNP_POLICY_MASK_CXL_ALLOW,
  SNP_POLICY_MASK_MEM_AES_256_XTS,
  SNP_POLICY_MASK_PAGE_SWAP_DISABLE,
  SNP_POLICY_MASK_RAPL_DIS,
  SNP_POLICY_MASK_SMT,
} from '../../../uapi/sev.js';
import type { Provenance } from '../../provenance.js';
import { checkIdBlock, type SnpIdBlockInput, type SnpIdBlockRecord } from './id-block.js';
import {
  SNP_LAUNCH_DIGEST_SIZE,
  SNP_PAGE_SIZE,
  SNP_PAGE_TYPE_CPUID,
  SNP_PAGE_TYPE_NAMES,
  SNP_PAGE_TYPE_NORMAL,
  SNP_PAGE_TYPE_SECRETS,
  SNP_PAGE_TYPE_UNMEASURED,
  SNP_PAGE_TYPE_VMSA,
  SNP_PAGE_TYPE_ZERO,
  SnpLaunchDigest,
  snpPageTypeMeasuresContents,
} from './launch-digest.js';
import { Rmp } from './rmp.js';

/** Guest context states (ABI "GSTATE"). */
export type SnpGuestState = 'INIT' | 'LAUNCH' | 'RUNNING';

/** The firmware API version the modelled PSP reports. */
export const SNP_FW_API_MAJOR = 1;
export const SNP_FW_API_MINOR = 55;

/**
 * SNP_FEATURE_INFO (CPUID-like leaf 0) ECX bits of the firmware (include/linux/psp-sev.h): which
 * optional guest policy bits it accepts. The modelled firmware reports no SNP_FEATURE_INFO
 * (SNP_PLATFORM_STATUS.feature_info = 0), so only SNP_POLICY_MASK_BASE.
 */
export const SNP_RAPL_DISABLE_SUPPORTED = 1 << 2;
export const SNP_CIPHER_TEXT_HIDING_SUPPORTED = 1 << 3;
export const SNP_AES_256_XTS_POLICY_SUPPORTED = 1 << 4;
export const SNP_CXL_ALLOW_POLICY_SUPPORTED = 1 << 5;

/** The CPUID table format of the ABI's CPUID page: u32 count, 12 reserved bytes, 64 entries of 48 bytes. */
export const SNP_CPUID_COUNT_MAX = 64;
const CPUID_ENTRY_SIZE = 48;
const CPUID_HEADER_SIZE = 16;

/**
 * The modelled CPU's CPUID, as masks of what a guest may claim, per (leaf, subleaf):
 * [eax, ebx, ecx, edx]. Leaves not listed are accepted as given.
 */
export const SNP_CPUID_MASKS: ReadonlyMap<string, readonly [number, number, number, number]> = new Map([
  // Fn0000_0001: no hypervisor-only bits beyond the EPYC feature set (ECX bit 31 "hypervisor" allowed).
  ['1:0', [0xffffffff, 0xffffffff, 0xfefa3203 | 0x80000000, 0x178bfbff]],
  // Fn8000_001F (SEV capabilities): SME, SEV, SEV-ES, SNP, VMPL; C-bit 51, 1 bit of PA reduction.
  ['2147483679:0', [0x0000001f, 0x00000173, 0xffffffff, 0xffffffff]],
]);

/** One page measured by SNP_LAUNCH_UPDATE, as a trace observer sees it. */
export interface SnpMeasuredPage {
  pageType: number;
  gpa: bigint;
  /** SHA-384 of the page for NORMAL and VMSA, zeros otherwise (PAGE_INFO.CONTENTS). */
  contents: Uint8Array;
  /** The launch digest after this page. */
  digest: Uint8Array;
}

export class SnpGuestContext {
  state: SnpGuestState = 'INIT';
  policy = 0n;
  /** SNP_LAUNCH_START DESIRED_TSC_FREQ (kHz; 0 unless the guest has Secure TSC). */
  desiredTscKhz = 0;
  asid = 0;
  launchDigest: SnpLaunchDigest;
  /** Final MEASUREMENT, fixed by SNP_LAUNCH_FINISH. */
  measurement: Uint8Array | undefined;
  hostData = new Uint8Array(32);
  idBlockEn = false;
  /** What a verified ID block identifies (SNP_LAUNCH_FINISH with ID_BLOCK_EN); undefined without one. */
  idBlock: SnpIdBlockRecord | undefined;
  /** Observer of measured pages (gmemlab tracing; not firmware behaviour). */
  onMeasure: ((p: SnpMeasuredPage) => void) | undefined;
  decommissioned = false;

  constructor(
    readonly handle: number,
    seed?: Uint8Array,
  ) {
    this.launchDigest = new SnpLaunchDigest(seed);
  }
}

/** The page a LAUNCH_UPDATE works on: its RMP pfn and accessors for its bytes. */
export interface SnpLaunchPage {
  pfn: number;
  read(): Uint8Array;
  write(bytes: Uint8Array | null): void;
}

/**
 * What an attestation report states about the guest. The ID block fields (SnpIdBlockRecord: FAMILY_ID,
 * IMAGE_ID, GUEST_SVN, ID_KEY_DIGEST, AUTHOR_KEY_DIGEST, AUTHOR_KEY_EN) are zero without a verified
 * ID block.
 */
export interface SnpAttestationReport extends SnpIdBlockRecord {
  /** MEASUREMENT (the launch digest at SNP_LAUNCH_FINISH). */
  measurement: Uint8Array;
  policy: bigint;
  hostData: Uint8Array;
  vmpl: number;
}

const ID_BLOCK_STATUS = {
  INVALID_PARAM: SEV_RET_INVALID_PARAM,
  BAD_MEASUREMENT: SEV_RET_BAD_MEASUREMENT,
  POLICY_FAILURE: SEV_RET_POLICY_FAILURE,
  BAD_SIGNATURE: SEV_RET_BAD_SIGNATURE,
} as const;

export class Psp {
  private readonly contexts = new Map<number, SnpGuestContext>();
  private nextHandle = 1;
  /** The platform's SMT state (guest policy SMT bit must allow it). */
  smtEnabled = true;
  /** The firmware's SEV-SNP API version (SNP_PLATFORM_STATUS api_major / api_minor). */
  apiMajor = SNP_FW_API_MAJOR;
  apiMinor = SNP_FW_API_MINOR;
  /** SNP_PLATFORM_STATUS.feature_info: the firmware implements SNP_FEATURE_INFO. */
  featureInfo = false;
  /** SNP_FEATURE_INFO leaf 0 ECX (meaningful only with featureInfo). */
  featureInfoEcx = 0;

  constructor(private readonly rmp: Rmp) {}

  context(handle: number): SnpGuestContext | undefined {
    return this.contexts.get(handle);
  }

  /** SNP_GCTX_CREATE: a guest context in state INIT (the context page becomes a firmware page). */
  gctxCreate(): number {
    const handle = this.nextHandle++;
    this.contexts.set(handle, new SnpGuestContext(handle));
    return handle;
  }

  /**
   * drivers/crypto/ccp/sev-dev.c sev_get_snp_policy_bits() (6.19): the guest policy bits this
   * firmware supports: SNP_POLICY_MASK_BASE, plus the optional bits SNP_FEATURE_INFO advertises
   * (and PAGE_SWAP_DISABLE from firmware 1.58 on).
   */
  snpPolicyBits(): bigint {
    let bits = SNP_POLICY_MASK_BASE;
    if (this.featureInfo) {
      const ecx = this.featureInfoEcx;
      if (ecx & SNP_RAPL_DISABLE_SUPPORTED) bits |= SNP_POLICY_MASK_RAPL_DIS;
      if (ecx & SNP_CIPHER_TEXT_HIDING_SUPPORTED) bits |= SNP_POLICY_MASK_CIPHERTEXT_HIDING_DRAM;
      if (ecx & SNP_AES_256_XTS_POLICY_SUPPORTED) bits |= SNP_POLICY_MASK_MEM_AES_256_XTS;
      if (ecx & SNP_CXL_ALLOW_POLICY_SUPPORTED) bits |= SNP_POLICY_MASK_CXL_ALLOW;
      if (this.apiMajor > 1 || (this.apiMajor === 1 && this.apiMinor >= 58))
        bits |= SNP_POLICY_MASK_PAGE_SWAP_DISABLE;
    }
    return bits;
  }

  /**
   * SNP_LAUNCH_START: INIT -> LAUNCH after the policy checks (ABI: POLICY_FAILURE). desiredTscKhz
   * is DESIRED_TSC_FREQ (6.18+ KVM passes it for a Secure TSC guest).
   */
  launchStart(handle: number, policy: bigint, desiredTscKhz = 0): number {
    const g = this.contexts.get(handle);
    if (!g || g.decommissioned) return SEV_RET_INVALID_GUEST;
    if (g.state !== 'INIT') return SEV_RET_INVALID_GUEST_STATE;
    const major = Number((policy >> 8n) & 0xffn);
    const minor = Number(policy & 0xffn);
    // The policy's minimum ABI version must not exceed the firmware's.
    if (major > this.apiMajor || (major === this.apiMajor && minor > this.apiMinor)) {
      return SEV_RET_POLICY_FAILURE;
    }
    // SMT enabled on the platform requires the guest to allow it.
    if (this.smtEnabled && !(policy & SNP_POLICY_MASK_SMT)) return SEV_RET_POLICY_FAILURE;
    g.policy = policy;
    g.desiredTscKhz = desiredTscKhz;
    g.state = 'LAUNCH';
    return SEV_RET_SUCCESS;
  }

  /** A modelling affordance for --snp-ovmf-hash: resume from a digest a previous launch produced. */
  seedLaunchDigest(handle: number, digest: Uint8Array): void {
    const g = this.contexts.get(handle);
    if (g?.launchDigest.updates !== 0 || digest.length !== SNP_LAUNCH_DIGEST_SIZE) return;
    g.launchDigest = new SnpLaunchDigest(digest);
  }

  /** SNP_ACTIVATE: bind the ASID to the context. */
  activate(handle: number, asid: number): number {
    const g = this.contexts.get(handle);
    if (!g || g.decommissioned) return SEV_RET_INVALID_GUEST;
    g.asid = asid;
    return SEV_RET_SUCCESS;
  }

  /**
   * SNP_LAUNCH_UPDATE of one 4 KiB page: the page must be Pre-Guest for this guest's ASID; it is
   * measured by type and becomes Guest-Valid. CPUID pages are checked; a bad table fails with
   * INVALID_PARAM after the firmware wrote the corrected table into the page.
   */
  launchUpdate(handle: number, page: SnpLaunchPage, pageType: number, since: Provenance): number {
    const g = this.contexts.get(handle);
    if (!g || g.decommissioned) return SEV_RET_INVALID_GUEST;
    if (g.state !== 'LAUNCH') return SEV_RET_INVALID_GUEST_STATE;
    if (!(pageType in SNP_PAGE_TYPE_NAMES)) return SEV_RET_INVALID_PARAM;
    const e = this.rmp.lookup(page.pfn);
    if (e?.state !== 'pre-guest' || e.asid !== g.asid || !e.immutable) return SEV_RET_INVALID_PAGE_STATE;
    const gpa = Rmp.gpaOf(page.pfn, e);
    let contents: Uint8Array | undefined;
    switch (pageType) {
      case SNP_PAGE_TYPE_NORMAL:
      case SNP_PAGE_TYPE_VMSA:
        contents = page.read();
        break;
      case SNP_PAGE_TYPE_ZERO:
        page.write(null);
        break;
      case SNP_PAGE_TYPE_SECRETS:
        page.write(secretsPage(g));
        break;
      case SNP_PAGE_TYPE_CPUID: {
        const corrected = checkCpuidTable(page.read());
        if (corrected) {
          page.write(corrected);
          return SEV_RET_INVALID_PARAM;
        }
        break;
      }
      case SNP_PAGE_TYPE_UNMEASURED:
        break;
    }
    g.launchDigest.update({ pageType, gpa, contents });
    if (g.onMeasure) {
      g.onMeasure({
        pageType,
        gpa,
        contents: snpPageTypeMeasuresContents(pageType)
          ? hash('sha384', contents!, 'buffer')
          : new Uint8Array(SNP_LAUNCH_DIGEST_SIZE),
        digest: g.launchDigest.digest,
      });
    }
    this.rmp.update(
      page.pfn,
      // The firmware sets the VMSA bit itself (rmp_make_private() cannot); the page leaves the
      // firmware's hands, so it is no longer immutable (sev_free_vcpu() makes a VMSA shared
      // with RMPUPDATE alone, no reclaim).
      { state: 'guest-valid', immutable: false, vmsa: pageType === SNP_PAGE_TYPE_VMSA, launched: true },
      since,
    );
    return SEV_RET_SUCCESS;
  }

  /** Would SNP_LAUNCH_UPDATE of this context run at all (context launching, bound to `asid`)? */
  launchUpdateRunReady(handle: number, asid: number): boolean {
    const g = this.contexts.get(handle);
    return g !== undefined && !g.decommissioned && g.state === 'LAUNCH' && g.asid === asid;
  }

  /**
   * SNP_LAUNCH_UPDATE of `n` consecutive pages of one type, with the results of n launchUpdate()
   * calls: the kernel issues one command per page, the model takes a run of them at once. Only
   * for types whose page step cannot fail once the run's checks pass (NORMAL, ZERO, UNMEASURED).
   * Returns n, or 0 with nothing done if a check fails (the caller then goes page by page and gets
   * the per-page status).
   */
  launchUpdateRun(
    handle: number,
    pfn: number,
    n: number,
    pageType: number,
    read: (i: number) => Uint8Array,
    write: (i: number, bytes: Uint8Array | null) => void,
    since: Provenance,
  ): number {
    const g = this.contexts.get(handle);
    if (!g || g.decommissioned || g.state !== 'LAUNCH') return 0;
    if (
      pageType !== SNP_PAGE_TYPE_NORMAL &&
      pageType !== SNP_PAGE_TYPE_ZERO &&
      pageType !== SNP_PAGE_TYPE_UNMEASURED
    )
      return 0;
    // Every page Pre-Guest for this ASID and immutable: one RMP extent covers the run.
    const r = this.rmp.entries.extentAt(pfn);
    const e = r?.value;
    if (!r || r.end < pfn + n || e?.state !== 'pre-guest' || e.asid !== g.asid || !e.immutable) return 0;
    const digest = g.launchDigest;
    // One measurement record for the run, GPAs as numbers (exact: below 2^52).
    const m: { pageType: number; gpa: number; contents: Uint8Array | undefined } = {
      pageType,
      gpa: 0,
      contents: undefined,
    };
    for (let i = 0; i < n; i++) {
      m.gpa = (pfn + i + e.gfnDelta) * SNP_PAGE_SIZE;
      let contents: Uint8Array | undefined;
      if (pageType === SNP_PAGE_TYPE_NORMAL) contents = read(i);
      else if (pageType === SNP_PAGE_TYPE_ZERO) write(i, null);
      m.contents = contents;
      digest.update(m);
      if (g.onMeasure) {
        g.onMeasure({
          pageType,
          gpa: BigInt(m.gpa),
          contents: contents ? hash('sha384', contents, 'buffer') : new Uint8Array(SNP_LAUNCH_DIGEST_SIZE),
          digest: digest.digest,
        });
      }
    }
    this.rmp.entries.set(pfn, pfn + n, {
      state: 'guest-valid',
      asid: e.asid,
      gfnDelta: e.gfnDelta,
      immutable: false,
      vmsa: e.vmsa,
      launched: true,
      since,
    });
    return n;
  }

  /**
   * SNP_LAUNCH_FINISH: LAUNCH -> RUNNING; the launch digest becomes the MEASUREMENT. With an ID block
   * (ID_BLOCK_EN = 1), checkIdBlock() first (id-block.ts: LD -> BAD_MEASUREMENT, POLICY ->
   * POLICY_FAILURE, signatures -> BAD_SIGNATURE, VERSION); a failure leaves the context launching. AUTH_KEY_EN
   * is only read with an ID block (KVM passes it only then).
   */
  launchFinish(handle: number, hostData: Uint8Array, idBlock?: SnpIdBlockInput): number {
    const g = this.contexts.get(handle);
    if (!g || g.decommissioned) return SEV_RET_INVALID_GUEST;
    if (g.state !== 'LAUNCH') return SEV_RET_INVALID_GUEST_STATE;
    let record: SnpIdBlockRecord | undefined;
    if (idBlock) {
      const r = checkIdBlock(idBlock, g.launchDigest.digest, g.policy);
      if (!r.ok) return ID_BLOCK_STATUS[r.status];
      record = r.record;
    }
    g.hostData = hostData.slice(0, 32);
    g.idBlockEn = idBlock !== undefined;
    g.idBlock = record;
    g.measurement = g.launchDigest.digest;
    g.state = 'RUNNING';
    return SEV_RET_SUCCESS;
  }

  /** SNP_PAGE_RECLAIM: a Pre-Guest or Firmware page back to a state RMPUPDATE can make shared. */
  pageReclaim(pfn: number): number {
    const e = this.rmp.lookup(pfn);
    if (!e) return SEV_RET_INVALID_PAGE_STATE;
    return SEV_RET_SUCCESS;
  }

  /** SNP_DECOMMISSION: the context is gone; its ASID is unbound. */
  decommission(handle: number): number {
    const g = this.contexts.get(handle);
    if (!g) return SEV_RET_INVALID_GUEST;
    g.decommissioned = true;
    return SEV_RET_SUCCESS;
  }

  /** What SNP_GUEST_REQUEST(MSG_REPORT_REQ) would report: available once the guest runs. */
  attestationReport(handle: number): SnpAttestationReport | undefined {
    const g = this.contexts.get(handle);
    if (g?.state !== 'RUNNING' || !g.measurement) return undefined;
    const id = g.idBlock;
    return {
      measurement: g.measurement.slice(),
      policy: g.policy,
      hostData: g.hostData.slice(),
      vmpl: 0,
      familyId: id ? id.familyId.slice() : new Uint8Array(16),
      imageId: id ? id.imageId.slice() : new Uint8Array(16),
      guestSvn: id ? id.guestSvn : 0,
      idKeyDigest: id ? id.idKeyDigest.slice() : new Uint8Array(SNP_LAUNCH_DIGEST_SIZE),
      authorKeyDigest: id ? id.authorKeyDigest.slice() : new Uint8Array(SNP_LAUNCH_DIGEST_SIZE),
      authorKeyEn: id?.authorKeyEn ?? false,
    };
  }
}

/**
 * The secrets page the firmware writes (ABI "Secrets Page"; Linux struct snp_secrets_page): VERSION 2
 * at 0x00, FMS at 0x08, VMPCK0 from 0x20. Keys are not modelled: a per-guest marker stands in the
 * first byte of VMPCK0.
 */
function secretsPage(g: SnpGuestContext): Uint8Array {
  const p = new Uint8Array(SNP_PAGE_SIZE);
  p[0] = 2; // VERSION
  p[0x20] = g.handle & 0xff;
  return p;
}

/** Returns the corrected table if the CPUID page claims what the modelled CPU does not have. */
function checkCpuidTable(page: Uint8Array): Uint8Array | undefined {
  const v = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const count = v.getUint32(0, true);
  const out = page.slice();
  const ov = new DataView(out.buffer);
  let bad = false;
  if (count > SNP_CPUID_COUNT_MAX) {
    ov.setUint32(0, SNP_CPUID_COUNT_MAX, true);
    return out;
  }
  for (let i = 0; i < count; i++) {
    const at = CPUID_HEADER_SIZE + i * CPUID_ENTRY_SIZE;
    const leaf = v.getUint32(at, true);
    const sub = v.getUint32(at + 4, true);
    const mask = SNP_CPUID_MASKS.get(`${leaf}:${sub}`);
    if (!mask) continue;
    for (let r = 0; r < 4; r++) {
      const off = at + 24 + r * 4; // eax_in, ecx_in, xcr0_in (u64), xss_in (u64), then eax..edx
      const val = v.getUint32(off, true);
      const ok = (val & mask[r]!) >>> 0;
      if (ok !== val) {
        bad = true;
        ov.setUint32(off, ok, true);
      }
    }
  }
  return bad ? out : undefined;
}
