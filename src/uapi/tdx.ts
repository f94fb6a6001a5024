/**
 * TDX uAPI constants: arch/x86/include/uapi/asm/kvm.h (enum kvm_tdx_cmd_id, struct kvm_tdx_cmd,
 * KVM_TDX_MEASURE_MEMORY_REGION) as of v6.16 .. v7.0, and Documentation/virt/kvm/x86/intel-tdx.rst.
 * Struct layouts are given as the C field names the model's struct arguments use.
 */

/** enum kvm_tdx_cmd_id: KVM_MEMORY_ENCRYPT_OP sub-commands (VM: CAPABILITIES, INIT_VM, FINALIZE_VM). */
export const KVM_TDX_CAPABILITIES = 0;
export const KVM_TDX_INIT_VM = 1;
/** vCPU commands: INIT_VCPU, INIT_MEM_REGION, GET_CPUID. */
export const KVM_TDX_INIT_VCPU = 2;
export const KVM_TDX_INIT_MEM_REGION = 3;
export const KVM_TDX_FINALIZE_VM = 4;
export const KVM_TDX_GET_CPUID = 5;
/** The v6.16 value; KVM_TDX_TERMINATE_VM (6) was proposed for 6.17 and is not modelled. */
export const KVM_TDX_CMD_NR_MAX = 6;

/** struct kvm_tdx_cmd.flags of KVM_TDX_INIT_MEM_REGION: TDH.MR.EXTEND each added page. */
export const KVM_TDX_MEASURE_MEMORY_REGION = 1 << 0;

/** The sub-command numbers by name (the model accepts `id` as a name or a number). */
export const KVM_TDX_CMD_IDS: Readonly<Record<string, number>> = {
  KVM_TDX_CAPABILITIES,
  KVM_TDX_INIT_VM,
  KVM_TDX_INIT_VCPU,
  KVM_TDX_INIT_MEM_REGION,
  KVM_TDX_FINALIZE_VM,
  KVM_TDX_GET_CPUID,
};
