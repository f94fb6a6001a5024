/**
 * The flow file format, as a zod schema: the single source of the loader's validation and of the
 * JSON Schema published as dist/flow.schema.json (z.toJSONSchema). A flow is a VMM's sequence of
 * calls, as data: its platform, its source (VMM, version, files), the outcome its sources say it
 * has on each kernel profile, and its steps.
 *
 * Values: a YAML number is taken as is; a string is an expression (`0x1000`, `2 << 20`,
 * `PROT_READ | PROT_WRITE`, `$ram + 4096`, `$exit.memory_fault.gpa`), see expr.ts. Exceptions are the
 * fields that name things: `ioctl`, `open`, `id` (KVM_MEMORY_ENCRYPT_OP sub-command), `op`.
 */
import { z } from 'zod';
import { ERRNO } from '../uapi/errno.js';

const ERRNO_NAMES = Object.keys(ERRNO) as [string, ...string[]];
const SIGNALS = ['SIGBUS', 'SIGSEGV'] as const;

/** A number, or an expression string evaluated when the step runs. */
export const ExprSchema = z.union([z.number(), z.string()]).meta({
  id: 'Expr',
  description: 'A number or an expression: 0x1000, 2 << 20, PROT_READ|PROT_WRITE, $ram + 4096',
});

/** Any argument value: expressions, nested structs (C field names), arrays. */
export const ValueSchema: z.ZodType<unknown> = z
  .unknown()
  .meta({ id: 'Value', description: 'A struct (C field names), an array, a number or an expression string' });

/** Bytes: a list, a fill pattern, hex or text. */
export const DataSchema = z
  .union([
    z.array(z.union([z.number().int().min(0).max(255), z.string()])),
    z.strictObject({
      fill: ExprSchema.describe('byte value'),
      length: ExprSchema.describe('number of bytes'),
    }),
    z.strictObject({ hex: z.string().describe('hex digits, whitespace allowed') }),
    z.strictObject({ text: z.string().describe('UTF-8 text') }),
  ])
  .meta({ id: 'Data', description: 'bytes: [1, 2], {fill, length}, {hex} or {text}' });

export const SyscallExpectSchema = z.union([
  z.literal('ok'),
  z.literal('any'),
  z.enum(ERRNO_NAMES),
  z.enum(SIGNALS),
]);

export const ExpectSchema = z
  .union([
    SyscallExpectSchema,
    z.strictObject({
      result: z
        .union([z.literal('ok'), z.literal('any'), z.enum(ERRNO_NAMES), z.enum(SIGNALS)])
        .optional()
        .describe('ok (default), any, an errno name or a signal'),
      exit: z.string().optional().describe('KVM_RUN: the exit reason, e.g. KVM_EXIT_HLT'),
      value: ExprSchema.optional().describe('the return value'),
      bits: ExprSchema.optional().describe(
        'bits the return value must have set, as a VMM checks a capability mask: (value & bits) == bits',
      ),
      out: z
        .record(z.string(), ExprSchema)
        .optional()
        .describe('fields of the in/out struct after the call, dotted for nested ones, e.g. { data.len: 0 }'),
    }),
  ])
  .meta({
    id: 'Expect',
    description: 'ok, any, an errno (EEXIST), a signal, or {result, exit, value, bits, out}',
  });

/** Fields every step may carry. */
const common = {
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]+$/)
    .optional()
    .describe('step id: outcomes refer to it, reports show it'),
  note: z.string().optional().describe('where this step comes from in the source (function, line)'),
  expect: ExpectSchema.optional(),
};

const bindAs = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
  .optional()
  .describe('bind the result to a name, used later as $name');

export const OpenStep = z
  .strictObject({ ...common, open: z.string().describe('path: /dev/kvm, /dev/sev'), as: bindAs })
  .meta({ id: 'OpenStep', description: 'open(path): binds the fd' });

export const IoctlStep = z
  .strictObject({
    ...common,
    ioctl: z.string().describe('request by its uAPI name: KVM_CREATE_VM, KVM_MEMORY_ENCRYPT_OP, ...'),
    fd: ExprSchema.describe('the fd: $kvm, $vm, $vcpu, ...'),
    arg: ValueSchema.optional(),
    as: bindAs,
    out: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .optional()
      .describe('bind the argument struct as the kernel left it (in/out structs)'),
  })
  .meta({ id: 'IoctlStep', description: 'ioctl(fd, request, arg)' });

export const MmapStep = z
  .strictObject({
    ...common,
    mmap: z.strictObject({
      length: ExprSchema,
      prot: ExprSchema,
      flags: ExprSchema,
      fd: ExprSchema.optional(),
      offset: ExprSchema.optional(),
      addr: ExprSchema.optional().describe('the address hint, or the place with MAP_FIXED'),
    }),
    as: bindAs,
  })
  .meta({ id: 'MmapStep', description: 'mmap(): binds the host address' });

