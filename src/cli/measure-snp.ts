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
import { cpuSig, VCPU_TYPE_NAMES, vcpuSigForType } from '../measure/snp/cpu-sig.js';
import { runSnpLaunch, SnpLaunchError } from '../measure/snp/launch.js';
import { planSnpLaunch, type SnpMeasureMode, type SnpMeasureOptions } from '../measure/snp/launch-plan.js';
import type { SevVmmType } from '../measure/snp/vmsa.js';
import { ArgvError, helpText, type OptionSpec, parseArgv, processIo, type ToolIo } from './argv.js';

class UsageError extends Error {}

const intArg = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v.trim());
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`argument ${name}: invalid int value: '${v}'`);
  return n;
};

/** Python int(x, 0): decimal, 0x / 0o / 0b prefixes. */
function parseIntAuto(name: string, v: string): bigint {
  const s = v.trim().toLowerCase().replace(/_/g, '');
  if (!/^(0x[0-9a-f]+|0o[0-7]+|0b[01]+|[1-9][0-9]*|0+)$/.test(s))
    throw new UsageError(`argument ${name}: invalid int value: '${v}'`);
  return BigInt(s);
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new SnpLaunchError(`cannot read ${what} '${path}' (${code})`);
  }
}

interface Opts {
  mode: string;
  vcpus?: number;
  vcpuType?: string;
  vcpuSig?: string;
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
  ovmf?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  guestFeatures: string;
  vmmType: string;
  snpOvmfHash?: string;
  outputFormat: string;
  trace?: string;
  kernelProfile: string;
}

const DESCRIPTION =
  'Compute the SEV-SNP launch digest by running the launch through a modelled host.\n' +
  'The launch runs with the safety invariants off (createHost({ invariants: false })): a measurement\n' +
  'needs the digest, not a check after every call; `gmemlab run` checks them on flows.';

const OPTIONS: readonly OptionSpec[] = [
  {
    name: 'mode',
    value: 'mode',
    description: 'measurement mode',
    choices: ['snp', 'snp:ovmf-hash'],
    default: 'snp',
  },
  { name: 'vcpus', value: 'n', description: 'number of vCPUs' },
  { name: 'vcpu-type', value: 'type', description: 'vCPU type', choices: VCPU_TYPE_NAMES },
  { name: 'vcpu-sig', value: 'sig', description: 'vCPU signature (CPUID.1.EAX)' },
  { name: 'vcpu-family', value: 'n', description: 'vCPU family' },
  { name: 'vcpu-model', value: 'n', description: 'vCPU model' },
  { name: 'vcpu-stepping', value: 'n', description: 'vCPU stepping' },
  { name: 'ovmf', value: 'path', description: 'OVMF image' },
  { name: 'kernel', value: 'path', description: 'kernel (measured direct boot)' },
  { name: 'initrd', value: 'path', description: 'initrd (requires --kernel)' },
  { name: 'append', value: 'cmdline', description: 'kernel command line (requires --kernel)' },
  { name: 'guest-features', value: 'features', description: 'SEV_FEATURES of the VMSA', default: '0x1' },
  { name: 'vmm-type', value: 'type', description: 'VMM', choices: ['qemu', 'ec2', 'gce'], default: 'qemu' },
  {
    name: 'snp-ovmf-hash',
    value: 'hex',
    description: 'precomputed digest of the OVMF pages (from --mode snp:ovmf-hash)',
  },
  {
    name: 'output-format',
    value: 'fmt',
    description: 'digest encoding',
    choices: ['hex', 'base64'],
    default: 'hex',
  },
  { name: 'trace', value: 'file', description: 'write one JSON line per measured page' },
  {
    name: 'kernel-profile',
    value: 'name',
    description: 'modelled kernel (gmemlab profile)',
    default: 'v7.0',
  },
];

