/**
 * `gmemlab measure snp`: the SEV-SNP launch digest of an OVMF image, with sev-snp-measure's options.
 * Parses the image, plans QEMU's launch (measure/snp/launch-plan), runs it through a modelled 'snp'
 * host (measure/snp/launch) and prints the MEASUREMENT the modelled PSP holds. --trace FILE writes
 * one JSON line per measured page (type, gpa, contents digest, digest after).
 * Errors: one line on stderr, exit 1 (2 for bad usage), as sev-snp-measure exits.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { SNP_PAGE_TYPE_NAMES } from '../kernel/arch/sev/launch-digest.js';
import type { SnpMeasuredPage } from '../kernel/arch/sev/psp.js';
import { FirmwareFormatError } from '../measure/errors.js';
import { cpuSigBig, VCPU_TYPE_NAMES, vcpuSigForType } from '../measure/snp/cpu-sig.js';
import { checkSnpVcpuCount, runSnpLaunch, SnpLaunchError } from '../measure/snp/launch.js';
import { planSnpLaunch, type SnpMeasureOptions } from '../measure/snp/launch-plan.js';
import type { SevVmmType } from '../measure/snp/vmsa.js';
import {
  ArgparseError,
  type ArgSpec,
  type ArgValue,
  argparseHelp,
  parseArgs,
  pyInt,
  pyIntAuto,
} from './argparse.js';
import { processIo, type ToolIo } from './argv.js';
import { GMEMLAB_VERSION } from './version.js';

const PROG = 'gmemlab measure snp';

/** parser.error() in sev-snp-measure: "PROG: error: ...", exit 2. */
class UsageError extends Error {}

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new SnpLaunchError(`cannot read ${what} '${path}' (${code})`);
  }
}

const INT = { name: 'int', parse: pyInt } as const;
const AUTO_INT = { name: 'auto_base_int', parse: pyIntAuto } as const;

/** sevsnpmeasure/vmm_types.py VMMType members, and the lowercase alias gmemlab has always accepted. */
const VMM_TYPES: Readonly<Record<string, SevVmmType>> = {
  QEMU: 'qemu',
  ec2: 'ec2',
  gce: 'gce',
  qemu: 'qemu',
};
/** The guest modes sev-snp-measure accepts; gmemlab models the SEV-SNP ones without SVSM. */
const MODES = ['sev', 'seves', 'snp', 'snp:ovmf-hash', 'snp:svsm'];
const MODELLED_MODES = ['snp', 'snp:ovmf-hash'];

const DESCRIPTION =
  'Calculate the AMD SEV-SNP guest launch measurement by running the launch through a modelled host\n' +
  '(the options of virtee/sev-snp-measure). The launch runs with the safety invariants off.';

