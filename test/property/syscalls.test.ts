/**
 * Property: random sequences of syscalls with random (including garbage) arguments, on random kernel
 * profiles and platforms, only ever produce a return value, a SyscallError carrying a valid Linux
 * errno, or a HostFault. Any other exception (TypeError, RangeError, an InvariantViolation on a real
 * kernel profile, ...) escaping the model is a defect (DESIGN.md "Errors").
 *
 * Covered: open, every ioctl request name of KVM_IOCTLS on every fd kind (plus unknown names and raw
 * numbers), KVM_MEMORY_ENCRYPT_OP with SEV/TDX command ids, fallocate, mmap/munmap, read/write/
 * pread/pwrite, fstat, ftruncate, close, dup, memfd_create, memory_failure, host memory read/write, and
 * KVM_RUN with random guest programs (emulated accesses too), madvise. Arguments mix well-formed structs (right field names, values
 * from a pool of interesting numbers and the fds and addresses the sequence created) with garbage.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createHost,
  type GuestOp,
  type Host,
  HostFault,
  kernels,
  SyscallError,
  uapi,
} from '../../src/index.js';
import { ERRNO } from '../../src/uapi/errno.js';
import { KVM_IOCTLS } from '../../src/uapi/kvm.js';

const VALID_ERRNOS = new Set<number>(Object.values(ERRNO));
const IOCTL_NAMES = Object.keys(KVM_IOCTLS);
const ENC_CMD_NAMES = Object.keys(uapi).filter((k) => /^KVM_(SEV|TDX)_[A-Z_0-9]+$/.test(k));
const PLATFORMS = ['generic', 'snp', 'tdx'] as const;

/** Numbers that hit edges: zero, pages, sizes, wrap points, negatives, non-integers. */
const interestingNumber = fc.oneof(
  fc.constantFrom(
    0,
    1,
    -1,
    2,
    3,
    4,
    5,
    7,
    8,
    10,
    4095,
    4096,
    4097,
    8192,
    0x200000,
    0xc0000000,
    2 ** 31,
    2 ** 32,
    2 ** 40,
    2 ** 52,
    Number.MAX_SAFE_INTEGER,
    0.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ),
  fc.integer({ min: -4, max: 64 }),
  fc.integer({ min: 0, max: 1024 }).map((n) => n * 4096),
);
const interestingBigint = fc.oneof(
  fc.constantFrom(0n, 1n, -1n, (1n << 64n) - 1n, (1n << 64n) - 4096n, 1n << 63n, 1n << 52n, 1n << 70n),
  fc.bigInt({ min: -(1n << 65n), max: 1n << 65n }),
);
const garbage = fc.oneof(
  fc.constantFrom(undefined, null, true, false, 'x', '', '0x10', [], [1, 2], {}, () => 0),
  fc.string({ maxLength: 4 }),
);
const scalarValue = fc.oneof(
  { weight: 6, arbitrary: interestingNumber },
  { weight: 2, arbitrary: interestingBigint },
  { weight: 1, arbitrary: garbage },
);

const FIELD_NAMES = [
  'slot',
  'flags',
  'guest_phys_addr',
  'memory_size',
  'userspace_addr',
  'guest_memfd',
  'guest_memfd_offset',
  'size',
  'address',
  'attributes',
  'gpa',
  'cap',
  'args',
  'id',
  'data',
  'error',
  'sev_fd',
  'uaddr',
  'len',
  'gfn_start',
  'type',
  'source_addr',
  'nr_pages',
  'policy',
  'entries',
  'nent',
];

/** A struct argument: known field names with interesting or garbage values, sometimes nested. */
const structArg: fc.Arbitrary<Record<string, unknown>> = fc.letrec((tie) => ({
  struct: fc.dictionary(
    fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...FIELD_NAMES) },
      { weight: 1, arbitrary: fc.string({ maxLength: 3 }) },
    ),
    fc.oneof(
      { weight: 8, arbitrary: scalarValue },
      { weight: 1, arbitrary: fc.constantFrom(...ENC_CMD_NAMES, 'KVM_NOPE') },
      { weight: 1, arbitrary: tie('struct') },
      { weight: 1, arbitrary: fc.array(scalarValue, { maxLength: 3 }) },
    ),
    { maxKeys: 8 },
  ),
})).struct as fc.Arbitrary<Record<string, unknown>>;

const ioctlArg = fc.oneof({ weight: 5, arbitrary: structArg }, { weight: 3, arbitrary: scalarValue });

/** An fd: mostly small numbers (the sequence's own fds are 3, 4, ...), sometimes garbage. */
const fdArg = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 14 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 1023, 1024, 2 ** 31) },
);

const requestArg = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...IOCTL_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom('KVM_NOT_AN_IOCTL', '', 'kvm_run') },
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 0xffffffff }) },
  { weight: 1, arbitrary: fc.constantFrom(...Object.values(KVM_IOCTLS)) },
);

