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
      what: 'kvm: svm: Fix gctx page leak on invalid inputs (snp_launch_start() checks before snp_context_create(); 6.12)',
      where: 'e3a7792d9676',
    },
    {
      what: 'KVM: Add member to struct kvm_gfn_range to indicate private/shared (attr_filter; 6.14)',
      where: '<20240718211230.1492011-3-rick.p.edgecombe@intel.com>',
    },
    {
      what: 'KVM: x86/mmu: Reject direct bits in gpa passed to KVM_PRE_FAULT_MEMORY (6.16-rc2)',
      where: '8046d29dde17',
    },
    {
      what: 'fs: sort out the fallocate mode vs flag mess (vfs_fallocate mode switch; 6.12)',
      where: 'vfs-6.12.fallocate, <20240827065123.1762168-1-hch@lst.de>',
    },
    {
      what: 'arch/x86/kvm/vmx/tdx.c tdx_clear_unsupported_cpuid(), tdx_unsupported_cpuid() in setup_tdparams_cpuids()',
      where: 'torvalds/linux tdx.c @3829d81b6958632602bee7a8272005d1a4ce298f (6.16-rc)',
    },
    {
      what: 'tdx_vcpu_create(): -EINVAL unless irqchip_split() (KVM: TDX: Enforce KVM_IRQCHIP_SPLIT for TDX guests)',
      where: 'torvalds/linux tdx.c @3829d81b6958, <20250222014757.897978-11-binbin.wu@linux.intel.com>',
    },
  ],
  vmTypes: { ...v6_11.vmTypes, tdx: true },
  // attr_filter came with the TDX MMU prep series (6.14); the alias check with 8046d29dde17 (6.16-rc2).
  // vfs-6.12.fallocate: the mode switch of vfs_fallocate().
  vfs: { ...v6_11.vfs, fallocateModeSwitch: true, anonInodeNoexec: true },
  memslots: { ...v6_11.memslots, rejectGfnAlias: true, accessOkTaskSizeMax: true },
  // KVM_X86_QUIRK_SLOT_ZAP_ALL (aa8d1f48d353, 6.12): only a default VM zaps all on a memslot change.
  mmu: { ...v6_11.mmu, gfnRangeFilter: true, preFaultRejectsAlias: true, memslotFlush: 'quirk' },
  // hypercall.ret = 0 on KVM_EXIT_HYPERCALL: 9a1dfeff4414 (December 2024), so every profile from here.
  x86: { ...v6_11.x86, hypercallExitClearsRet: true },
  sev: { ...v6_11.sev, launchStartContextFirst: false },
  tdx: {
    ...v6_11.tdx,
    hasProtectedState: true,
    initMemRegion: 'map-page',
    rejectsTsxWaitpkg: true,
    mapGpaUnsupportedStatus: 'subfunc-unsupported',
    capsTdvmcallInfo: true,
    vcpuCreateNeedsSplitIrqchip: true,
  },
};
