/**
 * `gmemlab conformance`: the model against the kernel of this machine, or against probe output
 * recorded on another one (--results). Running the probe needs /dev/kvm and a C compiler (cc): it is
 * built from conformance/probe.c into a temporary directory. Exit 0 when every case agrees, 1 when
 * some differ, 2 when there is nothing to compare (no /dev/kvm, no cc, no profile for the kernel).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ConformanceReport,
  compareWithModel,
  type ProbeOutput,
  ProbeOutputError,
  parseProbeOutput,
  profileForRelease,
} from '../conformance/compare.js';
import { getProfile } from '../kernel/profiles/index.js';
import { UsageError } from './errors.js';

export interface ConformanceCliOptions {
  results?: string;
  kernel?: string;
  json?: boolean;
}

/** The probe runs in well under a second; a hung ioctl should not hang the command. */
const PROBE_TIMEOUT_MS = 60_000;

/** conformance/probe.c, next to dist/ (and to src/) in the package. */
export function probeSource(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../conformance/probe.c');
}

/** Build and run the probe on this machine; its output. */
function runProbe(): { text: string; kernelRelease: string } {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    throw new UsageError(
      'conformance: no usable /dev/kvm on this machine (give --results FILE to compare recorded output)',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'gmemlab-probe-'));
  try {
    const probe = join(dir, 'probe');
    const cc = spawnSync('cc', ['-O1', '-o', probe, probeSource()], { encoding: 'utf8' });
    if (cc.error || cc.status !== 0) {
      const why = cc.error ? cc.error.message : (cc.stderr.trim().split('\n')[0] ?? `exit ${cc.status}`);
      throw new UsageError(`conformance: cannot build ${probeSource()} with cc: ${why}`);
    }
    const r = spawnSync(probe, { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
    if (r.error || r.status !== 0) {
      const why =
        r.error?.message ??
        (r.signal ? `killed by ${r.signal}` : r.stderr.trim().split('\n')[0] || `exit ${r.status}`);
      throw new UsageError(`conformance: the probe failed: ${why}`);
    }
    return { text: r.stdout, kernelRelease: release() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function conformanceCommand(opts: ConformanceCliOptions): number {
  let out: ProbeOutput;
  let kernelRelease: string | undefined;
  try {
    if (opts.results) {
      let text: string;
      try {
        text = readFileSync(opts.results, 'utf8');
      } catch (e) {
        throw new UsageError(
          `conformance: cannot read ${opts.results}: ${(e as NodeJS.ErrnoException).code ?? e}`,
        );
      }
      out = parseProbeOutput(text, opts.results);
      kernelRelease = out.facts.get('release');
    } else {
      const run = runProbe();
      out = parseProbeOutput(run.text);
      kernelRelease = run.kernelRelease;
    }
  } catch (e) {
    if (e instanceof ProbeOutputError) throw new UsageError(`conformance: ${e.message}`);
    throw e;
  }
  const profile = opts.kernel ?? (kernelRelease ? profileForRelease(kernelRelease) : undefined);
  if (!profile)
    throw new UsageError(
      `conformance: no profile models kernel ${kernelRelease ?? '(release unknown)'}: give --kernel <profile>`,
    );
  if (!getProfile(profile))
    throw new UsageError(`conformance: unknown kernel profile '${profile}' (see gmemlab kernels)`);
  const report = compareWithModel(out, profile);
  // A release between two profiles is compared with the older one: say so, differences may be that.
  const nearest =
    opts.kernel === undefined &&
    kernelRelease !== undefined &&
    !kernelRelease.startsWith(`${profile.slice(1)}.`);
  if (opts.json) process.stdout.write(`${JSON.stringify(toJson(report, kernelRelease), null, 2)}\n`);
  else printReport(report, kernelRelease, nearest);
  return report.differ ? 1 : 0;
}

function toJson(r: ConformanceReport, kernelRelease: string | undefined): unknown {
  return {
    kernel: kernelRelease ?? null,
    profile: r.profile,
    tdp: r.tdp,
    emulated: r.emulated,
    facts: Object.fromEntries(r.facts),
    cases: r.rows.map((row) => ({
      name: row.name,
      kernel: row.kernel,
      model: row.model ?? null,
      agrees: row.agrees,
    })),
    differ: r.differ,
  };
}

function printReport(r: ConformanceReport, kernelRelease: string | undefined, nearest: boolean): void {
  const w = (s: string): void => void process.stdout.write(s);
  const shape = [r.tdp ? 'TDP' : 'no TDP', r.emulated ? 'guest accesses emulated' : undefined].filter(
    Boolean,
  );
  w(
    `conformance: kernel ${kernelRelease ?? '(release unknown)'} against profile ${r.profile} (${shape.join(', ')})\n`,
  );
  if (nearest)
    w(
      `(no profile for this release: ${r.profile} is the nearest older one; a difference may be the kernel's)\n`,
    );
  if (r.facts.size) w(`host: ${[...r.facts].map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
  const width = Math.max(...r.rows.map((row) => row.name.length));
  for (const row of r.rows) {
    w(
      `${row.agrees ? '  ' : '!='} ${row.name.padEnd(width)}  kernel ${row.kernel.padEnd(11)} model ${row.model ?? '(no such case)'}\n`,
    );
  }
  w(`${r.rows.length} cases, ${r.differ} differ\n`);
}
