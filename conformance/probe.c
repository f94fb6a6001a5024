/*
 * gmemlab conformance probe: runs its cases (the same list as src/conformance/cases.ts) against the
 * running kernel's /dev/kvm and prints one line per case, "name<TAB>result", where the result is a
 * number (a return value the case reports), "ok", an errno name, a signal or an exit's fields; and
 * "host.<fact><TAB>value" lines about the host. `gmemlab conformance` builds, runs and compares it.
 * Build: cc -O1 -o probe probe.c. Written for x86-64 Linux with glibc >= 2.32 (strerrorname_np); no
 * kernel headers needed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define KVMIO 0xAE
#define KVM_CREATE_VM _IO(KVMIO, 0x01)
#define KVM_CHECK_EXTENSION _IO(KVMIO, 0x03)

struct create_gmem { uint64_t size, flags, reserved[6]; };
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct create_gmem)

struct region2 {
	uint32_t slot, flags;
	uint64_t guest_phys_addr, memory_size, userspace_addr, guest_memfd_offset;
	uint32_t guest_memfd, pad1;
	uint64_t pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct region2)
#define KVM_MEM_GUEST_MEMFD (1u << 2)

#define KVM_CREATE_VCPU _IO(KVMIO, 0x41)
#define KVM_CREATE_IRQCHIP _IO(KVMIO, 0x60)
struct enable_cap { uint32_t cap, flags; uint64_t args[4]; uint8_t pad[64]; };
#define KVM_ENABLE_CAP _IOW(KVMIO, 0xa3, struct enable_cap)
#define KVM_CAP_SPLIT_IRQCHIP 121
#define KVM_MEM_LOG_DIRTY_PAGES (1u << 0)
#define KVM_MEM_READONLY (1u << 1)
#define MADV_COLLAPSE_ 25
#define PROT_SEM_ 0x8 /* asm-generic/mman-common.h; glibc does not define it */
struct region1 { uint32_t slot, flags; uint64_t guest_phys_addr, memory_size, userspace_addr; };
#define KVM_SET_USER_MEMORY_REGION _IOW(KVMIO, 0x46, struct region1)
struct prefault { uint64_t gpa, size, flags, padding[5]; };
#define KVM_PRE_FAULT_MEMORY _IOWR(KVMIO, 0xd5, struct prefault)

#define GMEM_MMAP 1
#define GMEM_INIT_SHARED 2
#define KEEP 0x01
#define PUNCH 0x02
#define ZERO_RANGE 0x10
#define MAP_SYNC_ 0x80000
#define PAGE 4096L

/* KVM_RUN on a DEFAULT VM: a vCPU in flat 32-bit protected mode (no paging) runs a few instructions. */
#define KVM_GET_VCPU_MMAP_SIZE _IO(KVMIO, 0x04)
#define KVM_RUN _IO(KVMIO, 0x80)
#define KVM_SET_NR_MMU_PAGES _IO(KVMIO, 0x44)
struct kvm_header_ { uint32_t n, pad; };
#define KVM_SET_MSRS_ _IOW(KVMIO, 0x89, struct kvm_header_)
#define KVM_SET_CPUID2_ _IOW(KVMIO, 0x90, struct kvm_header_)
#define KVM_SET_FPU_ _IOW(KVMIO, 0x8d, char[416])
struct kvm_regs_ { uint64_t gpr[16], rip, rflags; };
struct kvm_seg_ { uint64_t base; uint32_t limit; uint16_t selector; uint8_t type, present, dpl, db, s, l, g, avl, unusable, pad; };
struct kvm_dt_ { uint64_t base; uint16_t limit, pad[3]; };
struct kvm_sregs_ { struct kvm_seg_ cs, ds, es, fs, gs, ss, tr, ldt; struct kvm_dt_ gdt, idt; uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base, irq_bitmap[4]; };
#define KVM_GET_REGS _IOR(KVMIO, 0x81, struct kvm_regs_)
#define KVM_SET_REGS _IOW(KVMIO, 0x82, struct kvm_regs_)
#define KVM_GET_SREGS _IOR(KVMIO, 0x83, struct kvm_sregs_)
#define KVM_SET_SREGS _IOW(KVMIO, 0x84, struct kvm_sregs_)
/* struct kvm_run: the fields the cases read. */
struct run_ {
	uint8_t request_interrupt_window, immediate_exit, pad1[6];
	uint32_t exit_reason;
	uint8_t ready_for_interrupt_injection, if_flag;
	uint16_t flags;
	uint64_t cr8, apic_base;
	union {
		struct { uint64_t phys_addr; uint8_t data[8]; uint32_t len; uint8_t is_write; } mmio;
		struct { uint32_t suberror, ndata; uint64_t data[16]; } internal;
		uint8_t pad[256];
	};
};
#define CODE_GPA 0x1000

static int flat_vcpu(int vm, int id, const unsigned char *code, size_t len, void *ram, struct run_ **run)
{
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, id);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	long size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	close(kvm);
	*run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	memcpy((char *)ram + CODE_GPA, code, len);
	struct kvm_sregs_ sr;
	ioctl(vcpu, KVM_GET_SREGS, &sr);
	struct kvm_seg_ flat = { .base = 0, .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1, .db = 1, .s = 1, .g = 1 };
	sr.cs = flat;
	flat.type = 3;
	flat.selector = 16;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = flat;
	sr.cr0 |= 1;
	ioctl(vcpu, KVM_SET_SREGS, &sr);
	struct kvm_regs_ r = { .rip = CODE_GPA, .rflags = 2 };
	ioctl(vcpu, KVM_SET_REGS, &r);
	return vcpu;
}

/* KVM_RUN, then the exit: "<exit_reason>" plus the MMIO or internal-error fields that matter. */
static void run_case(const char *name, int vcpu, struct run_ *run)
{
	errno = 0;
	long r = ioctl(vcpu, KVM_RUN, 0);
	if (r < 0) {
		printf("%s\t%s exit=%u\n", name, strerrorname_np(errno), run->exit_reason);
		return;
	}
	printf("%s\texit=%u", name, run->exit_reason);
	if (run->exit_reason == 6) {
		printf(" gpa=0x%llx len=%u write=%u", (unsigned long long)run->mmio.phys_addr, run->mmio.len, run->mmio.is_write);
		if (run->mmio.is_write) {
			printf(" data=");
			for (unsigned i = 0; i < run->mmio.len && i < 8; i++)
				printf("%02x", run->mmio.data[i]);
		}
	} else if (run->exit_reason == 17)
		printf(" suberror=%u ndata=%u", run->internal.suberror, run->internal.ndata);
	printf("\n");
}

/* Facts about the host, printed as "host.<name>\t<value>": context for the cases, not compared. */
static void fact(const char *name, const char *value) { printf("host.%s\t%s\n", name, value); }

/* The vendor module behind /dev/kvm, and whether the TDP MMU is on. */
static void host_facts(void)
{
	const char *mods[] = { "kvm_intel", "kvm_amd", "kvm_pvm" };
	const char *vendor = "unknown";
	for (unsigned i = 0; i < 3; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/sys/module/%s", mods[i]);
		if (access(path, F_OK) == 0)
			vendor = mods[i];
	}
	fact("vendor_module", vendor);
	struct utsname u;
	if (uname(&u) == 0)
		fact("release", u.release);
	char v[8] = "?";
	FILE *f = fopen("/sys/module/kvm/parameters/tdp_mmu", "r");
	if (f) {
		if (fscanf(f, "%7s", v) != 1)
			strcpy(v, "?");
		fclose(f);
	}
	fact("tdp_mmu", v);
}

