import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { BasicCredentials as BasicCredentialsClass } from '@huaweicloud/huaweicloud-sdk-core';
import type { ClientBuilder as ClientBuilderClass } from '@huaweicloud/huaweicloud-sdk-core/ClientBuilder.js';
import type { HcClient } from '@huaweicloud/huaweicloud-sdk-core/HcClient.js';

import {
  CredentialRegistry,
  GENERATED_CREDENTIALS_FILE,
  loadOrCreateGeneratedCredential,
} from '../../src/api/auth/credentials.js';
import {
  canonicalRequest,
  formatSdkDate,
  parseSdkDate,
  signRequest,
  verifySignature,
  type SignedRequest,
  type VerifyResult,
} from '../../src/api/auth/signature.js';

// The SDK is CommonJS without an exports map; reference §5.3 loads it with deep require() paths,
// which ESM `import` cannot resolve without file extensions.
const require = createRequire(import.meta.url);
const { ClientBuilder } = require('@huaweicloud/huaweicloud-sdk-core/ClientBuilder') as {
  ClientBuilder: typeof ClientBuilderClass;
};
const { BasicCredentials } = require('@huaweicloud/huaweicloud-sdk-core') as {
  BasicCredentials: typeof BasicCredentialsClass;
};

const sha256 = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const hmac = (key: string, s: string): string => createHmac('sha256', key).update(s).digest('hex');

/** Builds a SignedRequest from a request target (`/path?query`). */
function request(method: string, target: string, headers: SignedRequest['headers'], body: Buffer | string = ''): SignedRequest {
  const q = target.indexOf('?');
  return {
    method,
    rawPath: q < 0 ? target : target.slice(0, q),
    rawQuery: q < 0 ? '' : target.slice(q + 1),
    headers,
    body: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'),
  };
}

function assertOk(r: VerifyResult, ak: string, msg?: string): void {
  if (!r.ok) assert.fail(`${msg ?? 'verify'}: expected ok, got "${r.reason}"\n${r.canonicalRequest ?? ''}`);
  assert.equal(r.accessKey, ak);
}

function assertRejected(r: VerifyResult, reason: RegExp, msg?: string): void {
  assert.equal(r.ok, false, msg ?? `expected rejection matching ${reason}`);
  if (!r.ok) assert.match(r.reason, reason, msg);
}

