import { pino, type Logger } from 'pino';
import { parseEndpoint, type Endpoint } from '../common/endpoint.js';
import { DbMapper } from '../engine/db-map.js';
import { Migration, type MigrationMethod } from '../engine/migration.js';
import type { MigrationProgress } from '../engine/stats.js';
import { progressLine } from './progress.js';

export interface MigrateCommandOptions {
  source: string;
  target: string;
  sourceUser?: string;
  sourcePassword?: string;
  targetUser?: string;
  targetPassword?: string;
  method: string;
  untilSynced?: boolean;
  json?: boolean;
  dbMap?: string;
  dbs?: string;
  dbPrefix?: string;
  dropFlush?: boolean;
  rewrite?: boolean;
  lanes?: string;
  logLevel?: string;
  resume?: string;
  bandwidthLimit?: string;
  checkpoint?: string;
  onWriteError?: string;
  sourceMode?: string;
}

const METHODS: Record<string, MigrationMethod> = {
  full: 'full',
  full_amount_migration: 'full',
  incremental: 'incremental',
  incremental_migration: 'incremental',
};

export function parseMethod(text: string): MigrationMethod {
  const method = METHODS[text.toLowerCase()];
  if (!method) throw new Error(`invalid --method "${text}": use full, incremental, full_amount_migration or incremental_migration`);
  return method;
}

function parsePolicy(text: string | undefined): 'skip' | 'fail' {
  if (text === undefined || text === 'skip') return 'skip';
  if (text === 'fail') return 'fail';
  throw new Error(`invalid --on-write-error "${text}": use skip or fail`);
}

function parseSourceMode(text: string | undefined): 'auto' | 'psync' | 'scan' {
  if (text === undefined || text === 'auto' || text === 'psync' || text === 'scan') return text ?? 'auto';
  throw new Error(`invalid --source-mode "${text}": use auto, psync or scan`);
}

function parseResume(text: string | undefined): 'auto' | 'manual' {
  if (text === undefined || text === 'manual') return 'manual';
  if (text === 'auto') return 'auto';
  throw new Error(`invalid --resume "${text}": use auto or manual`);
}

function parseBandwidth(text: string | undefined): number | null {
  if (text === undefined) return null;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 10240) throw new Error(`invalid --bandwidth-limit "${text}": an integer from 1 to 10240 (MB/s)`);
  return n;
}

/** ADDRS: one address or a comma-separated list (cluster nodes, or a master and its replicas). */
function endpointsFrom(addrs: string, user: string | undefined, password: string | undefined): Endpoint[] {
  const parts = addrs.split(',').map((a) => a.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('an address list is empty');
  return parts.map((a) => parseEndpoint(a, { user, password }));
}

/** `ferry migrate`: runs one migration in the foreground and exits with its outcome. */
export async function migrateCommand(opts: MigrateCommandOptions): Promise<number> {
  const method = parseMethod(opts.method);
  const source = endpointsFrom(opts.source, opts.sourceUser, opts.sourcePassword ?? process.env.FERRY_SOURCE_PASSWORD);
  const target = endpointsFrom(opts.target, opts.targetUser, opts.targetPassword ?? process.env.FERRY_TARGET_PASSWORD);
  const logger: Logger = pino({ level: opts.logLevel ?? 'warn', base: undefined }, pino.destination(2));
  const migration = new Migration({
    source,
    target,
    method,
    untilSynced: opts.untilSynced,
    dbs: DbMapper.parse(opts.dbMap, { only: DbMapper.parseDbList(opts.dbs), prefixes: DbMapper.parsePrefixes(opts.dbPrefix) }),
    dropFlush: opts.dropFlush,
    rewrite: opts.rewrite ? 'always' : 'auto',
    lanes: opts.lanes ? Number(opts.lanes) : undefined,
    logger,
    resumeMode: parseResume(opts.resume),
    bandwidthLimitMb: parseBandwidth(opts.bandwidthLimit),
    checkpointKey: opts.checkpoint ? `__ferry:checkpoint:${opts.checkpoint}` : undefined,
    writeErrorPolicy: parsePolicy(opts.onWriteError),
    sourceMode: parseSourceMode(opts.sourceMode),
  });

  const tty = process.stderr.isTTY && !opts.json;
  let lastPlain = 0;
  let lastLine = '';
  const report = (p: MigrationProgress, final = false): void => {
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...p })}\n`);
    } else if (tty) {
      process.stderr.write(`\r\x1b[2K${progressLine(p)}${final ? '\n' : ''}`);
    } else if (final || Date.now() - lastPlain >= 5000) {
      const line = progressLine(p);
      if (line === lastLine) return;
      lastPlain = Date.now();
      lastLine = line;
      process.stderr.write(`${line}\n`);
    }
  };
  migration.on('progress', (p: MigrationProgress) => report(p));

  const stop = (): void => migration.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await migration.run();
    report(result, true);
    if (result.errors.count > 0) {
      process.stderr.write(`ferry: ${result.errors.count} writes were refused by the target (see the log above)\n`);
      return 2;
    }
    return 0;
  } catch (e) {
    report(migration.progress(), true);
    process.stderr.write(`ferry: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    logger.flush();
  }
}
