import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Migration, type MigrationOptions } from '../../src/engine/migration.js';
import { DbMapper } from '../../src/engine/db-map.js';
import { startRedis, stopAll, type RedisServer, type StartOptions } from '../helpers/redis-server.js';
import { populateAllTypes, populateBigKeys } from '../helpers/dataset.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });

function endpoint(s: RedisServer, auth: { user?: string; password?: string } = {}) {
  return { host: s.host, port: s.port, ...auth };
}

async function migrate(source: RedisServer, target: RedisServer, extra: Partial<MigrationOptions> = {}) {
  const migration = new Migration({
    source: endpoint(source, { password: source.password }),
    target: endpoint(target, { password: target.password }),
    method: 'full',
    logger,
    ...extra,
  });
  return migration.run();
}

async function assertSame(source: RedisServer, target: RedisServer, opts: Parameters<typeof compareServers>[2] = {}) {
  const diffs = await compareServers(source, target, opts);
  assert.equal(diffs.length, 0, `target differs from source:\n${formatDifferences(diffs)}`);
}

describe('full migration, standalone to standalone', () => {
  after(stopAll);

  for (const diskless of [false, true]) {
    it(`copies every type and encoding in dbs 0, 1 and 15 (${diskless ? 'diskless' : 'disk-based'} sync)`, async () => {
      const config: StartOptions['config'] = { 'repl-diskless-sync': diskless ? 'yes' : 'no', 'repl-diskless-sync-delay': '0' };
      const source = await startRedis({ config });
      const target = await startRedis();
      try {
        await populateAllTypes(source);
        const result = await migrate(source, target);
        assert.equal(result.phase, 'done');
        assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
        assert.ok(result.snapshot.restored > 0);
        await assertSame(source, target);
      } finally {
        await source.stop();
        await target.stop();
      }
    });
  }

  it('rebuilds every type with commands when RESTORE is not used (rewrite path)', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await populateAllTypes(source);
      const result = await migrate(source, target, { rewrite: 'always' });
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent, null, 1));
      assert.equal(result.snapshot.restored, 0);
      assert.ok(result.snapshot.rewritten > 50, `rewritten ${result.snapshot.rewritten}`);
      await assertSame(source, target);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('moves big keys (1M-element list, 20 MB string, 200k hash/zset/set) in bounded pieces', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await populateBigKeys(source);
      const result = await migrate(source, target, { maxPayloadBytes: 4 * 1024 * 1024 });
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
      assert.ok(result.snapshot.rewritten >= 2, `rewritten ${result.snapshot.rewritten}`);
      await assertSame(source, target);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('authenticates with an ACL user on the source', async () => {
    const source = await startRedis({ aclUsers: [{ name: 'replicator', password: 'repl-secret', rules: '+psync +replconf +ping +info +client ~*' }] });
    const target = await startRedis();
    try {
      await source.client().set('acl:key', 'v');
      const result = await new Migration({
        source: endpoint(source, { user: 'replicator', password: 'repl-secret' }),
        target: endpoint(target),
        method: 'full',
        logger,
      }).run();
      assert.equal(result.errors.count, 0);
      assert.equal(await target.client().get('acl:key'), 'v');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('authenticates with a password on the source and an ACL user on the target', async () => {
    const source = await startRedis({ password: 'source-secret' });
    const target = await startRedis({ aclUsers: [{ name: 'ferry', password: 'target-secret', rules: '+@all ~* &*' }] });
    try {
      await source.client().set('auth:key', 'v');
      const result = await new Migration({
        source: endpoint(source, { password: 'source-secret' }),
        target: endpoint(target, { user: 'ferry', password: 'target-secret' }),
        method: 'full',
        logger,
      }).run();
      assert.equal(result.errors.count, 0);
      assert.equal(await target.client().get('auth:key'), 'v');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('maps databases when asked (source db 1 to target db 7)', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client(1).set('moved', 'here');
      await source.client(0).set('stays', 'there');
      await migrate(source, target, { dbs: DbMapper.parse('1:7') });
      assert.equal(await target.client(7).get('moved'), 'here');
      assert.equal(await target.client(1).get('moved'), null);
      assert.equal(await target.client(0).get('stays'), 'there');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('fails with a clear reason on a wrong password, without showing it', async () => {
    const source = await startRedis({ password: 'right-password' });
    const target = await startRedis();
    try {
      await assert.rejects(
        new Migration({ source: endpoint(source, { password: 'wrong-password-123' }), target: endpoint(target), method: 'full', logger }).run(),
        (e: Error) => /auth|password/i.test(e.message) && !e.message.includes('wrong-password-123'),
      );
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
