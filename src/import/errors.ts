/**
 * A backup that cannot be imported. The message always names the file (and, for an archive
 * entry, the archive) and, when the problem lies at a known place, the byte offset; `file` and
 * `offset` carry the same facts for programs.
 */
export class BackupError extends Error {
  override readonly name = 'BackupError';

  constructor(
    message: string,
    readonly file: string | null = null,
    readonly offset: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type BackupWarningCode =
  /** A command cut by the end of the last AOF file (Redis's aof-load-truncated tolerates it). */
  | 'truncated-tail'
  /** MULTI without EXEC at the end of the last AOF file: the transaction is dropped, as Redis does. */
  | 'incomplete-transaction'
  /** Bytes after the end of a standalone RDB (Redis ignores them too). */
  | 'trailing-bytes'
  /** A HISTORY file of a multi-part AOF: superseded by the base, never applied. */
  | 'history-file'
  /** A file that is not part of any backup (in an archive, or in a manifest's directory). */
  | 'skipped-file';

/** Something the import tolerates, but that the user must hear about. */
export interface BackupWarning {
  code: BackupWarningCode;
  /** The file (or `entry in archive`) the warning is about. */
  file: string;
  /** Byte offset in that file, when the warning is about a place in it. */
  offset: number | null;
  message: string;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The first bytes of a file, in hex and as text, for "unknown format" messages. */
export function describeBytes(head: Buffer, max = 16): string {
  const part = head.subarray(0, max);
  const hex = [...part].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  let text = '';
  for (const b of part) text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
  return `${hex}${head.length > max ? ' ...' : ''} "${text}"`;
}
