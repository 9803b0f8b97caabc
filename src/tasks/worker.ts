/**
 * Entry point of a task's worker process (forked by TaskRunner). It receives one `start`
 * message, runs the migration, reports progress, logs and the outcome over IPC, and exits.
 */
import { pino } from 'pino';
import { Migration, type MigrationOptions } from '../engine/migration.js';
import { Cutover, type Direction } from '../engine/cutover.js';
import type { MigrationProgress } from '../engine/stats.js';
import { RedisConnection } from '../resp/connection.js';
import type { Endpoint } from '../common/endpoint.js';
import { keyspaceOf } from '../common/info.js';
import os from 'node:os';
import type { FromWorker, ToWorker, WorkerStart, WorkerStartCleanup, WorkerStartImport, WorkerStartVerify } from './worker-protocol.js';
import { removeAllCheckpoints } from '../engine/checkpoint-cleanup.js';
import { CHECKPOINT_KEY_PREFIX } from '../engine/checkpoints.js';
import { BackupImport, type BackupImportProgress } from '../engine/backup-import.js';
import { localDirectoryFiles, s3Files } from '../import/sources.js';
import { verifyDeployments } from '../verify/index.js';
import { DbMapper } from '../engine/db-map.js';
import type { DbMappingSpec } from './model.js';
import { emptySnapshotStats, emptyStreamStats } from '../engine/stats.js';
import { PreflightError } from '../engine/preflight.js';
import { addressPolicy, checkUrl, makeAddressPolicy, policyLookup, setAddressPolicy, urlPort } from '../common/address-policy.js';

/**
 * Until when this worker may write (its node's lease on the task; see WorkerStart). Renewals
 * are taken from the first moment, not only once the migration is set up: a worker that takes
 * long to start must not miss the ones that came meanwhile.
 */
let leaseValidUntil: number | undefined;
process.on('message', (m: ToWorker) => {
  if (m.type === 'lease') leaseValidUntil = Math.max(leaseValidUntil ?? 0, m.validUntil);
});

function send(message: FromWorker): void {
  // After the service is gone there is nobody to tell (and send would throw).
  if (process.connected) process.send?.(message);
}

/** Keys in all databases, from INFO keyspace; null when the server cannot be asked. */
async function keyCount(connection: RedisConnection | null): Promise<number | null> {
  if (!connection) return null;
  try {
    const reply = await connection.call(['INFO', 'keyspace']);
    if (!Buffer.isBuffer(reply)) return null;
    return keyspaceOf(reply.toString('latin1')).keys;
  } catch {
    return null;
  }
}

async function connectQuietly(e: Endpoint, name: string): Promise<RedisConnection | null> {
  try {
    return await RedisConnection.connect({ host: e.host, port: e.port, user: e.user, password: e.password, tls: e.tls, name });
  } catch {
    return null;
  }
}

