/**
 * Backup files in an S3-compatible bucket (s3rver on 127.0.0.1, its store in a temp dir): an
 * RDB, a tar.gz and a zip are uploaded, read back through s3Files as streams, planned, split
 * into parts and parsed to the end with the RDB parser. Errors name s3://bucket/key and never
 * the credentials; a download cut mid-way resumes from the byte where it broke.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { pack as tarPack } from 'tar-stream';
import { BackupError, backupParts, planBackup, readBackupPart, type BackupFile, type PartSummary } from '../../src/import/backup.js';
import { s3Files, type ObjectStoreConfig } from '../../src/import/sources.js';
import { populateAllTypes } from '../helpers/dataset.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { zipArchive } from '../helpers/zip-writer.js';

/** The part of s3rver's API used here (the package has no types). */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

const BUCKET = 'backups';
// s3rver's fixed credentials.
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';

async function tarGz(entries: readonly { name: string; data: Buffer }[]): Promise<Buffer> {
  const pack = tarPack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) pack.entry({ name: e.name, size: e.data.length }, e.data);
  pack.finalize();
  await collected;
  return zlib.gzipSync(Buffer.concat(chunks));
}

async function readAll(file: BackupFile): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await file.open()) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Plans and reads every part, counting keys the RDB parser hands out. */
async function parseAll(files: BackupFile[]): Promise<{ kinds: string[]; keys: number; summaries: PartSummary[] }> {
  const plan = await planBackup(files);
  let keys = 0;
  const summaries: PartSummary[] = [];
  for await (const part of backupParts(files, { plan })) {
    summaries.push(
      await readBackupPart(part, {
        entry: (e) => {
          if (e.kind === 'key' || e.kind === 'key-begin') keys++;
        },
        commands: () => undefined,
        warning: (w) => assert.fail(`unexpected warning: ${w.message}`),
      }),
    );
  }
  return { kinds: plan.parts.map((p) => `${p.kind}:${p.file}`), keys, summaries };
}

interface CuttingProxy {
  port: number;
  readonly cuts: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy to the object store that cuts the first connection whose responses exceed
 * `cutAfter` bytes, in the middle of a body.
 */
async function cuttingProxy(targetPort: number, cutAfter: number): Promise<CuttingProxy> {
  let cuts = 0;
  let armed = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let down = 0;
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      down += d.length;
      if (armed && down > cutAfter) {
        armed = false;
        cuts++;
        client.write(d.subarray(0, Math.max(0, d.length - (down - cutAfter))));
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('backup import from an S3-compatible bucket (s3rver)', () => {
  let storeDir: string;
  let s3: S3rverInstance;
  let endpoint: string;
  let port: number;
  let redis: RedisServer;
  let rdb: Buffer;
  let keys: number;
  let big: Buffer;
  let config: ObjectStoreConfig;

  before(async () => {
    storeDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-s3rver-'));
    s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: storeDir, configureBuckets: [{ name: BUCKET }] });
    port = (await s3.run()).port;
    endpoint = `http://127.0.0.1:${port}`;
    config = { endpoint, region: 'us-east-1', accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, forcePathStyle: true };

    redis = await startRedis();
    await populateAllTypes(redis, { dbs: [0, 1] });
    await redis.client().call('SAVE');
    rdb = readFileSync(path.join(redis.dir, 'dump.rdb'));
    keys = (await redis.client(0).dbsize()) + (await redis.client(1).dbsize());
    big = randomBytes(3 * 1024 * 1024);

    // The uploader is the test's own client; flexible checksums off: s3rver does not know them.
    const uploader = new S3Client({ ...config, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY }, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const put = (Key: string, Body: Buffer) => uploader.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body }));
    await put('dumps/dump.rdb', rdb);
    await put('dumps/backup.tar.gz', await tarGz([{ name: 'redis/dump.rdb', data: rdb }, { name: 'README', data: Buffer.from('backup of 2024-01-01\n') }]));
    await put('dumps/backup.zip', zipArchive([{ name: 'dump.rdb', data: rdb, method: 'deflate' }]));
    await put('blobs/big.bin', big);
    uploader.destroy();
  });

