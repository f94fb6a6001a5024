import type { KernelProfile } from './types.js';
import { v6_19 } from './v6.19.js';

/** v7.0 ("6.20" pull): guest_memfd preparation tracking removed; populate GUPs the source in common code. */
export const v7_0: KernelProfile = {
  ...v6_19,
  name: 'v7.0',
  description:
    'no preparation tracking: up to date = zeroed, arch prepare on every fault; no EEXIST in common populate',
  base: '7.0',
  sources: [
    ...v6_19.sources,
    {
      what: 'KVM: guest_memfd: Remove preparation tracking',
      where: '8622ef05709f (linux-next, Feb 2026; Michael Roth v2 2/5, 2025-12-15)',
    },
    {
      what: 'TDX: a second KVM_TDX_INIT_MEM_REGION of a GPA finds the mirror SPTE present (RET_PF_SPURIOUS) -> -EIO from kvm_tdp_mmu_map_private_pfn(); no common-code EEXIST (the maintainer reads the code the same way, 2026-06-30)',
      where:
        'kvm-x86/linux arch/x86/kvm/vmx/tdx.c 09c6f74ecb86 + <20251016222816.141523-1-seanjc@google.com> (mmu.c) + <akPEKslqAhygyjhg@google.com>',
    },
    {
      what: 'TDX: tdx_gmem_post_populate() returns -EOPNOTSUPP when common code passed no source page (NULL source_addr)',
      where:
        'kvm-x86/linux tdx.c (quoted in "kvm: sev: Fix issues reported by Sashiko", 2026-06-23) and 2a62345b3052',
    },
    { what: 'KVM: SEV: Require 4K-aligned uaddr for SNP_LAUNCH_UPDATE', where: 'b2e648758038' },
    {
      what: 'KVM: SEV: Add KVM_SEV_SNP_ENABLE_REQ_CERTS command (and KVM_X86_SEV_SNP_REQ_CERTS)',
      where: '20c3c4108d58 (Michael Roth v7 2/2, 2026-01-09; applied for 6.20 = 7.0)',
    },
    { what: 'KVM: guest_memfd: GUP source pages prior to populating guest memory', where: 'ba375af3d04d' },
    { what: 'virt/kvm/guest_memfd.c', where: 'torvalds/linux 01f492e1817e858d1712f2489d0afbaa552f417b' },
  ],
  gmem: {
    ...v6_19.gmem,
    preparation: 'zeroed',
    populateRejectsUptodate: false,
    populateGupInCommonCode: true,
  },
  sev: { ...v6_19.sev, launchUpdateSrcAligned: true, snpReqCerts: true },
};
