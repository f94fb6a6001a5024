/** TDX uAPI constants (arch/x86/include/uapi/asm/kvm.h). */
export {};
