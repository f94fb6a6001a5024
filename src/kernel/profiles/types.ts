/**
 * A kernel profile: a named kernel version or patch set, as a typed record of behaviour switches.
 * Model code asks the profile (`profile.gmem.populateRejectsUptodate`), never the version string.
 * Adding a version means adding a file here, not editing conditionals elsewhere.
 */

/** What guest_memfd's folio "up to date" bit means, and who sets it. */
export type GmemPreparation =
  /** v6.8: up to date = zeroed; kvm_gmem_get_folio() zeroes on first use (fallocate or get_pfn). No arch hook. */
  | 'zero-on-get-folio'
  /** v6.11-rc1 (kvm-coco-hooks): zeroed and marked on first get_folio, then the arch hook on every
   *  get_pfn and fallocate for every bound VM; a failed hook leaves the folio up to date. */
  | 'coco-hooks'
  /** v6.11-rc2 .. v6.19: up to date = prepared (zeroed and arch hook succeeded); set by
   *  kvm_gmem_prepare_folio() in get_pfn and by kvm_gmem_populate() after its callback. */
  | 'prepared'
  /** v7.0: up to date = zeroed only; the arch hook runs on every get_pfn. */
  | 'zeroed';

/** How KVM_TDX_INIT_MEM_REGION gets the page into the S-EPT. */
export type TdxInitMemRegion =
  /** 2024 dev tree: userspace must KVM_PRE_FAULT_MEMORY the GPA first (the mirror SPTE must exist). */
  | 'requires-prefault'
  /** v6.16 .. v6.18: tdx_gmem_post_populate() calls kvm_tdp_map_page() (a nested private fault). */
  | 'map-page'
  /** v6.19+: kvm_tdp_mmu_map_private_pfn() installs the pfn populate already holds. */
  | 'map-pfn';

export interface ProfileSource {
  /** What it is: a commit, a file at a version, a mail. */
  readonly what: string;
  /** Where: commit id, URL or Message-ID. */
  readonly where: string;
  /** True where the profile's behaviour is inferred from code rather than stated by the source. */
  readonly inferred?: boolean;
}

export interface KernelProfile {
  readonly name: string;
  /** One line, shown by `gmemlab kernels`. */
  readonly description: string;
  /** The upstream release (or base) this profile stands for, for ordering. */
  readonly base: string;
  readonly sources: readonly ProfileSource[];

  readonly vmTypes: {
    /** KVM_X86_SW_PROTECTED_VM (6.8+, CONFIG_KVM_SW_PROTECTED_VM). */
    readonly swProtected: boolean;
    /** KVM_X86_SEV_VM / KVM_X86_SEV_ES_VM and KVM_SEV_INIT2 (6.10+). */
    readonly sev: boolean;
    /** KVM_X86_SNP_VM (6.11+). */
    readonly snp: boolean;
    /** KVM_X86_TDX_VM (6.16 upstream; the 2024 dev tree). */
    readonly tdx: boolean;
  };

  readonly vfs: {
    /**
     * vfs_fallocate() mode checks. false (6.8 .. 6.11): bits outside FALLOC_FL_SUPPORTED_MASK,
     * PUNCH_HOLE with ZERO_RANGE or without KEEP_SIZE -> -EOPNOTSUPP; COLLAPSE_RANGE or INSERT_RANGE
     * with any other bit, UNSHARE_RANGE with anything but KEEP_SIZE -> -EINVAL. true (6.12+, Hellwig
     * "fs: sort out the fallocate mode vs flag mess", vfs-6.12.fallocate): one mode of
     * FALLOC_FL_MODE_MASK plus KEEP_SIZE where that mode allows it, anything else -> -EOPNOTSUPP.
     */
    readonly fallocateModeSwitch: boolean;
    /** 6.17+ (vfs-6.17.fallocate): FALLOC_FL_WRITE_ZEROES is a mode, refused with KEEP_SIZE. */
    readonly fallocateWriteZeroes: boolean;
    /**
     * anon_inodefs raises SB_I_NOEXEC (1ed95281c0c7, "anon_inode: raise SB_I_NODEV and
     * SB_I_NOEXEC", April 2025, 6.15): path_noexec() holds for the files on it, guest_memfd
     * included (7.0's own guest_memfd fs is noexec too), so do_mmap() refuses PROT_EXEC with -EPERM
     * before it looks for ->mmap (-ENODEV). Not modelled for VM and vCPU fds, whose mmap (kvm_run)
     * the model does not offer.
     */
    readonly anonInodeNoexec: boolean;
  };

