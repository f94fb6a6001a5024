/** Every uAPI constant gmemlab models, by its kernel name. */
import { ERRNO } from './errno.js';
import * as kvm from './kvm.js';
import * as mman from './mman.js';
import * as sev from './sev.js';
import * as tdx from './tdx.js';

export * from './errno.js';
export * from './ioctl.js';
export * from './kvm.js';
export * from './mman.js';
export * from './sev.js';
export * from './tdx.js';

export const uapi = Object.freeze({ ...kvm, ...mman, ...sev, ...tdx, ...ERRNO });
