import type { KernelProfile } from './types.js';
import { v6_16 } from './v6.16.js';

/** v6.18: guest_memfd mmap and INIT_SHARED, KVM_CAP_GUEST_MEMFD_FLAGS, guest_memfd slots on any VM. */
export const v6_18: KernelProfile = {
  ...v6_16,
  name: 'v6.18',
  description:
    'guest_memfd mmap + INIT_SHARED (not for private-memory VMs), GMEM_ONLY slots, pre-fault EAGAIN',
  base: '6.18',
  sources: [
    ...v6_16.sources,
    { what: 'KVM: guest_memfd: Add mmap support', where: '3d3a04fad25a' },
    { what: 'KVM: Rename KVM_CAP_GUEST_MEMFD_MMAP to KVM_CAP_GUEST_MEMFD_FLAGS', where: 'd2042d8f96dd' },
    {
      what: 'KVM: guest_memfd: Add INIT_SHARED flag, reject user page faults if not set',
      where: 'fe2bf6234e94',
    },
    {
      what: 'KVM: x86/mmu: Return -EAGAIN if userspace deletes/moves memslot during prefault',
      where: '3ccbf6f47098',
    },
    {
      what: 'KVM: x86: Enable KVM_GUEST_MEMFD for all 64-bit builds (default VMs may bind guest_memfd)',
      where: '<20250723104714.1674617-10-tabba@google.com>',
      inferred: true,
    },
    {
      what: 'KVM SVM changes for 6.17: SNP policy SMT / SINGLE_SOCKET left to the firmware (no v6.17 profile)',
      where: 'kvm-x86-svm-6.17: 9f4701e05fae, 24be2b7956a5',
    },
    {
      what: 'KVM SVM changes for 6.18: minimum GHCB version 2 for SNP, Secure TSC, non-positive LAUNCH_UPDATE length',
      where:
        'kvm-x86-svm-6.18: 00f0b959ffb0, 5b66e335ead6 (pull <20250927060910.2933942-7-seanjc@google.com>)',
    },
    {
      what: 'KVM: TDX: Reject fully in-kernel irqchip if EOIs are protected, i.e. for TDX VMs (has_protected_eoi; KVM_CREATE_IRQCHIP -> -ENOTTY), in the 6.18 KVM pull via kvm-x86-misc-6.18',
      where: 'b3a37bff8daf, <20250904062007.622530-1-sagis@google.com>',
    },
    {
      what: 'fs: introduce FALLOC_FL_WRITE_ZEROES to fallocate (6.17)',
      where: 'vfs-6.17.fallocate',
    },
  ],
  vfs: { ...v6_16.vfs, fallocateWriteZeroes: true },
  memslots: { ...v6_16.memslots, gmemOnAnyVm: true },
  gmem: { ...v6_16.gmem, mmap: true, populateRejectsEmpty: true },
  mmu: { ...v6_16.mmu, preFaultEagain: true },
  tdx: { ...v6_16.tdx, protectedEoi: true },
  sev: {
    ...v6_16.sev,
    launchStartChecksSmtSocket: false,
    snpGhcbVersionMin2: true,
    secureTsc: true,
    launchUpdateRejectsEmpty: true,
  },
};
