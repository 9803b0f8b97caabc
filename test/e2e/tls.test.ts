/**
 * TLS with real servers: redis-server listening on a TLS port with certificates made for the
 * test (test/helpers/tls-certs.ts). The plain port of each server is used only by the test's own
 * clients (seeding, comparing); Ferry is given the TLS port.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { Migration } from '../../src/engine/migration.js';
import { parseAddressList } from '../../src/common/endpoint.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { abortableLoad } from '../helpers/load.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { ferry } from '../helpers/run-cli.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });

function tlsServer(certs: TestCerts, authClients = false, password?: string): Promise<RedisServer> {
  return startRedis({ tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.caFile, authClients }, ...(password ? { password } : {}) });
}

const tlsAddr = (s: RedisServer): string => `rediss://127.0.0.1:${s.tlsPort}`;

async function seed(s: RedisServer, n = 300): Promise<void> {
  const pipe = s.client().pipeline();
  for (let i = 0; i < n; i++) pipe.set(`k:${i}`, `v${i}`);
  pipe.rpush('list', 'a', 'b', 'c').hset('hash', 'f', 'v').zadd('zset', 1, 'm').sadd('set', 'x');
  await pipe.exec();
}

describe('TLS', () => {
  let certs: TestCerts;
  before(() => {
    certs = makeTestCerts();
  });
  after(async () => {
    await stopAll();
    certs.cleanup();
  });

  it('TLS source to plain target: snapshot and a live, pipelined stream over the TLS replica link, 0 differences', async () => {
    const source = await tlsServer(certs);
    const target = await startRedis();
    try {
      await seed(source);
      const migration = new Migration({
        source: parseAddressList(tlsAddr(source), { tls: { caFile: certs.caFile } }),
        target: { host: target.host, port: target.port },
        method: 'incremental',
        logger,
        pollIntervalMs: 200,
      });
      const running = migration.run();
      const stopLoad = new AbortController();
      const load = abortableLoad({ client: () => source.client(), signal: stopLoad.signal, maxMs: 20_000 });
      const deadline = Date.now() + 20_000;
      while (migration.progress().phase !== 'incremental') {
        assert.ok(Date.now() < deadline, `phase ${migration.progress().phase}: ${migration.progress().failure}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 500)); // load keeps running into the stream phase
      stopLoad.abort();
      const loaded = await load;
      assert.ok(loaded.commands > 500, `only ${loaded.commands} commands of load`);
      const wanted = Number(/master_repl_offset:(\d+)/.exec(await source.client().info('replication'))?.[1]);
      while (migration.progress().stream.appliedOffset < wanted) {
        assert.ok(Date.now() < deadline + 10_000, 'the target did not catch up');
        await new Promise((r) => setTimeout(r, 50));
      }
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      assert.ok(migration.progress().stream.commandsForwarded > 0, 'the stream went over the TLS link');
      migration.stop();
      assert.equal((await running).phase, 'stopped');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('plain source to a TLS target with the CLI flags; verify and import over TLS too', async () => {
    const source = await startRedis();
    const target = await tlsServer(certs, false, 'pw-target');
    try {
      await seed(source);
      const tlsFlags = ['--target-tls-ca', certs.caFile, '--target-password', 'pw-target'];
      const run = await ferry(['migrate', '--source', source.addr, '--target', tlsAddr(target), ...tlsFlags]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await target.client().get('k:7'), 'v7');
      assert.ok(!run.stderr.includes('pw-target'));
      // --target-tls-ca alone (no rediss://) turns TLS on too.
      const check = await ferry(['verify', '--source', source.addr, '--target', `127.0.0.1:${target.tlsPort}`, ...tlsFlags]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /^equal/);
      // An import into the TLS target.
      await source.client().set('only-in-dump', '1');
      await source.client().save();
      const dump = path.join(source.dir, 'dump.rdb');
      const imported = await ferry(['import', dump, '--target', tlsAddr(target), ...tlsFlags]);
      assert.equal(imported.code, 0, imported.stderr);
      assert.equal(await target.client().get('only-in-dump'), '1');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('mutual TLS: works with a client certificate, and without one fails with a one-line TLS error', async () => {
    const source = await tlsServer(certs, true);
    const target = await startRedis();
    try {
      await seed(source, 50);
      const base = ['migrate', '--source', tlsAddr(source), '--source-tls-ca', certs.caFile, '--target', target.addr];
      const ok = await ferry([...base, '--source-tls-cert', certs.clientCert, '--source-tls-key', certs.clientKey]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(await target.client().get('k:3'), 'v3');
      const refused = await ferry(base, {}, 30_000);
      assert.equal(refused.code, 1);
      const lines = refused.stderr.trim().split('\n');
      assert.equal(lines.length, 1, refused.stderr);
      assert.match(lines[0]!, new RegExp(`^ferry: .*127\\.0\\.0\\.1:${source.tlsPort}.*TLS`));
      assert.ok(refused.ms < 10_000, `took ${refused.ms} ms`);
      const halfPair = await ferry([...base, '--source-tls-cert', certs.clientCert]);
      assert.equal(halfPair.code, 1);
      assert.match(halfPair.stderr, /--source-tls-cert and --source-tls-key go together/);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('a certificate signed by another CA fails within seconds, naming TLS and the peer; --source-tls-insecure goes on with a warning', async () => {
    const source = await tlsServer(certs);
    const target = await startRedis();
    try {
      await seed(source, 20);
      const base = ['migrate', '--source', tlsAddr(source), '--source-tls-ca', certs.otherCaFile, '--target', target.addr];
      const wrong = await ferry(base, {}, 30_000);
      assert.equal(wrong.code, 1);
      const lines = wrong.stderr.trim().split('\n');
      assert.equal(lines.length, 1, wrong.stderr);
      assert.match(lines[0]!, new RegExp(`^ferry: .*127\\.0\\.0\\.1:${source.tlsPort}.*TLS: the server's certificate is not trusted`));
      assert.ok(wrong.ms < 10_000, `took ${wrong.ms} ms`);
      assert.equal(await target.client().dbsize(), 0, 'nothing was written');

      // A name the certificate does not carry fails as such.
      const badName = await ferry([...base.slice(0, 4), certs.caFile, '--target', target.addr, '--source-tls-servername', 'other.test'], {}, 30_000);
      assert.equal(badName.code, 1);
      assert.match(badName.stderr, /TLS: the server's certificate does not name this host/);

      const insecure = await ferry([...base, '--source-tls-insecure']);
      assert.equal(insecure.code, 0, insecure.stderr);
      assert.match(insecure.stderr, /warning: TLS certificate verification is OFF for the source/);
      assert.equal(await target.client().get('k:1'), 'v1');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('a missing CA file and a plain client on a TLS port both say what is wrong', async () => {
    const source = await tlsServer(certs);
    const target = await startRedis();
    try {
      const missing = await ferry(['migrate', '--source', tlsAddr(source), '--source-tls-ca', path.join(certs.dir, 'nope.pem'), '--target', target.addr]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /TLS: cannot read the CA file .*nope\.pem: ENOENT/);
      const notPem = path.join(certs.dir, 'garbage.pem');
      writeFileSync(notPem, 'not a certificate\n');
      const garbage = await ferry(['migrate', '--source', tlsAddr(source), '--source-tls-ca', notPem, '--target', target.addr]);
      assert.equal(garbage.code, 1);
      assert.equal(garbage.stderr.trim().split('\n').length, 1, garbage.stderr);
      const plainOnTls = await ferry(['migrate', '--source', `127.0.0.1:${source.tlsPort}`, '--target', target.addr], {}, 30_000);
      assert.equal(plainOnTls.code, 1);
      assert.match(plainOnTls.stderr, /TLS/, 'the error hints at TLS');
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
