import { DbMapper } from '../engine/db-map.js';
import type { MigrationMethod } from '../engine/migration.js';
import type { MigrationProgress } from '../engine/stats.js';
import { endpointsFor, roleOptions } from './endpoints.js';
import { commandLogger, printFailure } from './output.js';
import { progressLine } from './progress.js';
import { TARGET_CONFLICT_POLICIES, type TargetConflictPolicy } from '../engine/preflight.js';
import { summarize, summaryText } from './summary.js';
import { CHECKPOINT_KEY_PREFIX } from '../engine/checkpoints.js';

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
  sourcePasswordFile?: string;
  targetPasswordFile?: string;
  targetConflict?: string;
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

export function parseTargetConflict(text: string | undefined): TargetConflictPolicy {
  if (text === undefined) return 'fail';
  if ((TARGET_CONFLICT_POLICIES as readonly string[]).includes(text)) return text as TargetConflictPolicy;
  throw new Error(`invalid --target-conflict "${text}": use fail, replace or purge-first`);
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

function parseLanes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isInteger(n) || n < 1 || n > 64) throw new Error(`invalid --lanes "${text}": an integer from 1 to 64`);
  return n;
}

const TERMINAL: ReadonlySet<MigrationProgress['phase']> = new Set(['done', 'stopped', 'failed']);

/** `ferry migrate`: runs one migration in the foreground and exits with its outcome. */
export async function migrateCommand(opts: MigrateCommandOptions): Promise<number> {
  const method = parseMethod(opts.method);
  const targetConflict = parseTargetConflict(opts.targetConflict);
  const source = endpointsFor(opts.source, roleOptions(opts, 'source'), 'source');
  const target = endpointsFor(opts.target, roleOptions(opts, 'target'), 'target');
  const lanes = parseLanes(opts.lanes);
  const resumeMode = parseResume(opts.resume);
  const bandwidthLimitMb = parseBandwidth(opts.bandwidthLimit);
  const writeErrorPolicy = parsePolicy(opts.onWriteError);
  const dbs = DbMapper.parse(opts.dbMap, { only: DbMapper.parseDbList(opts.dbs), prefixes: DbMapper.parsePrefixes(opts.dbPrefix) });
  const logger = await commandLogger(opts.logLevel);
  const { Migration } = await import('../engine/migration.js');
  const migration = new Migration({
    source,
    target,
    method,
    untilSynced: opts.untilSynced,
    dbs,
    dropFlush: opts.dropFlush,
    rewrite: opts.rewrite ? 'always' : 'auto',
    lanes,
    logger,
    resumeMode,
    bandwidthLimitMb,
    checkpointKey: opts.checkpoint ? `${CHECKPOINT_KEY_PREFIX}${opts.checkpoint}` : undefined,
    writeErrorPolicy,
    targetConflict,
    sourceMode: parseSourceMode(opts.sourceMode),
  });

  const startedAt = Date.now();
  let streamStart: number | null = null;
  const tty = process.stderr.isTTY && !opts.json;
  let lastPlain = 0;
  let lastLine = '';
  let barShown = false;
  const report = (p: MigrationProgress): void => {
    if (streamStart === null && p.stream.appliedOffset > 0 && (p.phase === 'incremental' || p.phase === 'done' || p.phase === 'stopped')) streamStart = p.stream.appliedOffset;
    // The outcome is printed once, with the summary, when run() settles.
    if (TERMINAL.has(p.phase)) return;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...p })}\n`);
    } else if (tty) {
      barShown = true;
      process.stderr.write(`\r\x1b[2K${progressLine(p)}`);
    } else if (Date.now() - lastPlain >= 5000) {
      const line = progressLine(p);
      if (line === lastLine) return;
      lastPlain = Date.now();
      lastLine = line;
      process.stderr.write(`${line}\n`);
    }
  };
  const finish = (p: MigrationProgress): void => {
    const summary = summarize(p, startedAt, streamStart);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...p, summary })}\n`);
      return;
    }
    if (barShown) process.stderr.write('\r\x1b[2K');
    if (p.phase !== 'failed') process.stderr.write(`${summaryText(summary)}\n`);
  };
  migration.on('progress', (p: MigrationProgress) => report(p));

  const stop = (): void => migration.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await migration.run();
    finish(result);
    if (result.errors.count > 0) {
      printFailure(`${result.errors.count} writes were refused by the target (each is in the log above)`);
      return 2;
    }
    return 0;
  } catch (e) {
    finish(migration.progress());
    printFailure((e as Error).message);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    logger.flush();
  }
}
