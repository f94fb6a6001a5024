/** The `gmemlab` CLI, spawned through tsx: exit codes, one-line errors, no stack traces. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/gmemlab.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at .+:\d+:\d+/);

describe('gmemlab CLI', () => {
  it('kernels lists every profile with its description', () => {
    const r = cli('kernels');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^tdx-dev-2024-07\+eexist\s+July 2024 TDX dev tree with 09\/12/m);
    expect(r.out).toMatch(/^v6\.18\+no-direct-map\s+v6\.18 \+ out-of-tree GUEST_MEMFD_FLAG_NO_DIRECT_MAP/m);
    expect(r.out.trim().split('\n').length).toBe(11);
  });

  it('run: founding case exits 1 at the first INIT_MEM_REGION with EEXIST', () => {
    const r = cli('run', 'flows/qemu-tdx-wip-2024.yaml', '--kernel', 'tdx-dev-2024-07+eexist');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/ERR init-mem-bfv .*KVM_TDX_INIT_MEM_REGION.* -> EEXIST/);
    expect(r.out).toContain("folio up to date since step 22 'pre-fault-bfv'");
    expect(r.out).toContain('this run agrees');
  });

  it('run: passes (exit 0) on the dev tree without 09/12; --json is JSON', () => {
    expect(cli('run', 'flows/qemu-tdx-wip-2024.yaml', '-k', 'tdx-dev-2024-07').code).toBe(0);
    const r = cli('run', 'flows/qemu-tdx-upstream.yaml', '-k', 'v6.16', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ passed: true, kernel: 'v6.16', agrees: true });
  });

  it('matrix over the corpus exits 0 and writes JUnit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gmemlab-'));
    const r = cli('matrix', 'flows', '--junit', join(dir, 'm.xml'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/all agree with the documented outcomes/);
    expect(readFileSync(join(dir, 'm.xml'), 'utf8')).toMatch(
      /<testsuites name="gmemlab matrix" tests="\d+" failures="0"/,
    );
  });

  it('matrix: a cell that differs exits 1', () => {
    const r = cli('matrix', 'test/cli/fixtures/wrong-outcome.yaml', '--kernels', 'v6.8');
    expect(r.code).toBe(1);
    expect(r.out).toContain('DIFFERS wrong-outcome on v6.8');
  });

  it('bad input: one line, exit 2, no stack trace', () => {
    for (const args of [
      ['run', 'no-such.yaml', '-k', 'v6.8'],
      ['run', 'flows/qemu-snp.yaml', '-k', 'v9.9'],
      ['run', 'flows/qemu-snp.yaml'],
      ['matrix', 'flows', '--kernels', 'v6.8,nope'],
      ['matrix', 'test/flow/fixtures/broken/bad-names.yaml'],
      ['frobnicate'],
      ['measure', 'sgx'],
    ]) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.trim().length, args.join(' ')).toBeGreaterThan(0);
      noStack(r.err);
    }
    expect(cli('matrix', 'test/flow/fixtures/broken/bad-names.yaml').err.trim().split('\n')).toHaveLength(2);
  });
});

describe('gmemlab conformance --results (probe output recorded on a 6.18.44 PVM host)', () => {
  const recorded = join(root, 'conformance/results/linux-6.18.44.tsv');
  const tmp = (text: string): string => {
    const f = join(mkdtempSync(join(tmpdir(), 'gmemlab-')), 'probe.tsv');
    writeFileSync(f, text);
    return f;
  };

  it('every case agrees: exit 0; the profile comes from the recorded release, the host shape from its answers', () => {
    const r = cli('conformance', '--results', recorded);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^conformance: kernel 6\.18\.44-fc-v595 against profile v6\.18 \(no TDP, guest accesses emulated\)$/m,
    );
    expect(r.out).toMatch(/^host: vendor_module=kvm_pvm, release=6\.18\.44-fc-v595, tdp_mmu=N/m);
    expect(r.out).toMatch(/^\d+ cases, 0 differ$/m);
  });

  it('a case the model answers otherwise: exit 1, the case marked; --json says the same', () => {
    const f = tmp(readFileSync(recorded, 'utf8').replace(/^gmem\.pread\tESPIPE$/m, 'gmem.pread\t16'));
    const r = cli('conformance', '--results', f);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^!= gmem\.pread\s+kernel 16\s+model ESPIPE$/m);
    expect(r.out).toMatch(/cases, 1 differ$/m);
    const j = JSON.parse(cli('conformance', '--results', f, '--json').out);
    expect(j).toMatchObject({ profile: 'v6.18', tdp: false, emulated: true, differ: 1 });
    expect(j.cases.find((c: { name: string }) => c.name === 'gmem.pread')).toEqual({
      name: 'gmem.pread',
      kernel: '16',
      model: 'ESPIPE',
      agrees: false,
    });
  });

  it('bad input: a missing file, a malformed line (file:line), an unknown profile: one line, exit 2', () => {
    const bad = tmp('cap.sys.guest_memfd\t1\nthis is not a case\n');
    for (const [args, re] of [
      [['conformance', '--results', join(root, 'no-such.tsv')], /cannot read .*no-such\.tsv: ENOENT/],
      [['conformance', '--results', bad], /probe\.tsv:2: not "name<TAB>result"/],
      [['conformance', '--results', recorded, '--kernel', 'v9.9'], /unknown kernel profile 'v9\.9'/],
    ] as const) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.err).toMatch(re);
      noStack(r.err);
    }
  });
});