  /** x86 behaviour outside memory (arch/x86/kvm/x86.c: VM ioctls, capabilities, the hypercall exit). */
  readonly x86: {
    /**
     * KVM_CREATE_PIT2 needs the in-kernel PIC of a full KVM_CREATE_IRQCHIP (-ENOENT otherwise),
     * "KVM: x86: Check irqchip mode before create PIT" (Tengfei Yu, queued January 2024, so from
     * 6.9; a 6.18.44 host refuses it). Before, a PIT could be made without one.
     */
    readonly pitNeedsPic: boolean;
    /**
     * KVM sets kvm_run.hypercall.ret = 0 on every KVM_EXIT_HYPERCALL of KVM_HC_MAP_GPA_RANGE it
     * makes (__kvm_emulate_hypercall(), and SNP's snp_begin_psc_msr() / snp_begin_psc()):
     * 9a1dfeff4414, "KVM: x86: clear vcpu->run->hypercall.ret before exiting for
     * KVM_EXIT_HYPERCALL" (<20241213194137.315304-1-pbonzini@redhat.com>, December 2024). Before, ret
     * holds whatever the last hypercall exit left there (0 on a fresh vCPU), and a VMM that never
     * writes it (QEMU <= 9.2) hands that back to the guest.
     */
    readonly hypercallExitClearsRet: boolean;
    /**
     * KVM_CAP_READONLY_MEM asks the VM: kvm_arch_has_readonly_mem() (0 for VMs with protected
     * state), 1 on /dev/kvm. d30d9ee94cc0, "KVM: x86: Only advertise KVM_CAP_READONLY_MEM when
     * supported by VM" (6.11-rc7). Before, 1 everywhere, though 6.10+ refuses read-only memslots on
     * SEV-ES and SNP VMs.
     */
    readonly readonlyMemCapPerVm: boolean;
  };

  readonly memslots: {
    /** 6.18+: KVM_MEM_GUEST_MEMFD valid on every VM (CONFIG_KVM_GUEST_MEMFD), not only private-memory VMs. */
    readonly gmemOnAnyVm: boolean;
    /** 6.19+: changing KVM_MEM_GUEST_MEMFD on an existing memslot is -EINVAL (9935df5333aa); before,
     *  re-issuing a guest_memfd slot without the flag silently dropped its guest_memfd (a UAF). */
    readonly rejectGmemFlagToggle: boolean;
    /**
     * kvm_arch_prepare_memory_region(): a slot whose last gfn has the VM's direct (TDX shared) bit is
     * -EINVAL (kvm_is_gfn_alias; "KVM: x86/mmu: Prevent aliased memslot GFNs", TDX MMU prep, 6.14).
     */
    readonly rejectGfnAlias: boolean;
    /**
     * access_ok() of userspace_addr + memory_size: up to 6.11, x86-64 valid_user_address() only asks
     * that the end be below 2^63 ((long)sum >= 0); from 6.12 (86e6b1547b3d, 573f45a9f9a4 in 6.13) it
     * must not pass USER_PTR_MAX = TASK_SIZE_MAX.
     */
    readonly accessOkTaskSizeMax: boolean;
  };

