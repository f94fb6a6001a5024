/**
 * The ID block and ID authentication information structure of SNP_LAUNCH_FINISH, and the checks the
 * firmware makes on them (SEV-SNP Firmware ABI, AMD #56860, "SNP_LAUNCH_FINISH", "ID_BLOCK",
 * "ID_AUTH", and the appendix's ECDSA public key and signature formats). Layouts as virtee/sev
 * src/measurement/idblock_types.rs (IdBlock, IdAuth, SevEcdsaSig, SevEcdsaPubKey) and QEMU's
 * struct sev_id_block / sev_id_authentication lay them out.
 *
 * Order of the checks, from the ABI text on SNP_LAUNCH_FINISH (quoted in AMDESE/AMDSEV issue #212):
 * LD against GCTX.LD (BAD_MEASUREMENT), then POLICY against GCTX.POLICY (POLICY_FAILURE), then the
 * ID block's signature with the ID key, then, with AUTH_KEY_EN, the ID key's signature with the
 * author key (either failing: BAD_SIGNATURE).
 * UNCONFIRMED (the ABI text was not reachable here; gmemlab's choices):
 * - VERSION other than 1 is INVALID_PARAM, checked after the LD, POLICY and signature checks;
 * - an algorithm other than ECDSA P-384 / SHA-384, a curve other than P-384, a coordinate or R/S
 *   wider than 384 bits, or a point not on the curve: the signature cannot be validated, so
 *   BAD_SIGNATURE at the signature's own step (the ABI gives INVALID_PARAM for this command only for
 *   non-zero MBZ fields).
 */
import { createPublicKey, hash, type KeyObject, verify } from 'node:crypto';

export const SNP_ID_BLOCK_SIZE = 0x60;
export const SNP_ID_AUTH_SIZE = 0x1000;
/** The ABI's ECDSA public key structure (CURVE, QX, QY, reserved): what ID_KEY_DIGEST hashes. */
export const SNP_ECDSA_PUBKEY_SIZE = 0x404;
/** ID_KEY_ALGO / AUTH_KEY_ALGO: ECDSA P-384 with SHA-384 (the only signature algorithm). */
export const SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1;
/** The public key structure's CURVE: P-384. */
export const SNP_ECDSA_CURVE_P384 = 2;
/** The ID block format the firmware knows. */
export const SNP_ID_BLOCK_VERSION = 1;

/** ID_BLOCK field offsets. */
export const ID_BLOCK = {
  LD: 0x00,
  FAMILY_ID: 0x30,
  IMAGE_ID: 0x40,
  VERSION: 0x50,
  GUEST_SVN: 0x54,
  POLICY: 0x58,
};
/** ID_AUTH field offsets. */
export const ID_AUTH = {
  ID_KEY_ALGO: 0x00,
  AUTH_KEY_ALGO: 0x04,
  ID_BLOCK_SIG: 0x40,
  ID_KEY: 0x240,
  ID_KEY_SIG: 0x680,
  AUTHOR_KEY: 0x880,
};
/** Within a signature: R and S, little-endian, 72 bytes each (the rest of 0x200 reserved). */
const SIG_R = 0x00;
const SIG_S = 0x48;
/** Within a public key: CURVE (u32), QX and QY little-endian, 72 bytes each. */
const KEY_CURVE = 0x00;
const KEY_QX = 0x04;
const KEY_QY = 0x4c;
const FIELD = 72;
const P384_BYTES = 48;

/** What SNP_LAUNCH_FINISH hands the firmware when ID_BLOCK_EN is 1. */
export interface SnpIdBlockInput {
  idBlock: Uint8Array;
  idAuth: Uint8Array;
  /** AUTH_KEY_EN: ID_AUTH carries an author key that signed the ID key. */
  authKeyEn: boolean;
}

/** What the firmware keeps of a verified ID block (and puts into attestation reports). */
export interface SnpIdBlockRecord {
  /** FAMILY_ID and IMAGE_ID (16 bytes each) and GUEST_SVN, as the ID block gives them. */
  familyId: Uint8Array;
  imageId: Uint8Array;
  guestSvn: number;
  /** SHA-384 of the ID key's public key structure (all 0x404 bytes). */
  idKeyDigest: Uint8Array;
  /** SHA-384 of the author key's public key structure; zeroes unless authorKeyEn. */
  authorKeyDigest: Uint8Array;
  /** AUTHOR_KEY_EN (bit 0 of the report's flags at 0x48). */
  authorKeyEn: boolean;
}

export type SnpIdBlockResult =
  | { ok: true; record: SnpIdBlockRecord }
  | { ok: false; status: 'INVALID_PARAM' | 'BAD_MEASUREMENT' | 'POLICY_FAILURE' | 'BAD_SIGNATURE' };

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A 72-byte little-endian field as the 48-byte big-endian P-384 value, or undefined if wider. */
function p384Be(field: Uint8Array): Buffer | undefined {
  if (field.subarray(P384_BYTES, FIELD).some((x) => x !== 0)) return undefined;
  return Buffer.from(field.subarray(0, P384_BYTES)).reverse();
}