/** sevsnpmeasure/cli.py main() at 8f2b337e, in its order, then gmemlab's own options. */
const SPECS: readonly ArgSpec[] = [
  { flags: ['-h', '--help'], dest: 'help', kind: 'help', help: 'show this help message and exit' },
  { flags: ['--version'], dest: 'version', kind: 'version', help: "show program's version number and exit" },
  { flags: ['-v', '--verbose'], dest: 'verbose', kind: 'flag' },
  { flags: ['--mode'], dest: 'mode', kind: 'value', choices: MODES, required: true, help: 'Guest mode' },
  {
    flags: ['--vcpus'],
    dest: 'vcpus',
    kind: 'value',
    metavar: 'N',
    type: INT,
    help: 'Number of guest vcpus',
  },
  {
    flags: ['--vcpu-type'],
    dest: 'vcpuType',
    kind: 'value',
    metavar: 'CPUTYPE',
    choices: VCPU_TYPE_NAMES,
    help: `Type of guest vcpu (${VCPU_TYPE_NAMES.join(', ')})`,
  },
  {
    flags: ['--vcpu-sig'],
    dest: 'vcpuSig',
    kind: 'value',
    metavar: 'VALUE',
    type: AUTO_INT,
    help: 'Guest vcpu signature value',
  },
  {
    flags: ['--vcpu-family'],
    dest: 'vcpuFamily',
    kind: 'value',
    metavar: 'FAMILY',
    type: INT,
    help: 'Guest vcpu family',
  },
  {
    flags: ['--vcpu-model'],
    dest: 'vcpuModel',
    kind: 'value',
    metavar: 'MODEL',
    type: INT,
    help: 'Guest vcpu model',
  },
  {
    flags: ['--vcpu-stepping'],
    dest: 'vcpuStepping',
    kind: 'value',
    metavar: 'STEPPING',
    type: INT,
    help: 'Guest vcpu stepping',
  },
  {
    flags: ['--vmm-type'],
    dest: 'vmmType',
    kind: 'value',
    metavar: 'VMMTYPE',
    default: 'QEMU',
    help: 'Type of guest vmm (QEMU, ec2, gce; qemu is taken as QEMU)',
  },
  {
    flags: ['--ovmf'],
    dest: 'ovmf',
    kind: 'value',
    metavar: 'PATH',
    required: true,
    help: 'OVMF file to calculate hash from',
  },
  {
    flags: ['--kernel'],
    dest: 'kernel',
    kind: 'value',
    metavar: 'PATH',
    help: 'Kernel file to calculate hash from',
  },
  {
    flags: ['--initrd'],
    dest: 'initrd',
    kind: 'value',
    metavar: 'PATH',
    help: 'Initrd file to calculate hash from (use with --kernel)',
  },
  {
    flags: ['--append'],
    dest: 'append',
    kind: 'value',
    metavar: 'CMDLINE',
    help: 'Kernel command line to calculate hash from (use with --kernel)',
  },
  {
    flags: ['--guest-features'],
    dest: 'guestFeatures',
    kind: 'value',
    metavar: 'VALUE',
    type: { name: '<lambda>', parse: pyIntAuto },
    default: 0x1n,
    help: 'Hex representation of the guest kernel features expected to be included (defaults to 0x1)',
  },
  {
    flags: ['--output-format'],
    dest: 'outputFormat',
    kind: 'value',
    choices: ['hex', 'base64'],
    default: 'hex',
    help: 'Measurement output format',
  },
  {
    flags: ['--snp-ovmf-hash'],
    dest: 'snpOvmfHash',
    kind: 'value',
    metavar: 'HASH',
    help: 'Precalculated hash of the OVMF binary (hex string)',
  },
  {
    flags: ['--dump-vmsa'],
    dest: 'dumpVmsa',
    kind: 'flag',
    help: 'Write measured VMSAs to vmsa<N>.bin (snp mode)',
  },
  {
    flags: ['--trace'],
    dest: 'trace',
    kind: 'value',
    metavar: 'FILE',
    help: 'gmemlab: write one JSON line per measured page',
  },
  {
    flags: ['--kernel-profile'],
    dest: 'kernelProfile',
    kind: 'value',
    metavar: 'NAME',
    default: 'v7.0',
    help: 'gmemlab: modelled kernel profile (default v7.0)',
  },
];

const str = (v: ReadonlyMap<string, ArgValue>, k: string): string | undefined => {
  const x = v.get(k);
  return typeof x === 'string' ? x : undefined;
};
const int = (v: ReadonlyMap<string, ArgValue>, k: string): bigint | undefined => {
  const x = v.get(k);
  return typeof x === 'bigint' ? x : undefined;
};

/**
 * sevsnpmeasure/cli.py get_vcpu_sig(): --vcpu-family (with --vcpu-model/--vcpu-stepping) first, then
 * --vcpu-sig, then --vcpu-type; none of them is an error for QEMU only (ec2 and gce put 0x600 in RDX).
 */