/* A vCPU's insn_emulation statistic (KVM_GET_STATS_FD): how many of its instructions KVM emulated. */
#define KVM_GET_STATS_FD _IO(KVMIO, 0xce)
static long insn_emulation(int vcpu)
{
	struct { uint32_t flags, name_size, num_desc, id_offset, desc_offset, data_offset; } h;
	int fd = ioctl(vcpu, KVM_GET_STATS_FD, 0);
	if (fd < 0 || pread(fd, &h, sizeof(h), 0) != sizeof(h))
		return -1;
	long r = -1;
	size_t dsz = 16 + h.name_size;
	char d[16 + 256];
	for (uint32_t i = 0; i < h.num_desc && dsz <= sizeof(d); i++) {
		if (pread(fd, d, dsz, h.desc_offset + i * dsz) != (ssize_t)dsz)
			break;
		if (strcmp(d + 16, "insn_emulation") == 0) {
			uint64_t v = 0;
			if (pread(fd, &v, 8, h.data_offset + *(uint32_t *)(d + 8)) == 8)
				r = (long)v;
			break;
		}
	}
	close(fd);
	return r;
}

static void report(const char *name, long r, int err)
{
	if (r < 0)
		printf("%s\t%s\n", name, strerrorname_np(err));
	else
		printf("%s\t%ld\n", name, r);
}

/* KVM_PRE_FAULT_MEMORY cases: PF(...) in the list the model test reads. */
#define PF(name, ...) prefault(name, __VA_ARGS__)
/* A syscall whose value matters (a capability) or that should just succeed (0 printed as 0). */
#define VAL(name, expr) do { errno = 0; long r_ = (long)(expr); report(name, r_, errno); } while (0)
/* A call that returns an fd or an address on success: printed as "ok". */
#define OK(name, expr) do { errno = 0; long r_ = (long)(expr); if (r_ >= 0 && (void *)r_ != MAP_FAILED) printf("%s\tok\n", name); else report(name, -1, errno); } while (0)

/* KVM_PRE_FAULT_MEMORY: the result, then the struct as the kernel left it. */
static void prefault(const char *name, int vcpu, uint64_t gpa, uint64_t size, uint64_t flags)
{
	struct prefault p = { .gpa = gpa, .size = size, .flags = flags };
	errno = 0;
	long r = ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &p);
	if (r < 0)
		printf("%s\t%s gpa=0x%llx size=0x%llx\n", name, strerrorname_np(errno),
		       (unsigned long long)p.gpa, (unsigned long long)p.size);
	else
		printf("%s\t%ld gpa=0x%llx size=0x%llx\n", name, r, (unsigned long long)p.gpa,
		       (unsigned long long)p.size);
}

/* A host access through a mapping: the byte read (or 0 for a write), or SIGBUS / SIGSEGV. */
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t in_touch;
/* Only a touch() may fault; anywhere else the signal keeps its default action (the probe dies). */
static void on_sigbus(int sig)
{
	if (!in_touch) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	siglongjmp(fault_jmp, sig);
}
static void touch(const char *name, volatile unsigned char *p, int write, unsigned char v)
{
	int sig = sigsetjmp(fault_jmp, 1);
	in_touch = !sig;
	if (sig) {
		printf("%s\t%s\n", name, sig == SIGSEGV ? "SIGSEGV" : "SIGBUS");
		return;
	}
	if (write) {
		*p = v;
		in_touch = 0;
		printf("%s\t0\n", name);
	} else {
		unsigned char b = *p;
		in_touch = 0;
		printf("%s\t%d\n", name, b);
	}
}
#define READ(name, p) touch(name, (volatile unsigned char *)(p), 0, 0)
#define WRITE(name, p, v) touch(name, (volatile unsigned char *)(p), 1, (v))

static int gmem(int vm, uint64_t size, uint64_t flags)
{
	struct create_gmem c = { .size = size, .flags = flags };
	return ioctl(vm, KVM_CREATE_GUEST_MEMFD, &c);
}