/** The ABI public key structure as a node key; undefined for another curve or a point not on P-384. */
function publicKey(key: Uint8Array): KeyObject | undefined {
  if (u32(key, KEY_CURVE) !== SNP_ECDSA_CURVE_P384) return undefined;
  const x = p384Be(key.subarray(KEY_QX, KEY_QX + FIELD));
  const y = p384Be(key.subarray(KEY_QY, KEY_QY + FIELD));
  if (!x || !y) return undefined;
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-384', x: x.toString('base64url'), y: y.toString('base64url') },
      format: 'jwk',
    });
  } catch {
    return undefined; // not a point of the curve: the firmware cannot use the key
  }
}

/** ECDSA P-384 / SHA-384 verification of `data` with an ABI signature and public key. */
function verifySig(algo: number, sig: Uint8Array, key: Uint8Array, data: Uint8Array): boolean {
  if (algo !== SNP_SIG_ALGO_ECDSA_P384_SHA384) return false;
  const k = publicKey(key);
  const r = p384Be(sig.subarray(SIG_R, SIG_R + FIELD));
  const s = p384Be(sig.subarray(SIG_S, SIG_S + FIELD));
  if (!k || !r || !s) return false;
  try {
    return verify('sha384', data, { key: k, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
  } catch {
    return false;
  }
}

/**
 * SNP_LAUNCH_FINISH with ID_BLOCK_EN = 1: the ID block checked against the guest context's launch
 * digest and policy, then its signatures, in the ABI's order (see the file comment).
 */
export function checkIdBlock(
  input: SnpIdBlockInput,
  launchDigest: Uint8Array,
  policy: bigint,
): SnpIdBlockResult {
  const b = input.idBlock;
  const a = input.idAuth;
  if (b.length < SNP_ID_BLOCK_SIZE || a.length < SNP_ID_AUTH_SIZE)
    return { ok: false, status: 'INVALID_PARAM' };
  // ABI: LD must equal GCTX.LD.
  if (!equalBytes(b.subarray(ID_BLOCK.LD, ID_BLOCK.LD + 48), launchDigest))
    return { ok: false, status: 'BAD_MEASUREMENT' };
  // ABI: POLICY must equal GCTX.Policy.
  if (u64(b, ID_BLOCK.POLICY) !== policy) return { ok: false, status: 'POLICY_FAILURE' };
  const block = b.subarray(0, SNP_ID_BLOCK_SIZE);
  const idKey = a.subarray(ID_AUTH.ID_KEY, ID_AUTH.ID_KEY + SNP_ECDSA_PUBKEY_SIZE);
  const authorKey = a.subarray(ID_AUTH.AUTHOR_KEY, ID_AUTH.AUTHOR_KEY + SNP_ECDSA_PUBKEY_SIZE);
  /** ID_AUTH's signature at `sigAt` (algorithm at `algoAt`) of `data` by `key`. */
  const signed = (algoAt: number, sigAt: number, key: Uint8Array, data: Uint8Array): boolean =>
    verifySig(u32(a, algoAt), a.subarray(sigAt, sigAt + 0x200), key, data);
  // ABI: the ID block's signature, with the ID key.
  if (!signed(ID_AUTH.ID_KEY_ALGO, ID_AUTH.ID_BLOCK_SIG, idKey, block))
    return { ok: false, status: 'BAD_SIGNATURE' };
  // ABI: with AUTH_KEY_EN, the ID key (its whole public key structure) signed by the author key.
  if (input.authKeyEn && !signed(ID_AUTH.AUTH_KEY_ALGO, ID_AUTH.ID_KEY_SIG, authorKey, idKey))
    return { ok: false, status: 'BAD_SIGNATURE' };
  // UNCONFIRMED: an ID block format other than version 1. Checked after the ABI's own checks, so
  // that this guess never changes the outcome of a case the ABI text decides.
  if (u32(b, ID_BLOCK.VERSION) !== SNP_ID_BLOCK_VERSION) return { ok: false, status: 'INVALID_PARAM' };
  return {
    ok: true,
    record: {
      familyId: new Uint8Array(b.subarray(ID_BLOCK.FAMILY_ID, ID_BLOCK.FAMILY_ID + 16)),
      imageId: new Uint8Array(b.subarray(ID_BLOCK.IMAGE_ID, ID_BLOCK.IMAGE_ID + 16)),
      guestSvn: u32(b, ID_BLOCK.GUEST_SVN),
      idKeyDigest: new Uint8Array(hash('sha384', idKey, 'buffer')),
      // ABI report: zeroes unless AUTHOR_KEY_EN.
      authorKeyDigest: input.authKeyEn
        ? new Uint8Array(hash('sha384', authorKey, 'buffer'))
        : new Uint8Array(48),
      authorKeyEn: input.authKeyEn,
    },
  };
}