async function run(start: WorkerStart): Promise<void> {
  // Logs go to the service through IPC (as task logs), not to a stream of their own. Refused
  // writes are all counted in the stats; the log keeps the first ones in full and then one
  // summary line a minute, so a target refusing everything cannot flood the store.
  let errorLines = 0;
  let suppressed = 0;
  const summary = setInterval(() => {
    if (suppressed === 0) return;
    send({ type: 'log', level: 'ERROR', code: 'WRITE_ERRORS', message: `${suppressed} more refused writes (see write_errors in the stats)` });
    suppressed = 0;
  }, 60_000);
  summary.unref();
  const logger = pino({ level: 'warn', base: undefined }, {
    write(line: string) {
      try {
        if (line.includes('"target refused a write"') && ++errorLines > 200) {
          suppressed++;
          return;
        }
        const entry = JSON.parse(line) as { level: number; msg: string; key?: string; error?: string; command?: string; reason?: string };
        const detail = entry.key !== undefined ? ` key=${entry.key} command=${entry.command ?? ''} error=${entry.error ?? ''}` : entry.reason ? `: ${entry.reason}` : '';
        send({ type: 'log', level: entry.level >= 50 ? 'ERROR' : 'WARN', code: entry.level >= 50 ? 'ERROR' : 'WARNING', message: `${entry.msg}${detail}` });
      } catch {
        /* a log line is never worth crashing the worker */
      }
    },
  });
  const checkpointName = (d: Direction): string => (d === 'forward' ? `${CHECKPOINT_KEY_PREFIX}${start.taskId}` : `${CHECKPOINT_KEY_PREFIX}${start.taskId}:reverse`);
  // The migration in either direction (a cutover switches it: src/engine/cutover.ts).
  const build = (d: Direction, extra: Pick<MigrationOptions, 'startFrom' | 'fullResync'>): Migration => new Migration({
    source: d === 'forward' ? start.source : start.target,
    target: d === 'forward' ? start.target : start.source,
    method: start.method,
    logger,
    resumeMode: start.resumeMode,
    bandwidthLimitMb: start.bandwidthLimitMb,
    writeErrorPolicy: start.writeErrorPolicy,
    sourceMode: start.sourceMode ?? 'auto',
    // A worker killed mid-stream is started again by the service: it resumes from here.
    checkpointKey: checkpointName(d),
    // The reverse direction writes only what follows the switch point into the old source.
    priorWrites: d === 'reverse' ? true : start.priorWrites,
    dropFlush: start.dropFlush,
    targetConflict: d === 'reverse' ? 'replace' : start.targetConflict,
    ...(start.dbMapping && d === 'forward' ? { dbs: dbMapperOf(start.dbMapping) } : {}),
    ...extra,
  });
  const migration = new Cutover({
    source: start.source,
    target: start.target,
    build,
    checkpointName,
    direction: start.direction ?? 'forward',
    ...(start.startFrom ? { startFrom: new Map(start.startFrom) } : {}),
    logger,
    taskId: start.taskId,
    log: (level, code, message) => send({ type: 'log', level, code, message }),
    pauseTimeoutMs: start.cutover?.pauseTimeoutMs,
    drainTimeoutMs: start.cutover?.drainTimeoutMs,
  });
  // Key counts for the stats: summed over every address given (a cluster's masters and
  // replicas would double count, so a cluster counts through its first node's CLUSTER view).
  const sourceMonitor = await connectQuietly(start.source[0]!, 'ferry-stats');
  const targetMonitor = await connectQuietly(start.target[0]!, 'ferry-stats');
  let sourceKeys: number | null = null;
  let targetKeys: number | null = null;
  let lastPhase = '';
  const report = (p: MigrationProgress): void => {
    if (p.phase !== lastPhase) {
      lastPhase = p.phase;
      send({ type: 'log', level: 'INFO', code: 'PHASE', message: `phase: ${p.phase}` });
    }
    send({ type: 'progress', progress: p, sourceKeys, targetKeys });
  };
  migration.on('progress', report);
  const poll = setInterval(() => {
    void Promise.all([keyCount(sourceMonitor), keyCount(targetMonitor)]).then(([s, t]) => {
      sourceKeys = s ?? sourceKeys;
      targetKeys = t ?? targetKeys;
    });
  }, 1000);

  // The lease: a worker whose node stopped renewing (paused, cut off from the database) exits
  // before the store lets another node take the task, writing nothing more. Exit code 4, no
  // outcome: like a crash, the checkpoints on the target stay for whoever resumes.
  if (start.leaseValidUntil !== undefined) leaseValidUntil = Math.max(leaseValidUntil ?? 0, start.leaseValidUntil);
  if (leaseValidUntil !== undefined) {
    const expired = (): boolean => leaseValidUntil !== undefined && Date.now() > leaseValidUntil;
    const watch = setInterval(() => {
      // After a long busy stretch timers run before pending IPC is read: look again once the
      // messages that came meanwhile (a renewal, likely) have been handled.
      if (expired()) setImmediate(() => expired() && process.exit(4));
    }, 100);
    watch.unref();
  }

  let stoppedByService = false;
  process.on('message', (m: ToWorker) => {
    if (m.type === 'stop') {
      stoppedByService = true;
      migration.stop();
    }
    if (m.type === 'update') {
      migration.setBandwidthLimit(m.bandwidthLimitMb);
      migration.setResumeMode(m.resumeMode);
    }
    if (m.type === 'cutover') {
      migration
        .switchOver({ action: m.action, hook: m.hook, exchangedIp: m.exchangedIp, isExchangeDomain: m.isExchangeDomain, onSwitched: (direction, startFrom) => send({ type: 'cutover-switched', direction, startFrom }) })
        .then(
          (report) => send({ type: 'cutover-done', report }),
          (e: Error) => send({ type: 'cutover-done', report: { action: m.action, ok: false, direction: migration.direction, pauseMs: null, drainMs: null, hook: null, error: e.message, startFrom: [] } }),
        );
    }
  });
  // The service died (kill -9, the OOM killer): its next start runs this task again from the
  // checkpoints on the target. Exit now, as a crash would: a stop would end the migration for
  // good and remove them, and two workers must never write one task at once.
  process.on('disconnect', () => {
    if (!stoppedByService) process.exit(3);
  });

  let outcome: FromWorker;
  try {
    const result = await migration.run();
    sourceKeys = (await keyCount(sourceMonitor)) ?? sourceKeys;
    targetKeys = (await keyCount(targetMonitor)) ?? targetKeys;
    send({ type: 'progress', progress: result, sourceKeys, targetKeys });
    outcome = { type: 'finished', outcome: result.phase === 'stopped' ? 'stopped' : 'done', reason: null, progress: result };
  } catch (e) {
    outcome = { type: 'finished', outcome: 'failed', reason: (e as Error).message, progress: migration.progress(), permanent: e instanceof PreflightError };
  } finally {
    clearInterval(poll);
    sourceMonitor?.destroy('done');
    targetMonitor?.destroy('done');
  }
  send(outcome);
  stoppedByService = true; // the channel is ours to close now
  process.disconnect?.();
}

