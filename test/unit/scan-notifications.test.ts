import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseKeyspaceChannel, hasKeyspaceFlags } from '../../src/source/scan/keyspace-notifications.js';

describe('keyspace notification channels', () => {
  it('reads the db and a key of any bytes, including "__:" and CRLF', () => {
    const key = Buffer.from([0x61, 0x5f, 0x5f, 0x3a, 0x0d, 0x0a, 0x00, 0xff]);
    const parsed = parseKeyspaceChannel(Buffer.concat([Buffer.from('__keyspace@12__:'), key]));
    assert.deepEqual(parsed && { db: parsed.db, key: [...parsed.key] }, { db: 12, key: [...key] });
    assert.deepEqual(parseKeyspaceChannel(Buffer.from('__keyspace@0__:')), { db: 0, key: Buffer.alloc(0) });
  });

  it('rejects what is not a keyspace channel', () => {
    for (const c of ['__keyevent@0__:set', '__keyspace@__:k', '__keyspace@x__:k', '__keyspace@1_:k', 'other']) {
      assert.equal(parseKeyspaceChannel(Buffer.from(c)), null, c);
    }
  });

  it('needs K and A in notify-keyspace-events', () => {
    assert.equal(hasKeyspaceFlags('KA'), true);
    assert.equal(hasKeyspaceFlags('AKE'), true);
    assert.equal(hasKeyspaceFlags('Ex'), false);
    assert.equal(hasKeyspaceFlags('K$'), false);
  });
});
