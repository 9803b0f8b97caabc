import { statSync, readdirSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { BackupImportProgress } from '../engine/backup-import.js';
import { DbMapper } from '../engine/db-map.js';
import type { BackupFile } from '../import/backup.js';
import { endpointsFor, roleOptions } from './endpoints.js';
import { commandLogger, count, printFailure } from './output.js';
import { formatBytes } from './progress.js';

export interface ImportCommandOptions {
  target: string;
  targetUser?: string;
  targetPassword?: string;
  json?: boolean;
  s3Bucket?: string;
  s3Endpoint?: string;
  s3Region?: string;
  dbs?: string;
  dbPrefix?: string;
  logLevel?: string;
}

function line(p: BackupImportProgress): string {
  const total = p.bytesTotal ? ` of ${formatBytes(p.bytesTotal)}` : '';
  const errors = p.errors.count ? `  errors ${p.errors.count}` : '';
  const warnings = p.warnings.length ? `  warnings ${p.warnings.length}` : '';
  return `${p.phase}  ${p.progress}%  ${formatBytes(p.bytesRead)}${total}  ${count(p.keys)} keys  ${count(p.commands)} commands${errors}${warnings}${p.currentFile ? `  ${p.currentFile}` : ''}`;
}

/** A local path, or a one-line reason it cannot be read (never a raw `ENOENT: ... stat`). */
function statOrExplain(file: string): Stats {
  try {
    return statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: no such file or directory`);
    if (code === 'EACCES') throw new Error(`${file}: permission denied`);
    throw new Error(`${file}: cannot be read (${code ?? (e as Error).message})`);
  }
}

/**
 * `ferry import FILE... --target ADDRS`: loads backups (RDB, AOF, multi-part AOF directory,
 * .zip, .tar.gz) from local paths, or from an S3-compatible bucket with --s3-bucket (keys
 * then name objects; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
 */
export async function importCommand(files: string[], opts: ImportCommandOptions): Promise<number> {
  const target = endpointsFor(opts.target, roleOptions(opts, 'target'), 'target');
  const dbs = DbMapper.parse(undefined, { only: DbMapper.parseDbList(opts.dbs), prefixes: DbMapper.parsePrefixes(opts.dbPrefix) });
  const logger = await commandLogger(opts.logLevel);
  const { localDirectoryFiles, s3Files } = await import('../import/sources.js');
  let backupFiles: BackupFile[];
  if (opts.s3Bucket) {
    backupFiles = s3Files(
      {
        endpoint: opts.s3Endpoint,
        region: opts.s3Region ?? process.env.AWS_REGION ?? 'us-east-1',
        accessKeyId: process.env.AWS_ACCESS_KEY_ID,
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
        forcePathStyle: true,
      },
      opts.s3Bucket,
      files,
    );
  } else {
    // A directory (a multi-part AOF's appendonlydir) stands for the files in it.
    backupFiles = files.flatMap((f) => {
      const full = path.resolve(f);
      if (statOrExplain(full).isDirectory()) return localDirectoryFiles(full, readdirSync(full).filter((n) => statSync(path.join(full, n)).isFile()));
      return localDirectoryFiles(path.dirname(full), [path.basename(full)]);
    });
  }
  const { BackupImport } = await import('../engine/backup-import.js');
  const run = new BackupImport({ files: backupFiles, target, logger, dbs });
  const startedAt = Date.now();
  const terminal = new Set(['done', 'failed', 'stopped']);
  const report = (p: BackupImportProgress): void => {
    // The outcome is printed once, when run() settles.
    if (terminal.has(p.phase)) return;
    if (opts.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...p })}\n`);
    else process.stderr.write(`${line(p)}\n`);
  };
  const finish = (p: BackupImportProgress): void => {
    const summary = { outcome: p.phase, durationMs: Date.now() - startedAt, keys: p.keys, commands: p.commands, bytes: p.bytesRead, refusedWrites: p.errors.count, refusedByCode: p.errors.byCode, warnings: p.warnings.length };
    if (opts.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...p, summary })}\n`);
    else if (p.phase !== 'failed') {
      const refused = p.errors.count ? `${count(p.errors.count)} (${Object.entries(p.errors.byCode).map(([k, n]) => `${k} ${n}`).join(', ')})` : 'none';
      process.stderr.write(`${p.phase}: ${count(p.keys)} keys and ${count(p.commands)} commands from ${formatBytes(p.bytesRead)} in ${(summary.durationMs / 1000).toFixed(1)} s; refused writes: ${refused}${p.warnings.length ? `; ${p.warnings.length} warnings` : ''}\n`);
    }
  };
  run.on('progress', report);
  const stop = (): void => run.stop();
  process.once('SIGINT', stop);
  try {
    const result = await run.run();
    finish(result);
    if (result.errors.count > 0) {
      printFailure(`${result.errors.count} writes were refused by the target (each is in the log above)`);
      return 2;
    }
    return 0;
  } catch (e) {
    finish(run.progress());
    printFailure((e as Error).message);
    return 1;
  } finally {
    process.off('SIGINT', stop);
  }
}
