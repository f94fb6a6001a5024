/**
 * `gmemlab measure tdx --firmware FILE [--order single|two-pass] [--kernel NAME]`: parse the TDVF
 * metadata, run QEMU's TD launch through a modelled host (measure/tdx/launch.ts) and print the MRTD
 * the modelled TDX module holds after TDH.MR.FINALIZE, as 96 hex digits.
 * Errors (no TDX metadata, metadata pointing outside the file, a refused launch step) are one line
 * on stderr with a non-zero exit status.
 */
import { readFileSync } from 'node:fs';
import { FirmwareFormatError } from '../measure/errors.js';
import { runTdLaunch, TdLaunchError } from '../measure/tdx/launch.js';
import type { TdPageOrder } from '../measure/tdx/launch-plan.js';
import { ArgvError, helpText, type OptionSpec, parseArgv, processIo, type ToolIo } from './argv.js';

const ORDERS: readonly TdPageOrder[] = ['single', 'two-pass'];

const DESCRIPTION =
  'MRTD of a TDVF firmware image, as the modelled TDX module computes it during a QEMU-style launch.\n' +
  'The launch runs with the safety invariants off (createHost({ invariants: false })): a measurement\n' +
  'needs the MRTD, not a check after every call; `gmemlab run` checks them on flows.';

const OPTIONS: readonly OptionSpec[] = [
  {
    name: 'firmware',
    value: 'file',
    description: 'TDVF firmware image (the combined OVMF.fd, or a td-shim image)',
    required: true,
  },
  {
    name: 'order',
    value: 'order',
    description: 'page order: single (upstream KVM) or two-pass (older TDX stacks)',
    choices: ORDERS,
    default: 'single',
  },
  { name: 'kernel', value: 'name', description: 'kernel profile the launch runs on', default: 'v6.16' },
];

/** argv = the arguments after `measure tdx`. Returns the exit status. */
export async function main(argv: string[], io: ToolIo = processIo): Promise<number> {
  const out = (s: string): void => io.out(s);
  const err = (s: string): void => io.err(s);
  let o: { firmware: string; order: TdPageOrder; kernel: string };
  try {
    const { values, help } = parseArgv(argv, OPTIONS);
    if (help) {
      out(helpText('gmemlab measure tdx', DESCRIPTION, OPTIONS));
      return 0;
    }
    o = {
      firmware: values.get('firmware')!,
      order: values.get('order') as TdPageOrder,
      kernel: values.get('kernel')!,
    };
  } catch (e) {
    if (e instanceof ArgvError) {
      err(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let image: Uint8Array;
  try {
    image = readFileSync(o.firmware);
  } catch (e) {
    err(
      `gmemlab measure tdx: cannot read ${o.firmware}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`,
    );
    return 1;
  }
  try {
    const r = runTdLaunch(image, { order: o.order, kernel: o.kernel, file: o.firmware });
    out(`${Buffer.from(r.mrtd).toString('hex')}\n`);
    return 0;
  } catch (e) {
    if (e instanceof FirmwareFormatError || e instanceof TdLaunchError || e instanceof TypeError) {
      err(`gmemlab measure tdx: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/**
 * The launch this tool runs, exported from its bundle so that bench/measure-tdx.ts times the code
 * `gmemlab measure tdx` ships (dist/cli/measure-tdx.js) rather than the sources under a TS loader.
 */
export { runTdLaunch };
