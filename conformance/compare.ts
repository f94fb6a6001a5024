/**
 * `npm run conformance`: where this machine has a usable /dev/kvm and a C compiler, runs
 * conformance/probe.c against the real kernel and the same cases against the model's profile for
 * that kernel (uname -r), and prints every case with both results. Exit 1 if any case differs; a
 * machine without /dev/kvm (CI) prints why it skipped and exits 0. Only DEFAULT-VM cases: what a
 * host without SEV-SNP or TDX can answer.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelResults } from './model.js';

/** The profile that models a kernel release, by its major.minor ("6.18.44-..." -> v6.18). */
function profileFor(rel: string): string | undefined {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  if (!m) return undefined;
  const v = Number(m[1]) * 100 + Number(m[2]);
  if (v >= 700) return 'v7.0';
  if (v >= 619) return 'v6.19';
  if (v >= 618) return 'v6.18';
  if (v >= 616) return 'v6.16';
  if (v >= 611) return 'v6.11';
  if (v >= 608) return 'v6.8';
  return undefined;
}

function skip(why: string): never {
  console.log(`conformance: skipped (${why})`);
  process.exit(0);
}

try {
  accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
} catch {
  skip('no usable /dev/kvm on this machine');
}
const kernel = profileFor(release());
if (!kernel) skip(`no profile models kernel ${release()}`);
const dir = mkdtempSync(join(tmpdir(), 'gmemlab-probe-'));
try {
  const probe = join(dir, 'probe');
  const cc = spawnSync('cc', ['-O1', '-o', probe, new URL('probe.c', import.meta.url).pathname], {
    encoding: 'utf8',
  });
  if (cc.error || cc.status !== 0) skip(`no C compiler or the probe does not build: ${cc.stderr || cc.error}`);
  const real = new Map<string, string>();
  const facts = new Map<string, string>();
  for (const line of execFileSync(probe, { encoding: 'utf8' }).trim().split('\n')) {
    const [name, result] = line.split('\t');
    if (name!.startsWith('host.')) facts.set(name!.slice(5), result!);
    else real.set(name!, result!);
  }
  // Did the host emulate the probe's guest (e.g. PVM)? Then the model's guest accesses are emulated too.
  const emulated = Number(facts.get('run_gmem_insn_emulated') ?? 0) > 0;
  // A host without EPT/NPT (e.g. nested without it) reports no KVM_CAP_PRE_FAULT_MEMORY.
  const model = modelResults(kernel, { tdp: real.get('cap.sys.pre_fault_memory') !== '0', emulated });
  let differ = 0;
  console.log(`conformance: kernel ${release()} against profile ${kernel}${emulated ? ', guest accesses emulated' : ''}`);
  console.log(`host: ${[...facts].map(([k, v]) => `${k}=${v}`).join(', ')}`);
  for (const [name, r] of real) {
    const m = model.get(name) ?? '(no case)';
    if (m !== r) differ++;
    console.log(`${m === r ? '  ' : '!='} ${name.padEnd(34)} kernel ${r.padEnd(11)} model ${m}`);
  }
  console.log(`${real.size} cases, ${differ} differ`);
  process.exitCode = differ ? 1 : 0;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
