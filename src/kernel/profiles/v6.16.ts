import type { KernelProfile } from './types.js';
import { v6_11 } from './v6.11.js';

/** v6.16: upstream TDX; INIT_MEM_REGION maps the page itself (kvm_tdp_map_page in tdx_gmem_post_populate). */
export const v6_16: KernelProfile = {
  ...v6_11,
  name: 'v6.16',
  description:
    'upstream TDX: INIT_MEM_REGION maps the page itself (nr_premapped); pre-fault refused until finalized',
  base: '6.16',
  sources: [
    ...v6_11.sources,
    {
      what: 'arch/x86/kvm/vmx/tdx.c tdx_gmem_post_populate(), tdx_td_finalize() (6.16)',
      where: 'torvalds/linux v6.16',
    },
    {
      what: 'arch/x86/kvm/vmx/tdx.c tdx_clear_unsupported_cpuid(), tdx_unsupported_cpuid() in setup_tdparams_cpuids()',
      where: 'torvalds/linux tdx.c @3829d81b6958632602bee7a8272005d1a4ce298f',
    },
  ],
  vmTypes: { ...v6_11.vmTypes, tdx: true },
  // hypercall.ret = 0 on KVM_EXIT_HYPERCALL: 6.13 (December 2024 fix), so every profile from here.
  sev: { ...v6_11.sev, pscClearsHypercallRet: true },
  tdx: { initMemRegion: 'map-page', rejectsTsxWaitpkg: true, mapGpaUnsupportedStatus: 'subfunc-unsupported' },
};
