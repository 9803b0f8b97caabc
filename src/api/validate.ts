import type { EndpointTls } from '../common/endpoint.js';
import { Errors } from './errors.js';

/**
 * Hand-written checks of DCS request bodies: each failure names the field the way DCS does
 * (DCS.4800 "Invalid <field> in the request.").
 */
export type JsonObject = Record<string, unknown>;

export const MIGRATION_METHODS = ['full_amount_migration', 'incremental_migration'] as const;
export const RESUME_MODES = ['auto', 'manual'] as const;
export const MIGRATION_TYPES = ['backupfile_import', 'online_migration'] as const;
export const LOG_LEVELS = ['INFO', 'WARN', 'ERROR', 'DEBUG'] as const;

/** Parses a raw body as a JSON object (DCS.4004 when empty, DCS.4005 when not JSON). */
export function parseJsonObject(body: Buffer | undefined, { allowEmpty = false } = {}): JsonObject {
  const text = body?.toString('utf8').trim() ?? '';
  if (text === '') {
    if (allowEmpty) return {};
    throw Errors.emptyBody();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw Errors.invalidJson();
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw Errors.invalidJson();
  return value as JsonObject;
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

export function optionalString(obj: JsonObject, field: string, { max = 1024, path = field } = {}): string | null {
  const v = obj[field];
  if (!present(v)) return null;
  if (typeof v !== 'string') throw Errors.invalidParameter(path, 'It must be a string.');
  if (v.length > max) throw Errors.invalidParameter(path, `It must be at most ${max} characters.`);
  return v;
}

export function requiredString(obj: JsonObject, field: string, { max = 1024, path = field } = {}): string {
  const v = optionalString(obj, field, { max, path });
  if (v === null || v.trim() === '') throw Errors.invalidParameter(path, 'It is required.');
  return v;
}

export function requiredEnum<T extends string>(obj: JsonObject, field: string, values: readonly T[], path = field): T {
  const v = obj[field];
  if (!present(v)) throw Errors.invalidParameter(path, 'It is required.');
  if (typeof v !== 'string' || !values.includes(v as T)) throw Errors.invalidValue(path, `Allowed values: ${values.join(', ')}.`);
  return v as T;
}

export function optionalEnum<T extends string>(obj: JsonObject, field: string, values: readonly T[]): T | null {
  return present(obj[field]) ? requiredEnum(obj, field, values) : null;
}

/** bandwidth_limit_mb: an integer 1-10240, given as a number or a numeric string. */
export function optionalBandwidth(obj: JsonObject, field = 'bandwidth_limit_mb'): number | null {
  const v = obj[field];
  if (!present(v) || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 10240) throw Errors.invalidParameter(field, 'It must be an integer from 1 to 10240 (MB/s).');
  return n;
}

export function requiredObject(obj: JsonObject, field: string): JsonObject {
  const v = obj[field];
  if (!present(v)) throw Errors.invalidParameter(field, 'It is required.');
  if (typeof v !== 'object' || Array.isArray(v)) throw Errors.invalidParameter(field, 'It must be an object.');
  return v as JsonObject;
}

export function requiredStringArray(obj: JsonObject, field: string, { max = 1000 } = {}): string[] {
  const v = obj[field];
  if (!present(v)) throw Errors.invalidParameter(field, 'It is required.');
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw Errors.invalidParameter(field, 'It must be an array of strings.');
  if (v.length > max) throw Errors.invalidParameter(field, `At most ${max} entries are allowed.`);
  return v as string[];
}

const ADDR = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const SENTINEL = /^sentinel:\/\/((?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}(?:,(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5})*)\/[A-Za-z0-9._-]{1,128}$/;

/** `host:port[,host:port...]` as DCS takes it, or (an extension) `sentinel://h:p[,h:p]/master-name`. */
export function validateAddrs(addrs: string, path: string): string {
  if (/^sentinel:/i.test(addrs.trim())) {
    const text = addrs.trim();
    if (!SENTINEL.test(text)) throw Errors.invalidParameter(path, 'Expected sentinel://host:port[,host:port...]/master-name (Sentinel\'s password goes in sentinel_password).');
    return text;
  }
  const parts = addrs.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.length > 64 || parts.some((p) => !ADDR.test(p) || Number(p.slice(p.lastIndexOf(':') + 1)) > 65535 || Number(p.slice(p.lastIndexOf(':') + 1)) < 1)) {
    throw Errors.invalidParameter(path, 'Expected host:port[,host:port...].');
  }
  return parts.join(',');
}

/** What an endpoint body gives beyond DCS's fields (Ferry's extensions): TLS and Sentinel's password. */
export interface EndpointExtensions {
  tls: EndpointTls | null;
  sentinelPassword: string | null;
}

/**
 * `tls` (an extension): `{ "ca_file", "cert_file", "key_file", "servername", "insecure" }`, files
 * on the service's host, or `true` for TLS with the system's CAs.
 */
export function endpointTls(e: JsonObject, field: string): EndpointTls | null {
  const v = e.tls;
  if (!present(v) || v === false) return null;
  if (v === true) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw Errors.invalidParameter(`${field}.tls`, 'It must be an object (ca_file, cert_file, key_file, servername, insecure) or true.');
  const o = v as JsonObject;
  const tls: EndpointTls = {};
  const file = (name: string): string | null => optionalString(o, name, { max: 4096, path: `${field}.tls.${name}` });
  const ca = file('ca_file');
  const cert = file('cert_file');
  const key = file('key_file');
  const servername = optionalString(o, 'servername', { max: 255, path: `${field}.tls.servername` });
  if (ca) tls.caFile = ca;
  if (cert) tls.certFile = cert;
  if (key) tls.keyFile = key;
  if (servername) tls.servername = servername;
  if (!cert !== !key) throw Errors.invalidParameter(`${field}.tls`, 'cert_file and key_file go together.');
  if (present(o.insecure)) {
    if (typeof o.insecure !== 'boolean') throw Errors.invalidParameter(`${field}.tls.insecure`, 'It must be a boolean.');
    if (o.insecure) tls.insecure = true;
  }
  return tls;
}

/** `source_instance` / `target_instance`: exactly one of `id` and `addrs`, and an optional password. */
export function endpointBody(obj: JsonObject, field: string): { id: string | null; addrs: string | null; password: string | null } & EndpointExtensions {
  const e = requiredObject(obj, field);
  const tls = endpointTls(e, field);
  const sentinelPassword = optionalString(e, 'sentinel_password', { max: 1024, path: `${field}.sentinel_password` });
  const id = optionalString(e, 'id', { max: 64, path: `${field}.id` });
  const addrsText = optionalString(e, 'addrs', { max: 4096, path: `${field}.addrs` });
  const password = optionalString(e, 'password', { max: 1024, path: `${field}.password` });
  const hasId = id !== null && id !== '';
  const hasAddrs = addrsText !== null && addrsText !== '';
  if (hasId === hasAddrs) throw Errors.invalidParameter(field, hasId ? 'Give either id or addrs, not both.' : 'Give id or addrs.');
  return { id: hasId ? id : null, addrs: hasAddrs ? validateAddrs(addrsText, `${field}.addrs`) : null, password: password === '' ? null : password, tls, sentinelPassword: sentinelPassword === '' ? null : sentinelPassword };
}

/** Integer query parameters (`offset`, `limit`) with DCS.4800 naming the parameter. */
export function queryInt(query: Record<string, unknown>, name: string, { min, max, fallback }: { min: number; max: number; fallback: number }): number {
  const v = query[name];
  if (v === undefined || v === '') return fallback;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw Errors.invalidParameter(name);
  const n = Number(v);
  if (n < min || n > max) throw Errors.invalidParameter(name, `It must be from ${min} to ${max}.`);
  return n;
}
