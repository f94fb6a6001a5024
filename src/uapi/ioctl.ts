/**
 * The _IOC encoding of include/uapi/asm-generic/ioctl.h (x86 uses the generic layout):
 * dir in bits 30..31, size in bits 16..29, type in bits 8..15, nr in bits 0..7.
 */
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export const _IO = (type: number, nr: number): number => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number =>
  _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
