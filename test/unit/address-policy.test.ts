import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { AddressPolicyError, checkAddress, ipAllowed, makeAddressPolicy, parseAllowRule, policyLookup, resolveAllowed } from '../../src/common/address-policy.js';
import { dial, DialError } from '../../src/common/dial.js';
import { setAddressPolicy, ANY_POLICY } from '../../src/common/address-policy.js';

describe('address policy', () => {
  it('parses CIDR rules with optional ports and refuses malformed ones', () => {
    assert.deepEqual(parseAllowRule('127.0.0.0/8').ports, null);
    assert.deepEqual(parseAllowRule('127.0.0.1/32:6379').ports, [6379, 6379]);
    assert.deepEqual(parseAllowRule('127.0.0.1:7000-7999').ports, [7000, 7999]);
    assert.equal(parseAllowRule('[::1]/128:6379').family, 'ipv6');
    assert.equal(parseAllowRule('[::1]').prefix, 128);
    assert.equal(parseAllowRule('::1/128').prefix, 128);
    for (const bad of ['localhost', '127.0.0.1/33', '127.0.0.1:0', '127.0.0.1:9-8', '::1:6379', '1.2.3', '']) assert.throws(() => parseAllowRule(bad), /invalid address rule/, bad);
  });

  it('allow: addresses and ports inside the rules only (127.0.0.1 vs 127.0.0.2, port ranges, IPv4-mapped IPv6)', async () => {
    const p = makeAddressPolicy({ mode: 'allow', allow: ['127.0.0.1/32:6000-6999', '[::1]/128'], registered: [] });
    assert.equal(await ipAllowed(p, '127.0.0.1', 6379), true);
    assert.equal(await ipAllowed(p, '127.0.0.1', 7000), false);
    assert.equal(await ipAllowed(p, '127.0.0.2', 6379), false);
    assert.equal(await ipAllowed(p, '::ffff:127.0.0.1', 6379), true);
    assert.equal(await ipAllowed(p, '::1', 1), true);
    assert.equal(await ipAllowed(p, '0:0:0:0:0:0:0:1', 1), true);
    await assert.rejects(resolveAllowed(p, '127.0.0.2', 6379), (e: Error) => e instanceof AddressPolicyError && /127\.0\.0\.2:6379 is not allowed by the service's address policy \(allow\)/.test(e.message));
    await assert.rejects(checkAddress(p, '127.0.0.1:7001'), AddressPolicyError);
    assert.equal(await resolveAllowed(p, '127.0.0.1', 6001), '127.0.0.1');
  });

  it('registered: only the registered host:port (after resolution), plus allow rules', async () => {
    const p = makeAddressPolicy({ mode: 'registered', allow: ['127.0.0.2/32:7000'], registered: ['127.0.0.1:6379', 'localhost:6380'] });
    assert.equal(await ipAllowed(p, '127.0.0.1', 6379), true);
    assert.equal(await ipAllowed(p, '127.0.0.1', 6381), false);
    assert.equal(await ipAllowed(p, '127.0.0.2', 7000), true);
    // localhost resolves (from /etc/hosts, loopback) to what it is registered for.
    assert.equal(await ipAllowed(p, '127.0.0.1', 6380), true);
    assert.equal(await ipAllowed(p, '127.0.0.3', 6380), false);
  });

  it('any: everything, without resolving', async () => {
    const p = makeAddressPolicy({ mode: 'any', allow: [], registered: [] });
    assert.equal(await resolveAllowed(p, 'some-name-never-resolved', 1), 'some-name-never-resolved');
  });

  it('dial() refuses a disallowed address before opening a socket, and connects to the checked IP otherwise', async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      setAddressPolicy(makeAddressPolicy({ mode: 'allow', allow: [`127.0.0.1/32:${port}`], registered: [] }));
      const ok = await dial({ host: '127.0.0.1', port }, { timeoutMs: 2000 });
      assert.equal(ok.remoteAddress, '127.0.0.1');
      ok.destroy();
      await assert.rejects(dial({ host: '127.0.0.2', port }, { timeoutMs: 2000 }), (e: Error) => e instanceof DialError && /not allowed/.test(e.message));
      await assert.rejects(dial({ host: '127.0.0.1', port: port === 65535 ? 1 : port + 1 }, { timeoutMs: 2000 }), /not allowed/);
      // The lookup given to HTTP agents (the S3 client) applies the same rule.
      const lookup = policyLookup(makeAddressPolicy({ mode: 'allow', allow: ['127.0.0.1/32:9000'], registered: [] }), 9000);
      const found = await new Promise<string>((resolve, reject) => (lookup as unknown as (h: string, o: object, cb: (e: Error | null, a: string) => void) => void)('127.0.0.1', {}, (e, a) => (e ? reject(e) : resolve(a))));
      assert.equal(found, '127.0.0.1');
      await assert.rejects(new Promise((resolve, reject) => (lookup as unknown as (h: string, o: object, cb: (e: Error | null, a: string) => void) => void)('127.0.0.2', {}, (e, a) => (e ? reject(e) : resolve(a)))), /not allowed/);
    } finally {
      setAddressPolicy(ANY_POLICY);
      server.close();
    }
  });
});
