import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { AddressPolicyError, addressPolicy, resolveAllowed } from './address-policy.js';
import type { EndpointTls } from './endpoint.js';

/** Where to open a socket: the address part of an Endpoint, and its TLS settings. */
export interface DialTarget {
  host: string;
  port: number;
  /** Present: the socket speaks TLS (see EndpointTls). */
  tls?: EndpointTls;
}

export interface DialOptions {
  /** Gives up (and destroys the socket) when the connection is not up after this long. */
  timeoutMs: number;
  /** Passed to the socket: a pipelined writer wants more than Node's 16 KB before 'drain'. */
  writableHighWaterMark?: number;
}

/** Why a socket could not be opened: the errno code (ECONNREFUSED...) or "timed out after N ms". */
export class DialError extends Error {
  override readonly name = 'DialError';
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new DialError(`TLS: cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Node's options for a TLS endpoint (files read now, so a renewed certificate is used). `ip` is
 * where the socket goes (the address the policy checked); the certificate is checked against
 * the name the user gave.
 */
function tlsOptions(target: DialTarget, ip: string, settings: EndpointTls): tls.ConnectionOptions {
  const o: tls.ConnectionOptions = { host: ip, port: target.port, rejectUnauthorized: settings.insecure !== true };
  if (settings.caFile) o.ca = readPem(settings.caFile, 'CA');
  if (settings.certFile) o.cert = readPem(settings.certFile, 'client certificate');
  if (settings.keyFile) o.key = readPem(settings.keyFile, 'client key');
  // SNI takes names only; for an IP address the certificate is checked against its IP SANs.
  const servername = settings.servername ?? (net.isIP(target.host) ? undefined : target.host);
  if (servername !== undefined) o.servername = servername;
  return o;
}

const CERT_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

/**
 * A socket error in words, with TLS failures named as such (a bare OpenSSL code tells a user
 * little): used for errors while connecting and for ones on an open socket (with TLS 1.3 a
 * server that refuses our client certificate says so only after the handshake).
 */
export function socketErrorReason(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const detail = e.message.replace(/^error:[0-9A-F]+:SSL routines:[^:]*:/i, '').replace(/\s+/g, ' ').trim();
  if (CERT_UNTRUSTED.has(code)) return `TLS: the server's certificate is not trusted (${detail}; give the CA that signed it)`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `TLS: the server's certificate is not valid now (${detail})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `TLS: the server's certificate does not name this host (${detail}; set the TLS server name)`;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return 'TLS: the server does not speak TLS on this port (a plain port?)';
  if (/CERTIFICATE_REQUIRED|SSLV3_ALERT_BAD_CERTIFICATE|ALERT_UNKNOWN_CA|HANDSHAKE_FAILURE|ALERT_CERTIFICATE/i.test(code)) {
    return `TLS: the server refused the handshake (${code}): it wants a client certificate it trusts`;
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO') return `TLS: ${code}: ${detail}`;
  return code !== '' ? code : e.message;
}

/**
 * Opens the socket of every connection Ferry makes to a Redis server (replica links, target
 * writers, probes, verification): the one place where the transport is chosen, so that what
 * applies to every connection (TLS, which addresses may be reached) is decided once.
 * With TLS it resolves once the handshake is done and the certificate verified.
 */
export async function dial(target: DialTarget, options: DialOptions): Promise<net.Socket> {
  // The address policy (src/common/address-policy.ts): resolved and checked at every dial, and
  // the socket goes to the very IP that was checked.
  const ip = await resolveAllowed(addressPolicy(), target.host, target.port).catch((e: Error) => {
    throw new DialError(e instanceof AddressPolicyError ? e.message : `address check failed: ${e.message}`);
  });
  return new Promise<net.Socket>((resolve, reject) => {
    // net.Socket passes stream options through to Duplex; @types/node just does not list them.
    const connectOpts: net.TcpNetConnectOpts & { writableHighWaterMark?: number } = { host: ip, port: target.port };
    if (options.writableHighWaterMark !== undefined) connectOpts.writableHighWaterMark = options.writableHighWaterMark;
    let socket: net.Socket;
    try {
      socket = target.tls ? tls.connect({ ...connectOpts, ...tlsOptions(target, ip, target.tls) }) : net.connect(connectOpts);
    } catch (e) {
      reject(e instanceof DialError ? e : new DialError(socketErrorReason(e)));
      return;
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DialError(`${target.tls ? 'TLS handshake ' : ''}timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new DialError(socketErrorReason(e)));
    });
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      // Idle phases (a long snapshot on another connection) must not let NATs or firewalls
      // silently drop a connection.
      socket.setKeepAlive(true, 10_000);
      resolve(socket);
    });
  });
}
