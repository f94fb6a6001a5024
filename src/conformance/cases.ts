/**
 * The cases of conformance/probe.c, run against a modelled host of one kernel profile, in the
 * probe's order: case name -> result as the probe prints it (a number, "ok" for an fd or an
 * address, an errno name, a signal, or an exit's fields).
 */
import { createHost, type Host, HostFault, SyscallError, uapi } from '../index.js';

const PAGE = 4096;
const KEEP = uapi.FALLOC_FL_KEEP_SIZE;
const PUNCH = uapi.FALLOC_FL_PUNCH_HOLE;
const ZERO_RANGE = 0x10;
const MAP_SYNC = 0x80000;
const RW = uapi.PROT_READ | uapi.PROT_WRITE;

/**
 * `tdp`: whether the host has two-dimensional paging (the probe's cap.sys.pre_fault_memory says).
 * `emulated`: whether the host emulated the probe's guest instruction by instruction (the probe's
 * host.run_gmem_insn_emulated > 0, e.g. PVM): its loads and stores are then `emulated` guest
 * operations, which reach memory through userspace_addr rather than the fault path.
 */
export function modelResults(
  kernel: string,
  opts: { tdp?: boolean; emulated?: boolean } = {},
): Map<string, string> {
  const out = new Map<string, string>();
  const run = (name: string, fn: () => unknown, ok = false): void => {
    try {
      const r = fn();
      out.set(name, ok ? 'ok' : String(typeof r === 'bigint' ? r : Number(r)));
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      out.set(name, e.code);
    }
  };
  const host = createHost({ kernel, tdp: opts.tdp ?? true });
  const kvm = host.open('/dev/kvm');
  run('cap.sys.guest_memfd', () => host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD));
  run('cap.sys.guest_memfd_flags', () =>
    host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD_FLAGS),
  );
  run('cap.sys.user_memory2', () => host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_USER_MEMORY2));
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('cap.vm.guest_memfd', () => host.ioctl(vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD));
  run('cap.vm.guest_memfd_flags', () =>
    host.ioctl(vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD_FLAGS),
  );
  // Sections that need a guest_memfd the host can map and that starts shared (6.18+), as the probe.
  const both = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
  const sharedGmem = (host.ioctl(vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_GUEST_MEMFD_FLAGS) & both) === both;

  const gmem = (size: number, flags: number): number =>
    host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags });
  run('gmem.create.flags0', () => gmem(4 * PAGE, 0), true);
  run('gmem.create.mmap', () => gmem(4 * PAGE, uapi.GUEST_MEMFD_FLAG_MMAP), true);
  run(
    'gmem.create.mmap_init_shared',
    () => gmem(4 * PAGE, uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED),
    true,
  );
  run('gmem.create.flag4', () => gmem(4 * PAGE, 4), true);
  run('gmem.create.size0', () => gmem(0, 0), true);
  run('gmem.create.size_unaligned', () => gmem(PAGE + 1, 0), true);

  const g = gmem(4 * PAGE, 0);
  run('gmem.read', () => host.read(g, 16).length);
  run('gmem.pread', () => host.pread(g, 16, 0).length);
  run('gmem.ftruncate', () => host.ftruncate(g, 8 * PAGE));
  run('gmem.fallocate.mode0', () => host.fallocate(g, 0, 0, PAGE));
  run('gmem.fallocate.keep', () => host.fallocate(g, KEEP, 0, PAGE));
  run('gmem.fallocate.keep_beyond', () => host.fallocate(g, KEEP, 0, 8 * PAGE));
  run('gmem.fallocate.keep_unaligned', () => host.fallocate(g, KEEP, 1, PAGE));
  run('gmem.fallocate.punch_beyond', () => host.fallocate(g, KEEP | PUNCH, 16 * PAGE, PAGE));
  run('gmem.fallocate.zero_range', () => host.fallocate(g, KEEP | ZERO_RANGE, 0, PAGE));
  run('gmem.fallocate.punch_without_keep', () => host.fallocate(g, PUNCH, 0, PAGE));
  run('gmem.fallocate.punch_unaligned', () => host.fallocate(g, KEEP | PUNCH, 1, PAGE));
  run('gmem.fallocate.len0', () => host.fallocate(g, KEEP, 0, 0));
  run('gmem.fallocate.offset_negative', () => host.fallocate(g, KEEP, -PAGE, PAGE));
  run('gmem.fallocate.too_big', () => host.fallocate(g, KEEP, 0x7ffffffffffff000n, 0x2000));
  run('gmem.fallocate.collapse', () => host.fallocate(g, 0x08, 0, PAGE));
  run('gmem.fallocate.insert', () => host.fallocate(g, 0x20, 0, PAGE));
  run('gmem.fallocate.unshare', () => host.fallocate(g, 0x40, 0, PAGE));
  run('gmem.fallocate.unknown_mode', () => host.fallocate(g, 0x1000, 0, PAGE));
  const map = (fd: number, prot: number, flags: number) => () => host.mmap({ length: PAGE, prot, flags, fd });
  run('gmem.mmap.no_mmap_flag', map(g, RW, uapi.MAP_SHARED), true);
  run('gmem.mmap.exec', map(g, RW | uapi.PROT_EXEC, uapi.MAP_SHARED), true);

  if (sharedGmem) {
    const gs = gmem(4 * PAGE, both);
    run('gmem_shared.mmap.private', map(gs, RW, uapi.MAP_PRIVATE), true);
    run('gmem_shared.mmap.shared', map(gs, RW, uapi.MAP_SHARED), true);
    run('gmem_shared.mmap.validate_sync', map(gs, RW, uapi.MAP_SHARED_VALIDATE | MAP_SYNC), true);
  }

  let st = host.fstat(g);
  run('gmem.fstat', () => {
    st = host.fstat(g);
    return 0;
  });
  out.set('gmem.fstat.size', String(st.st_size));
  out.set('gmem.fstat.mode', `0${st.st_mode.toString(8)}`);
  out.set('gmem.fstat.blksize', String(st.st_blksize));
  run('gmem.write', () => host.write(g, new Uint8Array(16)));
  run('gmem.pwrite', () => host.pwrite(g, new Uint8Array(16), 0));
  run('gmem.create.1tib', () => gmem(2 ** 40, 0), true);
  run(
    'gmem.create.size_negative',
    () => host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 1n << 63n, flags: 0 }),
    true,
  );
  run(
    'gmem.create.reserved',
    () => host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: PAGE, flags: 0, reserved: [1, 0, 0, 0, 0, 0] }),
    true,
  );
  const gd = host.dup(g);
  run('gmem.dup.fallocate', () => host.fallocate(gd, KEEP, 0, PAGE));
  host.close(gd);
  run('gmem.closed.fallocate', () => host.fallocate(gd, KEEP, 0, PAGE));
  run('vmfd.pread', () => host.pread(vm, 16, 0).length);
  run('vmfd.ftruncate', () => host.ftruncate(vm, PAGE));
  run('vmfd.fallocate', () => host.fallocate(vm, 0, 0, PAGE));

  const hva = host.mmap({ length: 8 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  const gm = gmem(4 * PAGE, 0);
  const slot = (id: number, gpa: number, size: number, offset: bigint | number) => () =>
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: id,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: gpa,
      memory_size: size,
      userspace_addr: hva,
      guest_memfd: gm,
      guest_memfd_offset: offset,
    });
  run('slot.create', slot(0, 0, 4 * PAGE, 0));
  run('slot.overlap', slot(1, 0, 4 * PAGE, 0));
  run('slot.size_unaligned', slot(2, 0x100000, PAGE + 1, 0));
  run('slot.offset_unaligned', slot(3, 0x100000, PAGE, 1));
  run('slot.offset_beyond_file', slot(4, 0x100000, 2 * PAGE, 3 * PAGE));
  run('slot.offset_wraps', slot(5, 0x200000, 2 * PAGE, 0x7ffffffffffff000n));
  const plain =
    (id: number, gpa: number, uaddr: number, extra: Record<string, unknown> = {}) =>
    () =>
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: id,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: PAGE,
        userspace_addr: uaddr,
        ...extra,
      });
  run('slot.uaddr_unaligned', plain(6, 0x300000, hva + 1));
  run('slot.gpa_unaligned', plain(6, 0x300001, hva));
  run('slot.uaddr_unmapped', plain(6, 0x300000, 0x100_0000_0000));
  run('slot.pad_nonzero', plain(7, 0x400000, hva, { pad1: 1, pad2: [1] }));

  // KVM_PRE_FAULT_MEMORY on a second DEFAULT VM: a 64 KiB anonymous slot at 0, a gmem-only slot.
  const vm2 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('cap.sys.pre_fault_memory', () =>
    host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_PRE_FAULT_MEMORY),
  );
  const cap = (fd: number, c: number) => () => host.ioctl(fd, 'KVM_CHECK_EXTENSION', c);
  run('cap.sys.vm_types', cap(kvm, uapi.KVM_CAP_VM_TYPES));
  run('vm.sw_protected', () => host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM), true);
  run('cap.sys.irqchip', cap(kvm, uapi.KVM_CAP_IRQCHIP));
  run('cap.sys.user_memory', cap(kvm, uapi.KVM_CAP_USER_MEMORY));
  run('cap.sys.nr_memslots', cap(kvm, uapi.KVM_CAP_NR_MEMSLOTS));
  run('cap.sys.sync_mmu', cap(kvm, uapi.KVM_CAP_SYNC_MMU));
  run('cap.sys.split_irqchip', cap(kvm, uapi.KVM_CAP_SPLIT_IRQCHIP));
  run('cap.sys.exit_hypercall', cap(kvm, uapi.KVM_CAP_EXIT_HYPERCALL));
  run('cap.sys.memory_fault_info', cap(kvm, uapi.KVM_CAP_MEMORY_FAULT_INFO));
  run('cap.vm.nr_memslots', cap(vm2, uapi.KVM_CAP_NR_MEMSLOTS));
  run('cap.vm.vm_types', cap(vm2, uapi.KVM_CAP_VM_TYPES));
  const ram = host.mmap({ length: 16 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  run('prefault.slot', () =>
    host.ioctl(vm2, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 16 * PAGE,
      userspace_addr: ram,
    }),
  );
  const vcpu = host.ioctl(vm2, 'KVM_CREATE_VCPU', 0);
  const prefault = (name: string, gpa: bigint, size: bigint, flags: number): void => {
    const range = { gpa, size, flags };
    let r: string;
    try {
      r = String(host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', range));
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      r = e.code;
    }
    out.set(name, `${r} gpa=0x${BigInt(range.gpa).toString(16)} size=0x${BigInt(range.size).toString(16)}`);
  };
  prefault('prefault.one_page', 0n, 4096n, 0);
  prefault('prefault.flags', 0n, 4096n, 1);
  prefault('prefault.size0', 0n, 0n, 0);
  prefault('prefault.unaligned', 1n, 4096n, 0);
  prefault('prefault.wraps', 0xfffffffffffff000n, 8192n, 0);
  prefault('prefault.no_slot', 0x40000000n, 4096n, 0);
  prefault('prefault.runs_off_slot', 15n * 4096n, 8192n, 0);
  if (sharedGmem) {
    const gso = host.ioctl(vm2, 'KVM_CREATE_GUEST_MEMFD', {
      size: 4 * PAGE,
      flags: uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED,
    });
    const gmap = host.mmap({ length: 4 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: gso });
    run('prefault.gmem_only_slot', () =>
      host.ioctl(vm2, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: 1,
        flags: uapi.KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: 0x100000,
        memory_size: 4 * PAGE,
        userspace_addr: gmap,
        guest_memfd: gso,
        guest_memfd_offset: 0,
      }),
    );
    prefault('prefault.gmem_only', 0x100000n, 8192n, 0);
  }

  // Memslot flags and ids on a third DEFAULT VM.
  const vm3 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  const g3 = host.ioctl(vm3, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags: 0 });
  const h3 = host.mmap({ length: 4 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  const slotf =
    (id: number, flags: number, gpa: number, size: number, fd: number, offset = 0) =>
    () =>
      host.ioctl(vm3, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: id,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: h3,
        guest_memfd: fd,
        guest_memfd_offset: offset,
      });
  const GM = uapi.KVM_MEM_GUEST_MEMFD;
  run('slotflags.gmem_readonly', slotf(0, GM | uapi.KVM_MEM_READONLY, 0, PAGE, g3));
  run('slotflags.gmem_dirty_log', slotf(0, GM | uapi.KVM_MEM_LOG_DIRTY_PAGES, 0, PAGE, g3));
  run('slotflags.unknown_flag', slotf(0, 1 << 3, 0, PAGE, -1));
  run('slotflags.readonly', slotf(0, uapi.KVM_MEM_READONLY, 0, PAGE, -1));
  run('slotflags.id_too_big', slotf(32767, 0, 0x10000, PAGE, -1));
  run('slotflags.delete_missing', slotf(7, 0, 0x20000, 0, -1));
  run('slotflags.gmem_other_vm', slotf(8, GM, 0x30000, PAGE, gm));
  run('slotflags.gmem_bad_fd', slotf(9, GM, 0x40000, PAGE, 999));
  run('slotflags.gmem_not_gmem_fd', slotf(10, GM, 0x50000, PAGE, vm3));
  run('slotflags.gmem_first', slotf(11, GM, 0x60000, 2 * PAGE, g3));
  run('slotflags.gmem_range_taken', slotf(12, GM, 0x70000, 2 * PAGE, g3, PAGE));
  run('slotflags.modify_gmem_slot', slotf(11, GM, 0x80000, 2 * PAGE, g3));
  // A binding's life: flags changed on a guest_memfd slot, deleted and bound again, the file closed.
  run('gmem_bind.dirty_log_toggle', slotf(11, GM | uapi.KVM_MEM_LOG_DIRTY_PAGES, 0x60000, 2 * PAGE, g3));
  run('gmem_bind.delete', slotf(11, 0, 0x60000, 0, -1));
  run('gmem_bind.rebind_range', slotf(12, GM, 0x70000, 2 * PAGE, g3, PAGE));
  run('gmem_bind.punch_bound', () => host.fallocate(g3, KEEP | PUNCH, 0, 4 * PAGE));
  host.close(g3);
  run('gmem_bind.closed_fd_new_slot', slotf(13, GM, 0x90000, PAGE, g3));
  run('gmem_bind.delete_after_close', slotf(12, 0, 0x70000, 0, -1));

  const madv = (addr: number, len: number, advice: number) => () => host.madvise(addr, len, advice);
  // madvise on a guest_memfd mapping (MMAP | INIT_SHARED), 8 pages over a 4-page file.
  if (sharedGmem) {
    const g4 = host.ioctl(vm3, 'KVM_CREATE_GUEST_MEMFD', {
      size: 4 * PAGE,
      flags: uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED,
    });
    const m4 = host.mmap({ length: 8 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: g4 });
    run('madv.gmem.populate_write', madv(m4, 4 * PAGE, uapi.MADV_POPULATE_WRITE));
    run('madv.gmem.populate_beyond_eof', madv(m4 + 4 * PAGE, PAGE, uapi.MADV_POPULATE_WRITE));
    run('madv.gmem.hugepage', madv(m4, 4 * PAGE, uapi.MADV_HUGEPAGE));
    run('madv.gmem.collapse', madv(m4, 4 * PAGE, uapi.MADV_COLLAPSE));
    run('madv.gmem.dontneed', madv(m4, 4 * PAGE, uapi.MADV_DONTNEED));
    run('madv.gmem.remove', madv(m4, PAGE, uapi.MADV_REMOVE));
    run('madv.gmem.free', madv(m4, PAGE, uapi.MADV_FREE));
    run('madv.gmem.willneed', madv(m4, 4 * PAGE, uapi.MADV_WILLNEED));
    run('madv.gmem.populate_read', madv(m4, 4 * PAGE, uapi.MADV_POPULATE_READ));
    run('madv.gmem.cold', madv(m4, 4 * PAGE, uapi.MADV_COLD));
    run('madv.gmem.pageout', madv(m4, 4 * PAGE, uapi.MADV_PAGEOUT));
    run('madv.gmem.dontneed_locked', madv(m4, 4 * PAGE, uapi.MADV_DONTNEED_LOCKED));
    run('madv.gmem.wipeonfork', madv(m4, 4 * PAGE, uapi.MADV_WIPEONFORK));
    run('madv.gmem.mergeable', madv(m4, 4 * PAGE, uapi.MADV_MERGEABLE));
    run('madv.unknown', madv(m4, PAGE, 77));
    run('madv.unaligned', madv(m4 + 1, PAGE, uapi.MADV_DONTNEED));
    run('madv.len0', madv(m4, 0, uapi.MADV_DONTNEED));
    // guest_memfd's superblock is noexec: no VM_MAYEXEC, so mprotect(PROT_EXEC) is -EACCES.
    run('mprotect.gmem.exec', () => host.mprotect(m4, PAGE, uapi.PROT_READ | uapi.PROT_EXEC));
    run('mprotect.gmem.read', () => host.mprotect(m4, PAGE, uapi.PROT_READ));
  }
  const three = host.mmap({ length: 3 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.munmap(three + PAGE, PAGE);
  run('madv.hole', madv(three, 3 * PAGE, uapi.MADV_DONTNEED));
  // mprotect: do_mprotect_pkey()'s checks in order, then what accesses see. `three` has a hole in
  // its middle page.
  const mprot = (addr: number | bigint, len: number | bigint, prot: number) => () =>
    host.mprotect(addr, len, prot);
  const access = (name: string, fn: () => number): void => recordAccess(out, name, fn);
  const poke = (addr: number, v: number) => writeByte(host, addr, v);
  const peek = (addr: number) => readByte(host, addr);
  const { PROT_READ: R, PROT_WRITE: W, PROT_GROWSDOWN: DOWN, PROT_GROWSUP: UP } = uapi;
  run('mprotect.unaligned', mprot(three + 1, PAGE, R));
  run('mprotect.len0', mprot(three + PAGE, 0, R));
  run('mprotect.grows_both', mprot(three, PAGE, R | DOWN | UP));
  run('mprotect.wraps', mprot(three, (1n << 64n) - BigInt(PAGE), R));
  run('mprotect.bad_prot', mprot(three, PAGE, 0x10));
  run('mprotect.unmapped', mprot(three + PAGE, PAGE, R));
  run('mprotect.hole_start', mprot(three + PAGE, 2 * PAGE, R));
  run('mprotect.growsdown', mprot(three, PAGE, R | DOWN));
  run('mprotect.growsup', mprot(three, PAGE, R | UP));
  access('mprotect.before.last_write', poke(three + 2 * PAGE, 7));
  run('mprotect.hole_middle', mprot(three, 3 * PAGE, R));
  access('mprotect.hole_middle.first_write', poke(three, 1));
  access('mprotect.hole_middle.last_write', poke(three + 2 * PAGE, 8));
  run('mprotect.sem', mprot(three, PAGE, R | W | uapi.PROT_SEM));
  access('mprotect.sem.write', poke(three, 2));
  run('mprotect.none', mprot(three + 2 * PAGE, PAGE, uapi.PROT_NONE));
  access('mprotect.none.read', peek(three + 2 * PAGE));
  run('mprotect.rw_again', mprot(three + 2 * PAGE, PAGE, R | W));
  access('mprotect.rw_again.read', peek(three + 2 * PAGE));

  // IRQCHIP modes.
  const split = (v: number) => () =>
    host.ioctl(v, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [24] });
  const vm5 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('irqchip.create', () => host.ioctl(vm5, 'KVM_CREATE_IRQCHIP'));
  run('irqchip.create_again', () => host.ioctl(vm5, 'KVM_CREATE_IRQCHIP'));
  run('irqchip.split_after_full', split(vm5));
  const vm6 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('irqchip.split', split(vm6));
  run('irqchip.full_after_split', () => host.ioctl(vm6, 'KVM_CREATE_IRQCHIP'));
  const vm7 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('irqchip.vcpu', () => host.ioctl(vm7, 'KVM_CREATE_VCPU', 0), true);
  run('irqchip.create_after_vcpu', () => host.ioctl(vm7, 'KVM_CREATE_IRQCHIP'));
  run('irqchip.split_after_vcpu', split(vm7));
  run('vm.bad_type', () => host.ioctl(kvm, 'KVM_CREATE_VM', 99), true);
  // KVM_IRQ_LINE and KVM_CREATE_PIT2 by IRQCHIP mode: none (vm7: a vCPU, no IRQCHIP), full (vm5), split (vm6).
  const line = (vm: number, arg: unknown) => () => host.ioctl(vm, 'KVM_IRQ_LINE', arg);
  run('irq_line.no_irqchip', line(vm7, { irq: 4, level: 1 }));
  run('irq_line.full', line(vm5, { irq: 4, level: 1 }));
  run('irq_line.split', line(vm6, { irq: 4, level: 1 }));
  run('irq_line.null', line(vm5, null));
  const pit = (vm: number, arg: unknown) => () => host.ioctl(vm, 'KVM_CREATE_PIT2', arg);
  run('pit2.no_irqchip', pit(vm7, { flags: 0 }));
  run('pit2.split', pit(vm6, { flags: 0 }));
  run('pit2.null', pit(vm5, null));
  run('pit2.full_unknown_flags', pit(vm5, { flags: 8 }));
  run('pit2.again', pit(vm5, { flags: 8 }));
  // KVM_SET_TSS_ADDR (by value): Firecracker's and QEMU's KVM_TSS_ADDRESS, the highest allowed, beyond.
  const tss = (addr: number) => () => host.ioctl(vm7, 'KVM_SET_TSS_ADDR', addr);
  run('tss.firecracker', tss(0xfffbd000));
  run('tss.max', tss(0xffffd000));
  run('tss.too_high', tss(0xffffd001));
  run('tss.above_4g', tss(2 ** 32));
  run('dev.api_version', () => host.ioctl(kvm, 'KVM_GET_API_VERSION', 0));
  run('dev.api_version_arg', () => host.ioctl(kvm, 'KVM_GET_API_VERSION', 1));
  run('dev.vcpu_mmap_size', () => host.ioctl(kvm, 'KVM_GET_VCPU_MMAP_SIZE', 0));
  run('dev.vcpu_mmap_size_arg', () => host.ioctl(kvm, 'KVM_GET_VCPU_MMAP_SIZE', 1));
  run('dev.vm_ioctl_on_dev', () => host.ioctl(kvm, 'KVM_CREATE_VCPU', 0));
  const vm9 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('vcpu.create', () => host.ioctl(vm9, 'KVM_CREATE_VCPU', 3), true);
  run('vcpu.duplicate_id', () => host.ioctl(vm9, 'KVM_CREATE_VCPU', 3));
  run('vcpu.dev_ioctl_on_vm', () => host.ioctl(vm9, 'KVM_GET_VCPU_MMAP_SIZE', 0));
  // Requests a file does not handle: each kind of fd answers its own way.
  const vc9 = host.ioctl(vm9, 'KVM_CREATE_VCPU', 4);
  const unknown = 0xae99; // _IO(KVMIO, 0x99)
  run('unknown.dev', () => host.ioctl(kvm, unknown, 0));
  run('unknown.vm', () => host.ioctl(vm9, unknown, 0));
  run('unknown.vcpu', () => host.ioctl(vc9, unknown, 0));
  run('unknown.vcpu_vm_ioctl', () => host.ioctl(vc9, 'KVM_CREATE_VCPU', 0));
  run('unknown.vcpu_check_extension', () => host.ioctl(vc9, 'KVM_CHECK_EXTENSION', 0));
  const g9x = host.ioctl(vm9, 'KVM_CREATE_GUEST_MEMFD', { size: PAGE, flags: 0 });
  run('unknown.gmem', () => host.ioctl(g9x, 'KVM_CHECK_EXTENSION', 0));

  // vCPU state ioctls: FPU, MSRs (PAT: valid on any x86 host), CPUID's address sizes, sregs.
  run('vcpu.set_fpu', () => host.ioctl(vc9, 'KVM_SET_FPU', {}));
  run('vcpu.set_fpu_null', () => host.ioctl(vc9, 'KVM_SET_FPU', null));
  const pat = { index: 0x277, reserved: 0, data: 0x0007040600070406n };
  run('vcpu.set_msrs_pat', () => host.ioctl(vc9, 'KVM_SET_MSRS', { nmsrs: 1, entries: [pat] }));
  // Memory type 2 in the low byte: kvm_pat_valid() fails, the count stops at 0.
  const badPat = { ...pat, data: 0x0007040600070402n };
  run('vcpu.set_msrs_bad_pat', () => host.ioctl(vc9, 'KVM_SET_MSRS', { nmsrs: 1, entries: [badPat] }));
  run('vcpu.set_msrs_none', () => host.ioctl(vc9, 'KVM_SET_MSRS', { nmsrs: 0, entries: [pat] }));
  run('vcpu.set_msrs_256', () => host.ioctl(vc9, 'KVM_SET_MSRS', { nmsrs: 256, entries: [pat] }));
  run('vcpu.set_msrs_null', () => host.ioctl(vc9, 'KVM_SET_MSRS', null));
  // Registers: the reset state kvm_vcpu_reset() gives a new vCPU, and what KVM_SET_REGS leaves.
  const regsLine = (r: Record<string, unknown>): string =>
    ['rip', 'rflags', 'rax', 'rdx', 'r15']
      .map((k) => `${k}=0x${BigInt(r[k] as number | bigint).toString(16)}`)
      .join(' ');
  const gr: Record<string, unknown> = {};
  run('vcpu.get_regs', () => host.ioctl(vc9, 'KVM_GET_REGS', gr));
  out.set('vcpu.get_regs_reset', regsLine(gr));
  run('vcpu.get_regs_null', () => host.ioctl(vc9, 'KVM_GET_REGS', null));
  run('vcpu.set_regs', () =>
    host.ioctl(vc9, 'KVM_SET_REGS', { rip: 0x1234, rflags: 0, rax: 5, r15: 0xffffffffffffffffn }),
  );
  const gr2: Record<string, unknown> = {};
  run('vcpu.get_regs_again', () => host.ioctl(vc9, 'KVM_GET_REGS', gr2));
  out.set('vcpu.get_regs_after_set', regsLine(gr2));
  const addrSizes = (eax: number) => () =>
    host.ioctl(vc9, 'KVM_SET_CPUID2', {
      nent: 1,
      entries: [{ function: 0x80000008, index: 0, flags: 0, eax, ebx: 0, ecx: 0, edx: 0 }],
    });
  run('vcpu.set_cpuid_vaddr_32', addrSizes(0x2030));
  run('vcpu.set_cpuid_vaddr_48', addrSizes(0x3030));
  // The reset state's control registers (the probe reads them with KVM_GET_SREGS) and one change.
  const sregs = (change: Record<string, unknown>) => () =>
    host.ioctl(vc9, 'KVM_SET_SREGS', { cr0: 0x60000010, cr4: 0, efer: 0, cs: { l: 0 }, ...change });
  run('vcpu.sregs_unchanged', sregs({}));
  run('vcpu.sregs_pg_without_pe', sregs({ cr0: 0xe0000010 }));
  run('vcpu.sregs_cr0_high_bit', sregs({ cr0: 0x1_6000_0010 }));
  run('vcpu.sregs_nw_without_cd', sregs({ cr0: 0x20000010 }));
  run('vcpu.sregs_lma_outside_long_mode', sregs({ efer: 1 << 10 }));
  run('vcpu.sregs_cs_l_outside_long_mode', sregs({ cs: { l: 1 } }));

  // KVM_ENABLE_CAP on each kind of fd, and its argument checks.
  const enable =
    (fd: number, cap: number, arg0: number, flags = 0) =>
    () =>
      host.ioctl(fd, 'KVM_ENABLE_CAP', { cap, flags, args: [arg0, 0, 0, 0] });
  run('enable_cap.exit_hypercall', enable(vm9, uapi.KVM_CAP_EXIT_HYPERCALL, 1 << 12));
  run('enable_cap.exit_hypercall_other', enable(vm9, uapi.KVM_CAP_EXIT_HYPERCALL, 1 << 13));
  run('enable_cap.flags', enable(vm9, uapi.KVM_CAP_EXIT_HYPERCALL, 1 << 12, 1));
  run('enable_cap.unknown', enable(vm9, 9999, 0));
  run('enable_cap.on_dev', enable(kvm, 9999, 0));
  run('enable_cap.on_vcpu', enable(vc9, 9999, 0));
  const vm14 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  run('enable_cap.split_irqchip_too_many_pins', enable(vm14, uapi.KVM_CAP_SPLIT_IRQCHIP, 1000));
  const h14 = host.mmap({ length: PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  const v1 = (slot: number, flags: number, gpa: number) => () =>
    host.ioctl(vm14, 'KVM_SET_USER_MEMORY_REGION', {
      slot,
      flags,
      guest_phys_addr: gpa,
      memory_size: PAGE,
      userspace_addr: h14,
    });
  run('slot.v1_gmem_flag', v1(0, uapi.KVM_MEM_GUEST_MEMFD, 0));
  run('slot.last_id', v1(32763, 0, 0));
  run('slot.id_past_last', v1(32764, 0, 0x10000));

  const cases: Cases = { host, kvm, out, run, sharedGmem };
  hostAccessCases(cases);
  guestRunCases(cases, opts.emulated ?? false);
  return out;
}

/** What every section of cases shares: the host, /dev/kvm, and the recorder of results. */
interface Cases {
  readonly host: Host;
  readonly kvm: number;
  readonly out: Map<string, string>;
  /** Record the result of a syscall: its value (or "ok" with `ok`), or its errno. */
  run(name: string, fn: () => unknown, ok?: boolean): void;
  /** The host offers guest_memfd with MMAP | INIT_SHARED (6.18+): the sections that need it run. */
  readonly sharedGmem: boolean;
}

/** Record a host access as the probe's touch() prints it: the byte (0 for a write), or the signal. */
function recordAccess(out: Map<string, string>, name: string, fn: () => number): void {
  try {
    out.set(name, String(fn()));
  } catch (e) {
    if (!(e instanceof HostFault)) throw e;
    out.set(name, e.signal);
  }
}

const readByte = (host: Host, addr: number) => (): number => host.memory.read(addr, 1)[0]!;
const writeByte = (host: Host, addr: number, v: number) => (): number => {
  host.memory.write(addr, [v]);
  return 0;
};

/** Host accesses through guest_memfd and memfd mappings (SIGBUS where the kernel sends one). */
function hostAccessCases({ host, kvm, out, run, sharedGmem }: Cases): void {
  const touch = (name: string, fn: () => number): void => recordAccess(out, name, fn);
  if (sharedGmem) {
    const vm8 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const gmem8 = (flags: number) => host.ioctl(vm8, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags });
    const g8 = gmem8(uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED);
    const m8 = host.mmap({ length: 8 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: g8 });
    touch('fault.gmem.fresh_page', readByte(host, m8 + PAGE));
    touch('fault.gmem.write', writeByte(host, m8 + 10, 0x5a));
    touch('fault.gmem.read_back', readByte(host, m8 + 10));
    run('fault.gmem.punch', () => host.fallocate(g8, KEEP | PUNCH, 0, PAGE));
    touch('fault.gmem.after_punch', readByte(host, m8 + 10));
    touch('fault.gmem.beyond_eof', readByte(host, m8 + 5 * PAGE));
    const g9 = gmem8(uapi.GUEST_MEMFD_FLAG_MMAP);
    let m9 = 0;
    run(
      'fault.gmem_private.mmap',
      () => (m9 = host.mmap({ length: 4 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: g9 })),
      true,
    );
    touch('fault.gmem_private.read', readByte(host, m9));
  }
  const mf = host.memfdCreate('conformance');
  run('memfd.ftruncate', () => host.ftruncate(mf, 4 * PAGE));
  const mm = host.mmap({ length: 8 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: mf });
  touch('memfd.write', writeByte(host, mm + PAGE + 3, 0x11));
  let b = 0;
  run('memfd.pread', () => {
    const r = host.pread(mf, 1, PAGE + 3);
    b = r[0] ?? 0;
    return r.length;
  });
  out.set('memfd.pread_value', String(b));
  run('memfd.punch', () => host.fallocate(mf, KEEP | PUNCH, PAGE, PAGE));
  touch('memfd.after_punch', readByte(host, mm + PAGE + 3));
  touch('memfd.beyond_eof', readByte(host, mm + 5 * PAGE));
  // A private mapping of the memfd: a write makes a private copy, MADV_DONTNEED drops it.
  const mp = host.mmap({ length: 2 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE, fd: mf });
  touch('memfd_private.write', writeByte(host, mp + 5, 0x22));
  touch('memfd_private.read_copy', readByte(host, mp + 5));
  run('memfd_private.pread_file', () => {
    const r = host.pread(mf, 1, 5);
    b = r[0] ?? 0;
    return r.length;
  });
  out.set('memfd_private.pread_file_value', String(b));
  const madv = (addr: number, len: number, advice: number) => () => host.madvise(addr, len, advice);
  run('memfd_private.remove', madv(mp, PAGE, uapi.MADV_REMOVE));
  run('memfd_private.free', madv(mp, PAGE, uapi.MADV_FREE));
  run('memfd_private.dontneed', madv(mp, PAGE, uapi.MADV_DONTNEED));
  touch('memfd_private.read_after_dontneed', readByte(host, mp + 5));
  run('memfd_shared.remove', madv(mm, PAGE, uapi.MADV_REMOVE));
  // A shrinking ftruncate drops private copies too (a hole punch keeps them).
  touch('memfd_private.write_page1', writeByte(host, mp + PAGE + 1, 0x33));
  run('memfd_private.shrink', () => host.ftruncate(mf, PAGE));
  touch('memfd_private.after_shrink', readByte(host, mp + PAGE + 1));
  run('memfd_private.grow', () => host.ftruncate(mf, 4 * PAGE));
  touch('memfd_private.after_grow', readByte(host, mp + PAGE + 1));
  // MADV_POPULATE_* on private mappings of a 4-page memfd: POPULATE_WRITE makes the private copies,
  // POPULATE_READ does not; both stop at the first hole, leaving what lies beyond it alone.
  const A = 0x41;
  const mq = host.memfdCreate('populate');
  host.ftruncate(mq, 4 * PAGE);
  const qs = host.mmap({ length: 4 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: mq });
  host.memory.write(qs, new Uint8Array(4 * PAGE).fill(A));
  const qp = host.mmap({ length: 3 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE, fd: mq });
  host.munmap(qp + PAGE, PAGE);
  run('populate.write_over_hole', madv(qp, 3 * PAGE, uapi.MADV_POPULATE_WRITE));
  host.memory.write(qs, [A + 1]);
  host.memory.write(qs + 2 * PAGE, [A + 1]);
  touch('populate.write_over_hole.before', readByte(host, qp));
  touch('populate.write_over_hole.beyond', readByte(host, qp + 2 * PAGE));
  run('populate.read_hole_first', madv(qp + PAGE, 2 * PAGE, uapi.MADV_POPULATE_READ));
  const qr = host.mmap({ length: 2 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE, fd: mq });
  run('populate.read', madv(qr, 2 * PAGE, uapi.MADV_POPULATE_READ));
  host.memory.write(qs + PAGE, [A + 2]);
  touch('populate.read.sees_file', readByte(host, qr + PAGE));
  run('populate.write', madv(qr, 2 * PAGE, uapi.MADV_POPULATE_WRITE));
  host.memory.write(qs + PAGE, [A + 3]);
  touch('populate.write.own_copy', readByte(host, qr + PAGE));
  const qe = host.mmap({ length: 6 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE, fd: mq });
  run('populate.write_beyond_eof', madv(qe, 6 * PAGE, uapi.MADV_POPULATE_WRITE));
  host.memory.write(qs + 3 * PAGE, [A + 4]);
  touch('populate.write_beyond_eof.last_page_copied', readByte(host, qe + 3 * PAGE));
  // mmap and munmap argument checks.
  const anon = uapi.MAP_ANONYMOUS;
  const mmap = (args: Parameters<Host['mmap']>[0]) => () => host.mmap(args);
  run('mmap.len0', mmap({ length: 0, prot: uapi.PROT_READ, flags: uapi.MAP_PRIVATE | anon }), true);
  run('mmap.no_type', mmap({ length: PAGE, prot: uapi.PROT_READ, flags: anon }), true);
  run(
    'mmap.anon_shared_validate',
    mmap({ length: PAGE, prot: uapi.PROT_READ, flags: uapi.MAP_SHARED_VALIDATE | anon }),
    true,
  );
  run(
    'mmap.fixed_unaligned',
    mmap({
      addr: 0x10001,
      length: PAGE,
      prot: uapi.PROT_READ,
      flags: uapi.MAP_PRIVATE | anon | uapi.MAP_FIXED,
    }),
    true,
  );
  run('mmap.closed_fd', mmap({ length: PAGE, prot: uapi.PROT_READ, flags: uapi.MAP_SHARED, fd: 999 }), true);
  run(
    'mmap.offset_unaligned',
    mmap({ length: PAGE, prot: uapi.PROT_READ, flags: uapi.MAP_SHARED, fd: mf, offset: 1 }),
    true,
  );
  run('mmap.anon_shared', mmap({ length: PAGE, prot: RW, flags: uapi.MAP_SHARED | anon }), true);
  run('munmap.unaligned', () => host.munmap(mm + 1, PAGE));
  run('munmap.len0', () => host.munmap(mm, 0));
  run('munmap.unmapped', () => host.munmap(0x100_0000_0000, PAGE));
  const R = uapi.PROT_READ;
  const privAnon = uapi.MAP_PRIVATE | anon;
  run('mmap.prot_unknown_bits', mmap({ length: PAGE, prot: R | 0x10, flags: privAnon }), true);
  run('mmap.len_huge', mmap({ length: 2n ** 60n, prot: R, flags: privAnon }), true);
  run('mmap.len_minus_one', mmap({ length: -1, prot: R, flags: privAnon }), true);
  run('mmap.anon_negative_offset', mmap({ length: PAGE, prot: R, flags: privAnon, offset: -PAGE }), true);
  run(
    'mmap.file_offset_overflow',
    mmap({ length: PAGE, prot: R, flags: uapi.MAP_SHARED, fd: mf, offset: 0x7ffffffffffff000n }),
    true,
  );
  run(
    'mmap.hugetlb_on_file',
    mmap({ length: PAGE, prot: R, flags: uapi.MAP_SHARED | uapi.MAP_HUGETLB, fd: mf }),
    true,
  );
  const fx = host.mmap({ length: 2 * PAGE, prot: RW, flags: privAnon });
  host.memory.write(fx, [42]);
  const noreplace = privAnon | uapi.MAP_FIXED_NOREPLACE;
  run('mmap.fixed_noreplace_taken', mmap({ addr: fx, length: PAGE, prot: R, flags: noreplace }), true);
  run(
    'mmap.fixed_and_noreplace_taken',
    mmap({ addr: fx, length: PAGE, prot: R, flags: noreplace | uapi.MAP_FIXED }),
    true,
  );
  host.munmap(fx + PAGE, PAGE);
  try {
    const nr = host.mmap({ addr: fx + PAGE, length: PAGE, prot: R, flags: noreplace });
    out.set('mmap.fixed_noreplace_free', nr === fx + PAGE ? 'at addr' : 'elsewhere');
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e;
    out.set('mmap.fixed_noreplace_free', e.code);
  }
  run(
    'mmap.fixed_unmappable_file',
    mmap({ addr: fx, length: PAGE, prot: R, flags: uapi.MAP_SHARED | uapi.MAP_FIXED, fd: kvm }),
    true,
  );
  touch('mmap.fixed_unmappable_kept', readByte(host, fx));
  // madvise on locked and read-only memory.
  const lk = host.mmap({ length: PAGE, prot: RW, flags: privAnon | uapi.MAP_LOCKED });
  run('madv.locked.dontneed', madv(lk, PAGE, uapi.MADV_DONTNEED));
  run('madv.locked.free', madv(lk, PAGE, uapi.MADV_FREE));
  run('madv.locked.dontneed_locked', madv(lk, PAGE, uapi.MADV_DONTNEED_LOCKED));
  const rdo = host.mmap({ length: PAGE, prot: R, flags: privAnon });
  run('madv.readonly.populate_write', madv(rdo, PAGE, uapi.MADV_POPULATE_WRITE));
  const pnone = host.mmap({ length: PAGE, prot: uapi.PROT_NONE, flags: privAnon });
  run('madv.prot_none.populate_read', madv(pnone, PAGE, uapi.MADV_POPULATE_READ));
  // memfd_create flags and name.
  const memfd = (name: string, flags: number) => () => host.memfdCreate(name, flags);
  run('memfd_create.allow_sealing', memfd('s', uapi.MFD_ALLOW_SEALING), true);
  run('memfd_create.noexec_seal', memfd('s', uapi.MFD_NOEXEC_SEAL), true);
  run('memfd_create.exec', memfd('s', uapi.MFD_EXEC), true);
  run('memfd_create.exec_and_noexec', memfd('s', uapi.MFD_EXEC | uapi.MFD_NOEXEC_SEAL), true);
  run('memfd_create.unknown_flag', memfd('s', 0x100), true);
  run('memfd_create.name_250', memfd('n'.repeat(250), 0), true);
  run('memfd_create.name_249', memfd('n'.repeat(249), 0), true);
}

/**
 * Guests that run (DEFAULT VM). The probe's vCPU runs x86 instructions; the model's runs the same
 * accesses as a guest program, `emulated` where the host emulated them.
 */
function guestRunCases({ host, kvm, out, run, sharedGmem }: Cases, emulated: boolean): void {
  const runCase = (name: string, vcpu: number): void => {
    const r = host.kvmRun(vcpu);
    try {
      host.ioctl(vcpu, 'KVM_RUN');
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      out.set(name, `${e.code} exit=${r.exit_reason}`);
      return;
    }
    let line = `exit=${r.exit_reason}`;
    if (r.exit_reason === uapi.KVM_EXIT_MMIO && r.mmio) {
      const m = r.mmio;
      line += ` gpa=0x${m.phys_addr.toString(16)} len=${m.len} write=${m.is_write}`;
      if (m.is_write) line += ` data=${Buffer.from(m.data.subarray(0, m.len)).toString('hex')}`;
    } else if (r.exit_reason === uapi.KVM_EXIT_INTERNAL_ERROR && r.internal)
      line += ` suberror=${r.internal.suberror} ndata=${r.internal.ndata}`;
    out.set(name, line);
  };
  const u32At = (addr: number): string =>
    `0x${Buffer.from(host.memory.read(addr, 4)).readUInt32LE(0).toString(16).padStart(8, '0')}`;
  const vm10 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  const v10 = host.ioctl(vm10, 'KVM_CREATE_VCPU', 0);
  host.guest(v10).load([{ op: 'hlt' }]);
  runCase('run.no_memslots', v10);
  run('run.nr_mmu_pages_too_few', () => host.ioctl(vm10, 'KVM_SET_NR_MMU_PAGES', 63));
  run('run.nr_mmu_pages', () => host.ioctl(vm10, 'KVM_SET_NR_MMU_PAGES', 64));
  // KVM_GET_NR_MMU_PAGES (_IO(KVMIO, 0x45)) was removed in 2023 (Thomas Huth), before 6.8: ENOTTY.
  run('run.get_nr_mmu_pages', () => host.ioctl(vm10, 0xae45, 0));
  runCase('run.no_memslots_mmu_pages', v10);
  const vm12 = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  const v12 = host.ioctl(vm12, 'KVM_CREATE_VCPU', 0);
  host.guest(v12).load([{ op: 'hlt' }]);
  const ram12 = host.mmap({ length: 16 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  const r13 = {
    slot: 0,
    flags: 0,
    guest_phys_addr: 0x40000000,
    memory_size: 16 * PAGE,
    userspace_addr: ram12,
  };
  run('run.slot_created', () => host.ioctl(vm12, 'KVM_SET_USER_MEMORY_REGION', r13));
  run('run.slot_deleted', () => host.ioctl(vm12, 'KVM_SET_USER_MEMORY_REGION', { ...r13, memory_size: 0 }));
  runCase('run.no_memslots_after_delete', v12);
  // A DEFAULT VM with 64 KiB of RAM at 0 (the probe's code page is in it).
  const vmWithRam = (name: string): { vm: number; ram: number } => {
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const ram = host.mmap({ length: 16 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    const region = { slot: 0, flags: 0, guest_phys_addr: 0, memory_size: 16 * PAGE, userspace_addr: ram };
    run(name, () => host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', region));
    return { vm, ram };
  };
  const { vm: vm11, ram: ram11 } = vmWithRam('run.slot');
  const ro = host.mmap({ length: PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.memory.write(ro, new Uint8Array(PAGE).fill(0x5a));
  run('run.slot_readonly', () =>
    host.ioctl(vm11, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 1,
      flags: uapi.KVM_MEM_READONLY,
      guest_phys_addr: 0x100000,
      memory_size: PAGE,
      userspace_addr: ro,
    }),
  );
  const v11 = host.ioctl(vm11, 'KVM_CREATE_VCPU', 0);
  // The probe's program: the value read by MMIO is stored to RAM, the read-only slot's to RAM and
  // back to the read-only slot. The model's guest has no registers: the program is loaded in three
  // parts, each storing what the previous one read; the KVM_RUNs between parts record nothing.
  const guest11 = host.guest(v11);
  const run11 = host.kvmRun(v11);
  guest11.load([{ op: 'read', gpa: 0x20000000, length: 4, emulated }, { op: 'hlt' }]);
  run11.immediate_exit = 1;
  runCase('run.immediate_exit', v11);
  run11.immediate_exit = 0;
  runCase('run.mmio_read', v11);
  run11.mmio?.data.set([0xdd, 0xcc, 0xbb, 0xaa]);
  run11.immediate_exit = 1;
  runCase('run.immediate_exit_after_mmio', v11);
  run11.immediate_exit = 0;
  host.ioctl(v11, 'KVM_RUN');
  const mmioValue = guest11.results[0]?.data ?? new Uint8Array(4);
  guest11.load([
    { op: 'write', gpa: 0x2000, data: mmioValue, emulated },
    { op: 'write', gpa: 0x20000008, data: [0x44, 0x33, 0x22, 0x11], emulated },
    { op: 'read', gpa: 0x100000, length: 4, emulated },
    { op: 'hlt' },
  ]);
  runCase('run.mmio_write', v11);
  host.ioctl(v11, 'KVM_RUN');
  const roValue = guest11.results[2]?.data ?? new Uint8Array(4);
  guest11.load([
    { op: 'write', gpa: 0x2004, data: roValue, emulated },
    { op: 'write', gpa: 0x100000, data: roValue, emulated },
    { op: 'hlt' },
  ]);
  runCase('run.readonly_write', v11);
  runCase('run.hlt', v11);
  out.set('run.ram_2000', u32At(ram11 + 0x2000));
  out.set('run.ram_2004', u32At(ram11 + 0x2004));
  out.set('run.readonly_page', u32At(ro));

  if (!sharedGmem) return;
  // A guest_memfd-only memslot (MMAP | INIT_SHARED) on a DEFAULT VM: the guest's accesses fault
  // through guest_memfd (__kvm_mmu_faultin_pfn: kvm_memslot_is_gmem_only), whatever
  // userspace_addr maps. Slot 1 names plain anonymous memory, slot 2 the guest_memfd mapping.
  const { vm: vm13, ram: ram13 } = vmWithRam('run_gmem.ram');
  const g13 = host.ioctl(vm13, 'KVM_CREATE_GUEST_MEMFD', {
    size: 8 * PAGE,
    flags: uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED,
  });
  const m13 = host.mmap({ length: 8 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: g13 });
  host.memory.write(m13, [0x11, 0x22, 0x33, 0x44]);
  const a13 = host.mmap({ length: 4 * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.memory.write(a13, new Uint8Array(4 * PAGE).fill(0xee));
  const gmemSlot = (slot: number, gpa: number, uaddr: number, offset: number) => () =>
    host.ioctl(vm13, 'KVM_SET_USER_MEMORY_REGION2', {
      slot,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: gpa,
      memory_size: 4 * PAGE,
      userspace_addr: uaddr,
      guest_memfd: g13,
      guest_memfd_offset: offset,
    });
  run('run_gmem.slot_anon_uaddr', gmemSlot(1, 0x200000, a13, 0));
  run('run_gmem.slot_gmem_uaddr', gmemSlot(2, 0x300000, m13 + 4 * PAGE, 4 * PAGE));
  const v13 = host.ioctl(vm13, 'KVM_CREATE_VCPU', 0);
  const guest13 = host.guest(v13);
  guest13.load([{ op: 'read', gpa: 0x200000, length: 4, emulated }, { op: 'hlt' }]);
  // The probe stores what it read at 0x2008: run the read, then write its result there.
  host.ioctl(v13, 'KVM_RUN');
  const seen = guest13.results[0]?.data ?? new Uint8Array(4);
  guest13.load([
    { op: 'write', gpa: 0x2008, data: seen, emulated },
    { op: 'write', gpa: 0x200010, data: [0x88, 0x77, 0x66, 0x55], emulated },
    { op: 'write', gpa: 0x300000, data: [0xcc, 0xbb, 0xaa, 0x99], emulated },
    { op: 'hlt' },
  ]);
  runCase('run_gmem.hlt', v13);
  out.set('run_gmem.ram_2008', u32At(ram13 + 0x2008));
  out.set('run_gmem.gmem_10', u32At(m13 + 0x10));
  out.set('run_gmem.anon_10', u32At(a13 + 0x10));
  out.set('run_gmem.gmem_page4', u32At(m13 + 4 * PAGE));
  run('run_gmem.punch', () => host.fallocate(g13, KEEP | PUNCH, 0, PAGE));
  guest13.load([{ op: 'read', gpa: 0x200010, length: 4, emulated }, { op: 'hlt' }]);
  host.ioctl(v13, 'KVM_RUN');
  guest13.load([
    { op: 'write', gpa: 0x200c, data: guest13.results[0]?.data ?? new Uint8Array(4), emulated },
    { op: 'hlt' },
  ]);
  runCase('run_gmem.after_punch_hlt', v13);
  out.set('run_gmem.ram_200c', u32At(ram13 + 0x200c));
}
