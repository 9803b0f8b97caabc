/**
 * Huawei Cloud `SDK-HMAC-SHA256` request signing (the AK/SK scheme every Huawei Cloud SDK uses by
 * default), verifier and signer. Pure functions over a framework-neutral request shape so the API
 * layer, the CLI and tests can share them. Algorithm: docs reference dcs-api.md §5.2.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** A request exactly as it came off the wire; nothing may be normalised before verification. */
export interface SignedRequest {
  method: string;
  /** Path only, as received (still percent-encoded), no query. */
  rawPath: string;
  /** Everything after `?`, as received; `''` when there is none. */
  rawQuery: string;
  /** Lower-case names, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** Raw body bytes as received. */
  body: Buffer;
}

export type VerifyResult =
  | { ok: true; accessKey: string }
  | {
      ok: false;
      /**
       * Human-readable and safe to return to the client: never contains the SK or the expected
       * signature, and is the same for an unknown access key as for a wrong signature (an
       * attacker must not learn which AKs exist).
       */
      reason: string;
      /** For the server's log only: what `reason` deliberately does not tell (unknown access key). */
      detail?: string;
      /** Present on a signature mismatch so a client author can diff it against their own. */
      canonicalRequest?: string;
    };

export const SIGNING_ALGORITHM = 'SDK-HMAC-SHA256';
/** The gateway tolerance for X-Sdk-Date (dcs-api.md §5.1). */
export const DEFAULT_MAX_SKEW_MS = 15 * 60 * 1000;
const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const AUTH_RE = /^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]{64})$/;
const DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
/** RFC 7230 token characters: anything else cannot be a header name the client actually sent. */
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Input the canonicaliser cannot make sense of (bad percent-encoding, absent signed header...). */
export class SignatureFormatError extends Error {
  override name = 'SignatureFormatError';
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers

const HEX = '0123456789ABCDEF';

/** RFC 3986 unreserved characters are the only bytes every SDK leaves unescaped. */
function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f || // _
    b === 0x7e // ~
  );
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/**
 * Percent-decodes to raw bytes rather than to a string: a segment may decode to bytes that are not
 * valid UTF-8, and round-tripping through a JS string would silently replace them and change the
 * canonical form. `plusIsSpace` follows form encoding, which is what Go's url.Values (Go SDK) sends.
 */
function percentDecode(text: string, plusIsSpace: boolean, what: string): Buffer {
  // Characters outside %XX are taken as UTF-8, the same bytes an SDK would have escaped.
  const src = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x25 /* % */) {
      const hi = i + 1 < src.length ? hexValue(src[i + 1]!) : -1;
      const lo = i + 2 < src.length ? hexValue(src[i + 2]!) : -1;
      if (hi < 0 || lo < 0) throw new SignatureFormatError(`malformed percent-encoding in ${what}`);
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c === 0x2b /* + */ && plusIsSpace) {
      out[n++] = 0x20;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

/** Re-encodes bytes the way all SDKs do: unreserved kept, everything else `%XX` upper-case. */
function percentEncode(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    out += isUnreserved(b) ? String.fromCharCode(b) : '%' + HEX[b >> 4]! + HEX[b & 15]!;
  }
  return out;
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Trims only ASCII whitespace: matches Go's strings.TrimSpace on the bytes HTTP headers can hold. */
function trimHeaderValue(v: string): string {
  return v.replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '');
}

// ---------------------------------------------------------------------------------------------
// Canonical request

function canonicalUri(rawPath: string): string {
  const segments = rawPath.split('/').map((seg) => percentEncode(percentDecode(seg, false, 'path')));
  const uri = segments.join('/');
  // Every SDK signs the path with a trailing slash, whether or not it sends one.
  return uri.endsWith('/') ? uri : uri + '/';
}

function canonicalQuery(rawQuery: string): string {
  if (rawQuery === '') return '';
  const pairs: { key: Buffer; value: Buffer }[] = [];
  for (const part of rawQuery.split('&')) {
    // `a&&b` or a trailing `&` carry no parameter; Go's url.ParseQuery skips them the same way.
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    pairs.push({ key: percentDecode(k, true, 'query'), value: percentDecode(v, true, 'query') });
  }
  // The SDKs sort the decoded keys (then values), not the encoded forms; the two orders differ
  // when escaped characters are involved ('/' > '.' but '%2F' < '.').
  pairs.sort((a, b) => Buffer.compare(a.key, b.key) || Buffer.compare(a.value, b.value));
  return pairs.map((p) => `${percentEncode(p.key)}=${percentEncode(p.value)}`).join('&');
}

function canonicalHeaders(headers: SignedRequest['headers'], signedHeaders: string[]): string {
  let out = '';
  for (const name of signedHeaders) {
    const raw = headers[name.toLowerCase()];
    if (raw === undefined) throw new SignatureFormatError(`signed header "${name}" is missing from the request`);
    // Repeated headers are signed one line per value, values sorted (Go and Python signers).
    const values = Array.isArray(raw) ? [...raw].sort() : [raw];
    if (values.length === 0) throw new SignatureFormatError(`signed header "${name}" is missing from the request`);
    for (const v of values) out += `${name}:${trimHeaderValue(v)}\n`;
  }
  return out;
}

