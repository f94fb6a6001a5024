import type { KernelProfile } from './types.js';
import { v6_18 } from './v6.18.js';

/**
 * v6.18 with the out-of-tree direct map removal series (v12, Patrick Roy and Nikita Kalyazin), as
 * Firecracker's secret-hiding CI kernels carry it (resources/hiding_ci/kernels/6.18-secret-hiding,
 * patches 0023-0039 at c695671faffe). Only that series: the kernels' other patches (NUMA policy,
 * KVM userfault, guest_memfd write(), userfaultfd, async PF) are not modelled.
 */
export const v6_18NoDirectMap: KernelProfile = {
  ...v6_18,
  name: 'v6.18+no-direct-map',
  description: 'v6.18 + out-of-tree GUEST_MEMFD_FLAG_NO_DIRECT_MAP (Firecracker secret hiding)',
  sources: [
    ...v6_18.sources,
    {
      what: 'KVM: guest_memfd: Add flag to remove from direct map (GUEST_MEMFD_FLAG_NO_DIRECT_MAP = 1 << 2, AS_NO_DIRECT_MAP); KVM: x86: define kvm_arch_gmem_supports_no_direct_map() (not TDX, not SNP); mm: introduce AS_NO_DIRECT_MAP (GUP refuses such mappings)',
      where:
        'firecracker feature/secret-hiding c695671faffe: resources/hiding_ci/kernels/6.18-secret-hiding/linux_patches/10-direct-map-removal/0028, 0030, 0032',
    },
  ],
  gmem: { ...v6_18.gmem, noDirectMap: true },
};
