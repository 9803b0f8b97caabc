/**
 * A small client of Ferry's API (the `ferry tasks` CLI, the tests): requests signed with the
 * project's one SDK-HMAC-SHA256 signer (./auth/signature.ts) the way Huawei Cloud's SDKs sign
 * them (host, content-type, x-project-id, x-sdk-date), or sent with an X-Auth-Token.
 */
import { randomUUID } from 'node:crypto';
import { signRequest } from './auth/signature.js';

export type ClientCredential = { ak: string; sk: string; projectId: string } | { token: string; projectId: string };

/** A DCS error answer (status ≥ 400), or a transport failure (status 0). */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  requestId: string | null;
}

/** `?a=1&b=x` with the keys sorted: the signature's canonical query wants them so, and so the URL does too. */
function queryOf(query: Record<string, string | number | undefined> | undefined): string {
  if (!query) return '';
  return Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
}

export class FerryClient {
  private readonly base: URL;

  constructor(
    endpoint: string,
    private readonly credential: ClientCredential,
    private readonly timeoutMs = 30_000,
  ) {
    this.base = new URL(endpoint);
  }

  get projectId(): string {
    return this.credential.projectId;
  }

  /** `path` may hold `{project_id}`; an answer ≥ 400 throws ApiCallError with the DCS code. */
  async call<T = Record<string, unknown>>(method: string, path: string, opts: { body?: unknown; query?: Record<string, string | number | undefined> } = {}): Promise<ApiResponse<T>> {
    const body = opts.body === undefined ? '' : JSON.stringify(opts.body);
    const res = await this.send(method, path, body, opts.query);
    const text = await res.text();
    let parsed: unknown = {};
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { text };
      }
    }
    if (res.status >= 400) {
      const e = parsed as { error_code?: string; error_msg?: string };
      throw new ApiCallError(res.status, e.error_code ?? String(res.status), e.error_msg ?? (text.slice(0, 200) || res.statusText));
    }
    return { status: res.status, body: parsed as T, requestId: res.headers.get('x-request-id') };
  }

  /** A text answer (GET /metrics). */
  async text(path: string): Promise<string> {
    const res = await this.send('GET', path, '');
    const text = await res.text();
    if (res.status >= 400) throw new ApiCallError(res.status, String(res.status), text.slice(0, 200));
    return text;
  }

  /** Signs (or adds the token to) one request and sends it; a transport failure is ApiCallError status 0. */
  private async send(method: string, path: string, body: string, query?: Record<string, string | number | undefined>): Promise<Response> {
    const rawPath = path.replace('{project_id}', encodeURIComponent(this.credential.projectId));
    const rawQuery = queryOf(query);
    // A signed nonce: two identical calls within one second would otherwise carry the same
    // signature, and the server refuses the second one as a replay.
    const headers: Record<string, string> = { host: this.base.host, 'content-type': 'application/json', 'x-project-id': this.credential.projectId, 'x-ferry-nonce': randomUUID() };
    if ('token' in this.credential) headers['x-auth-token'] = this.credential.token;
    else Object.assign(headers, signRequest({ method, rawPath, rawQuery, headers, body, accessKey: this.credential.ak, secretKey: this.credential.sk }));
    const url = new URL(rawPath + (rawQuery ? `?${rawQuery}` : ''), this.base);
    try {
      return await fetch(url, { method, headers, body: body === '' ? undefined : body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiCallError(0, cause?.code ?? 'NETWORK', `cannot reach ${this.base.origin}: ${cause?.message ?? (e as Error).message}`);
    }
  }
}