function payloadHash(req: SignedRequest): string {
  const declared = singleHeader(req.headers, 'x-sdk-content-sha256');
  if (declared !== undefined) return declared;
  return req.body.length === 0 ? EMPTY_BODY_SHA256 : sha256Hex(req.body);
}

/**
 * The canonical request the signature covers (dcs-api.md §5.2 step 6). Exported for tests and so
 * a mismatch can show the client what the server signed. Throws SignatureFormatError on input it
 * cannot canonicalise (bad percent-encoding, a signed header missing, repeated X-Sdk-Content-Sha256).
 */
export function canonicalRequest(req: SignedRequest, signedHeaders: string[]): string {
  return [
    req.method,
    canonicalUri(req.rawPath),
    canonicalQuery(req.rawQuery),
    // Already ends in '\n', so joining leaves the empty line the algorithm expects.
    canonicalHeaders(req.headers, signedHeaders),
    signedHeaders.join(';'),
    payloadHash(req),
  ].join('\n');
}

function stringToSign(sdkDate: string, canonical: string): string {
  return `${SIGNING_ALGORITHM}\n${sdkDate}\n${sha256Hex(canonical)}`;
}

function hmacHex(secret: string, data: string): string {
  return createHmac('sha256', secret).update(data).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Verification

/** A header that must occur once; a repeated one is ambiguous and refused. */
function singleHeader(headers: SignedRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) {
    if (v.length === 1 && typeof v[0] === 'string') return v[0];
    throw new SignatureFormatError(`header ${name} is repeated`);
  }
  if (typeof v !== 'string') throw new SignatureFormatError(`header ${name} is malformed`);
  return v;
}

/** Parses `YYYYMMDDTHHMMSSZ` (UTC); rejects impossible dates such as month 13 rather than rolling over. */
export function parseSdkDate(text: string): Date | undefined {
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const dt = new Date(ms);
  if (
    dt.getUTCFullYear() !== y ||
    dt.getUTCMonth() !== mo - 1 ||
    dt.getUTCDate() !== d ||
    dt.getUTCHours() !== h ||
    dt.getUTCMinutes() !== mi ||
    dt.getUTCSeconds() !== s
  ) {
    return undefined;
  }
  return dt;
}

/** Formats a date as X-Sdk-Date wants it: `YYYYMMDDTHHMMSSZ` in UTC. */
export function formatSdkDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

function fail(reason: string, canonical?: string): VerifyResult {
  return canonical === undefined ? { ok: false, reason } : { ok: false, reason, canonicalRequest: canonical };
}

/** The one answer for a wrong signature and for an access key nobody has. */
export const SIGNATURE_MISMATCH = 'signature mismatch';

export interface VerifyOptions {
  /**
   * Require `host` among the signed headers (default true): without it a signature made for one
   * server is valid on any other that shares the credential. Current SDKs (Node, Python, Go
   * since it added Host to what it signs) all sign it.
   */
  requireSignedHost?: boolean;
}

/**
 * Verifies an `SDK-HMAC-SHA256` signed request. Never throws: anything malformed is a refusal
 * with a reason that is safe to send back (no secret, no expected signature).
 */
export function verifySignature(
  req: SignedRequest,
  lookupSecret: (accessKey: string) => string | undefined,
  now: Date = new Date(),
  maxSkewMs: number = DEFAULT_MAX_SKEW_MS,
  options: VerifyOptions = {},
): VerifyResult {
  try {
    return verifyUnchecked(req, lookupSecret, now, maxSkewMs, options.requireSignedHost ?? true);
  } catch (err) {
    // Only our own format errors have messages known to be free of request-derived secrets.
    if (err instanceof SignatureFormatError) return fail(err.message);
    return fail('malformed signed request');
  }
}