/** Deterministic PRNG so a fuzz failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

// ---------------------------------------------------------------------------------------------

describe('published test vectors', () => {
  it('official guide vector (GET /v1/.../vpcs)', () => {
    const sk = 'MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc';
    const signature = '7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe';
    const base = request('GET', '/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0', {
      'content-type': 'application/json',
      host: 'service.region.example.com',
      'x-sdk-date': '20191115T033655Z',
    });
    const canon = canonicalRequest(base, ['content-type', 'host', 'x-sdk-date']);
    assert.equal(sha256(canon), 'b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a');

    const req = {
      ...base,
      headers: { ...base.headers, authorization: `SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=${signature}` },
    };
    const now = parseSdkDate('20191115T033655Z')!;
    assertOk(verifySignature(req, (ak) => (ak === 'QTWAOYTTINDUT2QVKYUC' ? sk : undefined), now), 'QTWAOYTTINDUT2QVKYUC');
  });

  const goNow = parseSdkDate('20060102T150405Z')!;
  const goLookup = (ak: string): string | undefined => (ak === 'AccessKey' ? 'SecretKey' : undefined);
  // The Go vectors sign x-sdk-date only (older Go SDKs did not sign Host): checked with the
  // Host requirement off, as a service configured with requireSignedHost: false would.
  const noHost = { requireSignedHost: false };
  const goHeaders = (sig: string): SignedRequest['headers'] => ({
    host: 'example.huaweicloud.com',
    'x-sdk-date': '20060102T150405Z',
    authorization: `SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=${sig}`,
  });

  it('Go SDK vector: GET /path?limit=1', () => {
    const sig = '5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624';
    assertOk(verifySignature(request('GET', '/path?limit=1', goHeaders(sig)), goLookup, goNow, undefined, noHost), 'AccessKey');
  });

  it('Go SDK vector: POST /path?key=value with a newline-terminated JSON body', () => {
    const sig = 'cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59';
    const req = request('POST', '/path?key=value', goHeaders(sig), '{"Name":"test","Id":1}\n');
    assertOk(verifySignature(req, goLookup, goNow, undefined, noHost), 'AccessKey');
    assertRejected(verifySignature(req, goLookup, goNow), /Host is not in SignedHeaders/);
    // The trailing newline is part of the hash: re-serialised JSON would not verify.
    assertRejected(verifySignature({ ...req, body: Buffer.from('{"Name":"test","Id":1}') }, goLookup, goNow, undefined, noHost), /signature mismatch/);
  });

  it('signRequest reproduces the Go SDK vectors', () => {
    const a = signRequest({ method: 'GET', rawPath: '/path', rawQuery: 'limit=1', accessKey: 'AccessKey', secretKey: 'SecretKey', date: goNow });
    assert.equal(a['X-Sdk-Date'], '20060102T150405Z');
    assert.equal(a['Authorization'], 'SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624');
    const b = signRequest({ method: 'POST', rawPath: '/path', rawQuery: 'key=value', body: '{"Name":"test","Id":1}\n', accessKey: 'AccessKey', secretKey: 'SecretKey', date: goNow });
    assert.match(b['Authorization']!, /Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59$/);
  });
});

describe('canonical request details', () => {
  const canon = (method: string, target: string, headers: SignedRequest['headers'] = { 'x-sdk-date': 'd' }, body = ''): string[] =>
    canonicalRequest(request(method, target, headers, body), Object.keys(headers)).split('\n');

  it('appends a trailing slash and re-encodes path segments', () => {
    assert.equal(canon('GET', '/v2/p/migration-tasks')[1], '/v2/p/migration-tasks/');
    assert.equal(canon('GET', '/')[1], '/');
    assert.equal(canon('GET', '/a/')[1], '/a/');
    // Lower-case escapes become upper-case, escaped unreserved characters are unescaped.
    assert.equal(canon('GET', '/a%2fb/%7Ex%41/caf%c3%a9')[1], '/a%2Fb/~xA/caf%C3%A9/');
    // Reserved characters sent raw are escaped; '+' in a path is a literal plus.
    assert.equal(canon('GET', "/a+b/c:d/e!'()*")[1], '/a%2Bb/c%3Ad/e%21%27%28%29%2A/');
  });

  it('sorts the query by decoded key then value and re-encodes it', () => {
    assert.equal(canon('GET', '/x?b=2&a=2&a=1&c')[2], 'a=1&a=2&b=2&c=');
    assert.equal(canon('GET', '/x?name=a+b%2fc&&empty=')[2], 'empty=&name=a%20b%2Fc');
    // Decoded order: '.' (0x2E) < '/' (0x2F), though encoded '%2F' would sort first.
    assert.equal(canon('GET', '/x?a%2F=1&a.=2')[2], 'a.=2&a%2F=1');
    assert.equal(canon('GET', '/x')[2], '');
  });

  it('emits signed headers in the given order, trimmed, repeated values sorted', () => {
    const lines = canon('GET', '/', { 'x-b': ['2', ' 1 '], 'x-a': '  v\t', 'x-sdk-date': 'd' });
    assert.deepEqual(lines.slice(3, 8), ['x-b:1', 'x-b:2', 'x-a:v', 'x-sdk-date:d', '']);
    assert.equal(lines[8], 'x-b;x-a;x-sdk-date');
    assert.equal(lines[9], sha256(''));
  });

  it('uses X-Sdk-Content-Sha256 verbatim as the payload hash', () => {
    const lines = canon('PUT', '/', { 'x-sdk-date': 'd', 'x-sdk-content-sha256': 'UNSIGNED-PAYLOAD' }, 'anything');
    assert.equal(lines.at(-1), 'UNSIGNED-PAYLOAD');
  });

  it('round-trips X-Sdk-Date and rejects impossible dates', () => {
    const d = new Date(Date.UTC(2024, 1, 29, 23, 59, 7));
    assert.equal(formatSdkDate(d), '20240229T235907Z');
    assert.equal(parseSdkDate('20240229T235907Z')?.getTime(), d.getTime());
    for (const bad of ['20230229T000000Z', '20241301T000000Z', '20240101T246000Z', '20240101T000000', '2024-01-01T00:00:00Z', '']) {
      assert.equal(parseSdkDate(bad), undefined, bad);
    }
  });
});

// ---------------------------------------------------------------------------------------------

interface Captured {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function toSigned(c: Captured): SignedRequest {
  return request(c.method, c.url, { ...c.headers }, c.body);
}

const AK = 'HPUAFERRYTESTAK00001';
const SK = 'Zq1Ferry0TestSecretKey0000000000000000000';
const PROJECT = '0123456789abcdef0123456789abcdef';
const registry = new CredentialRegistry([{ ak: AK, sk: SK, projectId: PROJECT }], []);
const lookup = (ak: string): string | undefined => registry.secretFor(ak);

describe('Node SDK (@huaweicloud/huaweicloud-sdk-core) as a real client', () => {
  let server: Server;
  let port = 0;
  const captured: Captured[] = [];
  let client: HcClient;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        captured.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    client = new ClientBuilder<HcClient>((h) => h)
      .withEndpoint(`http://127.0.0.1:${port}`)
      .withCredential(new BasicCredentials().withAk(AK).withSk(SK).withProjectId(PROJECT))
      // Without a custom user agent the SDK writes ~/.huaweicloud/application_id.
      .withOptions({ customUserAgent: 'ferry-test' })
      .build();

    await client.sendRequest({
      method: 'GET',
      url: '/v2/{project_id}/migration-tasks',
      contentType: 'application/json',
      queryParams: { offset: 0, limit: 10, name: 'a b/c' },
      pathParams: {},
      headers: {},
    });
    await client.sendRequest({
      method: 'POST',
      url: '/v2/{project_id}/migration-task',
      contentType: 'application/json',
      queryParams: {},
      pathParams: {},
      headers: {},
      data: { task_name: 'ferry é ✓', migration_type: 'online_migration', source_instance: { addrs: '10.0.0.1:6379', password: 'p@ss' } },
    });
    await client.sendRequest({
      method: 'DELETE',
      url: '/v2/{project_id}/migration-tasks/delete',
      contentType: 'application/json',
      queryParams: {},
      pathParams: {},
      headers: {},
      data: { migration_tasks: ['0f9e8d7c-6b5a-4321-9876-0123456789ab'] },
    });
    await client.sendRequest({
      method: 'POST',
      url: '/v2/{project_id}/migration-task/{task_id}/stop',
      contentType: 'application/json',
      queryParams: {},
      pathParams: { task_id: '0f9e8d7c-6b5a-4321-9876-0123456789ab' },
      headers: {},
    });
    // A non-JSON content type makes the SDK sign X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD.
    await client.sendRequest({
      method: 'POST',
      url: '/v2/{project_id}/migration-task/{task_id}/sync-stop',
      contentType: 'application/octet-stream',
      queryParams: {},
      pathParams: { task_id: '0f9e8d7c-6b5a-4321-9876-0123456789ab' },
      headers: {},
    });
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sent the requests as the reference describes', () => {
    assert.equal(captured.length, 5);
    const [get, post, del, stop, unsigned] = captured as [Captured, Captured, Captured, Captured, Captured];
    assert.equal(get.method, 'GET');
    assert.match(get.url, new RegExp(`^/v2/${PROJECT}/migration-tasks\\?`));
    assert.match(get.url, /name=a%20b%2Fc/);
    assert.equal(get.headers['host'], `127.0.0.1:${port}`);
    assert.equal(get.headers['x-project-id'], PROJECT);
    assert.match(get.headers['authorization'] ?? '', /SignedHeaders=content-type;host;x-project-id;x-sdk-date,/);
    assert.equal(post.method, 'POST');
    assert.ok(post.body.length > 0);
    assert.equal(del.method, 'DELETE');
    assert.deepEqual(JSON.parse(del.body.toString('utf8')), { migration_tasks: ['0f9e8d7c-6b5a-4321-9876-0123456789ab'] });
    assert.equal(stop.method, 'POST');
    assert.equal(stop.url, `/v2/${PROJECT}/migration-task/0f9e8d7c-6b5a-4321-9876-0123456789ab/stop`);
    assert.equal(stop.body.length, 0);
    assert.equal(unsigned.headers['x-sdk-content-sha256'], 'UNSIGNED-PAYLOAD');
    assert.match(unsigned.headers['authorization'] ?? '', /SignedHeaders=content-type;host;x-project-id;x-sdk-content-sha256;x-sdk-date,/);
  });

  it('verifySignature accepts every SDK request', () => {
    for (const c of captured) assertOk(verifySignature(toSigned(c), lookup), AK, `${c.method} ${c.url}`);
  });

  describe('tampering is rejected', () => {
    const post = (): SignedRequest => toSigned(captured[1]!);
    const get = (): SignedRequest => toSigned(captured[0]!);

    it('changed body byte', () => {
      const r = post();
      const body = Buffer.from(r.body);
      body[body.length - 2] ^= 1;
      const res = verifySignature({ ...r, body }, lookup);
      assertRejected(res, /^signature mismatch$/);
      // The mismatch carries the server's canonical request for debugging.
      assert.ok(!res.ok && res.canonicalRequest?.endsWith(sha256(body)));
    });

    it('changed query', () => {
      assertRejected(verifySignature({ ...get(), rawQuery: get().rawQuery.replace('limit=10', 'limit=11') }, lookup), /signature mismatch/);
      assertRejected(verifySignature({ ...get(), rawQuery: get().rawQuery + '&extra=1' }, lookup), /signature mismatch/);
      assertRejected(verifySignature({ ...get(), rawQuery: '' }, lookup), /signature mismatch/);
    });

    it('changed path', () => {
      assertRejected(verifySignature({ ...get(), rawPath: get().rawPath.replace('migration-tasks', 'migration-task') }, lookup), /signature mismatch/);
      assertRejected(verifySignature({ ...get(), rawPath: get().rawPath.replace(PROJECT, '0'.repeat(32)) }, lookup), /signature mismatch/);
    });

    it('changed method and signed header', () => {
      assertRejected(verifySignature({ ...post(), method: 'PUT' }, lookup), /signature mismatch/);
      assertRejected(verifySignature({ ...post(), headers: { ...post().headers, 'x-project-id': 'f'.repeat(32) } }, lookup), /signature mismatch/);
    });

    it('wrong SK', () => {
      assertRejected(verifySignature(post(), () => SK.slice(0, -1) + 'X'), /^signature mismatch$/);
    });

    it('unknown AK', () => {
      // The same answer as a wrong signature (which AKs exist is not told), the difference in `detail` for the log.
      const r = verifySignature(post(), () => undefined);
      assertRejected(r, /^signature mismatch$/);
      assert.equal(!r.ok && r.detail, 'unknown access key');
      const other = new CredentialRegistry([{ ak: 'SOMEONEELSE000000000', sk: SK, projectId: PROJECT }], []);
      assertRejected(verifySignature(post(), (ak) => other.secretFor(ak)), /^signature mismatch$/);
    });

    it('missing Host when it was signed', () => {
      const r = post();
      const headers = { ...r.headers };
      delete headers['host'];
      assertRejected(verifySignature({ ...r, headers }, lookup), /host.*missing/);
    });

    it('missing X-Sdk-Date', () => {
      const r = post();
      const headers = { ...r.headers };
      delete headers['x-sdk-date'];
      assertRejected(verifySignature({ ...r, headers }, lookup), /^missing X-Sdk-Date$/);
    });

    it('repeated Authorization or X-Sdk-Date', () => {
      const r = post();
      assertRejected(verifySignature({ ...r, headers: { ...r.headers, authorization: [String(r.headers['authorization']), 'x'] } }, lookup), /repeated/);
      assertRejected(verifySignature({ ...r, headers: { ...r.headers, 'x-sdk-date': [String(r.headers['x-sdk-date']), '20200101T000000Z'] } }, lookup), /repeated/);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('clock skew and X-Sdk-Date rules', () => {
  const now = new Date(Date.UTC(2025, 5, 1, 12, 0, 0));
  const signedAt = (offsetMs: number): SignedRequest => {
    const headers = { host: '127.0.0.1:1234', 'content-type': 'application/json' };
    const added = signRequest({ method: 'GET', rawPath: '/v2/p/migration-tasks', headers, accessKey: AK, secretKey: SK, date: new Date(now.getTime() + offsetMs) });
    return request('GET', '/v2/p/migration-tasks', lower({ ...headers, ...added }));
  };

  it('accepts up to 15 minutes either way', () => {
    assertOk(verifySignature(signedAt(0), lookup, now), AK);
    assertOk(verifySignature(signedAt(-15 * 60_000), lookup, now), AK);
    assertOk(verifySignature(signedAt(15 * 60_000), lookup, now), AK);
  });

  it('rejects a date 16 minutes old or 16 minutes in the future', () => {
    assertRejected(verifySignature(signedAt(-16 * 60_000), lookup, now), /^X-Sdk-Date is 16 minutes off the server clock/);
    assertRejected(verifySignature(signedAt(16 * 60_000), lookup, now), /^X-Sdk-Date is 16 minutes off the server clock/);
    assertRejected(verifySignature(signedAt(-20 * 60_000), lookup, now), /20 minutes off/);
  });

  it('honours a custom maxSkewMs', () => {
    assertRejected(verifySignature(signedAt(-61_000), lookup, now, 60_000), /off the server clock/);
    assertOk(verifySignature(signedAt(-59_000), lookup, now, 60_000), AK);
  });

  it('rejects a malformed X-Sdk-Date', () => {
    const r = signedAt(0);
    assertRejected(verifySignature({ ...r, headers: { ...r.headers, 'x-sdk-date': '2025-06-01T12:00:00Z' } }, lookup, now), /malformed X-Sdk-Date/);
  });

  it('rejects X-Sdk-Date that is sent but not signed', () => {
    const sdkDate = formatSdkDate(now);
    const base = request('GET', '/v2/p/migration-tasks', { host: '127.0.0.1:1234', 'x-sdk-date': sdkDate });
    // A correct signature over `host` only: everything but the date rule would accept it.
    const sig = hmac(SK, `SDK-HMAC-SHA256\n${sdkDate}\n${sha256(canonicalRequest(base, ['host']))}`);
    const r = { ...base, headers: { ...base.headers, authorization: `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host, Signature=${sig}` } };
    assertRejected(verifySignature(r, lookup, now), /^X-Sdk-Date is not in SignedHeaders$/);
  });
});

function lower(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

describe('X-Sdk-Content-Sha256', () => {
  const headers = { host: '127.0.0.1:1', 'content-type': 'application/octet-stream' };
  const body = Buffer.from([0, 1, 2, 255]);

  it('UNSIGNED-PAYLOAD verifies without covering the body, and cannot be stripped', () => {
    const added = signRequest({ method: 'PUT', rawPath: '/upload', headers, body, accessKey: AK, secretKey: SK, unsignedPayload: true });
    assert.equal(added['X-Sdk-Content-Sha256'], 'UNSIGNED-PAYLOAD');
    assert.match(added['Authorization']!, /SignedHeaders=content-type;host;x-sdk-content-sha256;x-sdk-date,/);
    const r = request('PUT', '/upload', lower({ ...headers, ...added }), body);
    assertOk(verifySignature(r, lookup), AK);
    // By design the body is not covered: the client opted out of payload signing.
    assertOk(verifySignature({ ...r, body: Buffer.from('other') }, lookup), AK);
    const stripped = { ...r.headers };
    delete stripped['x-sdk-content-sha256'];
    assertRejected(verifySignature({ ...r, headers: stripped }, lookup), /signed header "x-sdk-content-sha256" is missing|signature mismatch/);
    assertRejected(verifySignature({ ...r, headers: { ...r.headers, 'x-sdk-content-sha256': sha256(body) } }, lookup), /signature mismatch/);
  });

  it('a declared hex hash must match the body', () => {
    const withHash = { ...headers, 'x-sdk-content-sha256': sha256(body) };
    const added = signRequest({ method: 'PUT', rawPath: '/upload', headers: withHash, body, accessKey: AK, secretKey: SK });
    const r = request('PUT', '/upload', lower({ ...withHash, ...added }), body);
    assertOk(verifySignature(r, lookup), AK);
    assertRejected(verifySignature({ ...r, body: Buffer.from('swapped') }, lookup), /does not match the body/);
  });
});

describe('signRequest round trip', () => {
  it('verifies what it signs, across methods, encodings and bodies', () => {
    const cases: { method: string; target: string; body?: string }[] = [
      { method: 'GET', target: '/v2/p/migration-tasks?offset=0&limit=10&name=a%20b%2Fc' },
      { method: 'GET', target: '/v2/p/migration-tasks?status=MIGRATING&status=SUCCESS&z=' },
      { method: 'POST', target: '/v2/p/migration-task', body: '{"task_name":"ü"}' },
      { method: 'DELETE', target: '/v2/p/migration-tasks/delete', body: '{"migration_tasks":["x"]}' },
      { method: 'POST', target: '/v2/p/migration-task/abc/stop' },
      { method: 'GET', target: '/v2/p/caf%C3%A9/a~b' },
    ];
    for (const c of cases) {
      const q = c.target.indexOf('?');
      const rawPath = q < 0 ? c.target : c.target.slice(0, q);
      const rawQuery = q < 0 ? '' : c.target.slice(q + 1);
      const headers = { Host: 'localhost:7000', 'Content-Type': 'application/json', 'X-Project-Id': 'p' };
      const added = signRequest({ method: c.method, rawPath, rawQuery, headers, body: c.body, accessKey: AK, secretKey: SK });
      assert.match(added['Authorization']!, /SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature=[0-9a-f]{64}$/);
      const r = request(c.method, c.target, lower({ ...headers, ...added }), c.body ?? '');
      assertOk(verifySignature(r, lookup), AK, c.target);
      // The signature covers the encoded form the server sees, not a particular spelling of it.
      assertOk(verifySignature({ ...r, rawQuery: r.rawQuery.replace('%2F', '%2f') }, lookup), AK, c.target);
    }
  });

  it('works over a real local HTTP round trip', async () => {
    const got: Captured[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        got.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const body = '{"a":1}';
      const headers = { host: `127.0.0.1:${port}`, 'content-type': 'application/json' };
      const added = signRequest({ method: 'POST', rawPath: '/v2/p/migration-task', rawQuery: 'x=1', headers, body, accessKey: AK, secretKey: SK });
      const res = await fetch(`http://127.0.0.1:${port}/v2/p/migration-task?x=1`, { method: 'POST', headers: { ...headers, ...added }, body });
      await res.arrayBuffer();
      assert.equal(got.length, 1);
      assertOk(verifySignature(toSigned(got[0]!), lookup), AK);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('robustness: malformed input never throws', () => {
  const now = new Date(Date.UTC(2025, 0, 1, 0, 0, 0));
  const sdkDate = formatSdkDate(now);
  const goodHeaders = { host: 'h', 'x-sdk-date': sdkDate };
  const good = signRequest({ method: 'GET', rawPath: '/a', headers: goodHeaders, accessKey: AK, secretKey: SK, date: now })['Authorization']!;
  const sigOf = good.slice(good.indexOf('Signature=') + 'Signature='.length);

  it('rejects specific malformed Authorization values', () => {
    const bad = [
      '',
      'SDK-HMAC-SHA256',
      'Bearer abc',
      'SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=' + sigOf,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=, Signature=${sigOf}`,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host;x-sdk-date, Signature=${sigOf.slice(1)}`,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host;x-sdk-date, Signature=${sigOf}0`,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host;;x-sdk-date, Signature=${sigOf}`,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host;x-sdk-date;x-absent, Signature=${sigOf}`,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host;x-sdk-date;constructor, Signature=${sigOf}`,
      `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=__proto__;x-sdk-date, Signature=${sigOf}`,
      `SDK-HMAC-SHA256 Access=${AK} SignedHeaders=host;x-sdk-date Signature=${sigOf}`,
      `SDK-HMAC-SM3 Access=${AK}, SignedHeaders=host;x-sdk-date, Signature=${sigOf}`,
      `V11-HMAC-SHA256 Credential=${AK}/20250101/r/s, SignedHeaders=host;x-sdk-date, Signature=${sigOf}`,
    ];
    for (const a of bad) {
      const r = verifySignature(request('GET', '/a', { ...goodHeaders, authorization: a }), lookup, now);
      assert.equal(r.ok, false, a);
    }
    assertOk(verifySignature(request('GET', '/a', { ...goodHeaders, authorization: good }), lookup, now), AK);
  });

  it('fuzz: a few hundred random and mutated Authorization headers', () => {
    const rand = rng(0xfe22);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const alphabet = ['S', 'D', 'K', '-', '=', ',', ';', ' ', '\t', 'a', 'f', '0', '9', 'Access', 'SignedHeaders', 'Signature', 'SDK-HMAC-SHA256', '\u00e9', '\ud800', '%', '\u0000', 'host', 'x-sdk-date', '__proto__'];
    let checked = 0;
    for (let i = 0; i < 400; i++) {
      let a: string;
      if (i % 2 === 0) {
        a = '';
        const n = Math.floor(rand() * 12);
        for (let j = 0; j < n; j++) a += pick(alphabet);
      } else {
        // Mutations of the valid header: each one changes it, so each must fail.
        const chars = [...good];
        const pos = Math.floor(rand() * chars.length);
        const op = Math.floor(rand() * 3);
        if (op === 0) chars.splice(pos, 1);
        else if (op === 1) chars.splice(pos, 0, pick(alphabet));
        else chars[pos] = chars[pos] === 'a' ? 'b' : 'a';
        a = chars.join('');
        if (a === good) continue;
        // Whitespace variants the regex allows around commas, or case-only hex changes, stay valid.
        if (a.trim().replace(/\s+/g, ' ').replace(/,\s*/g, ', ').toLowerCase() === good.toLowerCase()) continue;
      }
      let r: VerifyResult | undefined;
      assert.doesNotThrow(() => {
        r = verifySignature(request('GET', '/a', { ...goodHeaders, authorization: a }), lookup, now);
      }, JSON.stringify(a));
      assert.equal(r?.ok, false, JSON.stringify(a));
      checked++;
    }
    assert.ok(checked > 300);
  });

  it('fuzz: weird paths, queries and header shapes', () => {
    const rand = rng(7);
    const frags = ['%', '%z', '%zz', '%e9', '%C3%A9', '%ff', '%00', '+', ' ', '\u00e9', '\ud83d', '\udc00', '/', '//', '?', '&', '=', '#', 'a', '..', '%2', ';'];
    const rs = (n: number): string => Array.from({ length: n }, () => frags[Math.floor(rand() * frags.length)]).join('');
    for (let i = 0; i < 300; i++) {
      const headers: SignedRequest['headers'] = { ...goodHeaders, authorization: good };
      if (i % 5 === 1) headers['host'] = undefined;
      if (i % 5 === 2) headers['host'] = [];
      if (i % 5 === 3) headers['x-sdk-date'] = [];
      if (i % 7 === 4) headers['authorization'] = [good, good];
      const req: SignedRequest = { method: i % 3 ? 'GET' : '', rawPath: '/' + rs(4), rawQuery: rs(5), headers, body: Buffer.from(rs(3)) };
      let r: VerifyResult | undefined;
      assert.doesNotThrow(() => {
        r = verifySignature(req, lookup, now);
      });
      assert.equal(r?.ok, false);
    }
    // Also a lookup that throws, and non-string junk where strings belong.
    const junk = { ...goodHeaders, authorization: good, 'x-sdk-date': 42 } as unknown as SignedRequest['headers'];
    assert.equal(verifySignature(request('GET', '/a', junk), lookup, now).ok, false);
    const throwing = (): string => {
      throw new Error(`boom ${SK}`);
    };
    const r = verifySignature(request('GET', '/a', { ...goodHeaders, authorization: good }), throwing, now);
    assert.ok(!r.ok && !r.reason.includes(SK));
  });

  it('reasons never contain the SK or the expected signature', () => {
    const base = request('GET', '/a', { ...goodHeaders });
    const expected = hmac(SK, `SDK-HMAC-SHA256\n${sdkDate}\n${sha256(canonicalRequest(base, ['host', 'x-sdk-date']))}`);
    const wrong = `SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=host;x-sdk-date, Signature=${'0'.repeat(64)}`;
    const results = [
      verifySignature({ ...base, headers: { ...base.headers, authorization: wrong } }, lookup, now),
      verifySignature({ ...base, rawPath: '/b', headers: { ...base.headers, authorization: good } }, lookup, now),
      verifySignature({ ...base, headers: { ...base.headers, authorization: good } }, lookup, new Date(now.getTime() + 3_600_000)),
    ];
    for (const r of results) {
      assert.equal(r.ok, false);
      const text = JSON.stringify(r);
      assert.ok(!text.includes(SK), text);
      assert.ok(!text.includes(expected), text);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('CredentialRegistry', () => {
  const reg = new CredentialRegistry(
    [
      { ak: 'AK1', sk: 'sk1', projectId: 'p1' },
      { ak: 'AK2', sk: 'sk2', projectId: 'p2' },
    ],
    [
      { token: 'tok-one', projectId: 'p1' },
      { token: 'tok-two-longer', projectId: 'p2' },
    ],
  );

  it('looks up secrets and projects', () => {
    assert.equal(reg.secretFor('AK1'), 'sk1');
    assert.equal(reg.secretFor('AK3'), undefined);
    assert.equal(reg.secretFor('__proto__'), undefined);
    assert.equal(reg.projectOfAk('AK2'), 'p2');
    assert.equal(reg.projectOfAk('ak2'), undefined);
    assert.equal(reg.projectOfToken('tok-one'), 'p1');
    assert.equal(reg.projectOfToken('tok-two-longer'), 'p2');
    assert.equal(reg.projectOfToken('tok-on'), undefined);
    assert.equal(reg.projectOfToken(''), undefined);
    assert.equal(reg.isEmpty, false);
    assert.equal(new CredentialRegistry([], []).isEmpty, true);
    assert.equal(new CredentialRegistry([], [{ token: 't', projectId: 'p' }]).isEmpty, false);
  });

  it('refuses duplicate access keys', () => {
    assert.throws(() => new CredentialRegistry([{ ak: 'A', sk: 'x', projectId: 'p' }, { ak: 'A', sk: 'y', projectId: 'p' }], []), /duplicate access key A/);
  });
});

describe('loadOrCreateGeneratedCredential', () => {
  it('creates a 0600 file once and reloads it afterwards', () => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-cred-'));
    try {
      const dataDir = join(root, 'nested', 'data');
      const first = loadOrCreateGeneratedCredential(dataDir);
      assert.equal(first.created, true);
      assert.match(first.credential.ak, /^[A-Z0-9]{20}$/);
      assert.equal(first.credential.sk.length, 40);
      assert.match(first.credential.sk, /^[A-Za-z0-9]{40}$/);
      assert.match(first.credential.projectId, /^[0-9a-f]{32}$/);

      const file = join(dataDir, GENERATED_CREDENTIALS_FILE);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const onDisk = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      assert.equal(onDisk['ak'], first.credential.ak);
      assert.deepEqual(readdirSync(dataDir), [GENERATED_CREDENTIALS_FILE], 'no temp files left behind');

      const second = loadOrCreateGeneratedCredential(dataDir);
      assert.equal(second.created, false);
      assert.deepEqual(second.credential, first.credential);

      // The generated credential works end to end.
      const reg = new CredentialRegistry([second.credential], []);
      const added = signRequest({ method: 'GET', rawPath: '/x', headers: { host: 'h' }, accessKey: second.credential.ak, secretKey: second.credential.sk });
      assertOk(verifySignature(request('GET', '/x', lower({ host: 'h', ...added })), (ak) => reg.secretFor(ak)), second.credential.ak);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses a corrupt file without echoing its content', () => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-cred-'));
    try {
      writeFileSync(join(root, GENERATED_CREDENTIALS_FILE), '{"ak":"AK","sk":"hunter2-secret","projectId":"nothex"}', { mode: 0o600 });
      assert.throws(
        () => loadOrCreateGeneratedCredential(root),
        (err: unknown) => err instanceof Error && /projectId/.test(err.message) && !err.message.includes('hunter2'),
      );
      writeFileSync(join(root, GENERATED_CREDENTIALS_FILE), '{"sk": "hunter2-secret", ', { mode: 0o600 });
      assert.throws(
        () => loadOrCreateGeneratedCredential(root),
        (err: unknown) => err instanceof Error && /not valid JSON/.test(err.message) && !err.message.includes('hunter2'),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
