/**
 * Backup formats, against files written by real redis-servers: dump.rdb (SAVE), multi-part AOF
 * directories (base RDB + incr, base AOF + incr, with history files), single-file AOFs with and
 * without an RDB preamble, and zip / tar / tar.gz / gzip archives of them. Each backup is
 * planned, split into parts, and applied to a target server by a minimal importer (RESTORE for
 * RDB entries, the commands as they are for AOF parts); the target must then equal the source.
 * Then the corrupt inputs: each must fail with an error naming the file (and the offset).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { dumpPayload } from '../../src/rdb/dump.js';
import type { StreamCommand } from '../../src/resp/command-stream.js';
import {
  aofCommands,
  BackupError,
  backupParts,
  ByteSource,
  parseManifest,
  planBackup,
  readBackupPart,
  readRdb,
  type BackupFile,
  type BackupPlan,
  type BackupWarning,
  type PartSummary,
} from '../../src/import/backup.js';
import { splitArgs } from '../../src/import/manifest.js';
import { localDirectoryFiles } from '../../src/import/sources.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { FAR_FUTURE_MS, populateAllTypes } from '../helpers/dataset.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { zipArchive } from '../helpers/zip-writer.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const work = mkdtempSync(path.join(os.tmpdir(), 'ferry-backup-test-'));

function resp(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A fresh directory under the test's work dir with these files written in it. */
let dirCount = 0;
function dirWith(files: Record<string, Buffer | string>): string {
  const dir = path.join(work, `case-${++dirCount}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), data);
  }
  return dir;
}

function filesIn(dir: string, names: Record<string, Buffer | string>): BackupFile[] {
  return localDirectoryFiles(dir, Object.keys(names));
}

/** Every file under dir, as '/'-separated relative names. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const d of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** A BackupFile held in memory, without localPath: zips from it are spooled, like a bucket's. */
function memoryFile(name: string, data: Buffer, chunk = 1000): BackupFile {
  return {
    name,
    size: data.length,
    open: async () => {
      const pieces: Buffer[] = [];
      for (let i = 0; i < data.length; i += chunk) pieces.push(data.subarray(i, i + chunk));
      return Readable.from(pieces, { objectMode: false });
    },
  };
}

async function tarArchive(entries: readonly { name: string; data?: Buffer; dir?: boolean }[], gzip: boolean): Promise<Buffer> {
  const pack = tarPack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    if (e.dir) pack.entry({ name: e.name, type: 'directory' });
    else pack.entry({ name: e.name, size: e.data!.length }, e.data!);
  }
  pack.finalize();
  await collected;
  const tar = Buffer.concat(chunks);
  return gzip ? zlib.gzipSync(tar) : tar;
}

async function expectBackupError(p: Promise<unknown>, pattern: RegExp): Promise<BackupError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof BackupError, `expected a BackupError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected an error matching ${pattern}`);
}

interface Imported {
  plan: BackupPlan;
  warnings: BackupWarning[];
  summaries: PartSummary[];
}

/**
 * The minimal importer: RDB keys by RESTORE ... ABSTTL REPLACE, functions by FUNCTION LOAD
 * REPLACE, AOF commands as they are (pipelined per batch). Each part starts on db 0, as Redis
 * loads each AOF file with a new client.
 */
async function importInto(target: RedisServer, files: BackupFile[]): Promise<Imported> {
  const admin = target.client();
  await admin.flushall();
  await admin.call('FUNCTION', 'FLUSH');
  const conn = target.newClient();
  try {
    const plan = await planBackup(files);
    const warnings: BackupWarning[] = [...plan.warnings];
    const summaries: PartSummary[] = [];
    for await (const part of backupParts(files, { plan })) {
      await conn.select(0);
      summaries.push(
        await readBackupPart(part, {
          beginCommands: async () => {
            await conn.select(0);
          },
          entry: async (e) => {
            if (e.kind === 'select-db') await conn.select(e.db);
            else if (e.kind === 'key') await conn.call('RESTORE', e.key, String(e.expireAtMs ?? 0), dumpPayload(e.payload, e.rdbVersion), 'ABSTTL', 'REPLACE');
            else if (e.kind === 'function') await conn.call('FUNCTION', 'LOAD', 'REPLACE', e.code);
            else if (e.kind === 'key-begin') throw new Error(`unexpected streamed key ${e.key.toString('latin1')}`);
          },
          commands: async (batch) => {
            const replies = await Promise.all(batch.map((c) => conn.call(c.args[0]!.toString('latin1'), ...c.args.slice(1)).catch((err: Error) => err)));
            const failed = replies.findIndex((r) => r instanceof Error);
            if (failed >= 0) throw new Error(`${batch[failed]!.name} at byte ${batch[failed]!.offsetBefore} failed: ${(replies[failed] as Error).message}`);
          },
          warning: (w) => warnings.push(w),
        }),
      );
    }
    return { plan, warnings, summaries };
  } finally {
    conn.disconnect();
  }
}

async function assertSameData(source: RedisServer, target: RedisServer): Promise<void> {
  const diffs = await compareServers(source, target);
  assert.equal(diffs.length, 0, formatDifferences(diffs));
}

function kinds(plan: BackupPlan): string[] {
  return plan.parts.map((p) => `${p.kind}:${p.file}${p.last ? '' : ' (not last)'}`);
}

/** Reads every command of an AOF stream whose bytes arrive in chunks of the given sizes. */
async function commandsOf(data: Buffer, chunkSizes: number[], warnings: BackupWarning[] = []): Promise<StreamCommand[]> {
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = chunkSizes[i % chunkSizes.length]!;
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  const out: StreamCommand[] = [];
  for await (const batch of aofCommands(Readable.from(pieces, { objectMode: false }), { file: 'test.aof', onWarning: (w) => warnings.push(w) })) out.push(...batch);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Real servers

interface Captured {
  server: RedisServer;
  /** Copy of the appendonlydir (manifest, base, incr, history files). */
  aofDir: string;
  aofNames: string[];
  dumpRdb: Buffer;
  base: Buffer;
  incr: Buffer;
  manifest: Buffer;
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A server with appendonly on: a dataset of every type (into incr 1), BGREWRITEAOF (base 2,
 * incr 2; base 1 and incr 1 stay as history files with aof-disable-auto-gc), more writes into
 * incr 2 (a transaction, '#' and CRLF inside values, several dbs), then SAVE for dump.rdb.
 */
async function capture(preamble: boolean, label: string): Promise<Captured> {
  const server = await startRedis({
    config: {
      appendonly: 'yes',
      appenddirname: 'aofdir',
      'aof-use-rdb-preamble': preamble ? 'yes' : 'no',
      'aof-disable-auto-gc': 'yes',
      'aof-timestamp-enabled': 'yes',
      // 'no' writes the AOF buffer before every reply (only the fsync is left to the OS), so the
      // files are complete when a command has been answered; 'everysec' may postpone writes.
      appendfsync: 'no',
    },
  });
  const c = server.client(0);
  await populateAllTypes(server, { dbs: [0, 2] });
  await c.set('doomed', 'soon deleted');
  await c.bgrewriteaof();
  const manifestPath = path.join(server.dir, 'aofdir', 'appendonly.aof.manifest');
  await waitFor('the AOF rewrite', async () => {
    const info = await c.info('persistence');
    return /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info) && readFileSync(manifestPath, 'latin1').includes('seq 2 type b');
  });
  // Writes after the rewrite: they go to incr 2.
  await c.set('after#hash', 'a value with \r\n#TS:123\r\n*1\r\n inside');
  await c.incr('counter');
  await c.incr('counter');
  await c.multi().set('tx:a', '1').incr('tx:n').rpush('tx:list', 'x', '#y').exec();
  await c.del('doomed');
  await c.pexpireat('after#hash', FAR_FUTURE_MS);
  await c.expire('counter', 100_000);
  const c2 = server.client(2);
  await c2.set('db2:after', 'y');
  await c2.hset('db2:h#', 'f', '#v');
  await c.call('SAVE');

  const dest = path.join(work, label);
  cpSync(path.join(server.dir, 'aofdir'), path.join(dest, 'aofdir'), { recursive: true });
  copyFileSync(path.join(server.dir, 'dump.rdb'), path.join(dest, 'dump.rdb'));
  const ext = preamble ? 'rdb' : 'aof';
  const read = (n: string): Buffer => readFileSync(path.join(dest, 'aofdir', n));
  return {
    server,
    aofDir: dest,
    aofNames: listFiles(dest).filter((n) => n.startsWith('aofdir/')),
    dumpRdb: readFileSync(path.join(dest, 'dump.rdb')),
    base: read(`appendonly.aof.2.base.${ext}`),
    incr: read('appendonly.aof.2.incr.aof'),
    manifest: read('appendonly.aof.manifest'),
  };
}

// ---------------------------------------------------------------------------------------------

describe('backup formats from real servers', () => {
  let rdbBased: Captured; // aof-use-rdb-preamble yes: base is an RDB
  let aofBased: Captured; // aof-use-rdb-preamble no: base is an AOF
  let target: RedisServer;
  /**
   * A server that loaded aofBased's AOF directory at start: what Redis itself makes of these
   * files. It differs from the source where Redis's AOF rewrite is lossy (pending entries of
   * deleted stream messages cannot be XCLAIMed back), so AOF imports are compared with it.
   */
  let aofLoaded: RedisServer;

  before(async () => {
    [rdbBased, aofBased, target] = await Promise.all([capture(true, 'rdb-based'), capture(false, 'aof-based'), startRedis()]);
    const refDir = path.join(work, 'aof-loaded');
    cpSync(path.join(aofBased.aofDir, 'aofdir'), path.join(refDir, 'aofdir'), { recursive: true });
    aofLoaded = await startRedis({ args: ['--dir', refDir, '--appendonly', 'yes', '--appenddirname', 'aofdir', '--aof-use-rdb-preamble', 'no'] });
  });

  after(async () => {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  });

  it('the captured files are what the tests expect', () => {
    const m = rdbBased.manifest.toString('latin1');
    assert.match(m, /^file appendonly\.aof\.2\.base\.rdb seq 2 type b$/m);
    assert.match(m, /^file appendonly\.aof\.1\.incr\.aof seq 1 type h$/m);
    assert.match(m, /^file appendonly\.aof\.2\.incr\.aof seq 2 type i$/m);
    assert.equal(rdbBased.base.toString('latin1', 0, 5), 'REDIS');
    assert.match(aofBased.base.toString('latin1'), /^#TS:\d+\r\n\*/, 'an AOF base starts with a timestamp annotation');
    assert.ok(rdbBased.aofNames.includes('aofdir/appendonly.aof.1.base.rdb'), 'history files are kept');
  });

  it('plain RDB (SAVE)', async () => {
    const files = localDirectoryFiles(rdbBased.aofDir, ['dump.rdb']);
    const r = await importInto(target, files);
    assert.deepEqual(kinds(r.plan), ['rdb:dump.rdb']);
    assert.equal(r.summaries[0]!.rdb!.checksumVerified, true);
    assert.deepEqual(r.warnings, []);
    await assertSameData(rdbBased.server, target);
  });

  it('multi-part AOF: base RDB + incremental, history files skipped', async () => {
    const files = localDirectoryFiles(rdbBased.aofDir, rdbBased.aofNames);
    const r = await importInto(target, files);
    assert.deepEqual(kinds(r.plan), ['rdb:aofdir/appendonly.aof.2.base.rdb (not last)', 'aof:aofdir/appendonly.aof.2.incr.aof']);
    assert.deepEqual(r.warnings.map((w) => `${w.code} ${w.file}`).sort(), [
      'history-file aofdir/appendonly.aof.1.base.rdb',
      'history-file aofdir/appendonly.aof.1.incr.aof',
    ]);
    await assertSameData(rdbBased.server, target);
  });

  it('multi-part AOF: base AOF + incremental', async () => {
    const files = localDirectoryFiles(aofBased.aofDir, aofBased.aofNames);
    const r = await importInto(target, files);
    assert.deepEqual(kinds(r.plan), ['aof:aofdir/appendonly.aof.2.base.aof (not last)', 'aof:aofdir/appendonly.aof.2.incr.aof']);
    assert.ok(r.summaries[0]!.aof!.annotations >= 1, 'the #TS annotation was skipped');
    await assertSameData(aofLoaded, target);
  });

  it('single-file AOF without preamble (base AOF + incr concatenated)', async () => {
    const names = { 'appendonly.aof': Buffer.concat([aofBased.base, aofBased.incr]) };
    const r = await importInto(target, filesIn(dirWith(names), names));
    assert.deepEqual(kinds(r.plan), ['aof:appendonly.aof']);
    assert.deepEqual(r.warnings, []);
    await assertSameData(aofLoaded, target);
  });

  it('AOF with an RDB preamble (base RDB + incr concatenated)', async () => {
    const names = { 'appendonly.aof': Buffer.concat([rdbBased.base, rdbBased.incr]) };
    const r = await importInto(target, filesIn(dirWith(names), names));
    assert.deepEqual(kinds(r.plan), ['aof-with-preamble:appendonly.aof']);
    const s = r.summaries[0]!;
    assert.equal(s.rdb!.bytes, rdbBased.base.length, 'the RDB part ends where the base file ended');
    assert.ok(s.aof!.commands > 5);
    await assertSameData(rdbBased.server, target);
  });

  it('a file with RDB magic not named .aof is an RDB: commands after it are reported, not applied', async () => {
    const names = { 'backup.bin': Buffer.concat([rdbBased.base, rdbBased.incr]) };
    const r = await importInto(target, filesIn(dirWith(names), names));
    assert.deepEqual(kinds(r.plan), ['rdb:backup.bin']);
    const w = r.warnings.find((x) => x.code === 'trailing-bytes');
    assert.ok(w, 'trailing bytes are a warning');
    assert.equal(w.offset, rdbBased.base.length);
    assert.match(w.message, new RegExp(`${rdbBased.incr.length} bytes after the end of the RDB at byte ${rdbBased.base.length}`));
  });

  // -- archives ---------------------------------------------------------------------------

  /** Every backup shape as archive entries, with the source it must reproduce. */
  function shapes(): { label: string; source: () => RedisServer; entries: () => { name: string; data: Buffer }[]; kinds: string[] }[] {
    const dirEntries = (c: Captured, prefix: string): { name: string; data: Buffer }[] =>
      c.aofNames.map((n) => ({ name: `${prefix}${n}`, data: readFileSync(path.join(c.aofDir, n)) }));
    return [
      { label: 'RDB', source: () => rdbBased.server, entries: () => [{ name: 'dump.rdb', data: rdbBased.dumpRdb }], kinds: ['rdb'] },
      { label: 'AOF', source: () => aofLoaded, entries: () => [{ name: 'appendonly.aof', data: Buffer.concat([aofBased.base, aofBased.incr]) }], kinds: ['aof'] },
      {
        label: 'AOF with preamble',
        source: () => rdbBased.server,
        entries: () => [{ name: 'data/appendonly.aof', data: Buffer.concat([rdbBased.base, rdbBased.incr]) }],
        kinds: ['aof-with-preamble'],
      },
      // Reversed: the incremental file comes before the base and the manifest last, so a tar
      // must hold the early entries back until their turn.
      { label: 'multi-part AOF (base RDB), reversed order', source: () => rdbBased.server, entries: () => dirEntries(rdbBased, 'backup/').reverse(), kinds: ['rdb', 'aof'] },
      { label: 'multi-part AOF (base AOF)', source: () => aofLoaded, entries: () => dirEntries(aofBased, './'), kinds: ['aof', 'aof'] },
    ];
  }

  for (const shape of shapes()) {
    it(`tar.gz of ${shape.label}`, async () => {
      const names = { 'backup.tar.gz': await tarArchive([{ name: 'backup/', dir: true }, ...shape.entries()], true) };
      const r = await importInto(target, filesIn(dirWith(names), names));
      assert.deepEqual(r.plan.parts.map((p) => p.kind), shape.kinds);
      assert.ok(r.plan.parts.every((p) => p.file.endsWith(' in backup.tar.gz')));
      await assertSameData(shape.source(), target);
    });

    it(`zip of ${shape.label} (deflated, read in place)`, async () => {
      const names = { 'backup.zip': zipArchive(shape.entries().map((e) => ({ ...e, method: 'deflate' as const }))) };
      const r = await importInto(target, filesIn(dirWith(names), names));
      assert.deepEqual(r.plan.parts.map((p) => p.kind), shape.kinds);
      await assertSameData(shape.source(), target);
    });
  }

  it('zip from a stream-only source (stored entries, spooled to a temp file)', async () => {
    const shape = shapes()[3]!;
    const tempDir = mkdtempSync(path.join(work, 'spool-'));
    const files = [memoryFile('remote/backup.zip', zipArchive(shape.entries()))];
    const plan = await planBackup(files, { tempDir });
    assert.equal(readdirSync(tempDir).length, 1, 'the zip was copied to a temp dir');
    const admin = target.client();
    await admin.flushall();
    let keys = 0;
    for await (const part of backupParts(files, { plan })) {
      await readBackupPart(part, {
        entry: (e) => {
          if (e.kind === 'key') keys++;
        },
        commands: () => undefined,
        warning: () => undefined,
      });
    }
    assert.ok(keys > 10);
    assert.deepEqual(readdirSync(tempDir), [], 'temp files are removed when the parts are done');
  });

  it('plain tar, and a single gzipped RDB', async () => {
    const names = { 'b.tar': await tarArchive([{ name: 'dump.rdb', data: rdbBased.dumpRdb }], false), 'dump.rdb.gz': zlib.gzipSync(rdbBased.dumpRdb) };
    const dir = dirWith(names);
    for (const name of Object.keys(names)) {
      const r = await importInto(target, localDirectoryFiles(dir, [name]));
      assert.deepEqual(r.plan.parts.map((p) => p.kind), ['rdb']);
      await assertSameData(rdbBased.server, target);
    }
  });

  it('several backups in one list are applied in order', async () => {
    const names = { 'shard-a/dump.rdb': rdbBased.dumpRdb, 'shard-b/x.aof': resp('SET', 'from-b', '1') };
    const plan = await planBackup(filesIn(dirWith(names), names));
    assert.deepEqual(kinds(plan), ['rdb:shard-a/dump.rdb', 'aof:shard-b/x.aof']);
    await plan.dispose();
  });

  // -- AOF reading --------------------------------------------------------------------------

  it('AOF commands are the same whatever the chunking, and offsets are file offsets', async () => {
    const data = Buffer.concat([aofBased.base, rdbBased.incr]); // with #TS annotations and '#' in values
    const whole = await commandsOf(data, [data.length]);
    assert.ok(whole.length > 50);
    for (const c of whole) assert.deepEqual(c.raw, data.subarray(c.offsetBefore, c.offsetAfter));
    const shape = (cs: StreamCommand[]): string[] => cs.map((c) => `${c.offsetBefore}-${c.offsetAfter}:${c.args.map((a) => a.toString('latin1')).join(' ')}`);
    for (const sizes of [[1], [3, 7], [64], [4095, 1, 2]]) {
      assert.deepEqual(shape(await commandsOf(data, sizes)), shape(whole), `chunks of ${sizes.join(',')}`);
    }
    assert.ok(whole.some((c) => c.args.some((a) => a.includes('#TS:123'))), "a value containing '#TS:' is data, not an annotation");
  });

  it('readRdb stops at the end of an RDB preamble and aofCommands goes on from there', async () => {
    const data = Buffer.concat([rdbBased.base, rdbBased.incr]);
    const src = new ByteSource(Readable.from([data.subarray(0, 7), data.subarray(7)], { objectMode: false }), 'appendonly.aof');
    let keys = 0;
    const summary = await readRdb(src, (e) => {
      if (e.kind === 'key') keys++;
    });
    assert.equal(summary.bytes, rdbBased.base.length);
    assert.equal(summary.keys, keys);
    assert.equal(src.offset, rdbBased.base.length);
    const commands: StreamCommand[] = [];
    for await (const batch of aofCommands(src)) commands.push(...batch);
    assert.equal(commands[0]!.offsetBefore, rdbBased.base.length + rdbBased.incr.indexOf('*'), 'offsets count from the start of the file');
    assert.equal(commands[commands.length - 1]!.offsetAfter, data.length);
  });

  it('back-pressure: an AOF is read only as fast as its commands are taken', async () => {
    // An endless AOF: if anything read ahead without bound, it would run away here.
    let produced = 0;
    const command = resp('SET', 'key', 'v'.repeat(100));
    const endless = new Readable({
      read() {
        const chunk = Buffer.concat(Array.from({ length: 100 }, () => command));
        produced += chunk.length;
        this.push(chunk);
      },
    });
    let taken = 0;
    for await (const batch of aofCommands(endless)) {
      taken += batch.length;
      if (taken > 2000) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(produced < taken * command.length + 256 * 1024, `read ${produced} bytes for ${taken} commands taken`);
    assert.ok(endless.destroyed, 'leaving the loop closes the stream');
  });

  it('commands after an RDB preamble start on db 0, whatever db the RDB ended in', async () => {
    // The preamble's keys are in db 2; the commands have no SELECT of their own.
    const names = { 'appendonly.aof': Buffer.concat([rdbBased.base, resp('SET', 'after-preamble', '1')]) };
    const files = filesIn(dirWith(names), names);
    const events: string[] = [];
    for await (const part of backupParts(files)) {
      await readBackupPart(part, {
        entry: (e) => {
          if (e.kind === 'select-db') events.push(`select ${e.db}`);
        },
        beginCommands: () => {
          events.push('begin commands');
        },
        commands: (batch) => {
          events.push(...batch.map((c) => c.args.map((a) => a.toString()).join(' ')));
        },
        warning: () => undefined,
      });
    }
    assert.deepEqual(events.slice(-3), ['select 2', 'begin commands', 'SET after-preamble 1']);
  });

  it('a transaction comes whole in one batch', async () => {
    const data = Buffer.concat([resp('SET', 'a', '1'), resp('MULTI'), resp('SET', 'b', '2'), resp('INCR', 'n'), resp('EXEC'), resp('SET', 'c', '3')]);
    const batches: string[][] = [];
    const pieces = [...data].map((b) => Buffer.from([b])); // one byte at a time
    for await (const batch of aofCommands(Readable.from(pieces, { objectMode: false }))) batches.push(batch.map((c) => c.name));
    assert.deepEqual(batches.flat(), ['set', 'multi', 'set', 'incr', 'exec', 'set']);
    assert.ok(batches.some((b) => b.join(' ') === 'multi set incr exec'), JSON.stringify(batches));
  });

  // -- corrupt inputs -----------------------------------------------------------------------

  it('truncated AOF tail: a warning with the offset of the last complete command', async () => {
    const good = Buffer.concat([resp('SET', 'a', '1'), resp('SET', 'b', '2')]);
    const cut = resp('SET', 'c', '3').subarray(0, 9);
    const warnings: BackupWarning[] = [];
    const cmds = await commandsOf(Buffer.concat([good, cut]), [5], warnings);
    assert.deepEqual(cmds.map((c) => c.args[1]!.toString()), ['a', 'b']);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.code, 'truncated-tail');
    assert.equal(warnings[0]!.offset, good.length);
    assert.match(warnings[0]!.message, new RegExp(`test.aof: the file ends in the middle of a command: 9 bytes after byte ${good.length}`));

    // The same through the whole pipeline, on a real AOF cut 5 bytes short.
    const full = Buffer.concat([aofBased.base, aofBased.incr]);
    const names = { 'appendonly.aof': full.subarray(0, full.length - 5) };
    const r = await importInto(target, filesIn(dirWith(names), names));
    const w = r.warnings.find((x) => x.code === 'truncated-tail');
    assert.ok(w, 'the cut tail is reported');
    assert.ok(w.offset! < full.length - 5 && w.offset! > aofBased.base.length);
    assert.equal(r.summaries[0]!.aof!.truncatedAt, w.offset);
  });

  it('a MULTI without EXEC at the end is dropped with a warning; a cut file that is not the last is an error', async () => {
    const head = Buffer.concat([resp('SET', 'a', '1')]);
    const warnings: BackupWarning[] = [];
    const cmds = await commandsOf(Buffer.concat([head, resp('MULTI'), resp('SET', 'b', '2')]), [4], warnings);
    assert.deepEqual(cmds.map((c) => c.name), ['set']);
    assert.equal(warnings[0]!.code, 'incomplete-transaction');
    assert.equal(warnings[0]!.offset, head.length);

    const names = {
      'aofdir/appendonly.aof.manifest': 'file appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n',
      'aofdir/appendonly.aof.1.incr.aof': Buffer.concat([head, resp('SET', 'x', 'y').subarray(0, 6)]),
      'aofdir/appendonly.aof.2.incr.aof': resp('SET', 'b', '2'),
    };
    const files = filesIn(dirWith(names), names);
    const plan = await planBackup(files);
    assert.deepEqual(kinds(plan), ['aof:aofdir/appendonly.aof.1.incr.aof (not last)', 'aof:aofdir/appendonly.aof.2.incr.aof']);
    const run = async (): Promise<void> => {
      for await (const part of backupParts(files, { plan })) await readBackupPart(part, { entry: () => undefined, commands: () => undefined, warning: () => undefined });
    };
    await expectBackupError(run(), /appendonly\.aof\.1\.incr\.aof: the file ends in the middle of a command: 6 bytes after byte 27 \(the end of the last complete command\)\. Redis tolerates this only in the last file/);
  });

  it('unknown format: the error names the file and its first bytes', async () => {
    const names = { 'notes.txt': 'HELLO world, not a backup\n' };
    await expectBackupError(planBackup(filesIn(dirWith(names), names)), /^notes\.txt: unknown format \(first bytes: 48 45 4c 4c 4f 20 77 6f 72 6c 64 2c 20 6e 6f 74 \.\.\. "HELLO world, not"\)/);
  });

  it('an empty file is an error; an empty incremental file of a manifest is not', async () => {
    const names = { 'dump.rdb': '' };
    await expectBackupError(planBackup(filesIn(dirWith(names), names)), /^dump\.rdb: the file is empty/);
    const ok = { 'd/appendonly.aof.manifest': 'file b.aof seq 1 type b\nfile i.aof seq 1 type i\n', 'd/b.aof': resp('SET', 'k', 'v'), 'd/i.aof': '' };
    const plan = await planBackup(filesIn(dirWith(ok), ok));
    assert.deepEqual(kinds(plan), ['aof:d/b.aof (not last)', 'aof:d/i.aof']);
  });

  it('a manifest naming a missing file fails before anything is applied', async () => {
    const names: Record<string, Buffer> = {
      'aofdir/appendonly.aof.manifest': rdbBased.manifest,
      'aofdir/appendonly.aof.2.base.rdb': rdbBased.base,
    };
    await expectBackupError(
      planBackup(filesIn(dirWith(names), names)),
      /^aofdir\/appendonly\.aof\.manifest line 4 names the incr file appendonly\.aof\.2\.incr\.aof \(seq 2\), which is not among the files given/,
    );
    const tgz = { 'b.tgz': await tarArchive([{ name: 'aofdir/appendonly.aof.manifest', data: rdbBased.manifest }, { name: 'aofdir/appendonly.aof.2.incr.aof', data: rdbBased.incr }], true) };
    await expectBackupError(planBackup(filesIn(dirWith(tgz), tgz)), /names the base file appendonly\.aof\.2\.base\.rdb \(seq 2\), which is not in b\.tgz/);
  });

  it('an archive without backup files', async () => {
    const entries = [{ name: 'README.txt', data: Buffer.from('hello') }, { name: 'docs/notes.md', data: Buffer.from('# notes') }];
    const names = { 'x.tar.gz': await tarArchive(entries, true), 'y.zip': zipArchive(entries), 'z.zip': zipArchive([]) };
    const dir = dirWith(names);
    await expectBackupError(planBackup(localDirectoryFiles(dir, ['x.tar.gz'])), /^x\.tar\.gz: no RDB or AOF file inside \(entries: README\.txt \(68 65 6c 6c 6f "hello"\), docs\/notes\.md/);
    await expectBackupError(planBackup(localDirectoryFiles(dir, ['y.zip'])), /^y\.zip: no RDB or AOF file inside \(entries: README\.txt/);
    await expectBackupError(planBackup(localDirectoryFiles(dir, ['z.zip'])), /^z\.zip: no RDB or AOF file inside \(the archive has no files\)/);
  });

  it('corrupt and truncated archives fail the plan, naming the archive', async () => {
    const tgz = await tarArchive([{ name: 'dump.rdb', data: rdbBased.dumpRdb }], true);
    const zip = zipArchive([{ name: 'dump.rdb', data: rdbBased.dumpRdb }]);
    const tarOfTruncated = zlib.gzipSync((await tarArchive([{ name: 'dump.rdb', data: rdbBased.dumpRdb }], false)).subarray(0, 2000));
    const names = {
      'garbage.gz': Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.from('not really gzip data')]),
      'cut.tar.gz': tgz.subarray(0, tgz.length - 30),
      'cut-tar.tar.gz': tarOfTruncated,
      'cut.zip': zip.subarray(0, zip.length - 10),
      'bad.tar': Buffer.concat([Buffer.alloc(257), Buffer.from('ustar'), Buffer.alloc(250, 1)]),
    };
    const dir = dirWith(names);
    const expected: Record<keyof typeof names, RegExp> = {
      'garbage.gz': /^garbage\.gz: reading failed: not valid gzip data: /,
      'cut.tar.gz': /cut\.tar\.gz: reading failed: not valid gzip data: unexpected end of file/,
      'cut-tar.tar.gz': /dump\.rdb in cut-tar\.tar\.gz: reading failed: Unexpected end of data/,
      'cut.zip': /^cut\.zip: not a readable zip archive: End of central directory record signature not found/,
      'bad.tar': /^bad\.tar: not a valid tar archive: Invalid tar header/,
    };
    for (const [name, pattern] of Object.entries(expected)) await expectBackupError(planBackup(localDirectoryFiles(dir, [name])), pattern);
  });

  it('archive entries that are not backups are skipped with a warning; a garbage .rdb entry is an error', async () => {
    const good = { 'a.tgz': await tarArchive([{ name: 'README.txt', data: Buffer.from('hi') }, { name: 'dump.rdb', data: rdbBased.dumpRdb }, { name: '__MACOSX/._dump.rdb', data: Buffer.from('junk') }], true) };
    const plan = await planBackup(filesIn(dirWith(good), good));
    assert.deepEqual(kinds(plan), ['rdb:dump.rdb in a.tgz']);
    assert.deepEqual(plan.warnings.map((w) => w.code), ['skipped-file']);
    const bad = { 'b.zip': zipArchive([{ name: 'dump.rdb', data: Buffer.from('garbage') }]) };
    await expectBackupError(planBackup(filesIn(dirWith(bad), bad)), /^dump\.rdb in b\.zip: unknown format/);
  });

  it('an RDB and an AOF of the same data directory are refused', async () => {
    const names = {
      'data.tgz': await tarArchive(
        [{ name: 'redis/dump.rdb', data: rdbBased.dumpRdb }, ...rdbBased.aofNames.map((n) => ({ name: `redis/${n}`, data: readFileSync(path.join(rdbBased.aofDir, n)) }))],
        true,
      ),
    };
    await expectBackupError(planBackup(filesIn(dirWith(names), names)), /redis\/dump\.rdb in data\.tgz and redis\/aofdir\/appendonly\.aof\.manifest in data\.tgz look like two copies of one server's data/);
  });

  it('corrupt data inside a part: the error names the file and the byte', async () => {
    const rdb = Buffer.from(rdbBased.dumpRdb);
    rdb[rdb.length - 3]! ^= 0xff; // in the checksum
    const aof = Buffer.concat([resp('SET', 'a', '1'), Buffer.from('?garbage')]);
    const names = { 'dump.rdb': rdb, 'bad.aof': aof, 'short.rdb': rdbBased.dumpRdb.subarray(0, 100) };
    const dir = dirWith(names);
    const apply = async (name: string): Promise<void> => {
      const files = localDirectoryFiles(dir, [name]);
      for await (const part of backupParts(files)) await readBackupPart(part, { entry: () => undefined, commands: () => undefined, warning: () => undefined });
    };
    await expectBackupError(apply('dump.rdb'), /^dump\.rdb: corrupt RDB at byte \d+: expected a matching CRC64 trailer/);
    const e = await expectBackupError(apply('bad.aof'), /^bad\.aof: garbage in the AOF at offset 27: 0x3f/);
    assert.equal(e.offset, 27);
    await expectBackupError(apply('short.rdb'), /^short\.rdb: corrupt RDB at byte \d+/);
  });

  // -- manifest grammar ---------------------------------------------------------------------

  it('manifest grammar follows Redis (aofLoadManifestFromFile)', () => {
    const m = parseManifest(
      Buffer.from(
        '# a comment\n' +
          'file appendonly.aof.3.base.rdb seq 3 type b\r\n' +
          'FILE "my file.aof" SEQ 1 TYPE h future-key ignored\n' +
          "file 'it\\'s.aof' seq 4 type i\n" +
          'type i seq 5 file "caf\\xc3\\xa9.aof"\n',
      ),
      'm',
    );
    assert.equal(m.base?.file, 'appendonly.aof.3.base.rdb');
    assert.deepEqual(m.history.map((h) => h.file), ['my file.aof']);
    assert.deepEqual(m.incrs.map((h) => [h.file, h.seq]), [["it's.aof", 4], ['café.aof', 5]]);
  });

  it('manifest errors name the line and the reason Redis gives', () => {
    const bad: [string, RegExp][] = [
      ['', /^m: the AOF manifest is empty/],
      ['file a seq 1 type b\n\nfile b seq 1 type i\n', /^m line 2: blank line/],
      ['file a seq 1 type\n', /^m line 1: expected key\/value pairs/],
      ['file a seq 1\n', /^m line 1: expected key\/value pairs/],
      ['file "a seq 1 type b\n', /^m line 1: unbalanced quotes/],
      ['file "a"x seq 1 type b\n', /^m line 1: unbalanced quotes/],
      ['file dir/a seq 1 type b\n', /^m line 1: the file name must be a bare name/],
      ['file a seq 0 type b\n', /^m line 1: a line needs a file, a non-zero seq and a type/],
      ['file a seq x type b\n', /^m line 1: a line needs a file, a non-zero seq and a type/],
      ['file a seq 1 type b\nfile b seq 2 type b\n', /^m line 2: a second base file \(the first is on line 1/],
      ['file a seq 2 type i\nfile b seq 2 type i\n', /^m line 2: incremental file seq 2 does not follow 2/],
      ['file a seq 1 type x\n', /^m line 1: unknown file type 'x'/],
      [`file ${'a'.repeat(1100)} seq 1 type b\n`, /^m line 1: line longer than 1023 bytes/],
    ];
    for (const [text, pattern] of bad) {
      assert.throws(() => parseManifest(Buffer.from(text), 'm'), (err: unknown) => err instanceof BackupError && pattern.test(err.message), JSON.stringify(text));
    }
    assert.deepEqual(splitArgs(`a "b c" 'd\\'e' "\\x41\\n"`), ['a', 'b c', "d'e", 'A\n']);
    assert.equal(splitArgs('"abc'), null);
  });

  it('a manifest file with an invalid line fails the plan', async () => {
    const names = { 'd/appendonly.aof.manifest': 'file ../evil seq 1 type b\n', 'd/x.aof': resp('SET', 'a', 'b') };
    await expectBackupError(planBackup(filesIn(dirWith(names), names)), /^d\/appendonly\.aof\.manifest line 1: the file name must be a bare name/);
  });

  // -- local directory ----------------------------------------------------------------------

  it('localDirectoryFiles refuses names that escape the directory', async () => {
    const outside = dirWith({ 'secret.rdb': rdbBased.dumpRdb });
    const dir = dirWith({ 'in/dump.rdb': rdbBased.dumpRdb });
    symlinkSync(path.join(outside, 'secret.rdb'), path.join(dir, 'out.rdb'));
    symlinkSync(outside, path.join(dir, 'outdir'));
    symlinkSync(path.join(dir, 'in', 'dump.rdb'), path.join(dir, 'inside-link.rdb'));
    const refused: [string, RegExp][] = [
      ['../secret.rdb', /goes up out of the directory/],
      ['in/../../secret.rdb', /goes up out of the directory/],
      ['/etc/hostname', /absolute path/],
      ['in\\dump.rdb', /contains '\\'/],
      ['', /it is empty/],
      ['out.rdb', /resolves \(through a symbolic link\) outside the directory/],
      ['outdir/secret.rdb', /resolves \(through a symbolic link\) outside the directory/],
    ];
    for (const [name, pattern] of refused) {
      assert.throws(() => localDirectoryFiles(dir, [name]), (err: unknown) => err instanceof BackupError && pattern.test(err.message), name);
    }
    const [inside, nested] = localDirectoryFiles(dir, ['inside-link.rdb', 'in/./dump.rdb']);
    assert.equal(inside!.size, rdbBased.dumpRdb.length);
    assert.equal(nested!.size, rdbBased.dumpRdb.length);

    // A file replaced by a link to the outside after the check is refused when opened.
    const late = dirWith({ 'late.rdb': rdbBased.dumpRdb });
    const [file] = localDirectoryFiles(late, ['late.rdb']);
    rmSync(path.join(late, 'late.rdb'));
    symlinkSync(path.join(outside, 'secret.rdb'), path.join(late, 'late.rdb'));
    await expectBackupError(file!.open(), /outside the directory/);

    // A missing file is reported by the plan, naming it.
    await expectBackupError(planBackup(localDirectoryFiles(dir, ['nope.rdb'])), /^nope\.rdb in .*: no such file/);
  });
});
