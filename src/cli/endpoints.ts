import type { Command } from 'commander';
import { parseAddressList, type Endpoint, type EndpointTls } from '../common/endpoint.js';
import { resolvePassword } from './passwords.js';

export type Role = 'source' | 'target';

/** The options every command that talks to a deployment takes for it (`--source-…`, `--target-…`). */
export interface RoleOptions {
  user?: string;
  password?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServername?: string;
  tlsInsecure?: boolean;
  sentinelUser?: string;
  sentinelPassword?: string;
}


/** Declares the login, TLS and Sentinel options of one side on a command. */
export function addRoleOptions(cmd: Command, role: Role): Command {
  const env = `FERRY_${role.toUpperCase()}`;
  return cmd
    .option(`--${role}-user <user>`, `ACL user on the ${role}`)
    .option(`--${role}-password <password>`, `${role} password (visible in ps: prefer --${role}-password-file or ${env}_PASSWORD)`)
    .option(`--${role}-password-file <file>`, `read the ${role} password from this file`)
    .option(`--${role}-tls-ca <file>`, `TLS: PEM CA bundle that signs the ${role}'s certificate (turns TLS on; rediss:// does too)`)
    .option(`--${role}-tls-cert <file>`, `TLS: PEM client certificate for the ${role} (mutual TLS)`)
    .option(`--${role}-tls-key <file>`, `TLS: PEM key of the client certificate`)
    .option(`--${role}-tls-servername <name>`, `TLS: server name for SNI and the certificate check`)
    .option(`--${role}-tls-insecure`, `TLS without verifying the ${role}'s certificate (warned about; for tests only)`)
    .option(`--${role}-sentinel-user <user>`, `sentinel:// ${role}: Sentinel's own ACL user`)
    .option(`--${role}-sentinel-password <password>`, `sentinel:// ${role}: Sentinel's own password (or ${env}_SENTINEL_PASSWORD)`);
}

/** The RoleOptions of `role` out of commander's flat option object. */
export function roleOptions(options: object, role: Role): RoleOptions {
  const opts = options as Record<string, unknown>;
  const p = role;
  const get = (name: string): string | undefined => {
    const v = opts[`${p}${name}`];
    return typeof v === 'string' ? v : undefined;
  };
  const env = `FERRY_${role.toUpperCase()}`;
  return {
    user: get('User'),
    password: resolvePassword(role, { password: get('Password'), passwordFile: get('PasswordFile') }),
    tlsCa: get('TlsCa'),
    tlsCert: get('TlsCert'),
    tlsKey: get('TlsKey'),
    tlsServername: get('TlsServername'),
    tlsInsecure: opts[`${p}TlsInsecure`] === true,
    sentinelUser: get('SentinelUser'),
    sentinelPassword: get('SentinelPassword') ?? process.env[`${env}_SENTINEL_PASSWORD`],
  };
}

/** The TLS settings the options ask for, or undefined when they name none. */
export function tlsFrom(o: RoleOptions, role: Role): EndpointTls | undefined {
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
    throw new Error(`--${role}-tls-cert and --${role}-tls-key go together (a client certificate and its key)`);
  }
  const tls: EndpointTls = {};
  if (o.tlsCa !== undefined) tls.caFile = o.tlsCa;
  if (o.tlsCert !== undefined) tls.certFile = o.tlsCert;
  if (o.tlsKey !== undefined) tls.keyFile = o.tlsKey;
  if (o.tlsServername !== undefined) tls.servername = o.tlsServername;
  if (o.tlsInsecure) tls.insecure = true;
  return Object.keys(tls).length > 0 ? tls : undefined;
}

/**
 * The endpoints of one side. Warns once on stderr when certificate checks are off: the flag is
 * explicit, but a forgotten one in a script should not go unnoticed.
 */
export function endpointsFor(addrs: string, o: RoleOptions, role: Role): Endpoint[] {
  const tls = tlsFrom(o, role);
  const list = parseAddressList(addrs, {
    user: o.user,
    password: o.password,
    ...(tls ? { tls } : {}),
    sentinelUser: o.sentinelUser,
    sentinelPassword: o.sentinelPassword,
  });
  if (list.some((e) => e.tls?.insecure)) {
    process.stderr.write(`ferry: warning: TLS certificate verification is OFF for the ${role} (--${role}-tls-insecure): anyone on the path can read and change the data\n`);
  }
  return list;
}