const guestOp: fc.Arbitrary<GuestOp> = fc.oneof(
  fc.record({
    op: fc.constant('read' as const),
    gpa: fc.oneof(fc.constantFrom(0, 0xc0000000, 0x1000, 2 ** 32), fc.integer({ min: 0, max: 2 ** 36 })),
    length: fc.integer({ min: 0, max: 9000 }),
    shared: fc.option(fc.boolean(), { nil: undefined }),
    emulated: fc.option(fc.boolean(), { nil: undefined }),
  }),
  fc.record({
    op: fc.constant('write' as const),
    gpa: fc.oneof(fc.constantFrom(0, 0xc0000000, 0x1000), fc.integer({ min: 0, max: 2 ** 36 })),
    data: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 16 }),
    shared: fc.option(fc.boolean(), { nil: undefined }),
    emulated: fc.option(fc.boolean(), { nil: undefined }),
  }),
  fc.record({
    op: fc.constant('accept' as const),
    gpa: fc.constantFrom(0, 0xc0000000, 0x1000, 7),
    size: fc.constantFrom(0, 4096, 0x200000, 5),
  }),
  fc.record({
    op: fc.constant('map_gpa' as const),
    gpa: fc.constantFrom(0, 0xc0000000, 0x1001),
    npages: fc.constantFrom(0, 1, 512, -1),
    private: fc.boolean(),
  }),
  fc.constant({ op: 'hlt' as const }),
);

/** One syscall; `addrs` are host addresses mmap returned earlier in the sequence. */
type Call =
  | { k: 'open'; path: string }
  | { k: 'ioctl'; fd: number; req: string | number; arg: unknown }
  | { k: 'fallocate'; fd: number; mode: number; off: unknown; len: unknown }
  | { k: 'mmap'; length: unknown; prot: number; flags: number; fd: number; offset: unknown }
  | { k: 'munmap'; which: number; len: unknown }
  | { k: 'madvise'; which: number; delta: number; len: unknown; advice: number }
  | { k: 'read'; fd: number; len: number; off?: number }
  | { k: 'write'; fd: number; n: number; off?: number }
  | { k: 'fstat' | 'close' | 'dup'; fd: number }
  | { k: 'ftruncate'; fd: number; len: unknown }
  | { k: 'memfd' }
  | { k: 'memfail'; fd: number; off: unknown }
  | { k: 'mem'; which: number; delta: number; len: number; write: boolean }
  | { k: 'run'; fd: number; ops: GuestOp[]; immediateExit: boolean };

const callArb: fc.Arbitrary<Call> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('open' as const),
      path: fc.constantFrom('/dev/kvm', '/dev/kvm', '/dev/sev', '/dev/null', ''),
    }),
  },
  {
    weight: 14,
    arbitrary: fc.record({ k: fc.constant('ioctl' as const), fd: fdArg, req: requestArg, arg: ioctlArg }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('fallocate' as const),
      fd: fdArg,
      mode: fc.constantFrom(0, 1, 3, 2, 0x10, 0x11, 0x80, -1),
      off: fc.oneof(interestingNumber, interestingBigint),
      len: fc.oneof(interestingNumber, interestingBigint),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('mmap' as const),
      length: fc.oneof(interestingNumber, interestingBigint),
      prot: fc.constantFrom(0, 1, 3, 7, 8),
      flags: fc.constantFrom(1, 2, 3, 0x21, 0x22, 0x4022, 0, 0x31, 0x12),
      fd: fdArg,
      offset: fc.oneof(fc.constantFrom(0, 0, 4096, 1, -4096), interestingBigint),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('munmap' as const), which: fc.nat(8), len: interestingNumber }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('madvise' as const),
      which: fc.nat(8),
      delta: fc.constantFrom(0, 0, 4096, 1, -4096),
      len: fc.oneof(interestingNumber, interestingBigint),
      advice: fc.constantFrom(0, 3, 4, 4, 8, 9, 9, 12, 14, 16, 18, 22, 23, 24, 25, 100, 102, -1),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('read' as const),
      fd: fdArg,
      len: fc.integer({ min: -2, max: 128 }),
      off: fc.option(fc.integer({ min: -1, max: 8192 }), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('write' as const),
      fd: fdArg,
      n: fc.nat(64),
      off: fc.option(fc.integer({ min: -1, max: 8192 }), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constantFrom('fstat' as const, 'close' as const, 'dup' as const),
      fd: fdArg,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('ftruncate' as const),
      fd: fdArg,
      len: fc.oneof(interestingNumber, interestingBigint),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('memfd' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('memfail' as const),
      fd: fdArg,
      off: fc.oneof(interestingNumber, interestingBigint),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('mem' as const),
      which: fc.nat(8),
      delta: fc.integer({ min: -4096, max: 5 * 4096 }),
      len: fc.integer({ min: 0, max: 9000 }),
      write: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('run' as const),
      fd: fdArg,
      ops: fc.array(guestOp, { maxLength: 5 }),
      immediateExit: fc.boolean(),
    }),
  },
);

