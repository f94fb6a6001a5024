/**
 * The flow matrix over the whole corpus agrees with every documented outcome, and the founding cell
 * is what the seed mail says: EEXIST at the first KVM_TDX_INIT_MEM_REGION on the dev tree with 09/12.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/kernel/arch/register.js';
import { loadFlow, parseFlow } from '../../src/flow/loader.js';
import { runMatrix } from '../../src/flow/matrix.js';
import { runFlow } from '../../src/flow/runner.js';
import { kernels } from '../../src/kernel/profiles/index.js';

const dir = join(import.meta.dirname, '../../flows');
const flows = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => loadFlow(join(dir, f)));
const m = runMatrix(flows);

describe('flow matrix over flows/', () => {
  it('covers every flow and every kernel profile', () => {
    expect(m.kernels).toEqual(kernels());
    expect(m.cells.length).toBe(flows.length * kernels().length);
  });

  for (const c of m.cells) {
    it(`${c.flow} on ${c.kernel}: documented ${c.documented?.result}${c.documented?.at ? ` at ${c.documented.at}` : ''}`, () => {
      expect(c.documented, 'every cell has a documented outcome').toBeDefined();
      expect({ result: c.observed.result, at: c.observed.at }).toEqual({
        result: c.documented!.result,
        at: c.documented!.result === 'ok' ? undefined : c.documented!.at,
      });
    });
  }

  it('founding case: EEXIST at the first INIT_MEM_REGION on tdx-dev-2024-07+eexist, documented so', () => {
    const c = m.cells.find((x) => x.flow === 'qemu-tdx-wip-2024' && x.kernel === 'tdx-dev-2024-07+eexist')!;
    expect(c.observed).toMatchObject({ result: 'EEXIST', at: 'init-mem-bfv' });
    const firstInit = c.run.steps.find((s) => s.call.includes('KVM_TDX_INIT_MEM_REGION'))!;
    expect(firstInit.n).toBe(c.observed.step);
    expect(c.agrees).toBe(true);
  });

  it('QEMU upstream TD and the SNP flows pass on every profile with TDX / SNP', () => {
    const tdxKernels = ['v6.16', 'v6.18', 'v6.19', 'v7.0'];
    for (const f of ['qemu-tdx-upstream', 'alioth-tdx', 'qemu-tdx-conversion'])
      for (const k of tdxKernels)
        expect(m.cells.find((c) => c.flow === f && c.kernel === k)?.observed.result, `${f} ${k}`).toBe('ok');
    const snpKernels = kernels().filter((k) => k !== 'v6.8');
    for (const f of [
      'qemu-snp',
      'alioth-snp',
      'cloud-hypervisor-snp',
      'selftests-snp-launch',
      'qemu-snp-conversion',
      'alioth-snp-conversion-no-punch',
    ])
      for (const k of snpKernels)
        expect(m.cells.find((c) => c.flow === f && c.kernel === k)?.observed.result, `${f} ${k}`).toBe('ok');
  });

  it('runtime conversions on SNP (6.11+) and TDX (6.16+): every MapGPA / memory-fault exit and read-back as QEMU expects', () => {
    const cell = (f: string, k: string) => m.cells.find((c) => c.flow === f && c.kernel === k)!;
    for (const k of ['v6.11', 'v6.16', 'v6.19', 'v7.0']) {
      const run = cell('qemu-snp-conversion', k).run;
      expect(run.passed, `qemu-snp-conversion ${k}`).toBe(true);
      expect(run.steps.filter((s) => s.exit === 'KVM_EXIT_HYPERCALL').length).toBe(2);
      expect(run.steps.find((s) => s.name === 'run-to-implicit-shared')?.outcome).toMatchObject({
        code: 'EFAULT',
      });
    }
    for (const k of ['v6.16', 'v6.18', 'v6.19', 'v7.0']) {
      const run = cell('qemu-tdx-conversion', k).run;
      expect(run.passed, `qemu-tdx-conversion ${k}`).toBe(true);
      expect(run.steps.find((s) => s.name === 'run-to-implicit-shared')?.exit).toBe('KVM_EXIT_MEMORY_FAULT');
    }
  });

  it('the VMM bug (page-state change without KVM_SET_MEMORY_ATTRIBUTES) is an EFAULT memory-fault exit blamed on the launch-time attribute', () => {
    for (const k of kernels().filter((x) => x !== 'v6.8')) {
      const c = m.cells.find((x) => x.flow === 'snp-conversion-without-attributes' && x.kernel === k)!;
      expect(c.observed).toMatchObject({ result: 'EFAULT', at: 'run-after-psc' });
      expect(c.run.firstUnexpected?.exit).toBe('KVM_EXIT_MEMORY_FAULT');
      expect(c.run.firstUnexpected?.explanation).toMatch(/gfn 0x100 is private since step \d+ 'ram-private'/);
    }
  });

  it('alioth converts without punch-hole: after re-PVALIDATE the guest reads its old private bytes, QEMU (punch-hole) reads zeroes', () => {
    // kvm_gmem_get_pfn(): <= 6.19 skips kvm_gmem_prepare_folio() for an up-to-date folio; 7.0 clears only a
    // folio that is not up to date and sev_gmem_prepare() returns 0 for an assigned RMP entry.
    const file = join(dir, 'alioth-snp-conversion-no-punch.yaml');
    const text = readFileSync(file, 'utf8');
    const oldBytes = '{ op: read, gpa: 0x100000, length: 64, expect: { fill: 0x5a, length: 64 } }';
    const at = text.lastIndexOf(oldBytes);
    expect(at).toBeGreaterThan(text.indexOf('op: map_gpa, gpa: 0x100000, npages: 16, private: true'));
    const zeroes = parseFlow(
      `${text.slice(0, at)}${oldBytes.replace('fill: 0x5a', 'fill: 0')}${text.slice(at + oldBytes.length)}`,
      file,
    );
    for (const k of kernels().filter((x) => x !== 'v6.8')) {
      const run = m.cells.find((c) => c.flow === 'alioth-snp-conversion-no-punch' && c.kernel === k)!.run;
      expect(run.passed, `alioth-snp-conversion-no-punch ${k}`).toBe(true);
      expect(run.steps.some((s) => s.call.startsWith('fallocate'))).toBe(false);
      expect(run.steps.filter((s) => s.exit === 'KVM_EXIT_HYPERCALL').length).toBe(2);
      const asZero = runFlow(zeroes, { kernel: k });
      expect(asZero.firstUnexpected?.name, k).toBe('run-to-implicit-shared');
      expect(asZero.firstUnexpected?.explanation).toMatch(/returned \[5a 5a .*expected \[00 00/);
      const qemu = m.cells.find((c) => c.flow === 'qemu-snp-conversion' && c.kernel === k)!.run;
      expect(qemu.passed, k).toBe(true);
      expect(qemu.steps.filter((s) => s.call.startsWith('fallocate')).length).toBe(2);
    }
  });

  it('the whole matrix agrees', () => {
    expect(m.cells.filter((c) => !c.agrees).map((c) => `${c.flow}@${c.kernel}`)).toEqual([]);
    expect(m.agrees).toBe(true);
  });
});
