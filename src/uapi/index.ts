/** Every uAPI constant gmemlab models, by its kernel name. */
import { ERRNO } from './errno.js';
import * as kvm from './kvm.js';
import * as mman from './mman.js';

export * from './errno.js';
export * from './ioctl.js';
export * from './kvm.js';
export * from './mman.js';

export const uapi = Object.freeze({ ...kvm, ...mman, ...ERRNO });
