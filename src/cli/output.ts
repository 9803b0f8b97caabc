import type { Logger } from 'pino';

/**
 * What the commands print, in one place: one `ferry: …` line on stderr per error, and a JSON log
 * on stderr for --log-level.
 */

/** The engine's messages start with the side ("source: …"); a refused login reads better with the side inside. */
export function failureText(message: string): string {
  const firstLine = message.split('\n')[0]!;
  return firstLine.replace(/^(source|target): authentication failed for /, 'authentication failed for $1 ');
}

export function printFailure(message: string): void {
  process.stderr.write(`ferry: ${failureText(message)}\n`);
}

export function printWarning(message: string): void {
  process.stderr.write(`ferry: warning: ${message}\n`);
}

/** Engine log lines that only repeat the outcome the command prints itself. */
const OUTCOME_MESSAGES = new Set(['migration failed', 'import failed']);

/**
 * The JSON log on stderr (pino loaded only when a command runs). Without an explicit
 * --log-level, warnings and refused writes are logged, but not the final failure: the command
 * says that once, in words.
 */
export async function commandLogger(level: string | undefined): Promise<Logger> {
  const { pino } = await import('pino');
  const explicit = level !== undefined;
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (explicit && !levels.includes(level)) throw new Error(`invalid --log-level "${level}": use error, warn, info or debug`);
  return pino(
    {
      level: level ?? 'warn',
      base: undefined,
      hooks: explicit
        ? {}
        : {
            logMethod(args, method) {
              const msg = typeof args[0] === 'string' ? args[0] : args[1];
              if (typeof msg === 'string' && OUTCOME_MESSAGES.has(msg)) return;
              method.apply(this, args);
            },
          },
    },
    pino.destination(2),
  );
}

/** `n` with thousands separators. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}
