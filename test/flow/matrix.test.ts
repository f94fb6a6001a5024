/**
 * The flow matrix over the whole corpus agrees with every documented outcome, and the founding cell
 * is what the seed mail says: EEXIST at the first KVM_TDX_INIT_MEM_REGION on the dev tree with 09/12.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/kernel/arch/register.js';
import { loadFlow } from '../../src/flow/loader.js';
import { runMatrix } from '../../src/flow/matrix.js';
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

  it('the whole matrix agrees', () => {
    expect(m.cells.filter((c) => !c.agrees).map((c) => `${c.flow}@${c.kernel}`)).toEqual([]);
    expect(m.agrees).toBe(true);
  });
});
