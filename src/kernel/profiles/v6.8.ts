import type { KernelProfile } from './types.js';

/** v6.8: guest_memfd introduced (a7800aa80ea4) with the 6.8 fixes (READONLY exclusion, e563592224e0). */
export const v6_8: KernelProfile = {
  name: 'v6.8',
  description:
    'guest_memfd introduced; SW_PROTECTED VMs only; up to date = zeroed; no populate, no pre-fault',
  base: '6.8',
  sources: [
    {
      what: 'KVM: Add KVM_CREATE_GUEST_MEMFD ioctl() for guest-specific backing memory',
      where: 'a7800aa80ea4',
    },
    { what: 'KVM: Make KVM_MEM_GUEST_MEMFD mutually exclusive with KVM_MEM_READONLY', where: 'e563592224e0' },
    { what: 'guest_memfd_test.c at v6.8', where: 'torvalds/linux 94220f1123f3' },
  ],
  vmTypes: { swProtected: true, sev: false, snp: false, tdx: false },
  memslots: {
    gmemOnAnyVm: false,
    rejectGmemFlagToggle: false,
    rejectGfnAlias: false,
    accessOkTaskSizeMax: false,
  },
  gmem: {
    mmap: false,
    preparation: 'zero-on-get-folio',
    populate: false,
    populateRejectsUptodate: false,
    populateRequiresPrivate: false,
    populateChecksSignals: false,
    populateGupInCommonCode: false,
    populateRejectsEmpty: false,
    skipUptodateForUnfinalizedTd: false,
  },
  vfs: { fallocateModeSwitch: false, fallocateWriteZeroes: false, anonInodeNoexec: false },
  x86: { pitNeedsPic: false, hypercallExitClearsRet: false, readonlyMemCapPerVm: false },
  mmu: {
    preFault: false,
    preFaultAllowedGate: false,
    preFaultEagain: false,
    preFaultRejectsAlias: false,
    gfnRangeFilter: false,
    rootAllocNeedsMmuPages: true,
    memslotFlush: 'zap-all',
  },
  sev: {
    launchUpdateSrcAligned: false,
    postPopulateAssignedEexist: false,
    syncVmsaRejectsProtected: false,
    launchStartChecksSmtSocket: true,
    snpGhcbVersionMin2: false,
    secureTsc: false,
    launchUpdateRejectsEmpty: false,
    snpPolicyBitsFromFirmware: false,
    launchStartContextFirst: true,
    postPopulateChecksPrivate: true,
    snpReqCerts: false,
  },
  tdx: {
    initMemRegion: 'map-page',
    rejectsTsxWaitpkg: false,
    mapGpaUnsupportedStatus: 'invalid-operand',
    capsTdvmcallInfo: false,
    vcpuCmdCopiedFirst: false,
    // No TDX in 6.8: the two IRQCHIP switches are those of the first TDX code (the 2024 dev tree).
    vcpuCreateNeedsSplitIrqchip: false,
    protectedEoi: false,
    hasProtectedState: false,
  },
};
