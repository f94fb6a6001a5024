/**
 * The `gmemlab` command. Start-up stays fast: each subcommand's module is loaded with a dynamic
 * import inside its action (esbuild splits them into chunks), and `gmemlab measure snp|tdx ...`
 * is dispatched before commander is even loaded: the measurement tools are self-contained bundles
 * (scripts/bundle.mjs) that load only the kernel and measure modules, and get their argv untouched.
 * Exit codes: 0 success, 1 an expectation or documented outcome does not hold, 2 bad input.
 */
import type { Command } from 'commander';

/** Print one line for an error we expect (bad input), never a stack trace. */
async function guarded(fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (e) {
    const { reportError } = await import('./errors.js');
    process.exitCode = reportError(e);
  }
}

async function measure(tool: 'snp' | 'tdx', argv: string[]): Promise<void> {
  await guarded(async () => {
    // A computed specifier: the measurement tools are separate entry points, present once built.
    const spec = tool === 'snp' ? './measure-snp.js' : './measure-tdx.js';
    let mod: { main(argv: string[]): unknown };
    try {
      mod = (await import(spec)) as { main(argv: string[]): unknown };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(spec.slice(2, -3))) {
        process.stderr.write(`gmemlab measure ${tool}: not available in this build\n`);
        return 2;
      }
      throw e;
    }
    const r = await mod.main(argv);
    return typeof r === 'number' ? r : typeof process.exitCode === 'number' ? process.exitCode : 0;
  });
}

function program(Cmd: typeof import('commander').Command): Command {
  const p = new Cmd('gmemlab')
    .description('an executable model of KVM guest_memfd and confidential-VM launch (SEV-SNP, TDX)')
    .showSuggestionAfterError()
    .exitOverride();

  p.command('kernels')
    .description('list the kernel profiles with their one-line description')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }) => {
      await guarded(async () => (await import('./kernels.js')).kernelsCommand(opts));
    });

  p.command('run')
    .description('run a flow against one kernel profile; exit 0 only when every expectation holds')
    .argument('<flow>', 'a flow file (YAML)')
    .requiredOption('-k, --kernel <profile>', 'kernel profile (see `gmemlab kernels`)')
    .option('-p, --platform <platform>', "generic, snp or tdx (default: the flow's)")
    .option('--keep-going', 'run to the end after an unexpected result')
    .option('--json', 'JSON output')
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('-v, --verbose', 'explain expected failures too')
    .action(async (flow: string, opts: RunCliOptions) => {
      await guarded(async () => (await import('./run.js')).runCommand(flow, opts));
    });

  p.command('matrix')
    .description('run flows against kernel profiles and compare with their documented outcomes')
    .argument('[flows...]', 'flow files or directories (default: the flows/ corpus)')
    .option('-k, --kernels <list>', 'comma-separated profile names (default: all)')
    .option('--json', 'JSON output')
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('-v, --verbose', 'explain every failing cell, not only the differing ones')
    .action(async (flows: string[], opts: MatrixCliOptions) => {
      await guarded(async () => (await import('./matrix.js')).matrixCommand(flows, opts));
    });

  p.command('conformance')
    .description(
      "run conformance/probe.c on this machine's /dev/kvm (needs cc) and the same cases on the model; exit 1 if any differ",
    )
    .option('-r, --results <file>', 'compare probe output recorded on another host instead')
    .option('-k, --kernel <profile>', "kernel profile (default: the one for the kernel's release)")
    .option('--json', 'JSON output')
    .action(async (opts: ConformanceOptions) => {
      await guarded(async () => (await import('./conformance.js')).conformanceCommand(opts));
    });

  p.command('measure')
    .description('launch measurement: `gmemlab measure snp ...` / `gmemlab measure tdx ...`')
    .argument('<tool>', 'snp or tdx')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .action(async (tool: string) => {
      process.stderr.write(`gmemlab measure: unknown tool '${tool}' (snp or tdx)\n`);
      process.exitCode = 2;
    });
  return p;
}

export interface RunCliOptions {
  kernel: string;
  platform?: string;
  keepGoing?: boolean;
  json?: boolean;
  junit?: string;
  verbose?: boolean;
}

export interface ConformanceOptions {
  results?: string;
  kernel?: string;
  json?: boolean;
}

export interface MatrixCliOptions {
  kernels?: string;
  json?: boolean;
  junit?: string;
  verbose?: boolean;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'measure' && (argv[1] === 'snp' || argv[1] === 'tdx')) {
    await measure(argv[1], argv.slice(2));
    return;
  }
  const { Command, CommanderError } = await import('commander');
  try {
    await program(Command).parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its one-line message (or the help).
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const { reportError } = await import('./errors.js');
    process.exitCode = reportError(e);
  }
}

// A closed pipe (`gmemlab matrix | head`) ends the output quietly, without a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

await main(process.argv.slice(2));