function vcpuSignature(v: ReadonlyMap<string, ArgValue>, vmmType: SevVmmType): bigint | undefined {
  const family = int(v, 'vcpuFamily');
  if (family !== undefined) {
    const model = int(v, 'vcpuModel');
    const stepping = int(v, 'vcpuStepping');
    // sev-snp-measure fails here with a TypeError (None & 0xf): exit 1, as it exits.
    if (model === undefined || stepping === undefined)
      throw new SnpLaunchError('--vcpu-family needs --vcpu-model and --vcpu-stepping');
    return cpuSigBig(family, model, stepping);
  }
  const sig = int(v, 'vcpuSig');
  if (sig !== undefined) return sig;
  const type = str(v, 'vcpuType');
  if (type !== undefined) return BigInt(vcpuSigForType(type)!);
  if (vmmType === 'qemu')
    throw new UsageError("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode 'snp'");
  return undefined;
}

/** The launch options after sev-snp-measure's checks, in its order (before any file is read). */
function measureOptions(v: ReadonlyMap<string, ArgValue>): { opts: SnpMeasureOptions; vcpus: bigint } {
  const mode = str(v, 'mode')!;
  // `if args.initrd and args.kernel is None`: an empty --initrd / --append counts as absent.
  const kernel = str(v, 'kernel');
  if (str(v, 'initrd') && kernel === undefined) throw new UsageError('--kernel required when using --initrd');
  if (str(v, 'append') && kernel === undefined) throw new UsageError('--kernel required when using --append');
  const vcpus = int(v, 'vcpus');
  if (vcpus === undefined) throw new UsageError(`missing --vcpus N in guest mode '${mode}'`);
  const vmmName = str(v, 'vmmType')!;
  if (!Object.hasOwn(VMM_TYPES, vmmName)) throw new UsageError(`unknown VMM type '${vmmName}'`);
  const vmmType = VMM_TYPES[vmmName]!;
  const vcpuSig = vcpuSignature(v, vmmType);
  const opts: SnpMeasureOptions = {
    mode: 'snp',
    vmmType,
    file: str(v, 'ovmf')!,
    guestFeatures: BigInt.asUintN(64, int(v, 'guestFeatures')!),
  };
  if (vcpuSig !== undefined) opts.vcpuSig = BigInt.asUintN(64, vcpuSig);
  return { opts, vcpus };
}

/** --snp-ovmf-hash: bytes.fromhex() (whitespace between bytes allowed); 48 bytes, the launch digest's size. */
function ovmfHash(text: string): Uint8Array {
  const h = text.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new SnpLaunchError('--snp-ovmf-hash is not a hex string');
  if (h.length !== 96) throw new SnpLaunchError(`--snp-ovmf-hash must be 48 bytes, got ${h.length / 2}`);
  return Buffer.from(h, 'hex');
}

/** Mode 'snp' once the options are checked. Returns the digest. */
function measureSnp(v: ReadonlyMap<string, ArgValue>, opts: SnpMeasureOptions, vcpus: bigint): Uint8Array {
  const profile = str(v, 'kernelProfile')!;
  // range(vcpus) in sev-snp-measure: a negative count gives no VMSA, as 0 does. More vCPUs than KVM
  // takes is refused before anything is built (QEMU's check, against the modelled KVM_CAP_MAX_VCPUS).
  const count = vcpus < 0n ? 0 : vcpus > 0xffffffffn ? Number.MAX_SAFE_INTEGER : Number(vcpus);
  // x86 KVM_MAX_VCPUS is never below 1024 (Kconfig KVM_MAX_NR_VCPUS range 1024..4096): only a larger
  // count needs the modelled host's answer before the plan is built (and start-up stays one host).
  if (count > 1024) checkSnpVcpuCount(vcpus, profile);
  opts.vcpus = count;
  const kernel = str(v, 'kernel');
  // `if kernel:` in guest.py: an empty --kernel measures no kernel hashes.
  if (kernel) {
    opts.kernel = readInput(kernel, 'kernel');
    const initrd = str(v, 'initrd');
    if (initrd) opts.initrd = readInput(initrd, 'initrd');
    const append = str(v, 'append');
    if (append !== undefined) opts.append = append;
  }
  const hash = str(v, 'snpOvmfHash');
  if (hash) opts.ovmfHash = ovmfHash(hash);
  const image = readInput(opts.file!, 'OVMF image');
  const plan = planSnpLaunch(image, opts);
  const trace = str(v, 'trace');
  const dump = v.get('dumpVmsa') === true;
  const lines: string[] = [];
  const onPage = trace
    ? (p: SnpMeasuredPage): void => {
        lines.push(
          JSON.stringify({
            type: SNP_PAGE_TYPE_NAMES[p.pageType] ?? p.pageType,
            gpa: `0x${p.gpa.toString(16)}`,
            contents: Buffer.from(p.contents).toString('hex'),
            digest: Buffer.from(p.digest).toString('hex'),
          }),
        );
      }
    : undefined;
  const { digest } = runSnpLaunch(plan, { kernel: profile, onPage });
  // The VMSA pages of the launch, vCPU i in vmsa<i>.bin in the current directory, as guest.py writes
  // them (after the launch: the modelled PSP measured exactly these pages).
  if (dump) {
    for (const r of plan.regions) if (r.source === 'vmsa') writeFileSync(`vmsa${r.vcpu!}.bin`, r.contents!);
  }
  if (trace) writeFileSync(trace, lines.length ? `${lines.join('\n')}\n` : '');
  return digest;
}

