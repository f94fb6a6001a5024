/**
 * The model against a real kernel: conformance/results/linux-6.18.44.tsv is what
 * conformance/probe.c printed on a 6.18.44 host with /dev/kvm (DEFAULT VMs: guest_memfd creation,
 * file operations, mmap, memslots, KVM_PRE_FAULT_MEMORY, a vCPU that runs). That host's /dev/kvm is
 * PVM (kvm_pvm: shadow paging, no TDP MMU, no KVM_CAP_PRE_FAULT_MEMORY), so the model runs with
 * `tdp: false`; PVM emulates the probe's 32-bit guest instruction by instruction, so the model's
 * guest accesses are `emulated` (through userspace_addr). The native path differs in four
 * guest_memfd-only memslot cases, pinned separately below. The v6.18 profile must give the same result for every case, and
 * the probe and the model must run the same cases (`gmemlab conformance` reruns them on a host).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { modelResults } from '../src/conformance/cases.js';
import { compareWithModel, parseProbeOutput, profileForRelease } from '../src/conformance/compare.js';
import { createHost, kernels, uapi } from '../src/index.js';
import { errnoOf } from './errno-of.js';

const read = (p: string): string => readFileSync(new URL(p, import.meta.url), 'utf8');
const lines = read('../conformance/results/linux-6.18.44.tsv')
  .trim()
  .split('\n')
  .map((l) => l.split('\t') as [string, string]);
const recorded = new Map(lines.filter(([n]) => !n.startsWith('host.')));
const facts = new Map(lines.filter(([n]) => n.startsWith('host.')).map(([n, v]) => [n.slice(5), v]));

describe('conformance with a 6.18.44 host (conformance/results/linux-6.18.44.tsv)', () => {
  // That host emulated the probe's guest (host.run_gmem_insn_emulated): so are the model's accesses.
  const model = modelResults('v6.18', { tdp: false, emulated: true });
  it('the probe and the model run the same cases, in the same order', () => {
    const probeCases = [
      ...read('../conformance/probe.c').matchAll(
        /\b(?:VAL|OK|PF|READ|WRITE|run_case)\("([a-z0-9_.]+)"|printf\("([a-z0-9_.]+)\\t/g,
      ),
    ].map((m) => m[1] ?? m[2]);
    expect([...model.keys()]).toEqual(probeCases);
    expect([...recorded.keys()]).toEqual(probeCases);
  });
  it('that host is PVM without the TDP MMU, and it emulated the guest_memfd-only memslot guest', () => {
    expect(facts.get('vendor_module')).toBe('kvm_pvm');
    expect(facts.get('tdp_mmu')).toBe('N');
    expect(Number(facts.get('run_gmem_insn_emulated'))).toBeGreaterThan(0);
  });
  for (const [name, kernel] of recorded) {
    it(`${name}: ${kernel}`, () => {
      expect(model.get(name)).toBe(kernel);
    });
  }
});

describe('the same guest run natively (VMX/SVM), on the model', () => {
  // Hardware loads and stores on a guest_memfd-only memslot fault through guest_memfd
  // (__kvm_mmu_faultin_pfn: kvm_memslot_is_gmem_only), whatever userspace_addr maps. Values from
  // the probe's program: guest_memfd page 0 holds 44332211 (written through its mapping), slot 1's
  // userspace_addr is anonymous memory full of 0xee.
  const native = modelResults('v6.18', { tdp: false, emulated: false });
  it.each([
    ['run_gmem.ram_2008', '0x44332211'], // the load at 0x200000 read guest_memfd
    ['run_gmem.gmem_10', '0x55667788'], // the store to 0x200010 went to guest_memfd
    ['run_gmem.anon_10', '0xeeeeeeee'], // and not to userspace_addr
    ['run_gmem.ram_200c', '0x00000000'], // after the hole punch: a fresh zeroed folio
    ['run_gmem.gmem_page4', '0x99aabbcc'], // slot 2's userspace_addr is the mapping: the same either way
  ])('%s: %s', (name, value) => {
    expect(native.get(name)).toBe(value);
  });
  it('every other case is the same as the emulated run', () => {
    const emulatedRun = modelResults('v6.18', { tdp: false, emulated: true });
    const differ = [...native].filter(([k, v]) => emulatedRun.get(k) !== v).map(([k]) => k);
    expect(differ).toEqual([
      'run_gmem.ram_2008',
      'run_gmem.gmem_10',
      'run_gmem.anon_10',
      'run_gmem.ram_200c',
    ]);
  });
});

describe('createHost({ tdp: false })', () => {
  it('SEV-SNP and TDX hosts need two-dimensional paging: a TypeError, not a model', () => {
    expect(() => createHost({ kernel: 'v7.0', platform: 'snp', tdp: false })).toThrow(TypeError);
    expect(() => createHost({ kernel: 'v7.0', platform: 'tdx', tdp: false })).toThrow(TypeError);
    expect(createHost({ kernel: 'v7.0', tdp: false }).tdp).toBe(false);
  });

  it('SW_PROTECTED VMs need the TDP MMU (kvm_x86_vendor_init): not in KVM_CAP_VM_TYPES, KVM_CREATE_VM -EINVAL', () => {
    for (const tdp of [true, false]) {
      const host = createHost({ kernel: 'v6.18', tdp });
      const kvm = host.open('/dev/kvm');
      const types = host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_VM_TYPES);
      expect(types & (1 << uapi.KVM_X86_SW_PROTECTED_VM)).toBe(tdp ? 1 << uapi.KVM_X86_SW_PROTECTED_VM : 0);
      expect(errnoOf(() => host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM))).toBe(
        tdp ? undefined : 'EINVAL',
      );
    }
  });
});

describe('the cases on every profile (a probe run on an older kernel)', () => {
  it.each(kernels())(
    '%s: no exception; the guest_memfd mmap sections only from 6.18 (MMAP | INIT_SHARED)',
    (kernel) => {
      const shared = ['v6.18', 'v6.19', 'v7.0', 'v6.18+no-direct-map'].includes(kernel);
      for (const tdp of [true, false]) {
        const m = modelResults(kernel, { tdp });
        expect(m.has('run_gmem.hlt')).toBe(shared);
        expect(m.has('madv.gmem.populate_write')).toBe(shared);
        expect(m.has('memfd.beyond_eof')).toBe(true);
        expect(m.has('run.hlt')).toBe(true);
      }
    },
  );
});

describe('conformance/compare.ts', () => {
  it('profileForRelease: a release goes to the newest profile at or below its major.minor', () => {
    expect(profileForRelease('6.18.44-fc-v595')).toBe('v6.18');
    expect(profileForRelease('6.17.0')).toBe('v6.16');
    expect(profileForRelease('6.12.3-200.fc41.x86_64')).toBe('v6.11');
    expect(profileForRelease('7.1.0-rc2')).toBe('v7.0');
    expect(profileForRelease('6.6.30')).toBeUndefined();
    expect(profileForRelease('linux')).toBeUndefined();
  });

  it('the host shape: the tdp_mmu fact first, then KVM_CAP_PRE_FAULT_MEMORY, else TDP', () => {
    const shape = (text: string) => compareWithModel(parseProbeOutput(text), 'v6.18').tdp;
    expect(shape('host.tdp_mmu\tY\ncap.sys.pre_fault_memory\t0\n')).toBe(true);
    expect(shape('host.tdp_mmu\tN\ncap.sys.pre_fault_memory\t1\n')).toBe(false);
    expect(shape('cap.sys.pre_fault_memory\t0\n')).toBe(false);
    expect(shape('cap.sys.guest_memfd\t1\n')).toBe(true);
  });

  it('compareWithModel on the recorded output: no TDP and an emulated guest read from the answers, nothing differs', () => {
    const report = compareWithModel(
      parseProbeOutput(read('../conformance/results/linux-6.18.44.tsv'), 'linux-6.18.44.tsv'),
      'v6.18',
    );
    expect(report).toMatchObject({ tdp: false, emulated: true, differ: 0 });
    expect(report.rows.length).toBe(recorded.size);
  });
});
