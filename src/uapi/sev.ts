/** SEV / SEV-SNP uAPI constants (arch/x86/include/uapi/asm/kvm.h, include/uapi/linux/psp-sev.h). */
export {};
