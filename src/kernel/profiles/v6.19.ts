import type { KernelProfile } from './types.js';
import { v6_18 } from './v6.18.js';

/** v6.19: TDX installs the populated pfn directly (kvm_tdp_mmu_map_private_pfn); no nr_premapped. */
export const v6_19: KernelProfile = {
  ...v6_18,
  name: 'v6.19',
  description:
    'TDX INIT_MEM_REGION adds the page while installing the mirror SPTE (no nested fault, no zeroing)',
  base: '6.19',
  sources: [
    ...v6_18.sources,
    {
      what: 'KVM: x86/mmu: Add dedicated API to map guest_memfd pfn into TDP MMU',
      where: '<20251030200951.3402865-5-seanjc@google.com>',
    },
    { what: 'KVM: Disallow toggling KVM_MEM_GUEST_MEMFD on an existing memslot', where: '9935df5333aa' },
    {
      what: 'KVM: SEV: Publish supported SEV-SNP policy bits (v4 series; KVM_X86_SNP_POLICY_BITS in the v6.19-rc1 uapi headers)',
      where: '<c596f7529518f3f826a57970029451d9385949e5.1761593632.git.thomas.lendacky@amd.com>',
    },
  ],
  memslots: { ...v6_18.memslots, rejectGmemFlagToggle: true },
  tdx: { ...v6_18.tdx, initMemRegion: 'map-pfn', vcpuCmdCopiedFirst: true },
  sev: { ...v6_18.sev, snpPolicyBitsFromFirmware: true },
};