/** The parsed options, or 'help' after printing the usage. Throws ArgvError / UsageError. */
function parseOptions(argv: string[], io: ToolIo): Opts | 'help' {
  const { values: v, help } = parseArgv(argv, OPTIONS);
  if (help) {
    io.out(helpText('gmemlab measure snp', DESCRIPTION, OPTIONS));
    return 'help';
  }
  const opt = (name: string): string | undefined => v.get(name);
  const o: Opts = {
    mode: opt('mode')!,
    guestFeatures: opt('guest-features')!,
    vmmType: opt('vmm-type')!,
    outputFormat: opt('output-format')!,
    kernelProfile: opt('kernel-profile')!,
  };
  const set = <K extends keyof Opts>(k: K, x: Opts[K] | undefined): void => {
    if (x !== undefined) o[k] = x;
  };
  set('vcpus', intArg('--vcpus', opt('vcpus')));
  set('vcpuType', opt('vcpu-type'));
  set('vcpuSig', opt('vcpu-sig'));
  set('vcpuFamily', intArg('--vcpu-family', opt('vcpu-family')));
  set('vcpuModel', intArg('--vcpu-model', opt('vcpu-model')));
  set('vcpuStepping', intArg('--vcpu-stepping', opt('vcpu-stepping')));
  set('ovmf', opt('ovmf'));
  set('kernel', opt('kernel'));
  set('initrd', opt('initrd'));
  set('append', opt('append'));
  set('snpOvmfHash', opt('snp-ovmf-hash'));
  set('trace', opt('trace'));
  return o;
}

function toMeasureOptions(o: Opts): SnpMeasureOptions {
  if (!o.ovmf) throw new UsageError('the following arguments are required: --ovmf');
  const mode = o.mode as SnpMeasureMode;
  const opts: SnpMeasureOptions = { mode, vmmType: o.vmmType as SevVmmType, file: o.ovmf };
  opts.guestFeatures = parseIntAuto('--guest-features', o.guestFeatures);
  if (mode === 'snp') {
    if (o.vcpus === undefined) throw new UsageError('Missing --vcpus');
    if (o.vcpus < 1) throw new UsageError(`argument --vcpus: must be positive, got ${o.vcpus}`);
    opts.vcpus = o.vcpus;
    if (o.vcpuType !== undefined) opts.vcpuSig = vcpuSigForType(o.vcpuType);
    else if (o.vcpuSig !== undefined)
      opts.vcpuSig = Number(parseIntAuto('--vcpu-sig', o.vcpuSig) & 0xffffffffn);
    else if (o.vcpuFamily !== undefined) {
      opts.vcpuSig = cpuSig(o.vcpuFamily, o.vcpuModel ?? 0, o.vcpuStepping ?? 0);
    }
    if (opts.vmmType === 'qemu' && opts.vcpuSig === undefined)
      throw new UsageError('Missing vcpu type/signature/family (required for --vmm-type qemu)');
  }
  if (o.kernel !== undefined) opts.kernel = readInput(o.kernel, 'kernel');
  if (o.initrd !== undefined) opts.initrd = readInput(o.initrd, 'initrd');
  if (o.append !== undefined) opts.append = o.append;
  if ((o.initrd !== undefined || o.append !== undefined) && o.kernel === undefined)
    throw new UsageError('--initrd and --append require --kernel');
  if (o.snpOvmfHash !== undefined) {
    const h = o.snpOvmfHash.trim();
    if (!/^[0-9a-fA-F]{96}$/.test(h)) throw new UsageError('--snp-ovmf-hash must be 48 bytes in hex');
    opts.ovmfHash = Buffer.from(h, 'hex');
  }
  return opts;
}

/** argv: the arguments after `measure snp`. Returns the exit code. */
export async function main(argv: string[], io: ToolIo = processIo): Promise<number> {
  let o: Opts;
  try {
    const parsed = parseOptions(argv, io);
    if (parsed === 'help') return 0;
    o = parsed;
  } catch (e) {
    if (e instanceof ArgvError) {
      io.err(`${e.message}\n`);
      return 2;
    }
    if (e instanceof UsageError) {
      io.err(`error: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  try {
    const opts = toMeasureOptions(o);
    const image = readInput(o.ovmf!, 'OVMF image');
    const plan = planSnpLaunch(image, opts);
    const lines: string[] = [];
    const onPage = o.trace
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
    const { digest } = runSnpLaunch(plan, { kernel: o.kernelProfile, onPage });
    if (o.trace) writeFileSync(o.trace, lines.length ? `${lines.join('\n')}\n` : '');
    const text = Buffer.from(digest).toString(o.outputFormat === 'base64' ? 'base64' : 'hex');
    io.out(`${text}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`error: ${e.message}\n`);
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
