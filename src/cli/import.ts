import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { parseEndpoint } from '../common/endpoint.js';
import { BackupImport, type BackupImportProgress } from '../engine/backup-import.js';
import { DbMapper } from '../engine/db-map.js';
import { localDirectoryFiles, s3Files } from '../import/sources.js';
import type { BackupFile } from '../import/backup.js';
import { formatBytes } from './progress.js';
import { resolvePassword } from './passwords.js';

export interface ImportCommandOptions {
  target: string;
  targetUser?: string;
  targetPassword?: string;
  targetPasswordFile?: string;
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
  return `${p.phase}  ${p.progress}%  ${formatBytes(p.bytesRead)}${total}  ${p.keys.toLocaleString('en-US')} keys  ${p.commands.toLocaleString('en-US')} commands${errors}${warnings}${p.currentFile ? `  ${p.currentFile}` : ''}`;
}

/**
 * `ferry import FILE... --target ADDRS`: loads backups (RDB, AOF, multi-part AOF directory,
 * .zip, .tar.gz) from local paths, or from an S3-compatible bucket with --s3-bucket (keys
 * then name objects; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
 */
export async function importCommand(files: string[], opts: ImportCommandOptions): Promise<number> {
  const password = resolvePassword('target', { password: opts.targetPassword, passwordFile: opts.targetPasswordFile });
  const target = opts.target.split(',').map((a) => parseEndpoint(a, { user: opts.targetUser, password }));
  const logger = pino({ level: opts.logLevel ?? 'warn', base: undefined }, pino.destination(2));
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
      if (statSync(full).isDirectory()) return localDirectoryFiles(full, readdirSync(full).filter((n) => statSync(path.join(full, n)).isFile()));
      return localDirectoryFiles(path.dirname(full), [path.basename(full)]);
    });
  }
  const run = new BackupImport({
    files: backupFiles,
    target,
    logger,
    dbs: DbMapper.parse(undefined, { only: DbMapper.parseDbList(opts.dbs), prefixes: DbMapper.parsePrefixes(opts.dbPrefix) }),
  });
  const report = (p: BackupImportProgress): void => {
    if (opts.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...p })}\n`);
    else process.stderr.write(`${line(p)}\n`);
  };
  run.on('progress', report);
  const stop = (): void => run.stop();
  process.once('SIGINT', stop);
  try {
    const result = await run.run();
    if (result.errors.count > 0) {
      process.stderr.write(`ferry: ${result.errors.count} writes were refused by the target (see the log above)\n`);
      return 2;
    }
    return 0;
  } catch (e) {
    process.stderr.write(`ferry: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
  }
}
