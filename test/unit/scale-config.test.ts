/**
 * The config keys of several nodes over PostgreSQL (issue 13): `store`, `node`, `secretKeyFile`
 * and FERRY_DATABASE_URL; SQLite stays the default; bad values are refused with the key named.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_LEASE_SECONDS, DEFAULT_NODE_CAPACITY, loadServiceConfig } from '../../src/config/service-config.js';
import { redactUrl } from '../../src/tasks/pg-store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-scale-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(content: unknown): string {
  const f = path.join(dir, `c${n++}.json`);
  fs.writeFileSync(f, JSON.stringify(content));
  return f;
}

describe('config: store, node, secretKeyFile', () => {
  it('defaults to SQLite, 15 s leases, the default capacity, the data dir key', () => {
    const c = loadServiceConfig(undefined, {});
    assert.deepEqual(c.store, { kind: 'sqlite' });
    assert.deepEqual(c.node, { id: null, capacity: DEFAULT_NODE_CAPACITY, leaseMs: DEFAULT_LEASE_SECONDS * 1000 });
    assert.equal(DEFAULT_LEASE_SECONDS, 15);
    assert.equal(c.secretKeyFile, null);
  });

  it('reads PostgreSQL from the file or from FERRY_DATABASE_URL (the file wins)', () => {
    const f = file({ store: { postgres: 'postgres://u@127.0.0.1:5432/db', schema: 'ferry_a' }, node: { id: 'n-1', capacity: 3, leaseSeconds: 2.5 }, secretKeyFile: 'keys/k' });
    const c = loadServiceConfig(f, { FERRY_DATABASE_URL: 'postgres://other@127.0.0.1/x' });
    assert.deepEqual(c.store, { kind: 'postgres', url: 'postgres://u@127.0.0.1:5432/db', schema: 'ferry_a' });
    assert.deepEqual(c.node, { id: 'n-1', capacity: 3, leaseMs: 2500 });
    assert.equal(c.secretKeyFile, path.join(dir, 'keys/k'), 'relative to the config file');
    assert.deepEqual(loadServiceConfig(undefined, { FERRY_DATABASE_URL: 'postgresql://e@127.0.0.1/x' }).store, { kind: 'postgres', url: 'postgresql://e@127.0.0.1/x' });
  });

  it('refuses bad values, naming the key, never echoing a password', () => {
    const bad: [unknown, RegExp][] = [
      [{ store: 'postgres://x' }, /"store" must be/],
      [{ store: { postgres: 'mysql://x' } }, /store.postgres must be a postgres:\/\/ URL/],
      [{ store: { postgres: 'postgres://x', schema: 'a;drop' } }, /store.schema/],
      [{ store: { postgres: 'postgres://x', pool: 3 } }, /store.pool: unknown/],
      [{ node: { capacity: 0 } }, /node.capacity must be a positive integer/],
      [{ node: { leaseSeconds: 0.1 } }, /node.leaseSeconds must be a number from 1 to 3600/],
      [{ node: { id: 'a b' } }, /node.id/],
    ];
    for (const [content, re] of bad) assert.throws(() => loadServiceConfig(file(content), {}), re, JSON.stringify(content));
    assert.throws(() => loadServiceConfig(undefined, { FERRY_DATABASE_URL: 'redis://x' }), /FERRY_DATABASE_URL must be a postgres:\/\/ URL/);
    assert.equal(redactUrl('postgres://ferry:s3cret@127.0.0.1:5432/db'), 'postgres://ferry:***@127.0.0.1:5432/db');
    assert.ok(!redactUrl('postgres://ferry:s3cret@h/db').includes('s3cret'));
  });
});