  after(async () => {
    await s3?.close();
    await stopAll();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it('streams an RDB from the bucket and parses it to the end', async () => {
    const files = s3Files(config, BUCKET, ['dumps/dump.rdb']);
    assert.equal(files[0]!.size, null, 'unknown until asked');
    const r = await parseAll(files);
    assert.deepEqual(r.kinds, ['rdb:dumps/dump.rdb']);
    assert.equal(files[0]!.size, rdb.length, 'HeadObject gave the size');
    assert.equal(r.keys, keys);
    assert.equal(r.summaries[0]!.rdb!.checksumVerified, true);
    assert.equal(r.summaries[0]!.rdb!.bytes, rdb.length);
    assert.deepEqual(await readAll(files[0]!), rdb);
  });

  it('a tar.gz from the bucket, streamed', async () => {
    const r = await parseAll(s3Files(config, BUCKET, ['dumps/backup.tar.gz']));
    assert.deepEqual(r.kinds, ['rdb:redis/dump.rdb in dumps/backup.tar.gz']);
    assert.equal(r.keys, keys);
  });

  it('a zip from the bucket (copied to a temp file: zip needs random access)', async () => {
    const r = await parseAll(s3Files(config, BUCKET, ['dumps/backup.zip']));
    assert.deepEqual(r.kinds, ['rdb:dump.rdb in dumps/backup.zip']);
    assert.equal(r.keys, keys);
  });

  it('a byte range', async () => {
    const [file] = s3Files(config, BUCKET, ['blobs/big.bin']);
    const chunks: Buffer[] = [];
    for await (const c of await file!.open({ start: 1000, end: 1999 })) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), big.subarray(1000, 2000));
  });

  it('a missing key, a missing bucket and wrong credentials: clear errors naming bucket and key, never the secret', async () => {
    const missing = s3Files(config, BUCKET, ['dumps/missing.rdb']);
    await assert.rejects(planBackup(missing), (err: unknown) => err instanceof BackupError && /^s3:\/\/backups\/dumps\/missing\.rdb: no such object$/.test(err.message));
    await assert.rejects(missing[0]!.open(), (err: unknown) => err instanceof BackupError && /^s3:\/\/backups\/dumps\/missing\.rdb: no such object$/.test(err.message));

    const noBucket = s3Files(config, 'nope', ['dump.rdb']);
    await assert.rejects(noBucket[0]!.open(), /^BackupError: s3:\/\/nope\/dump\.rdb: no such bucket$/);
    await assert.rejects(planBackup(noBucket), /^BackupError: s3:\/\/nope\/dump\.rdb: no such bucket$/);

    // s3rver does not verify SigV4 signatures, only that the key id exists: a wrong key id.
    const keyId = 'AKIAWRONGKEYID0000001';
    const secret = 'wrong-secret-d41d8cd98f00b204';
    const wrong = s3Files({ ...config, accessKeyId: keyId, secretAccessKey: secret }, BUCKET, ['dumps/dump.rdb']);
    for (const attempt of [planBackup(wrong), wrong[0]!.open()]) {
      await assert.rejects(attempt, (err: unknown) => {
        assert.ok(err instanceof BackupError);
        assert.match(err.message, /^s3:\/\/backups\/dumps\/dump\.rdb: (the object store refused the credentials|access denied)/);
        assert.ok(!err.message.includes(secret) && !err.message.includes(keyId), err.message);
        assert.equal(err.cause, undefined, 'the SDK error (request metadata) is not passed on');
        return true;
      });
    }

    const unreachable = s3Files({ ...config, endpoint: 'http://127.0.0.1:1' }, BUCKET, ['dumps/dump.rdb']);
    await assert.rejects(unreachable[0]!.open(), /^BackupError: s3:\/\/backups\/dumps\/dump\.rdb: cannot reach the object store/);
  });

  it('a download cut mid-way resumes from the byte where it broke', async () => {
    const proxy = await cuttingProxy(port, 512 * 1024);
    try {
      const [file] = s3Files({ ...config, endpoint: `http://127.0.0.1:${proxy.port}` }, BUCKET, ['blobs/big.bin']);
      const got = await readAll(file!);
      assert.equal(proxy.cuts, 1, 'the first response was cut');
      assert.equal(got.length, big.length);
      assert.ok(got.equals(big), 'the resumed download has the right bytes');
    } finally {
      await proxy.close();
    }
  });
});
