import http from 'node:http';
import net from 'node:net';
import { signRequest } from '../../src/api/auth/signature.js';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A raw HTTP request, for what the SDK will not send (bad JSON, stale dates, no auth, replays). */
export function rawRequest(port: number, method: string, urlPath: string, body: Buffer | string | null, headers: Record<string, string>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const length = body === null ? {} : { 'content-length': String(Buffer.byteLength(body)) };
    // agent: false, a connection per request: a refused body must not poison the next request.
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: { ...length, ...headers }, agent: false }, (res) => {
      let data = '';
      res.on('data', (d: Buffer) => (data += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    });
    // A server may answer a too-large body and close before the upload ends (EPIPE on our
    // side): the answer still arrives, so wait a moment for it before giving up.
    req.on('error', (e) => setTimeout(() => reject(e), 1000));
    if (body !== null) req.write(body);
    req.end();
  });
}

/**
 * Sends a request over a bare socket and reads until the server closes: for bodies the server
 * refuses before reading them (413), where Node's client reports EPIPE instead of the answer,
 * and for request lines Node's client would not send (bad percent-encoding).
 */
export function socketRequest(port: number, method: string, urlPath: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; body: string; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('error', () => undefined); // EPIPE/ECONNRESET once the server has answered
    socket.on('close', () => {
      const answer = data.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
      const status = Number(/^HTTP\/1\.1 (\d{3})/m.exec(answer)?.[1] ?? 0);
      if (!status) return reject(new Error(`no HTTP answer: ${data.slice(0, 200)}`));
      const split = answer.indexOf('\r\n\r\n');
      resolve({ status, head: answer.slice(0, split), body: answer.slice(split + 4) });
    });
    // Expect: 100-continue lets the server refuse before the upload; sending the body anyway
    // would make the server's close a reset that can swallow its answer.
    const expect = body.length > 0 ? ['expect: 100-continue'] : [];
    const head = [`${method} ${urlPath} HTTP/1.1`, `content-length: ${body.length}`, 'connection: close', ...expect, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    socket.write(`${head}\r\n\r\n`);
    socket.once('data', (d: Buffer) => {
      if (d.toString('latin1').startsWith('HTTP/1.1 100')) socket.write(body);
    });
  });
}

/** Headers of a request signed the way the SDK signs (host, content-type, x-project-id, x-sdk-date). */
export function signedHeaders(
  port: number,
  method: string,
  urlPath: string,
  body: Buffer,
  credential: { ak: string; sk: string; projectId: string },
  opts: { date?: Date; sk?: string; withoutHost?: boolean } = {},
): Record<string, string> {
  const [rawPath, rawQuery = ''] = urlPath.split('?');
  const signed: Record<string, string> = { host: `127.0.0.1:${port}`, 'content-type': 'application/json', 'x-project-id': credential.projectId };
  if (opts.withoutHost) delete signed.host;
  const added = signRequest({ method, rawPath: rawPath!, rawQuery, headers: signed, body, accessKey: credential.ak, secretKey: opts.sk ?? credential.sk, date: opts.date ?? new Date() });
  return { ...signed, ...added };
}
