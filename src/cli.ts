#!/usr/bin/env node
/**
 * The command line. Only commander is loaded up front: each command imports what it needs when
 * it runs (the service's HTTP server and database, the S3 client for imports), so `--version`,
 * `--help` and `migrate` start fast.
 */
import { Command } from 'commander';
import { addRoleOptions } from './cli/endpoints.js';
import { printFailure } from './cli/output.js';
import { addTasksCommand } from './cli/tasks-command.js';

const VERSION = '0.1.0';

const program = new Command();
program
  .name('ferry')
  .description('Online Redis data migration: copies a snapshot, then follows every later write.')
  .version(VERSION);

const ADDRS_HELP = 'host:port[,host:port...] (cluster nodes, or a master and its replicas), redis://[user:password@]host:port, rediss://... (TLS) or sentinel://host:port[,host:port...]/master-name';

const migrate = program
  .command('migrate')
  .description('migrate one Redis deployment into another')
  .requiredOption('--source <addrs>', `source: ${ADDRS_HELP}`)
  .requiredOption('--target <addrs>', 'target: the same forms as --source');
addRoleOptions(migrate, 'source');
addRoleOptions(migrate, 'target');
migrate
  .option('--target-conflict <policy>', 'keys already on the target before the full sync: fail (refuse, the default), replace (write over them), purge-first (empty the target first)', 'fail')
  .option('--method <method>', 'full | incremental (also full_amount_migration | incremental_migration)', 'full')
  .option('--until-synced', 'incremental: exit 0 once the target has applied everything the source sent')
  .option('--json', 'one JSON progress object per line on stdout, the summary last')
  .option('--db-map <pairs>', 'send source db N to target db M: "N:M,N2:M2" (standalone targets)')
  .option('--dbs <list>', 'migrate only these source dbs: "0,1,5"')
  .option('--db-prefix <pairs>', 'prefix the keys of source db N: "1=db1:,2=db2:" (keeps dbs apart on a cluster)')
  .option('--drop-flush', 'do not forward FLUSHALL / FLUSHDB')
  .option('--rewrite', 'rebuild every key with type commands instead of RESTORE')
  .option('--lanes <n>', 'pipelined target connections during the snapshot (1-64)', '4')
  .option('--resume <mode>', 'auto: on a lost source link reconnect forever and resume (PSYNC); manual: fail', 'manual')
  .option('--bandwidth-limit <mb>', 'MB/s read from the source, all shards together (1-10240)')
  .option('--checkpoint <name>', 'exactly-once across restarts: keep checkpoints on the target under __ferry:checkpoint:<name>:*; a later run with the same name resumes from them')
  .option('--on-write-error <policy>', 'a write the target refuses for good: skip (log, count, go on; exit 2 at the end) or fail (stop at once)', 'skip')
  .option('--log-level <level>', 'JSON log lines on stderr: error, warn, info, debug (default: warnings, without repeating the final error)')
  .option('--source-mode <mode>', 'auto: PSYNC, or scan when the source refuses it; psync; scan: SCAN + DUMP and keyspace notifications', 'auto')
  .option('--cutover-hook <command>', 'with --method incremental --until-synced: once in sync, cut over: pause writes on the source, let the target apply everything, run this command (no shell; FERRY_ACTION=exchange, FERRY_FROM_ADDRS, FERRY_TO_ADDRS; exit 0 = clients moved), then sync target → source until stopped')
  .option('--cutover-hook-timeout <seconds>', 'the hook is killed after this long (1-600)', '10')
  .option('--drain-timeout <seconds>', 'cutover: how long the target may take to apply what the paused source has (1-600)', '10')
  .action(async (opts) => {
    const { migrateCommand } = await import('./cli/migrate.js');
    process.exitCode = await migrateCommand(opts);
  });

const importCmd = program
  .command('import')
  .description('load backup files (RDB, AOF, multi-part AOF dir, .zip, .tar.gz) into a target')
  .argument('<files...>', 'local paths, or object keys with --s3-bucket')
  .requiredOption('--target <addrs>', `target: ${ADDRS_HELP}`);
addRoleOptions(importCmd, 'target');
importCmd
  .option('--s3-bucket <bucket>', 'read the files from this S3-compatible bucket (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)')
  .option('--s3-endpoint <url>', 'S3-compatible endpoint (MinIO, OBS...)')
  .option('--s3-region <region>', 'S3 region')
  .option('--dbs <list>', 'import only these dbs')
  .option('--db-prefix <pairs>', 'prefix the keys of db N: "1=db1:"')
  .option('--json', 'JSON progress lines on stdout, the summary last')
  .option('--log-level <level>', 'JSON log lines on stderr: error, warn, info, debug')
  .action(async (files: string[], opts) => {
    const { importCommand } = await import('./cli/import.js');
    process.exitCode = await importCommand(files, opts);
  });

const verify = program
  .command('verify')
  .description('compare two deployments key by key, both ways (exit 0 only when equal)')
  .requiredOption('--source <addrs>', `source: ${ADDRS_HELP}`)
  .requiredOption('--target <addrs>', 'target: the same forms as --source');
addRoleOptions(verify, 'source');
addRoleOptions(verify, 'target');
verify
  .option('--rounds <n>', 're-check differing keys this many rounds (keys still changing converge)', '1')
  .option('--ttl-tolerance-ms <ms>', 'allowed TTL difference', '2000')
  .option('--db-map <pairs>', 'the migration\'s db mapping: "N:M"')
  .option('--dbs <list>', 'only these source dbs')
  .option('--db-prefix <pairs>', 'the migration\'s per-db key prefixes: "1=db1:"')
  .option('--json', 'the report as JSON on stdout')
  .action(async (opts) => {
    const { verifyCommand } = await import('./cli/verify.js');
    process.exitCode = await verifyCommand(opts);
  });

program
  .command('serve')
  .description('run the migration service (DCS-compatible HTTP API)')
  .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
  .option('--data-dir <dir>', 'where tasks (SQLite), keys and generated credentials live', './data')
  .option('--config <file>', 'JSON or YAML: credentials and registered instances')
  .option('--log-level <level>', 'log level on stdout', 'info')
  .action(async (opts) => {
    const { serveCommand } = await import('./cli/serve.js');
    await serveCommand(opts);
  });

addTasksCommand(program);

program.parseAsync(process.argv).catch((e: Error) => {
  printFailure(e.message);
  process.exitCode = 1;
});