  readonly gmem: {
    /** 6.18+: GUEST_MEMFD_FLAG_MMAP / INIT_SHARED, KVM_CAP_GUEST_MEMFD_FLAGS, GMEM_ONLY memslots. */
    readonly mmap: boolean;
    readonly preparation: GmemPreparation;
    /** kvm_gmem_populate() exists (6.11 merge window). */
    readonly populate: boolean;
    /** kvm_gmem_populate(): folio up to date -> -EEXIST (de80252414f3, 6.11-rc2 .. 6.19). */
    readonly populateRejectsUptodate: boolean;
    /** kvm_gmem_populate(): gfn not private -> -EINVAL (e4ee54479273, 6.11-rc2+). */
    readonly populateRequiresPrivate: boolean;
    /** kvm_gmem_populate(): signal_pending -> -EINTR per page. */
    readonly populateChecksSignals: boolean;
    /** 7.0: WARN_ON_ONCE(!PAGE_ALIGNED(src)) -> -EINVAL, and GUP of the source before the lock. */
    readonly populateGupInCommonCode: boolean;
    /**
     * 6.18+ (5b66e335ead6): kvm_gmem_populate() refuses npages <= 0 (WARN_ON_ONCE, -EINVAL); before,
     * only npages < 0, and 0 populates nothing.
     */
    readonly populateRejectsEmpty: boolean;
    /** The July 2024 proof of concept: kvm_gmem_prepare_folio() skips folio_mark_uptodate() for a TD
     *  that is not finalized yet (M-seed). */
    readonly skipUptodateForUnfinalizedTd: boolean;
    /**
     * Out of tree, "KVM: guest_memfd: Add flag to remove from direct map" (v12, Firecracker's
     * secret-hiding kernels): GUEST_MEMFD_FLAG_NO_DIRECT_MAP for VMs other than TDX and SNP, whose
     * mappings GUP refuses (AS_NO_DIRECT_MAP). Absent: not applied.
     */
    readonly noDirectMap?: boolean;
  };

  readonly mmu: {
    /** KVM_PRE_FAULT_MEMORY and KVM_CAP_PRE_FAULT_MEMORY (6.11 merge window). */
    readonly preFault: boolean;
    /** kvm->arch.pre_fault_allowed gates pre-fault for CoCo VMs until they are finalized (5932ca411e53, 6.11-rc2). */
    readonly preFaultAllowedGate: boolean;
    /** 6.18+: -EAGAIN when a memslot update raced with the pre-fault before any progress (3ccbf6f47098). */
    readonly preFaultEagain: boolean;
    /**
     * kvm_arch_vcpu_pre_fault_memory(): a GPA with the VM's direct (TDX shared) bit is -EINVAL,
     * right after the pre_fault_allowed check (8046d29dde17, 6.16-rc2).
     */
    readonly preFaultRejectsAlias: boolean;
    /**
     * struct kvm_gfn_range.attr_filter (TDX MMU prep, 6.14: <20240718211230.1492011-3-rick.p.edgecombe@intel.com>):
     * kvm_arch_pre_set_memory_attributes() zaps only the old kind (KVM_FILTER_SHARED when the range
     * becomes private, else KVM_FILTER_PRIVATE) and guest_memfd invalidations (punch-hole, release,
     * memory failure) only private mappings (6.18+: shared ones for INIT_SHARED files). Before it,
     * every zap covered both. Only a VM with a mirror root (TDX) can tell the kinds apart.
     */
    readonly gfnRangeFilter: boolean;
    /**
     * mmu_alloc_direct_roots() calls make_mmu_pages_available() before taking the TDP MMU path, so a
     * VM with no MMU page budget (no memslot ever created or deleted, no KVM_SET_NR_MMU_PAGES) gets
     * -ENOSPC from KVM_RUN even with TDP. 6.9 returns early for the TDP MMU
     * (<20240111020048.844847-1-seanjc@google.com>); without TDP it is -ENOSPC on every kernel.
     */
    readonly rootAllocNeedsMmuPages: boolean;
    /**
     * kvm_arch_flush_shadow_memslot() on a memslot delete or move. 'zap-all': kvm_mmu_zap_all_fast(),
     * every SPTE of the VM goes, whatever the slot or its address space (v6.8 .. v6.11). 'quirk':
     * KVM_X86_QUIRK_SLOT_ZAP_ALL (aa8d1f48d353, 6.12), on by default and honoured only for
     * KVM_X86_DEFAULT_VM (kvm_memslot_flush_zap_all()): other VM types lose the slot's own range
     * (kvm_mmu_zap_memslot()). The model has no KVM_CAP_DISABLE_QUIRKS2, so the quirk stays on.
     * A TD never takes the fast zap, which would leave its private EPT behind.
     */
    readonly memslotFlush: 'zap-all' | 'quirk';
  };

