import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConsoleSessions } from '../../src/api/console.js';

describe('console sessions', () => {
  it('expire after their lifetime, end when deleted, and are unguessable ids', () => {
    const sessions = new ConsoleSessions(1000);
    const now = Date.now();
    const id = sessions.create('p1', 'ak:A', now);
    assert.match(id, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
    assert.equal(sessions.get(id, now + 999)?.projectId, 'p1');
    assert.equal(sessions.get(id, now + 1000), undefined, 'expired');
    const other = sessions.create('p2', 'token:abcd', now);
    assert.notEqual(other, id);
    assert.equal(sessions.get(`${other}x`, now), undefined);
    sessions.delete(other);
    assert.equal(sessions.get(other, now), undefined);
  });
});
