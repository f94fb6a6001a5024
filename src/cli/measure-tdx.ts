/**
 * `gmemlab measure tdx --firmware FILE [--order single|two-pass] [--kernel NAME]`: parse the TDVF
 * metadata, run QEMU's TD launch through a modelled host (measure/tdx/launch.ts) and print the MRTD
 * the modelled TDX module holds after TDH.MR.FINALIZE, as 96 hex digits.
 * Errors (no TDX metadata, metadata pointing outside the file, a refused launch step) are one line
 * on stderr with a non-zero exit status.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { FirmwareFormatError } from '../measure/errors.js';
import { runTdLaunch, TdLaunchError } from '../measure/tdx/launch.js';
import type { TdPageOrder } from '../measure/tdx/launch-plan.js';

const ORDERS: readonly TdPageOrder[] = ['single', 'two-pass'];

function parseOrder(v: string): TdPageOrder {
  if (!(ORDERS as readonly string[]).includes(v))
    throw new InvalidArgumentError(`expected one of ${ORDERS.join(', ')}`);
  return v as TdPageOrder;
}

/** argv = the arguments after `measure tdx`. Returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const cmd = new Command('gmemlab measure tdx')
    .description(
      'MRTD of a TDVF firmware image, as the modelled TDX module computes it during a QEMU-style launch',
    )
    .requiredOption('--firmware <file>', 'TDVF firmware image (the combined OVMF.fd, or a td-shim image)')
    .option(
      '--order <order>',
      'page order: single (upstream KVM) or two-pass (older TDX stacks)',
      parseOrder,
      'single',
    )
    .option('--kernel <name>', 'kernel profile the launch runs on', 'v6.16')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  const o = cmd.opts<{ firmware: string; order: TdPageOrder; kernel: string }>();
  let image: Uint8Array;
  try {
    image = new Uint8Array(readFileSync(o.firmware));
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
