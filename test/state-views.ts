/**
 * Views of model state that tests compare between two runs of the same steps (e.g. populate with
 * and without runs): what a caller can observe, as plain values.
 */
import type { Folio } from '../src/kernel/kvm/guest-memfd.js';
import type { Provenance } from '../src/kernel/provenance.js';

/** A provenance record as the call's seq and its kernel path. */
export const prov = (p: Provenance | undefined): string | undefined =>
  p ? `#${p.seq} ${p.path}` : undefined;

/** A folio as a caller sees it: everything but its allocation serial. */
export function folioView(f: Folio | undefined): unknown {
  return (
    f && {
      content: f.content,
      uptodate: f.uptodate,
      hwpoison: f.hwpoison,
      since: prov(f.since),
      uptodateSince: prov(f.uptodateSince),
    }
  );
}