  readonly sev: {
    /** 7.0: SNP_LAUNCH_UPDATE uaddr must be 4K aligned unless the page type is ZERO (b2e648758038). */
    readonly launchUpdateSrcAligned: boolean;
    /**
     * sev_gmem_post_populate(): an RMP entry already assigned is -EEXIST (de80252414f3, patch 09/12 of
     * the 6.11-rc2 series); before, -EINVAL. Either way the ioctl flattens a first-page failure to -EIO.
     */
    readonly postPopulateAssignedEexist: boolean;
    /**
     * sev_es_sync_vmsa() refuses a vCPU whose VMSA is already encrypted (9b9f7962e3e8, after 7.0;
     * stable 6.19.y / 7.0.y). Without it a second SNP_LAUNCH_FINISH writes a guest-owned VMSA: host
     * RMP #PF (reported as an invariant violation).
     */
    readonly syncVmsaRejectsProtected: boolean;
    /**
     * snp_launch_start() rejects a policy without SMT (bit 16) or with SINGLE_SOCKET (bit 20) with
     * -EINVAL (6.11 .. 6.16). 6.17 (kvm-x86-svm-6.17: 9f4701e05fae, 24be2b7956a5) leaves both to the
     * firmware (SNP_LAUNCH_START / SNP_ACTIVATE: POLICY_FAILURE).
     */
    readonly launchStartChecksSmtSocket: boolean;
    /** 6.18+ (00f0b959ffb0): __sev_guest_init() refuses ghcb_version < 2 for an SNP VM (-EINVAL). */
    readonly snpGhcbVersionMin2: boolean;
    /**
     * 6.18+ ("KVM: SVM: Enable Secure TSC for SNP guests"): SVM_SEV_FEAT_SECURE_TSC in
     * sev_supported_vmsa_features (host has tsc_khz and X86_FEATURE_SNP_SECURE_TSC), refused for
     * non-SNP VMs by __sev_guest_init(); snp_launch_start() passes desired_tsc_khz to the firmware.
     */
    readonly secureTsc: boolean;
    /** 6.18+ (5b66e335ead6): snp_launch_update() refuses len / PAGE_SIZE <= 0 with -EINVAL. */
    readonly launchUpdateRejectsEmpty: boolean;
    /**
     * 6.19+ ("KVM: SEV: Publish supported SEV-SNP policy bits"): snp_launch_start() checks the policy
     * against snp_supported_policy_bits = firmware bits (sev_get_snp_policy_bits) &
     * KVM_SNP_POLICY_MASK_VALID (bits 21-25 added), published as KVM_X86_SNP_POLICY_BITS.
     */
    readonly snpPolicyBitsFromFirmware: boolean;
    /**
     * Up to 6.11 (fixed by e3a7792d9676, "kvm: svm: Fix gctx page leak on invalid inputs", 6.12):
     * snp_launch_start() creates the guest context (snp_context_create(), -ENOTTY on failure)
     * before checking flags and policy, and a refused start leaves the context behind.
     */
    readonly launchStartContextFirst: boolean;
    /**
     * 6.11-rc1 (dee5a47cc7a4): sev_gmem_post_populate() itself refuses a gfn that is not private
     * (-EINVAL), before the RMP lookup; from 6.11-rc2 (e4ee54479273) common code checks it.
     */
    readonly postPopulateChecksPrivate: boolean;
    /**
     * 7.0 (20c3c4108d58, "KVM: SEV: Add KVM_SEV_SNP_ENABLE_REQ_CERTS command"): the command
     * (snp_enable_certs(): -EINVAL once vCPUs exist or for a non-SNP guest) and the
     * KVM_X86_SEV_SNP_REQ_CERTS attribute (1 when SNP is enabled).
     */
    readonly snpReqCerts: boolean;
  };

