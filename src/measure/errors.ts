export class FirmwareFormatError extends Error {
  constructor(
    message: string,
    public readonly file?: string,
  ) {
    super(message);
    this.name = 'FirmwareFormatError';
  }
}
