/**
 * Test baseline: a launch plan folded straight into a launch digest (SNP ABI PAGE_INFO chain), to
 * check plans against published vectors without a host. The product never does this: its digest is
 * the modelled PSP's (src/measure/snp/launch.ts), which snp-host-launch.test.ts checks.
 */
import { SnpLaunchDigest } from '../../src/kernel/arch/sev/launch-digest.js';
import type { SnpLaunchPlan } from '../../src/measure/snp/launch-plan.js';

export function computeSnpDigestFromPlan(plan: SnpLaunchPlan): Uint8Array {
  const ld = new SnpLaunchDigest(plan.initialDigest);
  for (const u of plan.updates) ld.update(u);
  return ld.digest;
}
