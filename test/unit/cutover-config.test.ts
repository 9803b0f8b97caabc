/** The service config's `cutover` section (issue 14): defaults, hooks, and what is refused. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadServiceConfig } from '../../src/config/service-config.js';

function load(cutover: unknown): ReturnType<typeof loadServiceConfig> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-config-'));
  try {
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ cutover }));
    return loadServiceConfig(file, {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('config cutover', () => {
  it('defaults: no hook, no allowed commands, pause 5 s, drain 10 s', () => {
    assert.deepEqual(loadServiceConfig(undefined, {}).cutover, { hook: null, allowedHookCommands: [], pauseTimeoutSeconds: 5, drainTimeoutSeconds: 10 });
  });

  it('takes a command or a URL hook and the limits', () => {
    assert.deepEqual(load({ hook: { command: '/usr/local/bin/switch', args: ['-v'], timeoutSeconds: 3 }, allowedHookCommands: ['/usr/local/bin/switch'], drainTimeoutSeconds: 2 }).cutover, {
      hook: { command: '/usr/local/bin/switch', args: ['-v'], timeoutSeconds: 3 },
      allowedHookCommands: ['/usr/local/bin/switch'],
      pauseTimeoutSeconds: 5,
      drainTimeoutSeconds: 2,
    });
    assert.deepEqual(load({ hook: { url: 'http://127.0.0.1:9/switch' } }).cutover.hook, { url: 'http://127.0.0.1:9/switch' });
  });

  it('refuses a relative command, a URL that is not http(s), bad limits, a hook without either', () => {
    assert.throws(() => load({ hook: { command: 'switch.sh' } }), /cutover\.hook\.command must be an absolute path/);
    assert.throws(() => load({ hook: { url: 'file:///etc/passwd' } }), /cutover\.hook\.url must be an http/);
    assert.throws(() => load({ hook: {} }), /cutover\.hook needs "command" or "url"/);
    assert.throws(() => load({ allowedHookCommands: ['relative'] }), /allowedHookCommands must be an array of absolute paths/);
    assert.throws(() => load({ drainTimeoutSeconds: 0 }), /drainTimeoutSeconds must be a positive integer/);
  });
});