/** A prelude that makes the interesting fds exist, so random calls reach deep paths. */
const prelude: Call[] = [
  { k: 'open', path: '/dev/kvm' }, // 3
  { k: 'ioctl', fd: 3, req: 'KVM_CREATE_VM', arg: 1 }, // 4: SW_PROTECTED (all profiles)
  { k: 'ioctl', fd: 4, req: 'KVM_CREATE_GUEST_MEMFD', arg: { size: 0x400000, flags: 0 } }, // 5
  { k: 'ioctl', fd: 4, req: 'KVM_CREATE_VCPU', arg: 0 }, // 6
  {
    k: 'ioctl',
    fd: 4,
    req: 'KVM_SET_USER_MEMORY_REGION2',
    arg: {
      slot: 10,
      flags: 4,
      guest_phys_addr: 0xc0000000,
      memory_size: 0x200000,
      userspace_addr: 0,
      guest_memfd: 5,
    },
  },
];

function perform(h: Host, c: Call, addrs: number[]): unknown {
  const addr = (i: number): number => addrs[i % Math.max(addrs.length, 1)] ?? 0x7f0000000000;
  switch (c.k) {
    case 'open':
      return h.open(c.path);
    case 'ioctl':
      return h.ioctl(c.fd, c.req, c.arg);
    case 'fallocate':
      return h.fallocate(c.fd, c.mode, c.off as bigint, c.len as bigint);
    case 'mmap': {
      const a = h.mmap({
        length: c.length as number,
        prot: c.prot,
        flags: c.flags,
        fd: c.fd,
        offset: c.offset as number,
      });
      addrs.push(a);
      return a;
    }
    case 'munmap':
      return h.munmap(addr(c.which), c.len as number);
    case 'madvise':
      return h.madvise(addr(c.which) + c.delta, c.len as number, c.advice);
    case 'read':
      return c.off === undefined ? h.read(c.fd, c.len) : h.pread(c.fd, c.len, c.off);
    case 'write': {
      const b = new Uint8Array(c.n).fill(0x5a);
      return c.off === undefined ? h.write(c.fd, b) : h.pwrite(c.fd, b, c.off);
    }
    case 'fstat':
      return h.fstat(c.fd);
    case 'close':
      return h.close(c.fd);
    case 'dup':
      return h.dup(c.fd);
    case 'ftruncate':
      return h.ftruncate(c.fd, c.len as bigint);
    case 'memfd':
      return h.memfdCreate('prop', 0);
    case 'memfail':
      return h.memoryFailure(c.fd, c.off as bigint);
    case 'mem': {
      const a = addr(c.which) + c.delta;
      if (c.write) return h.memory.write(a, new Uint8Array(c.len).fill(0xa5));
      return h.memory.read(a, c.len);
    }
    case 'run': {
      h.guest(c.fd).load(c.ops);
      h.kvmRun(c.fd).immediate_exit = c.immediateExit ? 1 : 0;
      return h.ioctl(c.fd, 'KVM_RUN');
    }
  }
}

/** Runs the calls; returns a description of the first exception that is not allowed, or null. */
function runSequence(kernel: string, platform: (typeof PLATFORMS)[number], calls: Call[]): string | null {
  const h = createHost({ kernel, platform });
  const addrs: number[] = [];
  for (const [i, c] of [...prelude, ...calls].entries()) {
    try {
      perform(h, c, addrs);
    } catch (e) {
      if (e instanceof SyscallError) {
        if (!VALID_ERRNOS.has(e.errno) || ERRNO[e.code] !== e.errno)
          return `call ${i} ${c.k}: bad errno ${e.code}/${e.errno}`;
        continue;
      }
      if (e instanceof HostFault) {
        if (e.signal !== 'SIGBUS' && e.signal !== 'SIGSEGV')
          return `call ${i} ${c.k}: bad signal ${e.signal}`;
        continue;
      }
      const err = e as Error;
      return `call ${i} ${JSON.stringify(c, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}: ${err?.name}: ${err?.message}\n${err?.stack?.split('\n').slice(1, 4).join('\n')}`;
    }
  }
  return null;
}

describe('property: syscalls only return, fail with an errno, or fault', () => {
  it('random syscall sequences with garbage arguments on random profiles and platforms', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...kernels()),
        fc.constantFrom(...PLATFORMS),
        fc.array(callArb, { minLength: 1, maxLength: 40 }),
        (kernel, platform, calls) => {
          const problem = runSequence(kernel, platform, calls);
          expect(problem).toBeNull();
        },
      ),
      { numRuns: 5000, seed: Number(process.env.PROP_SEED ?? 20240713), endOnFailure: true },
    );
  });
});
