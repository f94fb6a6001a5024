import type { KernelProfile } from './types.js';
import { v6_11_rc1 } from './v6.11-rc1.js';

/** v6.11 final: the 14-patch lazy-preparation series went in for 6.11-rc2. */
export const v6_11: KernelProfile = {
  ...v6_11_rc1,
  name: 'v6.11',
  description:
    'lazy preparation: up to date = prepared; populate rejects up-to-date (EEXIST) and shared gfns; pre-fault gated',
  base: '6.11',
  sources: [
    { what: 'KVM fixes for Linux 6.11-rc2 (pull)', where: '<20240802165116.9197-1-pbonzini@redhat.com>' },
    { what: 'KVM: x86: disallow pre-fault for SNP VMs before initialization', where: '5932ca411e53' },
    {
      what: 'KVM: guest_memfd: delay kvm_gmem_prepare_folio() until the memory is passed to the guest',
      where: 'b85524314a3d',
    },
    { what: 'KVM: guest_memfd: move check for already-populated page to common code', where: 'de80252414f3' },
    { what: 'KVM: guest_memfd: make kvm_gmem_populate() only populate private gfns', where: 'e4ee54479273' },
    {
      what: 'KVM: x86: Only advertise KVM_CAP_READONLY_MEM when supported by VM (kvm-x86-fixes-6.11-rcN)',
      where: 'd30d9ee94cc0',
    },
  ],
  gmem: {
    ...v6_11_rc1.gmem,
    preparation: 'prepared',
    populateRejectsUptodate: true,
    populateRequiresPrivate: true,
  },
  mmu: { ...v6_11_rc1.mmu, preFaultAllowedGate: true },
  x86: { ...v6_11_rc1.x86, readonlyMemCapPerVm: true },
  sev: { ...v6_11_rc1.sev, postPopulateAssignedEexist: true, postPopulateChecksPrivate: false },
};
