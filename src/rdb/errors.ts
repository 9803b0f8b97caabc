/** A snapshot that cannot be read: always names the byte offset and what the parser expected there. */
export class RdbError extends Error {
  constructor(
    readonly offset: number,
    readonly expected: string,
    detail?: string,
  ) {
    super(`corrupt snapshot at byte ${offset}: expected ${expected}${detail ? ` (${detail})` : ''}`);
    this.name = 'RdbError';
  }
}