export const MunmapStep = z
  .strictObject({ ...common, munmap: z.strictObject({ addr: ExprSchema, length: ExprSchema }) })
  .meta({ id: 'MunmapStep' });

export const WriteStep = z
  .strictObject({ ...common, write: z.strictObject({ addr: ExprSchema, data: DataSchema }) })
  .meta({ id: 'WriteStep', description: 'write bytes into host memory (the VMM loading an image)' });

export const MadviseStep = z
  .strictObject({
    ...common,
    madvise: z.strictObject({
      addr: ExprSchema,
      length: ExprSchema,
      advice: ExprSchema.describe('MADV_DONTNEED, MADV_REMOVE, ...'),
    }),
  })
  .meta({
    id: 'MadviseStep',
    description:
      "madvise(): QEMU's ram_block_discard_range() of RAM without a file (MADV_DONTNEED, MADV_REMOVE)",
  });

export const MprotectStep = z
  .strictObject({
    ...common,
    mprotect: z.strictObject({
      addr: ExprSchema,
      length: ExprSchema,
      prot: ExprSchema.describe('PROT_NONE, PROT_READ | PROT_WRITE, ...'),
    }),
  })
  .meta({
    id: 'MprotectStep',
    description: "mprotect(): e.g. Firecracker's PROT_NONE on unplugged hotplug memory",
  });

export const ReadStep = z
  .strictObject({
    ...common,
    read: z.strictObject({
      addr: ExprSchema,
      length: ExprSchema,
      expect: DataSchema.optional().describe('the bytes the read must return'),
    }),
  })
  .meta({
    id: 'ReadStep',
    description:
      'read host memory (the VMM looking at guest RAM or a guest_memfd mapping); SIGBUS/SIGSEGV as the kernel sends them',
  });

export const FallocateStep = z
  .strictObject({
    ...common,
    fallocate: z.strictObject({ fd: ExprSchema, mode: ExprSchema, offset: ExprSchema, len: ExprSchema }),
  })
  .meta({ id: 'FallocateStep' });

export const CloseStep = z.strictObject({ ...common, close: ExprSchema }).meta({ id: 'CloseStep' });

const EmulatedSchema = z
  .boolean()
  .optional()
  .describe(
    'an instruction KVM emulates: memory through the memslot userspace_addr (kvm_vcpu_read_guest), not the fault path; VMs without private memory',
  );

export const GuestOpSchema = z
  .union([
    z.strictObject({
      op: z.literal('read'),
      gpa: ExprSchema,
      length: ExprSchema,
      shared: z.boolean().optional(),
      emulated: EmulatedSchema,
      expect: DataSchema.optional().describe(
        'the bytes the read must return, checked by the run step that completes the read',
      ),
    }),
    z.strictObject({
      op: z.literal('write'),
      gpa: ExprSchema,
      data: DataSchema,
      shared: z.boolean().optional(),
      emulated: EmulatedSchema,
    }),
    z.strictObject({ op: z.literal('accept'), gpa: ExprSchema, size: ExprSchema }),
    z.strictObject({
      op: z.literal('map_gpa'),
      gpa: ExprSchema,
      npages: ExprSchema,
      private: z.boolean(),
      via: z
        .enum(['hypercall', 'tdvmcall', 'psc_msr', 'psc_ghcb'])
        .optional()
        .describe(
          'how the guest asks: KVM_HC_MAP_GPA_RANGE hypercall, TDG.VP.VMCALL<MapGPA>, SNP GHCB MSR or GHCB-buffer page-state change (default: tdvmcall on TDX, psc_ghcb on SNP, hypercall otherwise)',
        ),
    }),
    z
      .strictObject({
        op: z.literal('terminate'),
        reasonSet: z.number().int().min(0).max(0xf).optional(),
        reasonCode: z.number().int().min(0).max(0xff).optional(),
      })
      .describe(
        'SEV-ES/SNP: the GHCB MSR protocol termination request (KVM_EXIT_SYSTEM_EVENT, SEV_TERM); reason set and code default to 0',
      ),
    z
      .strictObject({ op: z.literal('shutdown') })
      .describe('a triple fault (e.g. #UD with no IDT): KVM_EXIT_SHUTDOWN'),
    z.strictObject({ op: z.literal('hlt') }),
  ])
  .meta({
    id: 'GuestOp',
    description: 'a guest operation: read, write, accept, map_gpa, terminate, shutdown, hlt',
  });

export const GuestStep = z
  .strictObject({
    ...common,
    guest: ExprSchema.describe('the vCPU fd whose guest gets the program'),
    program: z.array(GuestOpSchema),
  })
  .meta({ id: 'GuestStep', description: 'give the vCPU its guest program (no syscall)' });

export const RunStep = z
  .strictObject({ ...common, run: ExprSchema.describe('the vCPU fd'), as: bindAs })
  .meta({ id: 'RunStep', description: 'KVM_RUN; `as` binds a copy of kvm_run; expect {exit: ...}' });

