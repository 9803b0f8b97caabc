/**
 * Which Redis servers (and object stores) the service may reach on behalf of a task. Ferry holds
 * credentials to production databases and writes (or FLUSHes) wherever a task points it, so a
 * multi-tenant service must not let one project aim it at a server it does not own.
 *
 *   any         every address (a single-tenant service; the CLI)
 *   allow       only addresses matching the `allow` rules (CIDR, optional ports)
 *   registered  only the addresses of instances registered in the config for the task's own
 *               project (and the configured object store); `allow` rules add to them (e.g. a
 *               cluster's subnet, for nodes the registration does not list)
 *
 * Decisions are taken on IP addresses after DNS resolution, at every connection (a reconnect
 * resolves again), and the socket then connects to the very address that was checked, so a
 * name that resolves differently the second time cannot slip past.
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import dns from 'node:dns/promises';
import net from 'node:net';

export type AddressPolicyMode = 'any' | 'allow' | 'registered';

/** A CIDR with an optional port range: `127.0.0.0/8`, `127.0.0.1/32:6379`, `[::1]/128:7000-7999`. */
export interface AllowRule {
  text: string;
  family: 'ipv4' | 'ipv6';
  network: string;
  prefix: number;
  ports: readonly [number, number] | null;
}

/**
 * The policy in a form that crosses the worker IPC channel (plain strings): `allow` rules and
 * `registered` `host:port` addresses.
 */
export interface AddressPolicySpec {
  mode: AddressPolicyMode;
  allow: string[];
  registered: string[];
}

export interface AddressPolicy {
  readonly mode: AddressPolicyMode;
  readonly rules: readonly AllowRule[];
  /** `host:port` of what is registered (hosts may be names: resolved at each check). */
  readonly registered: readonly { host: string; port: number }[];
  readonly spec: AddressPolicySpec;
}

/** A connection the policy refuses; the message names the address, never a credential. */
export class AddressPolicyError extends Error {
  override readonly name = 'AddressPolicyError';
}

export const ANY_POLICY: AddressPolicy = { mode: 'any', rules: [], registered: [], spec: { mode: 'any', allow: [], registered: [] } };

/** Parses one allow rule; throws with the rule named. */
export function parseAllowRule(text: string): AllowRule {
  const bad = (why: string): never => {
    throw new Error(`invalid address rule "${text}": ${why} (expected CIDR[:port[-port]], e.g. 127.0.0.0/8:6379-6400 or [::1]/128)`);
  };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)|([0-9a-fA-F:.]+))(?:\/(\d{1,3}))?(?::(\d{1,5})(?:-(\d{1,5}))?)?$/.exec(text.trim());
  if (!m) return bad('unrecognised form');
  // "::1:6379" is itself an IPv6 address: a bare IPv6 rule must say its prefix, and a port
  // needs brackets ([::1]:6379, [::1]/128:6379).
  if (m[3] !== undefined && m[4] === undefined) return bad('write IPv6 in brackets or with a prefix ([::1], ::1/128)');
  const network = (m[1] ?? m[2] ?? m[3])!;
  const kind = net.isIP(network);
  if (kind === 0) return bad('not an IP address');
  const family = kind === 4 ? 'ipv4' : 'ipv6';
  const max = kind === 4 ? 32 : 128;
  const prefix = m[4] === undefined ? max : Number(m[4]);
  if (prefix > max) bad(`prefix /${prefix} is too long`);
  let ports: [number, number] | null = null;
  if (m[5] !== undefined) {
    const lo = Number(m[5]);
    const hi = m[6] === undefined ? lo : Number(m[6]);
    if (lo < 1 || hi > 65535 || lo > hi) bad('bad port range');
    ports = [lo, hi];
  }
  return { text, family, network, prefix, ports };
}

function splitHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`invalid address "${text}": expected host:port`);
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}

export function makeAddressPolicy(spec: AddressPolicySpec): AddressPolicy {
  if (spec.mode === 'any') return ANY_POLICY;
  return {
    mode: spec.mode,
    rules: spec.allow.map(parseAllowRule),
    registered: spec.registered.map(splitHostPort),
    spec: { mode: spec.mode, allow: [...spec.allow], registered: [...spec.registered] },
  };
}

/** `::ffff:127.0.0.1` is 127.0.0.1: rules are written for what the address means. */
function normalizeIp(ip: string): { ip: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return { ip: mapped[1]!, family: 'ipv4' };
  return { ip, family: net.isIP(ip) === 4 ? 'ipv4' : 'ipv6' };
}

function ruleMatches(rule: AllowRule, ip: string, port: number): boolean {
  const n = normalizeIp(ip);
  if (n.family !== rule.family) return false;
  if (rule.ports && (port < rule.ports[0] || port > rule.ports[1])) return false;
  const list = new net.BlockList();
  list.addSubnet(rule.network, rule.prefix, rule.family);
  return list.check(n.ip, n.family);
}

