import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAll } from '../helpers/rdb-parse.js';
import type { RdbEntry } from '../../src/rdb/entries.js';
import { RdbError } from '../../src/rdb/errors.js';
import { dumpPayload } from '../../src/rdb/dump.js';
import { crc64 } from '../../src/rdb/crc64.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import { populateAllTypes, populateBigKeys } from '../helpers/dataset.js';


function keyName(e: RdbEntry): string | null {
  return e.kind === 'key' || e.kind === 'key-begin' ? `${e.db}/${e.key.toString('latin1')}` : null;
}

/** Entries with Buffers turned into hex, for deep comparison across chunkings. */
function normalise(entries: RdbEntry[]): unknown {
  // Whole keys carry window offsets that depend on the chunking: compare what they expose.
  const visible = entries.map((e) =>
    e.kind === 'key'
      ? { db: e.db, key: e.key, rdbType: e.rdbType, expireAtMs: e.expireAtMs, idleSeconds: e.idleSeconds, lfuFreq: e.lfuFreq, payload: e.payload, rdbVersion: e.rdbVersion }
      : e,
  );
  return JSON.parse(JSON.stringify(visible, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

describe('RDB parser against snapshots of a real server', () => {
  let server: RedisServer;
  let rdb: Buffer;
  let bigRdb: Buffer;

  before(async () => {
    server = await startRedis();
    await populateAllTypes(server);
    await server.client().call('SAVE');
    rdb = readFileSync(path.join(server.dir, 'dump.rdb'));
    await populateBigKeys(server, { listElements: 50_000, stringBytes: 3 * 1024 * 1024, collectionSize: 20_000, db: 2 });
    await server.client().call('SAVE');
    bigRdb = readFileSync(path.join(server.dir, 'dump.rdb'));
  });
  after(async () => server?.stop());

  it('reads every key, with a verified checksum', async () => {
    const entries = parseAll(rdb, [rdb.length]);
    const end = entries.at(-1);
    assert.equal(end?.kind, 'end');
    assert.equal(end.kind === 'end' && end.checksumVerified, true);
    const keys = entries.filter((e) => e.kind === 'key');
    let expected = 0;
    for (const db of [0, 1, 15]) expected += Number(await server.client(db).dbsize());
    assert.equal(keys.length, expected);
  });

  it('gives the same entries whatever the chunking (1 byte, odd sizes, whole)', () => {
    const whole = normalise(parseAll(rdb, [rdb.length]));
    assert.deepEqual(normalise(parseAll(rdb, [1])), whole);
    assert.deepEqual(normalise(parseAll(rdb, [7, 3, 1000, 1, 65536])), whole);
  });

  it('produces payloads identical to what DUMP returns for the same key', async () => {
    const entries = parseAll(rdb, [4096]);
    let compared = 0;
    for (const e of entries) {
      if (e.kind !== 'key') continue;
      const dumped = await server.client(e.db).dumpBuffer(e.key);
      assert.ok(dumped, `DUMP of ${keyName(e)}`);
      const ours = dumpPayload(e.payload, e.rdbVersion);
      assert.ok(ours.equals(dumped), `payload of ${keyName(e)} differs from DUMP`);
      compared++;
    }
    assert.ok(compared > 50, `compared ${compared} keys`);
  });

  it('streams keys above the payload limit in bounded chunks', () => {
    const entries = parseAll(bigRdb, [65536], { maxPayloadBytes: 64 * 1024 });
    const begun = entries.filter((e) => e.kind === 'key-begin').map(keyName);
    for (const name of ['2/big:list', '2/big:string', '2/big:hash', '2/big:zset', '2/big:set']) {
      assert.ok(begun.includes(name), `${name} streamed (got ${begun.join(', ')})`);
    }
    let listItems = 0;
    let stringBytes = 0;
    let current: string | null = null;
    for (const e of entries) {
      if (e.kind === 'key-begin') current = keyName(e);
      if (e.kind !== 'key-chunk') continue;
      const c = e.chunk;
      if (c.type === 'list' && current === '2/big:list') {
        assert.ok(c.items.length <= 1000);
        listItems += c.items.length;
      }
      if (c.type === 'string' && current === '2/big:string') {
        assert.ok(c.data.length <= 1 << 20);
        stringBytes += c.data.length;
      }
    }
    assert.equal(listItems, 50_000);
    assert.equal(stringBytes, 3 * 1024 * 1024);
  });

  it('decodes every key into chunks when payloads are not wanted', () => {
    const entries = parseAll(rdb, [8192], { wantsPayload: () => false });
    assert.equal(entries.filter((e) => e.kind === 'key').length, 0);
    const begins = entries.filter((e) => e.kind === 'key-begin').length;
    assert.equal(begins, entries.filter((e) => e.kind === 'key-end').length);
    assert.ok(begins > 50);
  });

  it('names the offset when the snapshot is truncated', () => {
    for (const cut of [5, 9, 100, Math.floor(rdb.length / 2), rdb.length - 3]) {
      assert.throws(
        () => parseAll(rdb.subarray(0, cut), [1024]),
        (e: unknown) => e instanceof RdbError && /corrupt snapshot at byte \d+: expected/.test(e.message) && e.offset <= cut,
        `cut at ${cut}`,
      );
    }
  });

  it('rejects a bad checksum, naming both values', () => {
    const bad = Buffer.from(rdb);
    bad[bad.length - 1]! ^= 0xff;
    assert.throws(() => parseAll(bad, [rdb.length]), /CRC64.*file says 0x[0-9a-f]{16}, content hashes to 0x[0-9a-f]{16}/);
  });

  it('skips verification when the checksum is zero (rdbchecksum no)', () => {
    const noCrc = Buffer.from(rdb);
    noCrc.fill(0, noCrc.length - 8);
    const end = parseAll(noCrc, [rdb.length]).at(-1);
    assert.ok(end?.kind === 'end' && end.checksumVerified === null);
  });

  it('rejects an unknown type byte, naming it and the version', () => {
    // A file with one key of type 99.
    const body = Buffer.concat([Buffer.from('REDIS0010'), Buffer.from([99, 1, 0x6b, 1, 0x76, 0xff])]);
    const crc = Buffer.alloc(8);
    crc.writeBigUInt64LE(crc64(body));
    assert.throws(() => parseAll(Buffer.concat([body, crc]), [100]), /type 99 in REDIS RDB version 10 is not supported/);
  });

  it('rejects a file that is not an RDB', () => {
    assert.throws(() => parseAll(Buffer.from('GARBAGE!!!and more'), [100]), /RDB header/);
  });
});