static long slotf(int vm, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva, int fd, uint64_t off)
{
	struct region2 r = { .slot = id, .flags = flags, .guest_phys_addr = gpa,
			     .memory_size = size, .userspace_addr = (uint64_t)hva,
			     .guest_memfd_offset = off, .guest_memfd = (uint32_t)fd };
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

static long split_irqchip(int vm)
{
	struct enable_cap c = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
	return ioctl(vm, KVM_ENABLE_CAP, &c);
}

static long slot(int vm, uint32_t id, uint64_t gpa, uint64_t size, void *hva, int fd, uint64_t off)
{
	struct region2 r = { .slot = id, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = gpa,
			     .memory_size = size, .userspace_addr = (uint64_t)hva,
			     .guest_memfd_offset = off, .guest_memfd = (uint32_t)fd };
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

int main(void)
{
	/* Host accesses that fault (touch()) print the signal instead of dying. */
	struct sigaction sa = { .sa_handler = on_sigbus };
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 2;
	}
	host_facts();
	VAL("cap.sys.guest_memfd", ioctl(kvm, KVM_CHECK_EXTENSION, 234));
	VAL("cap.sys.guest_memfd_flags", ioctl(kvm, KVM_CHECK_EXTENSION, 244));
	VAL("cap.sys.user_memory2", ioctl(kvm, KVM_CHECK_EXTENSION, 231));
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		perror("KVM_CREATE_VM");
		return 2;
	}
	VAL("cap.vm.guest_memfd", ioctl(vm, KVM_CHECK_EXTENSION, 234));
	VAL("cap.vm.guest_memfd_flags", ioctl(vm, KVM_CHECK_EXTENSION, 244));
	/* Sections that need a guest_memfd the host can map and that starts shared (6.18+). */
	int shared_gmem = (ioctl(vm, KVM_CHECK_EXTENSION, 244) & (GMEM_MMAP | GMEM_INIT_SHARED)) == (GMEM_MMAP | GMEM_INIT_SHARED);

	OK("gmem.create.flags0", gmem(vm, 4 * PAGE, 0));
	OK("gmem.create.mmap", gmem(vm, 4 * PAGE, GMEM_MMAP));
	OK("gmem.create.mmap_init_shared", gmem(vm, 4 * PAGE, GMEM_MMAP | GMEM_INIT_SHARED));
	OK("gmem.create.flag4", gmem(vm, 4 * PAGE, 4));
	OK("gmem.create.size0", gmem(vm, 0, 0));
	OK("gmem.create.size_unaligned", gmem(vm, PAGE + 1, 0));

	int g = gmem(vm, 4 * PAGE, 0);
	char buf[16] = { 0 };
	VAL("gmem.read", read(g, buf, sizeof(buf)));
	VAL("gmem.pread", pread(g, buf, sizeof(buf), 0));
	VAL("gmem.ftruncate", ftruncate(g, 8 * PAGE));
	VAL("gmem.fallocate.mode0", fallocate(g, 0, 0, PAGE));
	VAL("gmem.fallocate.keep", fallocate(g, KEEP, 0, PAGE));
	VAL("gmem.fallocate.keep_beyond", fallocate(g, KEEP, 0, 8 * PAGE));
	VAL("gmem.fallocate.keep_unaligned", fallocate(g, KEEP, 1, PAGE));
	VAL("gmem.fallocate.punch_beyond", fallocate(g, KEEP | PUNCH, 16 * PAGE, PAGE));
	VAL("gmem.fallocate.zero_range", fallocate(g, KEEP | ZERO_RANGE, 0, PAGE));
	/* vfs_fallocate()'s own checks against guest_memfd's. */
	VAL("gmem.fallocate.punch_without_keep", fallocate(g, PUNCH, 0, PAGE));
	VAL("gmem.fallocate.punch_unaligned", fallocate(g, KEEP | PUNCH, 1, PAGE));
	VAL("gmem.fallocate.len0", fallocate(g, KEEP, 0, 0));
	VAL("gmem.fallocate.offset_negative", fallocate(g, KEEP, -PAGE, PAGE));
	VAL("gmem.fallocate.too_big", fallocate(g, KEEP, 0x7ffffffffffff000ll, 0x2000));
	VAL("gmem.fallocate.collapse", fallocate(g, 0x08, 0, PAGE));
	VAL("gmem.fallocate.insert", fallocate(g, 0x20, 0, PAGE));
	VAL("gmem.fallocate.unshare", fallocate(g, 0x40, 0, PAGE));
	VAL("gmem.fallocate.unknown_mode", fallocate(g, 0x1000, 0, PAGE));
	OK("gmem.mmap.no_mmap_flag", mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0));
	OK("gmem.mmap.exec", mmap(NULL, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED, g, 0));

	if (shared_gmem) {
		int gs = gmem(vm, 4 * PAGE, GMEM_MMAP | GMEM_INIT_SHARED);
		OK("gmem_shared.mmap.private", mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, gs, 0));
		OK("gmem_shared.mmap.shared", mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, gs, 0));
		OK("gmem_shared.mmap.validate_sync", mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC_, gs, 0));

		/* fstat, write(2), sizes and the struct's reserved words. */
		struct stat st;
		VAL("gmem.fstat", fstat(g, &st));
		printf("gmem.fstat.size\t%lld\n", (long long)st.st_size);
		printf("gmem.fstat.mode\t0%o\n", st.st_mode);
		printf("gmem.fstat.blksize\t%ld\n", (long)st.st_blksize);
		VAL("gmem.write", write(g, buf, sizeof(buf)));
		VAL("gmem.pwrite", pwrite(g, buf, sizeof(buf), 0));
		OK("gmem.create.1tib", gmem(vm, 1ull << 40, 0));
		OK("gmem.create.size_negative", gmem(vm, 1ull << 63, 0));
		struct create_gmem cr = { .size = PAGE, .reserved = { 1 } };
		OK("gmem.create.reserved", ioctl(vm, KVM_CREATE_GUEST_MEMFD, &cr));
		int gd = dup(g);
		VAL("gmem.dup.fallocate", fallocate(gd, KEEP, 0, PAGE));
		close(gd);
		VAL("gmem.closed.fallocate", fallocate(gd, KEEP, 0, PAGE));	}

	VAL("vmfd.pread", pread(vm, buf, sizeof(buf), 0));
	VAL("vmfd.ftruncate", ftruncate(vm, PAGE));
	VAL("vmfd.fallocate", fallocate(vm, 0, 0, PAGE));

	void *hva = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int gm = gmem(vm, 4 * PAGE, 0);
	VAL("slot.create", slot(vm, 0, 0, 4 * PAGE, hva, gm, 0));
	VAL("slot.overlap", slot(vm, 1, 0, 4 * PAGE, hva, gm, 0));
	VAL("slot.size_unaligned", slot(vm, 2, 0x100000, PAGE + 1, hva, gm, 0));
	VAL("slot.offset_unaligned", slot(vm, 3, 0x100000, PAGE, hva, gm, 1));
	VAL("slot.offset_beyond_file", slot(vm, 4, 0x100000, 2 * PAGE, hva, gm, 3 * PAGE));
	VAL("slot.offset_wraps", slot(vm, 5, 0x200000, 2 * PAGE, hva, gm, 0x7ffffffffffff000ull));
	VAL("slot.uaddr_unaligned", slotf(vm, 6, 0, 0x300000, PAGE, (char *)hva + 1, -1, 0));
	VAL("slot.gpa_unaligned", slotf(vm, 6, 0, 0x300001, PAGE, hva, -1, 0));
	VAL("slot.uaddr_unmapped", slotf(vm, 6, 0, 0x300000, PAGE, (void *)0x10000000000ull, -1, 0));
	struct region2 rp = { .slot = 7, .guest_phys_addr = 0x400000, .memory_size = PAGE, .userspace_addr = (uint64_t)hva, .pad1 = 1, .pad2 = { 1 } };
	VAL("slot.pad_nonzero", ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &rp));

	/* KVM_PRE_FAULT_MEMORY on a second DEFAULT VM: a 64 KiB anonymous slot at 0, a gmem-only slot. */
	int vm2 = ioctl(kvm, KVM_CREATE_VM, 0);
	VAL("cap.sys.pre_fault_memory", ioctl(kvm, KVM_CHECK_EXTENSION, 236));
	/* Capabilities that do not depend on the kernel's configuration (VM_TYPES: SW_PROTECTED needs the TDP MMU). */
	VAL("cap.sys.vm_types", ioctl(kvm, KVM_CHECK_EXTENSION, 235));
	OK("vm.sw_protected", ioctl(kvm, KVM_CREATE_VM, 1));
	VAL("cap.sys.irqchip", ioctl(kvm, KVM_CHECK_EXTENSION, 0));
	VAL("cap.sys.user_memory", ioctl(kvm, KVM_CHECK_EXTENSION, 3));
	VAL("cap.sys.nr_memslots", ioctl(kvm, KVM_CHECK_EXTENSION, 10));
	VAL("cap.sys.sync_mmu", ioctl(kvm, KVM_CHECK_EXTENSION, 16));
	VAL("cap.sys.split_irqchip", ioctl(kvm, KVM_CHECK_EXTENSION, 121));
	VAL("cap.sys.exit_hypercall", ioctl(kvm, KVM_CHECK_EXTENSION, 201));
	VAL("cap.sys.memory_fault_info", ioctl(kvm, KVM_CHECK_EXTENSION, 232));
	/* These follow the kernel's configuration (KVM_MAX_NR_VCPUS: 4096 with MAXSMP, else 1024;
	 * MULTI_ADDRESS_SPACE: 0 without CONFIG_KVM_SMM). The model answers as a distribution kernel. */
	char c[24];
	snprintf(c, sizeof(c), "%d", ioctl(kvm, KVM_CHECK_EXTENSION, 66));
	fact("max_vcpus", c);
	snprintf(c, sizeof(c), "%d", ioctl(kvm, KVM_CHECK_EXTENSION, 128));
	fact("max_vcpu_id", c);
	snprintf(c, sizeof(c), "%d", ioctl(kvm, KVM_CHECK_EXTENSION, 118));
	fact("multi_address_space", c);
	VAL("cap.vm.nr_memslots", ioctl(vm2, KVM_CHECK_EXTENSION, 10));
	VAL("cap.vm.vm_types", ioctl(vm2, KVM_CHECK_EXTENSION, 235));
	void *ram = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct region1 r1 = { .slot = 0, .guest_phys_addr = 0, .memory_size = 16 * PAGE, .userspace_addr = (uint64_t)ram };
	VAL("prefault.slot", ioctl(vm2, KVM_SET_USER_MEMORY_REGION, &r1));
	int vcpu = ioctl(vm2, KVM_CREATE_VCPU, 0);
	PF("prefault.one_page", vcpu, 0, PAGE, 0);
	PF("prefault.flags", vcpu, 0, PAGE, 1);
	PF("prefault.size0", vcpu, 0, 0, 0);
	PF("prefault.unaligned", vcpu, 1, PAGE, 0);
	PF("prefault.wraps", vcpu, 0xfffffffffffff000ull, 2 * PAGE, 0);
	PF("prefault.no_slot", vcpu, 0x40000000, PAGE, 0);
	PF("prefault.runs_off_slot", vcpu, 15 * PAGE, 2 * PAGE, 0);
	if (shared_gmem) {
		int gso = gmem(vm2, 4 * PAGE, GMEM_MMAP | GMEM_INIT_SHARED);
		void *gmap = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, gso, 0);
		VAL("prefault.gmem_only_slot", slot(vm2, 1, 0x100000, 4 * PAGE, gmap, gso, 0));
		PF("prefault.gmem_only", vcpu, 0x100000, 2 * PAGE, 0);
	}

	/* Memslot flags and ids on a third DEFAULT VM. */
	int vm3 = ioctl(kvm, KVM_CREATE_VM, 0);
	int g3 = gmem(vm3, 4 * PAGE, 0);
	void *h3 = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VAL("slotflags.gmem_readonly", slotf(vm3, 0, KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY, 0, PAGE, h3, g3, 0));
	VAL("slotflags.gmem_dirty_log", slotf(vm3, 0, KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES, 0, PAGE, h3, g3, 0));
	VAL("slotflags.unknown_flag", slotf(vm3, 0, 1u << 3, 0, PAGE, h3, -1, 0));
	VAL("slotflags.readonly", slotf(vm3, 0, KVM_MEM_READONLY, 0, PAGE, h3, -1, 0));
	VAL("slotflags.id_too_big", slotf(vm3, 32767, 0, 0x10000, PAGE, h3, -1, 0));
	VAL("slotflags.delete_missing", slotf(vm3, 7, 0, 0x20000, 0, h3, -1, 0));
	VAL("slotflags.gmem_other_vm", slotf(vm3, 8, KVM_MEM_GUEST_MEMFD, 0x30000, PAGE, h3, gm, 0));
	VAL("slotflags.gmem_bad_fd", slotf(vm3, 9, KVM_MEM_GUEST_MEMFD, 0x40000, PAGE, h3, 999, 0));
	VAL("slotflags.gmem_not_gmem_fd", slotf(vm3, 10, KVM_MEM_GUEST_MEMFD, 0x50000, PAGE, h3, vm3, 0));
	VAL("slotflags.gmem_first", slotf(vm3, 11, KVM_MEM_GUEST_MEMFD, 0x60000, 2 * PAGE, h3, g3, 0));
	VAL("slotflags.gmem_range_taken", slotf(vm3, 12, KVM_MEM_GUEST_MEMFD, 0x70000, 2 * PAGE, h3, g3, PAGE));
	VAL("slotflags.modify_gmem_slot", slotf(vm3, 11, KVM_MEM_GUEST_MEMFD, 0x80000, 2 * PAGE, h3, g3, 0));
	/* A binding's life: flags changed on a guest_memfd slot, deleted and bound again, the file closed. */
	VAL("gmem_bind.dirty_log_toggle", slotf(vm3, 11, KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES, 0x60000, 2 * PAGE, h3, g3, 0));
	VAL("gmem_bind.delete", slotf(vm3, 11, 0, 0x60000, 0, h3, -1, 0));
	VAL("gmem_bind.rebind_range", slotf(vm3, 12, KVM_MEM_GUEST_MEMFD, 0x70000, 2 * PAGE, h3, g3, PAGE));
	VAL("gmem_bind.punch_bound", fallocate(g3, KEEP | PUNCH, 0, 4 * PAGE));
	close(g3);
	VAL("gmem_bind.closed_fd_new_slot", slotf(vm3, 13, KVM_MEM_GUEST_MEMFD, 0x90000, PAGE, h3, g3, 0));
	VAL("gmem_bind.delete_after_close", slotf(vm3, 12, 0, 0x70000, 0, h3, -1, 0));

	if (shared_gmem) {
		/* madvise on a guest_memfd mapping (MMAP | INIT_SHARED), 8 pages over a 4-page file. */
		int g4 = gmem(vm3, 4 * PAGE, GMEM_MMAP | GMEM_INIT_SHARED);
		char *m4 = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g4, 0);
		VAL("madv.gmem.populate_write", madvise(m4, 4 * PAGE, MADV_POPULATE_WRITE));
		VAL("madv.gmem.populate_beyond_eof", madvise(m4 + 4 * PAGE, PAGE, MADV_POPULATE_WRITE));
		VAL("madv.gmem.hugepage", madvise(m4, 4 * PAGE, MADV_HUGEPAGE));
		VAL("madv.gmem.collapse", madvise(m4, 4 * PAGE, MADV_COLLAPSE_));
		VAL("madv.gmem.dontneed", madvise(m4, 4 * PAGE, MADV_DONTNEED));
		VAL("madv.gmem.remove", madvise(m4, PAGE, MADV_REMOVE));
		VAL("madv.gmem.free", madvise(m4, PAGE, MADV_FREE));
		VAL("madv.gmem.willneed", madvise(m4, 4 * PAGE, MADV_WILLNEED));
		VAL("madv.gmem.populate_read", madvise(m4, 4 * PAGE, MADV_POPULATE_READ));
		VAL("madv.gmem.cold", madvise(m4, 4 * PAGE, MADV_COLD));
		VAL("madv.gmem.pageout", madvise(m4, 4 * PAGE, MADV_PAGEOUT));
		VAL("madv.gmem.dontneed_locked", madvise(m4, 4 * PAGE, 24));
		VAL("madv.gmem.wipeonfork", madvise(m4, 4 * PAGE, MADV_WIPEONFORK));
		VAL("madv.gmem.mergeable", madvise(m4, 4 * PAGE, MADV_MERGEABLE));
		VAL("madv.unknown", madvise(m4, PAGE, 77));
		VAL("madv.unaligned", madvise(m4 + 1, PAGE, MADV_DONTNEED));
		VAL("madv.len0", madvise(m4, 0, MADV_DONTNEED));
		/* guest_memfd's superblock is noexec: no VM_MAYEXEC, so mprotect(PROT_EXEC) is -EACCES. */
		VAL("mprotect.gmem.exec", mprotect(m4, PAGE, PROT_READ | PROT_EXEC));
		VAL("mprotect.gmem.read", mprotect(m4, PAGE, PROT_READ));
	}
	char *three = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(three + PAGE, PAGE);
	VAL("madv.hole", madvise(three, 3 * PAGE, MADV_DONTNEED));
	/* mprotect: do_mprotect_pkey()'s checks in order, then what accesses see. `three` has a hole in
	 * its middle page. */
	VAL("mprotect.unaligned", mprotect(three + 1, PAGE, PROT_READ));
	VAL("mprotect.len0", mprotect(three + PAGE, 0, PROT_READ));
	VAL("mprotect.grows_both", mprotect(three, PAGE, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP));
	VAL("mprotect.wraps", mprotect(three, (size_t)-PAGE, PROT_READ));
	VAL("mprotect.bad_prot", mprotect(three, PAGE, 0x10));
	VAL("mprotect.unmapped", mprotect(three + PAGE, PAGE, PROT_READ));
	VAL("mprotect.hole_start", mprotect(three + PAGE, 2 * PAGE, PROT_READ));
	VAL("mprotect.growsdown", mprotect(three, PAGE, PROT_READ | PROT_GROWSDOWN));
	VAL("mprotect.growsup", mprotect(three, PAGE, PROT_READ | PROT_GROWSUP));
	WRITE("mprotect.before.last_write", three + 2 * PAGE, 7);
	VAL("mprotect.hole_middle", mprotect(three, 3 * PAGE, PROT_READ));
	WRITE("mprotect.hole_middle.first_write", three, 1);
	WRITE("mprotect.hole_middle.last_write", three + 2 * PAGE, 8);
	VAL("mprotect.sem", mprotect(three, PAGE, PROT_READ | PROT_WRITE | PROT_SEM_));
	WRITE("mprotect.sem.write", three, 2);
	VAL("mprotect.none", mprotect(three + 2 * PAGE, PAGE, PROT_NONE));
	READ("mprotect.none.read", three + 2 * PAGE);
	VAL("mprotect.rw_again", mprotect(three + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE));
	READ("mprotect.rw_again.read", three + 2 * PAGE);

	/* IRQCHIP modes. */
	int vm5 = ioctl(kvm, KVM_CREATE_VM, 0);
	VAL("irqchip.create", ioctl(vm5, KVM_CREATE_IRQCHIP, 0));
	VAL("irqchip.create_again", ioctl(vm5, KVM_CREATE_IRQCHIP, 0));
	VAL("irqchip.split_after_full", split_irqchip(vm5));
	int vm6 = ioctl(kvm, KVM_CREATE_VM, 0);
	VAL("irqchip.split", split_irqchip(vm6));
	VAL("irqchip.full_after_split", ioctl(vm6, KVM_CREATE_IRQCHIP, 0));
	int vm7 = ioctl(kvm, KVM_CREATE_VM, 0);
	OK("irqchip.vcpu", ioctl(vm7, KVM_CREATE_VCPU, 0));
	VAL("irqchip.create_after_vcpu", ioctl(vm7, KVM_CREATE_IRQCHIP, 0));
	VAL("irqchip.split_after_vcpu", split_irqchip(vm7));
	OK("vm.bad_type", ioctl(kvm, KVM_CREATE_VM, 99));
	/* KVM_IRQ_LINE and KVM_CREATE_PIT2 by IRQCHIP mode: none (vm7: a vCPU, no IRQCHIP), full (vm5), split (vm6). */
	struct { uint32_t irq, level; } lvl = { 4, 1 };
	struct { uint32_t flags, pad[15]; } pit = { 0 };
	#define KVM_IRQ_LINE _IOW(KVMIO, 0x61, lvl)
	#define KVM_CREATE_PIT2 _IOW(KVMIO, 0x77, pit)
	VAL("irq_line.no_irqchip", ioctl(vm7, KVM_IRQ_LINE, &lvl));
	VAL("irq_line.full", ioctl(vm5, KVM_IRQ_LINE, &lvl));
	VAL("irq_line.split", ioctl(vm6, KVM_IRQ_LINE, &lvl));
	VAL("irq_line.null", ioctl(vm5, KVM_IRQ_LINE, NULL));
	VAL("pit2.no_irqchip", ioctl(vm7, KVM_CREATE_PIT2, &pit));
	VAL("pit2.split", ioctl(vm6, KVM_CREATE_PIT2, &pit));
	VAL("pit2.null", ioctl(vm5, KVM_CREATE_PIT2, NULL));
	pit.flags = 0x8;
	VAL("pit2.full_unknown_flags", ioctl(vm5, KVM_CREATE_PIT2, &pit));
	VAL("pit2.again", ioctl(vm5, KVM_CREATE_PIT2, &pit));
	#define KVM_SET_TSS_ADDR _IO(KVMIO, 0x47)
	/* KVM_SET_TSS_ADDR (by value): Firecracker's and QEMU's KVM_TSS_ADDRESS, the highest allowed, beyond. */
	VAL("tss.firecracker", ioctl(vm7, KVM_SET_TSS_ADDR, 0xfffbd000UL));
	VAL("tss.max", ioctl(vm7, KVM_SET_TSS_ADDR, 0xffffd000UL));
	VAL("tss.too_high", ioctl(vm7, KVM_SET_TSS_ADDR, 0xffffd001UL));
	VAL("tss.above_4g", ioctl(vm7, KVM_SET_TSS_ADDR, 0x100000000UL));
	VAL("dev.api_version", ioctl(kvm, _IO(KVMIO, 0x00), 0));
	VAL("dev.api_version_arg", ioctl(kvm, _IO(KVMIO, 0x00), 1));
	VAL("dev.vcpu_mmap_size", ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
	VAL("dev.vcpu_mmap_size_arg", ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 1));
	VAL("dev.vm_ioctl_on_dev", ioctl(kvm, KVM_CREATE_VCPU, 0));
	int vm9 = ioctl(kvm, KVM_CREATE_VM, 0);
	OK("vcpu.create", ioctl(vm9, KVM_CREATE_VCPU, 3));
	VAL("vcpu.duplicate_id", ioctl(vm9, KVM_CREATE_VCPU, 3));
	VAL("vcpu.dev_ioctl_on_vm", ioctl(vm9, KVM_GET_VCPU_MMAP_SIZE, 0));
	/* Requests a file does not handle: each kind of fd answers its own way. */
	int vc9 = ioctl(vm9, KVM_CREATE_VCPU, 4);
	VAL("unknown.dev", ioctl(kvm, _IO(KVMIO, 0x99), 0));
	VAL("unknown.vm", ioctl(vm9, _IO(KVMIO, 0x99), 0));
	VAL("unknown.vcpu", ioctl(vc9, _IO(KVMIO, 0x99), 0));
	VAL("unknown.vcpu_vm_ioctl", ioctl(vc9, KVM_CREATE_VCPU, 0));
	VAL("unknown.vcpu_check_extension", ioctl(vc9, KVM_CHECK_EXTENSION, 0));
	int g9x = gmem(vm9, PAGE, 0);
	VAL("unknown.gmem", ioctl(g9x, KVM_CHECK_EXTENSION, 0));

	/* vCPU state ioctls: FPU, MSRs (PAT: valid on any x86 host), CPUID's address sizes, sregs. */
	static char fpu[416];
	VAL("vcpu.set_fpu", ioctl(vc9, KVM_SET_FPU_, fpu));
	VAL("vcpu.set_fpu_null", ioctl(vc9, KVM_SET_FPU_, NULL));
	struct { uint32_t nmsrs, pad; struct { uint32_t index, reserved; uint64_t data; } e[1]; } msrs = { .nmsrs = 1, .e = { { 0x277, 0, 0x0007040600070406ull } } };
	VAL("vcpu.set_msrs_pat", ioctl(vc9, KVM_SET_MSRS_, &msrs));
	msrs.e[0].data = 0x0007040600070402ull; /* memory type 2 in the low byte: !kvm_pat_valid() */
	VAL("vcpu.set_msrs_bad_pat", ioctl(vc9, KVM_SET_MSRS_, &msrs));
	msrs.nmsrs = 0;
	VAL("vcpu.set_msrs_none", ioctl(vc9, KVM_SET_MSRS_, &msrs));
	msrs.nmsrs = 256;
	VAL("vcpu.set_msrs_256", ioctl(vc9, KVM_SET_MSRS_, &msrs));
	VAL("vcpu.set_msrs_null", ioctl(vc9, KVM_SET_MSRS_, NULL));
	/* Registers: the reset state kvm_vcpu_reset() gives a new vCPU, and what KVM_SET_REGS leaves. */
	struct kvm_regs_ gr;
	memset(&gr, 0x5a, sizeof(gr));
	VAL("vcpu.get_regs", ioctl(vc9, KVM_GET_REGS, &gr));
	printf("vcpu.get_regs_reset\trip=0x%llx rflags=0x%llx rax=0x%llx rdx=0x%llx r15=0x%llx\n",
	       (unsigned long long)gr.rip, (unsigned long long)gr.rflags, (unsigned long long)gr.gpr[0],
	       (unsigned long long)gr.gpr[3], (unsigned long long)gr.gpr[15]);
	VAL("vcpu.get_regs_null", ioctl(vc9, KVM_GET_REGS, NULL));
	struct kvm_regs_ sr = { .rip = 0x1234, .rflags = 0 };
	sr.gpr[0] = 5;
	sr.gpr[15] = 0xffffffffffffffffull;
	VAL("vcpu.set_regs", ioctl(vc9, KVM_SET_REGS, &sr));
	memset(&gr, 0x5a, sizeof(gr));
	VAL("vcpu.get_regs_again", ioctl(vc9, KVM_GET_REGS, &gr));
	printf("vcpu.get_regs_after_set\trip=0x%llx rflags=0x%llx rax=0x%llx rdx=0x%llx r15=0x%llx\n",
	       (unsigned long long)gr.rip, (unsigned long long)gr.rflags, (unsigned long long)gr.gpr[0],
	       (unsigned long long)gr.gpr[3], (unsigned long long)gr.gpr[15]);
	struct { uint32_t nent, pad; struct { uint32_t function, index, flags, eax, ebx, ecx, edx, padding[3]; } e[1]; } cpuid = { .nent = 1, .e = { { .function = 0x80000008, .eax = 0x2030 } } };
	VAL("vcpu.set_cpuid_vaddr_32", ioctl(vc9, KVM_SET_CPUID2_, &cpuid));
	cpuid.e[0].eax = 0x3030;
	VAL("vcpu.set_cpuid_vaddr_48", ioctl(vc9, KVM_SET_CPUID2_, &cpuid));
	struct kvm_sregs_ s0, s1;
	ioctl(vc9, KVM_GET_SREGS, &s0);
	VAL("vcpu.sregs_unchanged", ioctl(vc9, KVM_SET_SREGS, &s0));
	s1 = s0; s1.cr0 |= 1ull << 31; s1.cr0 &= ~1ull;
	VAL("vcpu.sregs_pg_without_pe", ioctl(vc9, KVM_SET_SREGS, &s1));
	s1 = s0; s1.cr0 |= 1ull << 32;
	VAL("vcpu.sregs_cr0_high_bit", ioctl(vc9, KVM_SET_SREGS, &s1));
	s1 = s0; s1.cr0 = (s1.cr0 & ~(1ull << 30)) | (1ull << 29);
	VAL("vcpu.sregs_nw_without_cd", ioctl(vc9, KVM_SET_SREGS, &s1));
	s1 = s0; s1.efer |= 1ull << 10;
	VAL("vcpu.sregs_lma_outside_long_mode", ioctl(vc9, KVM_SET_SREGS, &s1));
	s1 = s0; s1.cs.l = 1;
	VAL("vcpu.sregs_cs_l_outside_long_mode", ioctl(vc9, KVM_SET_SREGS, &s1));

	/* KVM_ENABLE_CAP on each kind of fd, and its argument checks. */
	struct enable_cap ec = { .cap = 201, .args = { 1u << 12 } }; /* EXIT_HYPERCALL: KVM_HC_MAP_GPA_RANGE */
	VAL("enable_cap.exit_hypercall", ioctl(vm9, KVM_ENABLE_CAP, &ec));
	ec.args[0] = 1u << 13;
	VAL("enable_cap.exit_hypercall_other", ioctl(vm9, KVM_ENABLE_CAP, &ec));
	ec.args[0] = 1u << 12;
	ec.flags = 1;
	VAL("enable_cap.flags", ioctl(vm9, KVM_ENABLE_CAP, &ec));
	struct enable_cap eu = { .cap = 9999 };
	VAL("enable_cap.unknown", ioctl(vm9, KVM_ENABLE_CAP, &eu));
	VAL("enable_cap.on_dev", ioctl(kvm, KVM_ENABLE_CAP, &eu));
	VAL("enable_cap.on_vcpu", ioctl(vc9, KVM_ENABLE_CAP, &eu));
	int vm14 = ioctl(kvm, KVM_CREATE_VM, 0);
	struct enable_cap es = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 1000 } };
	VAL("enable_cap.split_irqchip_too_many_pins", ioctl(vm14, KVM_ENABLE_CAP, &es));
	void *h14 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct region1 r15 = { .slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = 0, .memory_size = PAGE, .userspace_addr = (uint64_t)h14 };
	VAL("slot.v1_gmem_flag", ioctl(vm14, KVM_SET_USER_MEMORY_REGION, &r15));
	r15.flags = 0;
	r15.slot = 32763;
	VAL("slot.last_id", ioctl(vm14, KVM_SET_USER_MEMORY_REGION, &r15));
	r15.slot = 32764;
	r15.guest_phys_addr = 0x10000;
	VAL("slot.id_past_last", ioctl(vm14, KVM_SET_USER_MEMORY_REGION, &r15));

	/* Host accesses through guest_memfd and memfd mappings. */
	if (shared_gmem) {
		int vm8 = ioctl(kvm, KVM_CREATE_VM, 0);
		int g8 = gmem(vm8, 4 * PAGE, GMEM_MMAP | GMEM_INIT_SHARED);
		char *m8 = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g8, 0);
		READ("fault.gmem.fresh_page", m8 + PAGE);
		WRITE("fault.gmem.write", m8 + 10, 0x5a);
		READ("fault.gmem.read_back", m8 + 10);
		VAL("fault.gmem.punch", fallocate(g8, KEEP | PUNCH, 0, PAGE));
		READ("fault.gmem.after_punch", m8 + 10);
		READ("fault.gmem.beyond_eof", m8 + 5 * PAGE);
		int g9 = gmem(vm8, 4 * PAGE, GMEM_MMAP);
		char *m9 = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g9, 0);
		OK("fault.gmem_private.mmap", m9);
		READ("fault.gmem_private.read", m9);
	}
	int mf = memfd_create("conformance", 0);
	VAL("memfd.ftruncate", ftruncate(mf, 4 * PAGE));
	char *mm = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mf, 0);
	WRITE("memfd.write", mm + PAGE + 3, 0x11);
	unsigned char b = 0;
	VAL("memfd.pread", pread(mf, &b, 1, PAGE + 3));
	printf("memfd.pread_value\t%d\n", b);
	VAL("memfd.punch", fallocate(mf, KEEP | PUNCH, PAGE, PAGE));
	READ("memfd.after_punch", mm + PAGE + 3);
	READ("memfd.beyond_eof", mm + 5 * PAGE);
	/* A private mapping of the memfd: a write makes a private copy, MADV_DONTNEED drops it. */
	char *mp = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mf, 0);
	WRITE("memfd_private.write", mp + 5, 0x22);
	READ("memfd_private.read_copy", mp + 5);
	VAL("memfd_private.pread_file", pread(mf, &b, 1, 5));
	printf("memfd_private.pread_file_value\t%d\n", b);
	VAL("memfd_private.remove", madvise(mp, PAGE, MADV_REMOVE));
	VAL("memfd_private.free", madvise(mp, PAGE, MADV_FREE));
	VAL("memfd_private.dontneed", madvise(mp, PAGE, MADV_DONTNEED));
	READ("memfd_private.read_after_dontneed", mp + 5);
	VAL("memfd_shared.remove", madvise(mm, PAGE, MADV_REMOVE));
	/* A shrinking ftruncate drops private copies too (a hole punch keeps them). */
	WRITE("memfd_private.write_page1", mp + PAGE + 1, 0x33);
	VAL("memfd_private.shrink", ftruncate(mf, PAGE));
	READ("memfd_private.after_shrink", mp + PAGE + 1);
	VAL("memfd_private.grow", ftruncate(mf, 4 * PAGE));
	READ("memfd_private.after_grow", mp + PAGE + 1);
	/* MADV_POPULATE_* on private mappings of a 4-page memfd: POPULATE_WRITE makes the private copies,
	 * POPULATE_READ does not; both stop at the first hole, leaving what lies beyond it alone. */
	int mq = memfd_create("populate", 0);
	ftruncate(mq, 4 * PAGE);
	char *qs = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mq, 0);
	char *qp = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mq, 0);
	if (qs == MAP_FAILED || qp == MAP_FAILED) {
		perror("populate: mmap");
		return 2;
	}
	memset(qs, 'A', 4 * PAGE);
	munmap(qp + PAGE, PAGE);
	VAL("populate.write_over_hole", madvise(qp, 3 * PAGE, MADV_POPULATE_WRITE));
	qs[0] = 'B';
	qs[2 * PAGE] = 'B';
	READ("populate.write_over_hole.before", qp);
	READ("populate.write_over_hole.beyond", qp + 2 * PAGE);
	VAL("populate.read_hole_first", madvise(qp + PAGE, 2 * PAGE, MADV_POPULATE_READ));
	char *qr = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mq, 0);
	VAL("populate.read", madvise(qr, 2 * PAGE, MADV_POPULATE_READ));
	qs[PAGE] = 'C';
	READ("populate.read.sees_file", qr + PAGE);
	VAL("populate.write", madvise(qr, 2 * PAGE, MADV_POPULATE_WRITE));
	qs[PAGE] = 'D';
	READ("populate.write.own_copy", qr + PAGE);
	char *qe = mmap(NULL, 6 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mq, 0);
	VAL("populate.write_beyond_eof", madvise(qe, 6 * PAGE, MADV_POPULATE_WRITE));
	qs[3 * PAGE] = 'E';
	READ("populate.write_beyond_eof.last_page_copied", qe + 3 * PAGE);
	/* mmap and munmap argument checks. */
	OK("mmap.len0", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	OK("mmap.no_type", mmap(NULL, PAGE, PROT_READ, MAP_ANONYMOUS, -1, 0));
	OK("mmap.anon_shared_validate", mmap(NULL, PAGE, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, -1, 0));
	OK("mmap.fixed_unaligned", mmap((void *)0x10001, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	OK("mmap.closed_fd", mmap(NULL, PAGE, PROT_READ, MAP_SHARED, 999, 0));
	OK("mmap.offset_unaligned", mmap(NULL, PAGE, PROT_READ, MAP_SHARED, mf, 1));
	OK("mmap.anon_shared", mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	VAL("munmap.unaligned", munmap(mm + 1, PAGE));
	VAL("munmap.len0", munmap(mm, 0));
	VAL("munmap.unmapped", munmap((void *)0x10000000000ull, PAGE));
	OK("mmap.prot_unknown_bits", mmap(NULL, PAGE, PROT_READ | 0x10, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	OK("mmap.len_huge", mmap(NULL, 1ul << 60, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	OK("mmap.len_minus_one", mmap(NULL, (size_t)-1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	OK("mmap.anon_negative_offset", mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, -PAGE));
	OK("mmap.file_offset_overflow", mmap(NULL, PAGE, PROT_READ, MAP_SHARED, mf, (off_t)0x7ffffffffffff000LL));
	OK("mmap.hugetlb_on_file", mmap(NULL, PAGE, PROT_READ, MAP_SHARED | 0x40000, mf, 0));
	char *fx = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fx[0] = 42;
	OK("mmap.fixed_noreplace_taken", mmap(fx, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | 0x100000, -1, 0));
	OK("mmap.fixed_and_noreplace_taken", mmap(fx, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | 0x100000, -1, 0));
	munmap(fx + PAGE, PAGE);
	char *nr = mmap(fx + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | 0x100000, -1, 0);
	printf("mmap.fixed_noreplace_free\t%s\n", nr == fx + PAGE ? "at addr" : nr == MAP_FAILED ? strerrorname_np(errno) : "elsewhere");
	OK("mmap.fixed_unmappable_file", mmap(fx, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, kvm, 0));
	READ("mmap.fixed_unmappable_kept", fx);
	/* madvise on locked and read-only memory. */
	char *lk = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
	VAL("madv.locked.dontneed", madvise(lk, PAGE, MADV_DONTNEED));
	VAL("madv.locked.free", madvise(lk, PAGE, MADV_FREE));
	VAL("madv.locked.dontneed_locked", madvise(lk, PAGE, 24));
	char *rdo = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VAL("madv.readonly.populate_write", madvise(rdo, PAGE, MADV_POPULATE_WRITE));
	char *pnone = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VAL("madv.prot_none.populate_read", madvise(pnone, PAGE, MADV_POPULATE_READ));
	/* memfd_create flags and name. */
	OK("memfd_create.allow_sealing", memfd_create("s", 2));
	OK("memfd_create.noexec_seal", memfd_create("s", 8));
	OK("memfd_create.exec", memfd_create("s", 0x10));
	OK("memfd_create.exec_and_noexec", memfd_create("s", 0x18));
	OK("memfd_create.unknown_flag", memfd_create("s", 0x100));
	char long_name[251];
	memset(long_name, 'n', 250);
	long_name[250] = 0;
	OK("memfd_create.name_250", memfd_create(long_name, 0));
	long_name[249] = 0;
	OK("memfd_create.name_249", memfd_create(long_name, 0));

	/* Guests that run (DEFAULT VM): no memslot at all; MMIO reads and writes; a read-only slot. */
	int vm10 = ioctl(kvm, KVM_CREATE_VM, 0);
	struct run_ *run10;
	static const unsigned char hlt[] = { 0xf4 };
	static char none[2 * PAGE];
	int v10 = flat_vcpu(vm10, 0, hlt, sizeof(hlt), none, &run10);
	run_case("run.no_memslots", v10, run10);
	/* Without TDP, KVM_RUN needs shadow MMU pages; with no memslot ever made, only this gives some. */
	VAL("run.nr_mmu_pages_too_few", ioctl(vm10, KVM_SET_NR_MMU_PAGES, 63));
	VAL("run.nr_mmu_pages", ioctl(vm10, KVM_SET_NR_MMU_PAGES, 64));
	VAL("run.get_nr_mmu_pages", ioctl(vm10, _IO(KVMIO, 0x45), 0)); /* KVM_GET_NR_MMU_PAGES: removed in 2023 */
	run_case("run.no_memslots_mmu_pages", v10, run10);
	int vm12 = ioctl(kvm, KVM_CREATE_VM, 0);
	struct run_ *run12;
	int v12 = flat_vcpu(vm12, 0, hlt, sizeof(hlt), none, &run12);
	char *ram12 = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct region1 r13 = { .slot = 0, .guest_phys_addr = 0x40000000, .memory_size = 16 * PAGE, .userspace_addr = (uint64_t)ram12 };
	VAL("run.slot_created", ioctl(vm12, KVM_SET_USER_MEMORY_REGION, &r13));
	r13.memory_size = 0;
	VAL("run.slot_deleted", ioctl(vm12, KVM_SET_USER_MEMORY_REGION, &r13));
	run_case("run.no_memslots_after_delete", v12, run12);
	int vm11 = ioctl(kvm, KVM_CREATE_VM, 0);
	char *ram11 = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct region1 r11 = { .slot = 0, .guest_phys_addr = 0, .memory_size = 16 * PAGE, .userspace_addr = (uint64_t)ram11 };
	VAL("run.slot", ioctl(vm11, KVM_SET_USER_MEMORY_REGION, &r11));
	char *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(ro, 0x5a, PAGE);
	struct region1 r12 = { .slot = 1, .flags = KVM_MEM_READONLY, .guest_phys_addr = 0x100000, .memory_size = PAGE, .userspace_addr = (uint64_t)ro };
	VAL("run.slot_readonly", ioctl(vm11, KVM_SET_USER_MEMORY_REGION, &r12));
	static const unsigned char prog[] = {
		0xa1, 0x00, 0x00, 0x00, 0x20,			/* mov eax, [0x20000000]: no memslot */
		0xa3, 0x00, 0x20, 0x00, 0x00,			/* mov [0x2000], eax: RAM */
		0xc7, 0x05, 0x08, 0x00, 0x00, 0x20,		/* mov dword [0x20000008], 0x11223344 */
		0x44, 0x33, 0x22, 0x11,
		0xa1, 0x00, 0x00, 0x10, 0x00,			/* mov eax, [0x100000]: read-only slot */
		0xa3, 0x04, 0x20, 0x00, 0x00,			/* mov [0x2004], eax */
		0xa3, 0x00, 0x00, 0x10, 0x00,			/* mov [0x100000], eax: write to the read-only slot */
		0xf4,						/* hlt */
	};
	struct run_ *run11;
	int v11 = flat_vcpu(vm11, 0, prog, sizeof(prog), ram11, &run11);
	run11->immediate_exit = 1;
	run_case("run.immediate_exit", v11, run11);
	run11->immediate_exit = 0;
	run_case("run.mmio_read", v11, run11);
	memcpy(run11->mmio.data, "\xdd\xcc\xbb\xaa", 4);
	/* The read completes before the immediate exit; the next KVM_RUN goes on after it. */
	run11->immediate_exit = 1;
	run_case("run.immediate_exit_after_mmio", v11, run11);
	run11->immediate_exit = 0;
	run_case("run.mmio_write", v11, run11);
	run_case("run.readonly_write", v11, run11);
	run_case("run.hlt", v11, run11);
	printf("run.ram_2000\t0x%08x\n", *(uint32_t *)(ram11 + 0x2000));
	printf("run.ram_2004\t0x%08x\n", *(uint32_t *)(ram11 + 0x2004));
	printf("run.readonly_page\t0x%08x\n", *(uint32_t *)ro);

	if (shared_gmem) {
		/* A guest_memfd-only slot (6.18: MMAP | INIT_SHARED) on a DEFAULT VM. Hardware accesses fault
		 * through guest_memfd whatever userspace_addr maps; accesses KVM emulates (all of them on PVM)
		 * copy through userspace_addr. Slot 1 names plain anonymous memory, slot 2 the guest_memfd
		 * mapping itself. */
		int vm13 = ioctl(kvm, KVM_CREATE_VM, 0);
		char *ram13 = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct region1 r14 = { .slot = 0, .guest_phys_addr = 0, .memory_size = 16 * PAGE, .userspace_addr = (uint64_t)ram13 };
		VAL("run_gmem.ram", ioctl(vm13, KVM_SET_USER_MEMORY_REGION, &r14));
		int g13 = gmem(vm13, 8 * PAGE, GMEM_MMAP | GMEM_INIT_SHARED);
		char *m13 = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g13, 0);
		memcpy(m13, "\x11\x22\x33\x44", 4);
		char *a13 = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memset(a13, 0xee, 4 * PAGE);
		VAL("run_gmem.slot_anon_uaddr", slotf(vm13, 1, KVM_MEM_GUEST_MEMFD, 0x200000, 4 * PAGE, a13, g13, 0));
		VAL("run_gmem.slot_gmem_uaddr", slotf(vm13, 2, KVM_MEM_GUEST_MEMFD, 0x300000, 4 * PAGE, m13 + 4 * PAGE, g13, 4 * PAGE));
		static const unsigned char prog13[] = {
			0xa1, 0x00, 0x00, 0x20, 0x00,			/* mov eax, [0x200000] */
			0xa3, 0x08, 0x20, 0x00, 0x00,			/* mov [0x2008], eax */
			0xc7, 0x05, 0x10, 0x00, 0x20, 0x00,		/* mov dword [0x200010], 0x55667788 */
			0x88, 0x77, 0x66, 0x55,
			0xc7, 0x05, 0x00, 0x00, 0x30, 0x00,		/* mov dword [0x300000], 0x99aabbcc */
			0xcc, 0xbb, 0xaa, 0x99,
			0xf4,						/* hlt */
		};
		struct run_ *run13;
		int v13 = flat_vcpu(vm13, 0, prog13, sizeof(prog13), ram13, &run13);
		run_case("run_gmem.hlt", v13, run13);
		char n[24];
		snprintf(n, sizeof(n), "%ld", insn_emulation(v13));
		fact("run_gmem_insn_emulated", n);
		printf("run_gmem.ram_2008\t0x%08x\n", *(uint32_t *)(ram13 + 0x2008));
		printf("run_gmem.gmem_10\t0x%08x\n", *(uint32_t *)(m13 + 0x10));
		printf("run_gmem.anon_10\t0x%08x\n", *(uint32_t *)(a13 + 0x10));
		printf("run_gmem.gmem_page4\t0x%08x\n", *(uint32_t *)(m13 + 4 * PAGE));
		/* A hole punched under the running guest: its next read gets a fresh zeroed page. */
		VAL("run_gmem.punch", fallocate(g13, KEEP | PUNCH, 0, PAGE));
		static const unsigned char prog14[] = {
			0xa1, 0x10, 0x00, 0x20, 0x00,			/* mov eax, [0x200010] */
			0xa3, 0x0c, 0x20, 0x00, 0x00,			/* mov [0x200c], eax */
			0xf4,
		};
		memcpy(ram13 + CODE_GPA, prog14, sizeof(prog14));
		struct kvm_regs_ r = { .rip = CODE_GPA, .rflags = 2 };
		ioctl(v13, KVM_SET_REGS, &r);
		run_case("run_gmem.after_punch_hlt", v13, run13);
		printf("run_gmem.ram_200c\t0x%08x\n", *(uint32_t *)(ram13 + 0x200c));
	}
	return 0;
}