function run(v: ReadonlyMap<string, ArgValue>, io: ToolIo): number {
  const mode = str(v, 'mode')!;
  // sev-snp-measure: snp:ovmf-hash prints the hex digest of the firmware pages and returns, before
  // any other check (no kernel or initrd is read; --output-format and -v do not apply).
  if (mode === 'snp:ovmf-hash') {
    const file = str(v, 'ovmf')!;
    const plan = planSnpLaunch(readInput(file, 'OVMF image'), { mode: 'snp:ovmf-hash', file });
    const { digest } = runSnpLaunch(plan, { kernel: str(v, 'kernelProfile')! });
    io.out(`${Buffer.from(digest).toString('hex')}\n`);
    return 0;
  }
  if (!MODELLED_MODES.includes(mode)) {
    throw new UsageError(`guest mode '${mode}' is not modelled by gmemlab (${MODELLED_MODES.join(', ')})`);
  }
  const { opts, vcpus } = measureOptions(v);
  const digest = measureSnp(v, opts, vcpus);
  const text = Buffer.from(digest).toString(str(v, 'outputFormat') === 'base64' ? 'base64' : 'hex');
  // print_measurement(): SevMode.SEV_SNP.name.
  io.out(v.get('verbose') === true ? `Calculated SEV_SNP guest measurement: ${text}\n` : `${text}\n`);
  return 0;
}

/** argv: the arguments after `measure snp`. Returns the exit code (2 bad usage, 1 a failed measurement). */
export async function main(argv: string[], io: ToolIo = processIo): Promise<number> {
  try {
    const r = parseArgs(argv, SPECS);
    if (r.kind === 'values') return run(r.values, io);
    // argparse's version action prints "PROG VERSION" (sev-snp-measure: "sev-snp-measure 0.0.13").
    io.out(
      r.kind === 'help'
        ? argparseHelp(`${PROG} [options]`, DESCRIPTION, SPECS)
        : `${PROG} ${GMEMLAB_VERSION}\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof ArgparseError || e instanceof UsageError) {
      io.err(`${PROG}: error: ${e.message}\n`);
      return 2;
    }
    if (e instanceof FirmwareFormatError || e instanceof SnpLaunchError || e instanceof RangeError) {
      io.err(`Error: ${e.message.split('\n')[0]}\n`);
      return 1;
    }
    if (e instanceof TypeError && /unknown kernel/.test(e.message)) {
      io.err(`Error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/**
 * The launch this tool runs, exported from its bundle so that bench/measure-snp.ts times the code
 * `gmemlab measure snp` ships (dist/cli/measure-snp.js) rather than the sources under a TS loader.
 */
export { planSnpLaunch, runSnpLaunch };