  readonly tdx: {
    readonly initMemRegion: TdxInitMemRegion;
    /**
     * KVM hides TSX and WAITPKG from TDs: KVM_TDX_CAPABILITIES reports CPUID.(7,0) without them and
     * KVM_TDX_INIT_VM refuses a CPUID.(7,0) entry that sets them with -EINVAL (tdx_clear_unsupported_cpuid,
     * tdx_unsupported_cpuid; posted December 2024, in 6.16 .. 7.0).
     */
    readonly rejectsTsxWaitpkg: boolean;
    /**
     * tdx_map_gpa() with the KVM_HC_MAP_GPA_RANGE exit not enabled: the TDVMCALL status the guest gets.
     * 'subfunc-unsupported' from 6.16 final (Binbin Wu, "KVM: TDX: Add new TDVMCALL status code for
     * unsupported subfuncs", 6.16-rc, <20250619180159.187358-2-pbonzini@redhat.com>); before,
     * 'invalid-operand'.
     */
    readonly mapGpaUnsupportedStatus: 'invalid-operand' | 'subfunc-unsupported';
    /**
     * 6.16 final: KVM_TDX_CAPABILITIES fills a zeroed struct (reserved[] comes back as zeros) and
     * reports user_tdvmcallinfo_1_r11 = TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT (BIT(1)); the 2024
     * dev tree had neither.
     */
    readonly capsTdvmcallInfo: boolean;
    /**
     * 6.19+ (tdx_vcpu_unlocked_ioctl(), kvm-x86 94428e3ba325): a vCPU command is copied in
     * (tdx_get_cmd(), -EFAULT) before the TD state check; up to 6.18 tdx_vcpu_ioctl() checks the
     * state (-EINVAL) first.
     */
    readonly vcpuCmdCopiedFirst: boolean;
    /**
     * tdx_vcpu_create() refuses a vCPU unless the VM has a split IRQCHIP (irqchip_split(); 6.16+,
     * "KVM: TDX: Enforce KVM_IRQCHIP_SPLIT for TDX guests", <20250222014757.897978-11-binbin.wu@linux.intel.com>).
     * false: the 2024 tree's `!vcpu->arch.apic`, which a full KVM_CREATE_IRQCHIP also satisfies.
     */
    readonly vcpuCreateNeedsSplitIrqchip: boolean;
    /**
     * tdx_vm_init() sets kvm->arch.has_protected_eoi and KVM_CREATE_IRQCHIP refuses such a VM with
     * -ENOTTY (b3a37bff8daf, kvm-x86-misc-6.18: "KVM: TDX: Reject fully in-kernel irqchip if EOIs
     * are protected, i.e. for TDX VMs"); before, a TD gets a full IRQCHIP and fails at KVM_CREATE_VCPU.
     */
    readonly protectedEoi: boolean;
    /**
     * tdx_vm_init() sets kvm->arch.has_protected_state ("KVM: TDX: Set arch.has_protected_state to
     * true", Jan 2025, <20250129095902.16391-4-adrian.hunter@intel.com>): a TD's KVM_GET/SET_REGS,
     * SREGS and FPU are then -EINVAL and its memslots cannot be read-only. Before, the register
     * ioctls succeed (the confidential FPU returns 0 and a zeroed struct).
     */
    readonly hasProtectedState: boolean;
  };

  /**
   * Deliberate defects, for testing that the invariants catch what they claim to catch. No real
   * kernel profile sets these.
   */
  readonly bugs?: ProfileBugs;
}

export interface ProfileBugs {
  /** kvm_gmem_prepare_folio() forgets clear_highpage(): stale host data reaches the guest. */
  readonly noClearOnPrepare?: boolean;
  /** Punch-hole truncates without kvm_gmem_invalidate_begin(): SPTEs keep pointing at freed folios. */
  readonly noZapOnPunchHole?: boolean;
  /** kvm_gmem_release() forgets to zap through its bindings: SPTEs keep pointing at freed folios. */
  readonly noZapOnRelease?: boolean;
  /**
   * kvm_arch_flush_shadow_memslot() forgets the zap of a deleted slot: its SPTEs outlive the binding,
   * and a later punch-hole or release frees folios they still map.
   */
  readonly noZapOnMemslotDelete?: boolean;
  /** KVM_SET_MEMORY_ATTRIBUTES skips the pre-set zap: mappings disagree with attributes. */
  readonly noZapOnAttributeChange?: boolean;
  /** guest_memfd user faults ignore INIT_SHARED: the host can touch pages the guest holds private. */
  readonly hostMapsPrivate?: boolean;
}

export type ProfileName = string;
