import type { KernelProfile } from './types.js';
import { v6_11 } from './v6.11.js';

const devTreeSources = [
  {
    what: "Rick Edgecombe's TDX dev branch tdx_kvm_dev-2024-07-12-mark_uptodate_issue (kvm-coco-queue based)",
    where: '<97796c0b86db5d98e03c119032f5b173f0f5de14.camel@intel.com>',
  },
  {
    what: 'Rick Edgecombe: patch 09/12 breaks the rebased TDX tree (pre-fault, then INIT_MEM_REGION)',
    where: '<73c62e76d83fe4e5990b640582da933ff3862cb1.camel@intel.com>',
  },
  {
    what: '[PATCH 00/12] KVM: guest_memfd: lazy preparation of pages + prefault support for SEV-SNP',
    where: '<20240711222755.57476-1-pbonzini@redhat.com>',
  },
];

/**
 * The July 2024 TDX development tree with Paolo's lazy-preparation series minus patch 09/12:
 * up to date = prepared, no pre_fault_allowed gate, INIT_MEM_REGION needs the GPA pre-faulted.
 */
export const tdxDev2024: KernelProfile = {
  ...v6_11,
  name: 'tdx-dev-2024-07',
  description:
    'July 2024 TDX dev tree without 09/12: pre-fault prepares, INIT_MEM_REGION needs a pre-faulted GPA',
  base: '6.10+coco-queue',
  sources: [
    ...devTreeSources,
    {
      what: 'populate without the already-populated check (patch 09/12 reverted)',
      where: 'M-seed',
      inferred: true,
    },
    {
      what: "TDX INIT_MEM_REGION on a GPA not pre-faulted: kvm_tdp_mmu_get_walk_private_pfn() -> -ENOENT; pfn mismatch -> -EAGAIN (Isaku Yamahata's tdx_gmem_post_populate of April 2024; the July branch itself not read)",
      where: '<20240425011248.GP3596705@ls.amr.corp.intel.com>',
      inferred: true,
    },
    {
      what: 'kvm_gfn_range.attr_filter from the TDX MMU prep series (v3, May 2024, queued in kvm-coco-queue; the July branch itself not read)',
      where: '<20240718211230.1492011-3-rick.p.edgecombe@intel.com>',
      inferred: true,
    },
    {
      what: 'tdx_vcpu_create() needs only an in-kernel local APIC (`!vcpu->arch.apic` -> -EINVAL), as in the TDX vCPU series of August 2024 (the July branch itself not read)',
      where: '<20240812224820.34826-1-rick.p.edgecombe@intel.com>',
      inferred: true,
    },
    {
      what: 'no TSX/WAITPKG filtering of TD CPUID yet: tdx_clear_unsupported_cpuid()/tdx_unsupported_cpuid() were posted in December 2024 (review by Chao Gao and Adrian Hunter, 2024-12-04)',
      where: 'TDX CPUID patch review thread, December 2024',
      inferred: true,
    },
  ],
  vmTypes: { swProtected: true, sev: true, snp: true, tdx: true },
  gmem: { ...v6_11.gmem, populateRejectsUptodate: false },
  // Inferred with the rest of the TDX MMU prep series (attr_filter below).
  memslots: { ...v6_11.memslots, rejectGfnAlias: true },
  // The tree carried the TDX MMU prep series (attr_filter, inferred) but not 8046d29dde17 (June 2025).
  mmu: {
    preFault: true,
    preFaultAllowedGate: false,
    preFaultEagain: false,
    preFaultRejectsAlias: false,
    gfnRangeFilter: true,
    rootAllocNeedsMmuPages: false,
    // Based before the quirk (6.12); a TD zaps only the slot (inferred: the branch's
    // kvm_arch_flush_shadow_memslot() not read).
    memslotFlush: 'zap-all',
  },
  // MapGPA status for an untrapped KVM_HC_MAP_GPA_RANGE: INVALID_OPERAND, as upstream code before
  // 6.16-rc's SUBFUNC_UNSUPPORTED (inferred: the July branch's tdx_map_gpa() not read).
  tdx: {
    ...v6_11.tdx,
    initMemRegion: 'requires-prefault',
    rejectsTsxWaitpkg: false,
    mapGpaUnsupportedStatus: 'invalid-operand',
    // tdx_vcpu_create() of the 2024 series: `if (!vcpu->arch.apic) return -EINVAL`, so a full
    // KVM_CREATE_IRQCHIP gives the vCPU its local APIC too; no has_protected_eoi (2025).
    vcpuCreateNeedsSplitIrqchip: false,
    protectedEoi: false,
    // The TD's has_protected_state came in January 2025.
    hasProtectedState: false,
  },
  // Without 09/12 sev_gmem_post_populate() still returns -EINVAL for an assigned RMP entry.
  sev: { ...v6_11.sev, postPopulateAssignedEexist: false },
};

/** The same tree with patch 09/12: kvm_gmem_populate() returns -EEXIST for an up-to-date folio. */
export const tdxDev2024Eexist: KernelProfile = {
  ...tdxDev2024,
  name: 'tdx-dev-2024-07+eexist',
  description:
    'July 2024 TDX dev tree with 09/12: pre-fault marks the folio up to date, INIT_MEM_REGION gets EEXIST',
  sources: [
    ...devTreeSources,
    {
      what: '[PATCH 09/12] KVM: guest_memfd: move check for already-populated page to common code',
      where: '<20240711222755.57476-10-pbonzini@redhat.com>',
    },
  ],
  gmem: { ...tdxDev2024.gmem, populateRejectsUptodate: true },
  sev: { ...tdxDev2024.sev, postPopulateAssignedEexist: true },
};

/** With 09/12 and Rick's proof of concept: no folio_mark_uptodate() in prepare for an unfinalized TD. */
export const tdxDev2024EexistPoc: KernelProfile = {
  ...tdxDev2024Eexist,
  name: 'tdx-dev-2024-07+eexist+poc',
  description:
    'dev tree with 09/12 and the POC: prepare skips marking up to date for a TD before finalization',
  sources: [
    ...tdxDev2024Eexist.sources,
    {
      what: 'POC: skip folio_mark_uptodate() in kvm_gmem_prepare_folio() for TDX during pre-finalization',
      where: '<97796c0b86db5d98e03c119032f5b173f0f5de14.camel@intel.com>',
    },
  ],
  gmem: { ...tdxDev2024Eexist.gmem, skipUptodateForUnfinalizedTd: true },
};
