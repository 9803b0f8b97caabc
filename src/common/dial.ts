import net from 'node:net';
import { AddressPolicyError, addressPolicy, resolveAllowed } from './address-policy.js';

/** Where to open a socket: the address part of an Endpoint. */
export interface DialTarget {
  host: string;
  port: number;
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

/**
 * Opens the socket of every connection Ferry makes to a Redis server (replica links, target
 * writers, probes, verification): the one place where the transport is chosen, so that what
 * applies to every connection (TLS, which addresses may be reached) is decided once.
 */
export async function dial(target: DialTarget, options: DialOptions): Promise<net.Socket> {
  // The address policy (src/common/address-policy.ts): resolved and checked at every dial, and
  // the socket goes to the very IP that was checked.
  const host = await resolveAllowed(addressPolicy(), target.host, target.port).catch((e: Error) => {
    throw new DialError(e instanceof AddressPolicyError ? e.message : `address check failed: ${e.message}`);
  });
  return new Promise<net.Socket>((resolve, reject) => {
    // net.Socket passes stream options through to Duplex; @types/node just does not list them.
    const connectOpts: net.TcpNetConnectOpts & { writableHighWaterMark?: number } = { host, port: target.port };
    if (options.writableHighWaterMark !== undefined) connectOpts.writableHighWaterMark = options.writableHighWaterMark;
    const socket = net.connect(connectOpts);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DialError(`timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new DialError(e.code ?? e.message));
    });
    socket.once('connect', () => {
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
