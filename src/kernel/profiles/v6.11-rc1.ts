import type { KernelProfile } from './types.js';
import { v6_8 } from './v6.8.js';

/** v6.11-rc1: arch hooks, kvm_gmem_populate(), KVM_PRE_FAULT_MEMORY and SNP, before lazy preparation. */
export const v6_11_rc1: KernelProfile = {
  ...v6_8,
  name: 'v6.11-rc1',
  description: 'coco hooks: fallocate and every get_pfn prepare; populate without EEXIST; pre-fault ungated',
  base: '6.11-rc1',
  sources: [
    {
      what: 'KVM changes for 6.11 merge window (pull)',
      where: '<20240719145339.55027-1-pbonzini@redhat.com>',
    },
    {
      what: 'guest_memfd.c in the kvm-coco-hooks state (populate, prepare on every get_pfn)',
      where: 'gmem-semantics.md F-coco',
      inferred: true,
    },
  ],
  vmTypes: { swProtected: true, sev: true, snp: true, tdx: false },
  gmem: {
    ...v6_8.gmem,
    preparation: 'coco-hooks',
    populate: true,
    populateChecksSignals: true,
  },
  mmu: { ...v6_8.mmu, preFault: true, rootAllocNeedsMmuPages: false },
  x86: { ...v6_8.x86, pitNeedsPic: true },
};
