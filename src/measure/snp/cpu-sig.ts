/**
 * vCPU signatures: the CPUID Fn0000_0001_EAX value KVM/QEMU put in RDX at reset, which the VMSA
 * (and so the SNP launch digest) records.
 * Encoding: AMD CPUID Specification #25481, "CPUID Fn0000_0001_EAX Family, Model, Stepping
 * Identifiers". Names: the EPYC models of QEMU's builtin_x86_defs as listed by
 * virtee/sev-snp-measure sevsnpmeasure/vcpu_types.py at 8f2b337e (the names its --vcpu-type accepts).
 */

/**
 * Family/model/stepping -> signature:
 * (ext_family << 20) | (ext_model << 16) | (base_family << 8) | (model[3:0] << 4) | stepping,
 * base_family = min(family, 0xF), ext_family = family - 0xF when family > 0xF, ext_model = model[7:4].
 */
export function cpuSig(family: number, model: number, stepping: number): number {
  const familyLow = family > 0xf ? 0xf : family & 0xf;
  const familyHigh = family > 0xf ? (family - 0xf) & 0xff : 0;
  const modelLow = model & 0xf;
  const modelHigh = (model >> 4) & 0xf;
  return (
    ((familyHigh << 20) | (modelHigh << 16) | (familyLow << 8) | (modelLow << 4) | (stepping & 0xf)) >>> 0
  );
}

interface FamilyModelStepping {
  family: number;
  model: number;
  stepping: number;
}

const NAPLES: FamilyModelStepping = { family: 23, model: 1, stepping: 2 };
const ROME: FamilyModelStepping = { family: 23, model: 49, stepping: 0 };
const MILAN: FamilyModelStepping = { family: 25, model: 1, stepping: 1 };
const GENOA: FamilyModelStepping = { family: 25, model: 17, stepping: 0 };
const TURIN: FamilyModelStepping = { family: 26, model: 0, stepping: 0 };

/** vCPU type name -> family/model/stepping, in the reference tool's order. */
export const VCPU_TYPES: Readonly<Record<string, Readonly<FamilyModelStepping>>> = {
  EPYC: NAPLES,
  'EPYC-v1': NAPLES,
  'EPYC-v2': NAPLES,
  'EPYC-IBPB': NAPLES,
  'EPYC-v3': NAPLES,
  'EPYC-v4': NAPLES,
  'EPYC-Rome': ROME,
  'EPYC-Rome-v1': ROME,
  'EPYC-Rome-v2': ROME,
  'EPYC-Rome-v3': ROME,
  'EPYC-Milan': MILAN,
  'EPYC-Milan-v1': MILAN,
  'EPYC-Milan-v2': MILAN,
  'EPYC-Genoa': GENOA,
  'EPYC-Genoa-v1': GENOA,
  'EPYC-Turin': TURIN,
};

/** The accepted vCPU type names. */
export const VCPU_TYPE_NAMES: readonly string[] = Object.keys(VCPU_TYPES);

/** Signature of a named vCPU type, or undefined for a name the tool does not know. */
export function vcpuSigForType(name: string): number | undefined {
  if (!Object.hasOwn(VCPU_TYPES, name)) return undefined;
  const t = VCPU_TYPES[name]!;
  return cpuSig(t.family, t.model, t.stepping);
}

/**
 * cpuSig() on unbounded integers with Python's semantics (sev-snp-measure vcpu_types.cpu_sig() at
 * 8f2b337e: family below 0x10 is not masked), for --vcpu-family/--vcpu-model/--vcpu-stepping values
 * of any size or sign. The caller keeps the result modulo 2^64 (RDX).
 */
export function cpuSigBig(family: bigint, model: bigint, stepping: bigint): bigint {
  const familyLow = family > 0xfn ? 0xfn : family;
  const familyHigh = family > 0xfn ? (family - 0xfn) & 0xffn : 0n;
  return (
    (familyHigh << 20n) |
    (((model >> 4n) & 0xfn) << 16n) |
    (familyLow << 8n) |
    ((model & 0xfn) << 4n) |
    (stepping & 0xfn)
  );
}