async function addressesOf(host: string): Promise<string[]> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (net.isIP(bare)) return [bare];
  try {
    return (await dns.lookup(bare, { all: true, verbatim: true })).map((a) => a.address);
  } catch (e) {
    throw new AddressPolicyError(`${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? 'lookup failed'})`);
  }
}

function sameIp(a: string, b: string): boolean {
  const x = normalizeIp(a);
  const y = normalizeIp(b);
  if (x.family !== y.family) return false;
  if (x.family === 'ipv4') return x.ip === y.ip;
  // Compare IPv6 by value, not spelling (::1 vs 0:0:0:0:0:0:0:1).
  const list = new net.BlockList();
  list.addAddress(x.ip, 'ipv6');
  return list.check(y.ip, 'ipv6');
}

async function isRegistered(policy: AddressPolicy, ip: string, port: number): Promise<boolean> {
  for (const r of policy.registered) {
    if (r.port !== port) continue;
    let ips: string[];
    try {
      ips = await addressesOf(r.host);
    } catch {
      continue; // a registered name that does not resolve now allows nothing
    }
    if (ips.some((x) => sameIp(x, ip))) return true;
  }
  return false;
}

/** Whether this resolved IP and port may be reached. */
export async function ipAllowed(policy: AddressPolicy, ip: string, port: number): Promise<boolean> {
  if (policy.mode === 'any') return true;
  if (policy.rules.some((r) => ruleMatches(r, ip, port))) return true;
  return policy.mode === 'registered' && isRegistered(policy, ip, port);
}

function describe(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The IP to connect to for `host:port`: the first address it resolves to that the policy allows.
 * Throws AddressPolicyError when none is. With the `any` policy the host is returned as it is
 * (resolution stays with the socket, as without a policy).
 */
export async function resolveAllowed(policy: AddressPolicy, host: string, port: number): Promise<string> {
  if (policy.mode === 'any') return host;
  const ips = await addressesOf(host);
  for (const ip of ips) if (await ipAllowed(policy, ip, port)) return ip;
  const bare = host.replace(/^\[|\]$/g, '');
  const resolved = net.isIP(bare) ? '' : ` (resolves to ${ips.join(', ')})`;
  throw new AddressPolicyError(`${describe(bare, port)}${resolved} is not allowed by the service's address policy (${policy.mode})`);
}

/**
 * A `lookup` for Node's sockets (http agents: the S3 client) that resolves like dns.lookup but
 * only hands out addresses the policy allows for `port`.
 */
export function policyLookup(policy: AddressPolicy, port: number): net.LookupFunction {
  return ((hostname: string, options: LookupOptions | number | undefined, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const all = typeof options === 'object' && options !== null && options.all === true;
    // Under `any` this is plain resolution (the first address), like the default lookup.
    const pick = policy.mode === 'any' ? addressesOf(hostname).then((ips) => ips[0]!) : resolveAllowed(policy, hostname, port);
    pick.then(
      (ip) => {
        const family = net.isIP(ip) === 6 ? 6 : 4;
        if (all) callback(null, [{ address: ip, family }]);
        else callback(null, ip, family);
      },
      (e: Error) => callback(Object.assign(e, { code: 'EPOLICY' }), ''),
    );
  }) as unknown as net.LookupFunction;
}

// ---------------------------------------------------------------------------------------------
// The policy of this process: set once by the service (or a worker at start), read by dial().

let current: AddressPolicy = ANY_POLICY;

export function setAddressPolicy(policy: AddressPolicy | AddressPolicySpec): void {
  current = 'rules' in policy ? policy : makeAddressPolicy(policy);
}

export function addressPolicy(): AddressPolicy {
  return current;
}

/** Parses `host:port` and checks it (the API's early check of the addresses a task names). */
export async function checkAddress(policy: AddressPolicy, address: string): Promise<void> {
  const { host, port } = splitHostPort(address);
  await resolveAllowed(policy, host, port);
}

/** The port of an http(s) URL (the default one when none is written). */
export function urlPort(url: string): number {
  const u = new URL(url);
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
}

/**
 * Checks an http(s) endpoint (the object store) before it is used. Sockets to an IP literal
 * skip `lookup`, so this check, not policyLookup, is what covers them.
 */
export async function checkUrl(policy: AddressPolicy, url: string): Promise<void> {
  const u = new URL(url);
  await resolveAllowed(policy, u.hostname.replace(/^\[|\]$/g, ''), urlPort(url)).catch((e: Error) => {
    throw new AddressPolicyError(`object store ${u.host}: ${e.message}`);
  });
}
