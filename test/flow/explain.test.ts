/**
 * Explanations built from provenance. The founding case (seed mail, 2024-07-13): on the dev tree with
 * patch 09/12, KVM_TDX_INIT_MEM_REGION fails with EEXIST at the first section because the
 * KVM_PRE_FAULT_MEMORY step before it marked the folio up to date (kvm_gmem_prepare_folio).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/kernel/arch/register.js';
import { loadFlow, parseFlow } from '../../src/flow/loader.js';
import { runFlow } from '../../src/flow/runner.js';

const flows = join(import.meta.dirname, '../../flows');

describe('explanations', () => {
  it('founding case: EEXIST at the first INIT_MEM_REGION names the pre-fault step and the kernel path', () => {
    const flow = loadFlow(join(flows, 'qemu-tdx-wip-2024.yaml'));
    const run = runFlow(flow, { kernel: 'tdx-dev-2024-07+eexist' });
    const f = run.firstUnexpected!;
    expect(f.name).toBe('init-mem-bfv');
    expect(f.outcome).toMatchObject({ kind: 'errno', code: 'EEXIST', errno: 17 });
    const pre = run.steps.find((s) => s.name === 'pre-fault-bfv')!;
    expect(pre.n).toBe(f.n - 1);
    // The explanation rewrites the model's "call #N" into the flow's step number and name.
    expect(f.explanation).toContain(`since step ${pre.n} 'pre-fault-bfv'`);
    expect(f.explanation).toContain('KVM_PRE_FAULT_MEMORY > ');
    expect(f.explanation).toContain('kvm_gmem_prepare_folio');
    expect(f.explanation).toContain('kvm_gmem_populate');
    expect(f.explanation).not.toMatch(/call #\d+/);
    // The run stops there.
    expect(run.steps.at(-1)).toBe(f);
  });

  it('an invariant violation names the flow step that made the mapping, not a syscall number', () => {
    const run = runFlow(loadFlow(join(flows, 'tdx-gmem-mmap-shared-punch.yaml')), { kernel: 'v6.18' });
    const f = run.firstUnexpected!;
    expect(f.outcome).toMatchObject({ kind: 'invariant', invariant: 'no-mapping-of-freed-folio' });
    const mapped = run.steps.find((s) => s.call === 'ioctl KVM_RUN')!;
    expect(f.explanation).toContain(`mapped by step ${mapped.n} '${mapped.name}'`);
    // Why the punch-hole's zap missed it: the file's invalidation filter spares shared mappings.
    expect(f.explanation).toContain(
      'guest_memfd invalidations of this file zap only private mappings (kvm_gmem_get_invalidate_filter(): no INIT_SHARED), and this SPTE is shared',
    );
    expect(f.explanation).not.toMatch(/call #\d+/);
  });

  it('SNP: a read of a launched page after a punch-hole takes #VC (not validated), and the reason names the step that prepared it', () => {
    const file = join(flows, 'selftests-snp-launch.yaml');
    const text = readFileSync(file, 'utf8')
      .replace(
        `      - { op: read, gpa: 0x1000, length: 8, shared: false }`,
        `      - { op: read, gpa: 0x1000, length: 8, shared: false, expect: { fill: 0xf4, length: 8 } }`,
      )
      .replace(
        `  - name: guest\n`,
        `  - name: punch\n    fallocate: { fd: $gmem, mode: FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset: 0x1000, len: 0x1000 }\n  - name: guest\n`,
      );
    expect(text).toContain('name: punch');
    const run = runFlow(parseFlow(text, file), { kernel: 'v6.16' });
    const f = run.firstUnexpected!;
    expect(f.name).toBe('run');
    expect(f.explanation).toMatch(
      /guest op 0 \(read at gpa 0x1000\) took #VC PAGE_NOT_VALIDATED at gfn 0x1: .* guest-invalid .* since step \d+ 'run' \(line \d+\), KVM_RUN > .*sev_gmem_prepare/,
    );
  });

  it.each([
    ['v6.11', 'kvm_faultin_pfn'],
    ['tdx-dev-2024-07', 'kvm_faultin_pfn'],
    ['v6.16', 'kvm_mmu_faultin_pfn'],
  ])('the failing kernel function is named as in that release [%s: %s]', (kernel, fn) => {
    // 447c375c9104 (6.13) added the "mmu" prefix to the fault-in helpers.
    const run = runFlow(loadFlow(join(flows, 'snp-conversion-without-attributes.yaml')), { kernel });
    expect(run.firstUnexpected?.explanation).toContain(`from ${fn}: shared access to a private gfn`);
  });

  it('a VMM that did not set the attributes the guest asked for: the explanation names the conversion request', () => {
    const run = runFlow(loadFlow(join(flows, 'snp-conversion-without-attributes.yaml')), { kernel: 'v6.16' });
    const req = run.steps.find((s) => s.name === 'run-to-psc-shared')!;
    expect(run.firstUnexpected?.explanation).toContain(
      `the guest asked for it to be shared at step ${req.n} 'run-to-psc-shared'`,
    );
    expect(run.firstUnexpected?.explanation).toContain('no KVM_SET_MEMORY_ATTRIBUTES followed');
  });

  it('--keep-going runs past the failure', () => {
    const flow = loadFlow(join(flows, 'qemu-tdx-wip-2024.yaml'));
    const stop = runFlow(flow, { kernel: 'tdx-dev-2024-07+eexist' });
    const all = runFlow(flow, { kernel: 'tdx-dev-2024-07+eexist', keepGoing: true });
    expect(all.steps.length).toBeGreaterThan(stop.steps.length);
    expect(all.passed).toBe(false);
  });

  it('upstream 6.16 stops at the pre-fault: pre_fault_allowed is false until KVM_TDX_FINALIZE_VM', () => {
    const run = runFlow(loadFlow(join(flows, 'qemu-tdx-wip-2024.yaml')), { kernel: 'v6.16' });
    expect(run.firstUnexpected?.name).toBe('pre-fault-bfv');
    expect(run.firstUnexpected?.outcome).toMatchObject({ kind: 'errno', code: 'EOPNOTSUPP' });
    expect(run.firstUnexpected?.explanation).toContain('pre_fault');
    expect(run.firstUnexpected?.explanation).toContain(
      'because a TD allows pre-fault once KVM_TDX_FINALIZE_VM succeeded (tdx_td_finalize())',
    );
  });

  it('the same flow passes on the dev tree without 09/12 and with the POC', () => {
    const flow = loadFlow(join(flows, 'qemu-tdx-wip-2024.yaml'));
    expect(runFlow(flow, { kernel: 'tdx-dev-2024-07' }).passed).toBe(true);
    expect(runFlow(flow, { kernel: 'tdx-dev-2024-07+eexist+poc' }).passed).toBe(true);
  });

  it('SNP counter-example: LAUNCH_UPDATE fails with EIO and names the pre-fault that assigned the page', () => {
    const run = runFlow(loadFlow(join(flows, 'snp-prefault-before-launch-update.yaml')), {
      kernel: 'tdx-dev-2024-07',
    });
    expect(run.firstUnexpected?.name).toBe('launch-update');
    expect(run.firstUnexpected?.outcome).toMatchObject({ kind: 'errno', code: 'EIO' });
    expect(run.firstUnexpected?.explanation).toMatch(/since step \d+ 'pre-fault'/);
  });

  it('an expected errno is a pass; the explanation is still there', () => {
    const text = `
name: expected-einval
title: KVM_CREATE_VM with a type v6.8 does not have
platform: generic
source: { vmm: test, version: "1", file: virt/kvm/kvm_main.c }
outcomes: { others: ok }
steps:
  - open: /dev/kvm
    as: kvm
  - name: create-snp-vm
    ioctl: KVM_CREATE_VM
    fd: $kvm
    arg: KVM_X86_SNP_VM
    expect: EINVAL
`;
    const run = runFlow(parseFlow(text, 'inline.yaml'), { kernel: 'v6.8' });
    expect(run.passed).toBe(true);
    expect(run.steps[1]!.asExpected).toBe(true);
    expect(run.steps[1]!.explanation).toContain('kvm_arch_init_vm');
  });

  it('a bound name that a failed step never set is a flow error, not an exception', () => {
    const text = `
name: flow-error
title: uses a kvm_run field of an exit that did not happen
platform: generic
source: { vmm: test, version: "1", file: x.c }
outcomes: { others: ok }
steps:
  - open: /dev/kvm
    as: kvm
  - ioctl: KVM_CREATE_VM
    fd: $kvm
    arg: KVM_X86_SW_PROTECTED_VM
    as: vm
  - ioctl: KVM_CREATE_VCPU
    fd: $vm
    arg: 0
    as: vcpu
  - run: $vcpu
    as: exit
    expect: any
  - name: use-missing-field
    ioctl: KVM_SET_MEMORY_ATTRIBUTES
    fd: $vm
    arg: { address: "$exit.hypercall.args[0]", size: 4096, attributes: 0, flags: 0 }
`;
    const run = runFlow(parseFlow(text, 'inline.yaml'), { kernel: 'v6.16' });
    expect(run.firstUnexpected?.name).toBe('use-missing-field');
    expect(run.firstUnexpected?.outcome.kind).toBe('flow-error');
    expect(run.firstUnexpected?.explanation).toContain('$exit.hypercall does not exist');
  });
});