function verifyUnchecked(
  req: SignedRequest,
  lookupSecret: (accessKey: string) => string | undefined,
  now: Date,
  maxSkewMs: number,
  requireSignedHost: boolean,
): VerifyResult {
  const auth = singleHeader(req.headers, 'authorization');
  if (auth === undefined) return fail('missing Authorization header');
  const m = AUTH_RE.exec(auth.trim());
  if (!m) {
    return fail(
      auth.trim().startsWith(SIGNING_ALGORITHM)
        ? 'malformed Authorization header: expected "SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2>, Signature=<64 hex>"'
        : `unsupported Authorization scheme: only ${SIGNING_ALGORITHM} is accepted`,
    );
  }
  const accessKey = m[1]!;
  const signedHeadersText = m[2]!;
  const signature = m[3]!.toLowerCase();

  const signedHeaders = signedHeadersText.split(';');
  if (!signedHeaders.every((h) => HEADER_NAME_RE.test(h))) {
    return fail('malformed SignedHeaders in Authorization header');
  }

  const sdkDate = singleHeader(req.headers, 'x-sdk-date');
  if (sdkDate === undefined) return fail('missing X-Sdk-Date');
  const date = parseSdkDate(sdkDate.trim());
  if (!date) return fail('malformed X-Sdk-Date: expected YYYYMMDDTHHMMSSZ (UTC)');
  // Without it signed, a captured request could be replayed forever under a fresh date.
  if (!signedHeaders.some((h) => h.toLowerCase() === 'x-sdk-date')) return fail('X-Sdk-Date is not in SignedHeaders');
  const skew = date.getTime() - now.getTime();
  if (!Number.isFinite(skew) || Math.abs(skew) > maxSkewMs) {
    const minutes = Math.round(Math.abs(skew) / 60_000);
    return fail(
      `X-Sdk-Date is ${minutes} minutes off the server clock (${skew > 0 ? 'ahead' : 'behind'}; allowed ±${Math.round(maxSkewMs / 60_000)})`,
    );
  }
  if (requireSignedHost && !signedHeaders.some((h) => h.toLowerCase() === 'host')) {
    return fail('Host is not in SignedHeaders: sign the host header (a signature without it is valid on any server)');
  }

  // A declared body hash that is a real hash must be the hash of this body; otherwise the body
  // could be swapped under a valid signature. UNSIGNED-PAYLOAD is the client's explicit opt-out.
  const declared = singleHeader(req.headers, 'x-sdk-content-sha256');
  if (declared !== undefined && /^[0-9a-fA-F]{64}$/.test(declared) && declared.toLowerCase() !== sha256Hex(req.body)) {
    return fail('X-Sdk-Content-Sha256 does not match the body');
  }

  const canonical = canonicalRequest(req, signedHeaders);
  // Every check above is independent of the access key, so their answers tell nothing about
  // which keys exist; from here an unknown key and a wrong signature get the same answer,
  // after the same work.
  const secret = lookupSecret(accessKey);
  const known = secret !== undefined && secret !== '';
  const expected = Buffer.from(hmacHex(known ? secret : 'no such access key', stringToSign(sdkDate.trim(), canonical)), 'latin1');
  const given = Buffer.from(signature, 'latin1');
  // Both are 64 hex chars (the regex guarantees it), so timingSafeEqual's equal-length rule holds.
  const equal = expected.length === given.length && timingSafeEqual(expected, given);
  if (!known) return { ok: false, reason: SIGNATURE_MISMATCH, detail: 'unknown access key' };
  if (!equal) return { ok: false, reason: SIGNATURE_MISMATCH, detail: 'signature mismatch', canonicalRequest: canonical };
  return { ok: true, accessKey };
}

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignOptions {
  method: string;
  /** Path as it will be sent (already percent-encoded where needed), no query. */
  rawPath: string;
  /** Query as it will be sent, without `?`; `''` or omitted when none. */
  rawQuery?: string;
  /** Headers that will be sent and should be signed, e.g. host, content-type, x-project-id. */
  headers?: Record<string, string>;
  body?: Buffer | string;
  accessKey: string;
  secretKey: string;
  /** Signing time; defaults to now. */
  date?: Date;
  /** Sign `UNSIGNED-PAYLOAD` instead of the body hash (adds X-Sdk-Content-Sha256). */
  unsignedPayload?: boolean;
}

/**
 * Signs a request the way the Node SDK does: every given header plus X-Sdk-Date is signed, names
 * lower-cased and sorted. Returns only the headers to add (X-Sdk-Date, Authorization and, for
 * unsignedPayload, X-Sdk-Content-Sha256); the caller must still send every header it passed in.
 */
export function signRequest(opts: SignOptions): Record<string, string> {
  const sdkDate = formatSdkDate(opts.date ?? new Date());
  const added: Record<string, string> = { 'X-Sdk-Date': sdkDate };
  if (opts.unsignedPayload) added['X-Sdk-Content-Sha256'] = 'UNSIGNED-PAYLOAD';

  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  for (const [k, v] of Object.entries(added)) headers[k.toLowerCase()] = v;
  // Authorization cannot sign itself; drop it if a caller passes a stale one.
  delete headers['authorization'];
  const signedHeaders = Object.keys(headers).sort();

  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body, 'utf8');
  const canonical = canonicalRequest(
    { method: opts.method.toUpperCase(), rawPath: opts.rawPath, rawQuery: opts.rawQuery ?? '', headers, body },
    signedHeaders,
  );
  const signature = hmacHex(opts.secretKey, stringToSign(sdkDate, canonical));
  added['Authorization'] =
    `${SIGNING_ALGORITHM} Access=${opts.accessKey}, SignedHeaders=${signedHeaders.join(';')}, Signature=${signature}`;
  return added;
}
