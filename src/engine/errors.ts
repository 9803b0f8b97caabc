import type { Logger } from 'pino';
import { printable } from '../common/printable.js';

/** A write the target refused: what Ferry must never lose silently. */
export interface WriteError {
  time: string;
  db: number;
  key: string | null;
  command: string;
  error: string;
}

/**
 * Counts every refused write, keeps the most recent ones for the API and the CLI, and logs
 * each with its key and error.
 */
export class WriteErrorLog {
  count = 0;
  readonly recent: WriteError[] = [];
  private readonly byCode = new Map<string, number>();

  constructor(
    readonly logger: Logger,
    private readonly keep = 100,
    /** Told of every refused write (the migration's policy may stop on the first). */
    private readonly onRecord: ((e: WriteError) => void) | null = null,
  ) {}

  record(db: number, key: Buffer | null, command: string, error: string): void {
    this.count++;
    const code = error.split(' ', 1)[0] ?? 'ERR';
    this.byCode.set(code, (this.byCode.get(code) ?? 0) + 1);
    const entry: WriteError = { time: new Date().toISOString(), db, key: key ? printable(key) : null, command, error };
    this.recent.push(entry);
    if (this.recent.length > this.keep) this.recent.shift();
    this.logger.error({ db, key: entry.key, command, error }, 'target refused a write');
    this.onRecord?.(entry);
  }

  countsByCode(): Record<string, number> {
    return Object.fromEntries(this.byCode);
  }
}