export const RepeatSpec = z
  .strictObject({
    var: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .optional()
      .describe('the loop variable, $var in the body'),
    from: ExprSchema.optional(),
    to: ExprSchema.optional().describe('exclusive bound'),
    step: ExprSchema.optional(),
    over: z.array(ValueSchema).optional().describe('iterate over these values instead of a range'),
    until: z.string().optional().describe('do-while: stop after an iteration where this holds'),
    max: z.number().int().positive().optional().describe('iteration limit for `until` (default 1000)'),
  })
  .meta({ id: 'RepeatSpec' });

export type StepInput =
  | z.infer<typeof OpenStep>
  | z.infer<typeof IoctlStep>
  | z.infer<typeof MmapStep>
  | z.infer<typeof MunmapStep>
  | z.infer<typeof WriteStep>
  | z.infer<typeof ReadStep>
  | z.infer<typeof MadviseStep>
  | z.infer<typeof MprotectStep>
  | z.infer<typeof FallocateStep>
  | z.infer<typeof CloseStep>
  | z.infer<typeof GuestStep>
  | z.infer<typeof RunStep>
  | RepeatStepInput;

export interface RepeatStepInput {
  name?: string;
  note?: string;
  repeat: z.infer<typeof RepeatSpec>;
  steps: StepInput[];
}

export const RepeatStep: z.ZodType<RepeatStepInput> = z
  .strictObject({
    name: common.name,
    note: common.note,
    repeat: RepeatSpec,
    get steps(): z.ZodArray<z.ZodType<StepInput>> {
      return z.array(StepSchema);
    },
  })
  .meta({ id: 'RepeatStep', description: 'repeat the body over a range, a list, or until a condition' });

/** The step kinds, by the key that selects them (the loader dispatches on it for precise errors). */
export const STEP_KINDS = {
  open: OpenStep,
  ioctl: IoctlStep,
  mmap: MmapStep,
  munmap: MunmapStep,
  write: WriteStep,
  read: ReadStep,
  madvise: MadviseStep,
  mprotect: MprotectStep,
  fallocate: FallocateStep,
  close: CloseStep,
  guest: GuestStep,
  run: RunStep,
  repeat: RepeatStep,
} as const;
export type StepKind = keyof typeof STEP_KINDS;

export const StepSchema: z.ZodType<StepInput> = z
  .union([
    OpenStep,
    IoctlStep,
    MmapStep,
    MunmapStep,
    WriteStep,
    ReadStep,
    MadviseStep,
    MprotectStep,
    FallocateStep,
    CloseStep,
    GuestStep,
    RunStep,
    RepeatStep,
  ])
  .meta({ id: 'Step' });

export const OutcomeSchema = z
  .union([
    z.literal('ok'),
    z.strictObject({
      result: z
        .union([
          z.literal('ok'),
          z.literal('invariant'),
          z.literal('mismatch'),
          z.enum(ERRNO_NAMES),
          z.enum(SIGNALS),
        ])
        .describe(
          'ok, or the errno / signal of the first unexpected step; mismatch: it succeeded with another value (a VMM check on a capability fails)',
        ),
      at: z.string().optional().describe('the name of the step that fails (required unless result is ok)'),
      why: z.string().optional().describe('what in the sources says so'),
    }),
  ])
  .meta({ id: 'Outcome', description: 'the documented outcome on one kernel profile' });

export const SourceSchema = z
  .strictObject({
    vmm: z.string().describe('QEMU, alioth, cloud-hypervisor, KVM selftests, ...'),
    version: z.string().describe('tag, release or commit'),
    file: z.union([z.string(), z.array(z.string()).min(1)]).describe('the source file(s) transcribed'),
    url: z.string().optional(),
    notes: z.string().optional(),
  })
  .meta({ id: 'Source' });

export const FlowSchema = z
  .strictObject({
    $schema: z.string().optional(),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/)
      .describe('flow id (lower case, digits, . _ -)'),
    title: z.string(),
    description: z.string().optional(),
    platform: z.enum(['generic', 'snp', 'tdx']),
    source: SourceSchema,
    outcomes: z
      .record(z.string(), OutcomeSchema)
      .describe('per kernel profile (or `others`), the outcome the sources say the flow has'),
    steps: z.array(StepSchema).min(1),
  })
  .meta({
    id: 'Flow',
    title: 'gmemlab flow',
    description: 'A VMM call sequence run against modelled kernels',
  });

export type FlowInput = z.infer<typeof FlowSchema>;
export type OutcomeInput = z.infer<typeof OutcomeSchema>;
export type ExpectInput = z.infer<typeof ExpectSchema>;
export type DataInput = z.infer<typeof DataSchema>;
export type GuestOpInput = z.infer<typeof GuestOpSchema>;

/** The JSON Schema editors use (draft-07 for the widest editor support). */
export function flowJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(FlowSchema, { target: 'draft-7', unrepresentable: 'any' }) as Record<string, unknown>;
}