/** A deleted task's checkpoints, removed from its target. */
async function runCleanup(start: WorkerStartCleanup): Promise<void> {
  try {
    const removed = await removeAllCheckpoints(start.target, `${CHECKPOINT_KEY_PREFIX}${start.taskId}`);
    send({ type: 'log', level: 'INFO', code: 'CLEANUP', message: `removed ${removed} checkpoint keys from the target` });
  } catch (e) {
    send({ type: 'log', level: 'WARN', code: 'CLEANUP', message: `could not remove the checkpoints from the target: ${(e as Error).message}` });
  }
  process.disconnect?.();
}

/** A backup-file import task: progress and outcome over IPC, like a migration. */
async function runImport(start: WorkerStartImport): Promise<void> {
  const logger = pino({ level: 'warn', base: undefined }, {
    write(line: string) {
      try {
        const entry = JSON.parse(line) as { level: number; msg: string; file?: string; offset?: number };
        send({ type: 'log', level: entry.level >= 50 ? 'ERROR' : 'WARN', code: entry.level >= 50 ? 'ERROR' : 'WARNING', message: `${entry.msg}${entry.file ? ` (${entry.file}${entry.offset !== undefined && entry.offset !== null ? ` at byte ${entry.offset}` : ''})` : ''}` });
      } catch {
        /* never worth crashing the worker */
      }
    },
  });
  const f = start.files;
  let job: BackupImport | null = null;
  process.on('message', (m: ToWorker) => {
    if (m.type === 'stop') job?.stop();
  });
  try {
    // Inside the try: a bad directory or name is the import's failure, with its reason.
    if (f.kind === 's3' && f.config.endpoint) await checkUrl(addressPolicy(), f.config.endpoint);
    const files = f.kind === 'local' ? localDirectoryFiles(f.dir, f.names) : s3Files({ ...f.config, lookup: policyLookup(addressPolicy(), f.config.endpoint ? urlPort(f.config.endpoint) : 443) }, f.bucket, f.names);
    job = new BackupImport({ files, target: start.target, logger, tempDir: os.tmpdir() });
    job.on('progress', (p: BackupImportProgress) => send({ type: 'import-progress', progress: p }));
    const result = await job.run();
    send({ type: 'import-progress', progress: result });
    send({ type: 'finished', outcome: result.phase === 'stopped' ? 'stopped' : 'done', reason: null, progress: emptyProgress(result.keys) });
  } catch (e) {
    if (job) send({ type: 'import-progress', progress: job.progress() });
    send({ type: 'finished', outcome: 'failed', reason: (e as Error).message, progress: emptyProgress(0) });
  }
  process.disconnect?.();
}

async function runVerify(start: WorkerStartVerify): Promise<void> {
  try {
    const report = await verifyDeployments({ source: start.source, target: start.target, rounds: start.rounds, ttlToleranceMs: start.ttlToleranceMs, ...(start.dbMapping ? { dbs: dbMapperOf(start.dbMapping) } : {}) });
    send({ type: 'verify-done', report, error: null });
  } catch (e) {
    send({ type: 'verify-done', report: null, error: (e as Error).message });
  }
  process.disconnect?.();
}

/** A task's db mapping (checked by the API already) as the engine's mapper. */
function dbMapperOf(m: DbMappingSpec): DbMapper {
  return DbMapper.parse(m.dbMap ?? undefined, { only: DbMapper.parseDbList(m.dbs ?? undefined), prefixes: DbMapper.parsePrefixes(m.dbPrefix ?? undefined) });
}

/** The outcome message carries migration progress; an import has none beyond its key count. */
function emptyProgress(keys: number): MigrationProgress {
  return {
    phase: 'done',
    replid: null,
    checkpoint: null,
    shards: [],
    snapshot: { ...emptySnapshotStats(), keys },
    stream: emptyStreamStats(),
    reconnects: 0,
    fullResyncs: 0,
    errors: { count: 0, byCode: {}, recent: [] },
    failure: null,
  };
}

process.once('message', (m: ToWorker) => {
  if ((m.type === 'start' || m.type === 'start-import' || m.type === 'start-verify' || m.type === 'start-cleanup') && m.addressPolicy) setAddressPolicy(makeAddressPolicy(m.addressPolicy));
  if (m.type === 'start-cleanup') {
    void runCleanup(m);
    return;
  }
  if (m.type === 'start-import' || m.type === 'start-verify') {
    const job = m.type === 'start-import' ? runImport(m) : runVerify(m);
    job.catch((e: Error) => {
      send({ type: 'log', level: 'ERROR', code: 'WORKER', message: `worker crashed: ${e.message}` });
      process.exitCode = 1;
      process.disconnect?.();
    });
    return;
  }
  if (m.type !== 'start') {
    process.exit(0);
  }
  run(m).catch((e: Error) => {
    send({ type: 'log', level: 'ERROR', code: 'WORKER', message: `worker crashed: ${e.message}` });
    process.exitCode = 1;
    process.disconnect?.();
  });
});
