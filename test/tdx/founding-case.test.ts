/**
 * The founding case: July 2024, "[PATCH 09/12] KVM: guest_memfd: move check for already-populated
 * page to common code" (<20240711222755.57476-10-pbonzini@redhat.com>). On Intel's TDX dev tree
 * KVM_PRE_FAULT_MEMORY prepared the page and marked its folio up to date; KVM_TDX_INIT_MEM_REGION's
 * kvm_gmem_populate() then returned -EEXIST (Rick Edgecombe, <73c62e76d83fe4e5990b640582da933ff3862cb1.camel@intel.com>).
 * Upstream (6.11-rc2 5932ca411e53) refuses the pre-fault of a TD until KVM_TDX_FINALIZE_VM: -EOPNOTSUPP.
 */
import { describe, expect, it } from 'vitest';
import { buildTd, DEV_TREE, errnoOf, finalize, initMemRegion, syscallError, UPSTREAM } from './td.js';

const prefault = (td: ReturnType<typeof buildTd>, gpa: number) =>
  td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa, size: 4096, flags: 0 });

describe('founding case: KVM_PRE_FAULT_MEMORY then KVM_TDX_INIT_MEM_REGION', () => {
  it('tdx-dev-2024-07+eexist: -EEXIST, and the explanation names the pre-fault that marked the folio up to date', () => {
    const td = buildTd('tdx-dev-2024-07+eexist');
    prefault(td, 0x1000);
    const e = syscallError(() => initMemRegion(td, 0x1000, 1, 1));
    expect(e.code).toBe('EEXIST');
    expect(e.reason).toContain('kvm_gmem_populate');
    expect(e.explanation).toContain('KVM_PRE_FAULT_MEMORY');
    expect(e.explanation).toContain('folio_mark_uptodate');
    // The TD cannot be finalized: the pre-faulted page is still counted in nr_premapped.
    expect(errnoOf(() => finalize(td))).toBe('EINVAL');
  });

  for (const kernel of ['tdx-dev-2024-07', 'tdx-dev-2024-07+eexist+poc']) {
    it(`${kernel}: the pre-faulted page is added, and the TD finalizes`, () => {
      const td = buildTd(kernel);
      prefault(td, 0x1000);
      const region = initMemRegion(td, 0x1000, 1, 1);
      expect(region.nr_pages).toBe(0);
      expect(region.gpa).toBe(0x2000);
      expect(errnoOf(() => finalize(td))).toBeUndefined();
    });
  }

  for (const kernel of DEV_TREE) {
    it(`${kernel}: without the pre-fault INIT_MEM_REGION finds no mirror mapping (-ENOENT, inferred)`, () => {
      const td = buildTd(kernel);
      expect(errnoOf(() => initMemRegion(td, 0x1000))).toBe('ENOENT');
    });
  }

  for (const kernel of UPSTREAM) {
    it(`${kernel}: the pre-fault is refused before KVM_TDX_FINALIZE_VM (-EOPNOTSUPP); INIT_MEM_REGION maps the page itself`, () => {
      const td = buildTd(kernel);
      expect(errnoOf(() => prefault(td, 0x1000))).toBe('EOPNOTSUPP');
      expect(initMemRegion(td, 0x1000, 1, 1).nr_pages).toBe(0);
      finalize(td);
      // After finalization pre-fault is allowed: the page is TDH.MEM.PAGE.AUGed.
      expect(errnoOf(() => prefault(td, 0x3000))).toBeUndefined();
    });
  }
});
