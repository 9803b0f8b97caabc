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
  cutoverHook?: string;
  cutoverHookTimeout?: string;
  drainTimeout?: string;
}

function parseSeconds(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || n < 1 || n > 600) throw new Error(`invalid ${flag} "${text}": an integer from 1 to 600 (seconds)`);
  return n;
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
  const cutoverHook = opts.cutoverHook;
  if (cutoverHook !== undefined) {
    if (method !== 'incremental' || !opts.untilSynced) throw new Error('--cutover-hook needs --method incremental --until-synced');
    if (opts.dbMap || opts.dbs || opts.dbPrefix) throw new Error('--cutover-hook cannot be combined with --db-map, --dbs or --db-prefix (the reverse sync would need the inverse mapping)');
  }
  const hookTimeoutMs = parseSeconds('--cutover-hook-timeout', opts.cutoverHookTimeout, 10) * 1000;
  const drainTimeoutMs = parseSeconds('--drain-timeout', opts.drainTimeout, 10) * 1000;
  const logger = await commandLogger(opts.logLevel);
  const { Migration } = await import('../engine/migration.js');
  const { Cutover } = await import('../engine/cutover.js');
  const checkpointName = (d: 'forward' | 'reverse'): string | undefined => (opts.checkpoint ? `${CHECKPOINT_KEY_PREFIX}${opts.checkpoint}${d === 'reverse' ? ':reverse' : ''}` : undefined);
  // One direction's migration: forward (source → target) or, after a cutover, reverse.
  const optionsFor = (d: 'forward' | 'reverse') => ({
    source: d === 'forward' ? source : target,
    target: d === 'forward' ? target : source,
    method,
    dbs,
    dropFlush: opts.dropFlush,
    rewrite: opts.rewrite ? ('always' as const) : ('auto' as const),
    lanes,
    logger,
    resumeMode,
    bandwidthLimitMb,
    checkpointKey: checkpointName(d),
    writeErrorPolicy,
    targetConflict: d === 'forward' ? targetConflict : ('replace' as const),
    priorWrites: d === 'reverse',
    sourceMode: parseSourceMode(opts.sourceMode),
  });
  // With a cutover hook the migration runs in either direction (src/engine/cutover.ts).
  const cutover = cutoverHook === undefined ? null : new Cutover({
    source,
    target,
    logger,
    checkpointName,
    drainTimeoutMs,
    build: (d, extra) => new Migration({ ...optionsFor(d), ...extra }),
  });
  const migration = cutover ?? new Migration({ ...optionsFor('forward'), untilSynced: opts.untilSynced });

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
  // --cutover-hook: the exchange as soon as every shard is in sync (lag 0), once.
  let cutoverFailed: string | null = null;
  if (cutover) {
    let started = false;
    cutover.on('progress', (p: MigrationProgress) => {
      if (started || p.direction !== 'forward' || p.phase !== 'incremental' || p.shards.length === 0 || !p.shards.every((s) => s.phase === 'incremental' && s.stream.lagBytes === 0)) return;
      started = true;
      void cutover.switchOver({ action: 'exchange', hook: { command: cutoverHook!, timeoutMs: hookTimeoutMs } }).then((r) => {
        if (opts.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), cutover: r })}\n`);
        if (barShown) process.stderr.write('\r\x1b[2K');
        if (r.ok) {
          process.stderr.write(`cutover done: clients on ${opts.target}, writes paused ${r.pauseMs} ms (drain ${r.drainMs} ms, hook ${r.hook?.durationMs ?? 0} ms); syncing target -> source until stopped (Ctrl-C)\n`);
        } else {
          cutoverFailed = r.error ?? 'the cutover failed';
          process.stderr.write(`cutover failed, clients stay on the source: ${cutoverFailed}${r.hook?.output ? `\nhook output: ${r.hook.output.trim()}` : ''}\n`);
          cutover.stop();
        }
      }, (e: Error) => {
        cutoverFailed = e.message;
        cutover.stop();
      });
    });
  }

  const stop = (): void => migration.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await migration.run();
    finish(result);
    if (cutoverFailed !== null) {
      printFailure(`cutover failed: ${cutoverFailed}`);
      return 1;
    }
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
