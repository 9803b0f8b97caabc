import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { AkSkCredential, TokenCredential } from '../api/auth/credentials.js';
import type { RegisteredInstance } from '../api/instances.js';
import { parseAllowRule, type AddressPolicyMode } from '../common/address-policy.js';
import type { TaskSwitchHook } from '../tasks/model.js';

/** What `ferry serve --config FILE` reads (JSON or YAML). */
export interface ServiceConfig {
  akSk: AkSkCredential[];
  tokens: TokenCredential[];
  instances: RegisteredInstance[];
  /**
   * Backup import: bucket name → local directory (the embedded default object store). A Map:
   * bucket names come from API users, and "constructor" or "__proto__" must find nothing.
   */
  buckets: Map<string, string>;
  /** Backup import from an S3-compatible store (OBS, MinIO, AWS S3). */
  objectStore: { endpoint?: string; region?: string; accessKeyId?: string; secretAccessKey?: string; forcePathStyle?: boolean } | null;
  /** Backup import by `backup_id`: <backupsDir>/<backup_id>/. */
  backupsDir: string | null;
  /**
   * Which addresses tasks may reach. Null: the default, `registered` when the credentials
   * belong to more than one project, else `any` (with a warning at start).
   */
  addressPolicy: { mode: AddressPolicyMode; allow: string[] } | null;
  /** Requests per access key (or per client IP before authentication) in each window. */
  rateLimit: { max: number; timeWindowMs: number };
  /** resume_mode auto: a task that has never connected fails after this long. */
  firstConnectTimeoutSeconds: number;
  /** Refuse AK/SK signatures that do not cover the Host header (old Go SDKs did not sign it). */
  requireSignedHost: boolean;
  /**
   * Cutover (ExchangeInstanceIp / RollbackExchangeInstanceIp): the hook of tasks that name
   * none, the commands a task may name as its hook (a command runs on this host, so the API
   * takes only these), and the limits of the switch.
   */
  cutover: { hook: TaskSwitchHook | null; allowedHookCommands: string[]; pauseTimeoutSeconds: number; drainTimeoutSeconds: number };
  /** Scrapers may read GET /metrics (every project) with `Authorization: Bearer <metricsToken>`. */
  metricsToken: string | null;
  /**
   * Where tasks live: the embedded SQLite file in the data dir (one node), or PostgreSQL
   * (`"store": {"postgres": "postgres://...", "schema": "..."}` or FERRY_DATABASE_URL), which
   * several nodes share.
   */
  store: { kind: 'sqlite' } | { kind: 'postgres'; url: string; schema?: string };
  /**
   * This node among several: its id (default: kept in the data dir), how many task leases it
   * takes at most, and how long a lease lasts without a heartbeat.
   */
  node: { id: string | null; capacity: number; leaseMs: number };
  /** The key sealing stored passwords, when not `<dataDir>/secret.key`: nodes sharing a database share it. */
  secretKeyFile: string | null;
}

export const DEFAULT_CUTOVER = { pauseTimeoutSeconds: 5, drainTimeoutSeconds: 10 };

/** A switch hook in the config: {"command": "/abs/path", "args": [...], "timeoutSeconds": N} or {"url": "http(s)://...", "timeoutSeconds": N}. */
function hookOf(file: string, where: string, v: unknown): TaskSwitchHook | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) fail(file, `${where} must be {"command": "/path"} or {"url": "http://..."}`);
  const o = v as Record<string, unknown>;
  const timeoutSeconds = o.timeoutSeconds === undefined ? undefined : positiveInt(file, `${where}.timeoutSeconds`, o.timeoutSeconds, 10);
  if (typeof o.command === 'string') {
    if (!path.isAbsolute(o.command)) fail(file, `${where}.command must be an absolute path (it runs without a shell)`);
    if (o.args !== undefined && (!Array.isArray(o.args) || o.args.some((a) => typeof a !== 'string'))) fail(file, `${where}.args must be an array of strings`);
    return { command: o.command, ...(o.args ? { args: o.args as string[] } : {}), ...(timeoutSeconds ? { timeoutSeconds } : {}) };
  }
  if (typeof o.url === 'string') {
    if (!/^https?:\/\//i.test(o.url)) fail(file, `${where}.url must be an http:// or https:// URL`);
    return { url: o.url, ...(timeoutSeconds ? { timeoutSeconds } : {}) };
  }
  fail(file, `${where} needs "command" or "url"`);
}

export const DEFAULT_LEASE_SECONDS = 15;
export const DEFAULT_NODE_CAPACITY = 64;

function storeOf(file: string, v: unknown): ServiceConfig['store'] | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) fail(file, '"store" must be {"postgres": "postgres://user@host:port/db"} (or absent: SQLite)');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'postgres' && k !== 'schema') fail(file, `store.${k}: unknown (expected "postgres", "schema")`);
  const url = stringField(file, 'store', o, 'postgres')!;
  if (!/^postgres(ql)?:\/\//.test(url)) fail(file, 'store.postgres must be a postgres:// URL');
  const schema = stringField(file, 'store', o, 'schema', false);
  if (schema !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) fail(file, 'store.schema: letters, digits and _ only');
  return { kind: 'postgres', url, ...(schema ? { schema } : {}) };
}

function nodeOf(file: string, v: unknown): ServiceConfig['node'] {
  const out: ServiceConfig['node'] = { id: null, capacity: DEFAULT_NODE_CAPACITY, leaseMs: DEFAULT_LEASE_SECONDS * 1000 };
  if (v === undefined || v === null) return out;
  if (typeof v !== 'object' || Array.isArray(v)) fail(file, '"node" must be {"id": ..., "capacity": N, "leaseSeconds": S}');
  const o = v as Record<string, unknown>;
  const id = stringField(file, 'node', o, 'id', false);
  if (id !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(id)) fail(file, 'node.id: 1 to 64 of A-Z a-z 0-9 . _ -');
  if (id) out.id = id;
  out.capacity = positiveInt(file, 'node.capacity', o.capacity, DEFAULT_NODE_CAPACITY);
  if (o.leaseSeconds !== undefined && o.leaseSeconds !== null) {
    if (typeof o.leaseSeconds !== 'number' || !(o.leaseSeconds >= 1) || o.leaseSeconds > 3600) fail(file, 'node.leaseSeconds must be a number from 1 to 3600');
    out.leaseMs = Math.round(o.leaseSeconds * 1000);
  }
  return out;
}

export const DEFAULT_RATE_LIMIT = { max: 600, timeWindowMs: 60_000 };
export const DEFAULT_FIRST_CONNECT_TIMEOUT_SECONDS = 300;

function positiveInt(file: string, where: string, v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(file, `${where} must be a positive integer`);
  return v;
}

function addressPolicyOf(file: string, v: unknown): ServiceConfig['addressPolicy'] {
  if (v === undefined || v === null) return null;
  const modes: AddressPolicyMode[] = ['any', 'allow', 'registered'];
  const o = typeof v === 'string' ? { mode: v } : v;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(file, '"addressPolicy" must be "any", "registered", or {"mode": ..., "allow": [CIDR[:ports], ...]}');
  const { mode, allow } = o as { mode?: unknown; allow?: unknown };
  const m = mode ?? (allow !== undefined ? 'allow' : undefined);
  if (typeof m !== 'string' || !modes.includes(m as AddressPolicyMode)) fail(file, `addressPolicy.mode must be one of ${modes.join(', ')}`);
  if (allow !== undefined && (!Array.isArray(allow) || allow.some((r) => typeof r !== 'string'))) fail(file, 'addressPolicy.allow must be an array of "CIDR[:port[-port]]" strings');
  const rules = (allow ?? []) as string[];
  for (const r of rules) {
    try {
      parseAllowRule(r);
    } catch (e) {
      fail(file, `addressPolicy.allow: ${(e as Error).message}`);
    }
  }
  if (m === 'allow' && rules.length === 0) fail(file, 'addressPolicy "allow" needs at least one rule in "allow"');
  return { mode: m as AddressPolicyMode, allow: rules };
}

function fail(file: string, what: string): never {
  throw new Error(`config ${file}: ${what}`);
}

function stringField(file: string, where: string, o: Record<string, unknown>, name: string, required = true): string | undefined {
  const v = o[name];
  if (v === undefined || v === null) {
    if (required) fail(file, `${where}: "${name}" is required`);
    return undefined;
  }
  if (typeof v !== 'string' || v === '') fail(file, `${where}: "${name}" must be a non-empty string`);
  return v;
}

/**
 * A registered instance's TLS settings (`tls`: true, or { caFile, certFile, keyFile, servername,
 * insecure }; relative paths are taken from the config file's folder) and Sentinel's own
 * password (`sentinelPassword`). Ferry's extensions.
 */
function instanceExtensions(file: string, where: string, o: Record<string, unknown>): Pick<RegisteredInstance, 'tls' | 'sentinelPassword'> {
  const out: Pick<RegisteredInstance, 'tls' | 'sentinelPassword'> = {};
  const sentinelPassword = stringField(file, where, o, 'sentinelPassword', false);
  if (sentinelPassword !== undefined) out.sentinelPassword = sentinelPassword;
  const t = o.tls;
  if (t === undefined || t === null || t === false) return out;
  if (t === true) return { ...out, tls: {} };
  if (typeof t !== 'object' || Array.isArray(t)) fail(file, `${where}.tls must be true or an object`);
  const tlsObj = t as Record<string, unknown>;
  const resolved = (name: string): string | undefined => {
    const v = stringField(file, `${where}.tls`, tlsObj, name, false);
    return v === undefined ? undefined : path.resolve(path.dirname(file), v);
  };
  const tls: NonNullable<RegisteredInstance['tls']> = {};
  const caFile = resolved('caFile');
  const certFile = resolved('certFile');
  const keyFile = resolved('keyFile');
  const servername = stringField(file, `${where}.tls`, tlsObj, 'servername', false);
  if (caFile) tls.caFile = caFile;
  if (certFile) tls.certFile = certFile;
  if (keyFile) tls.keyFile = keyFile;
  if (servername) tls.servername = servername;
  if (!certFile !== !keyFile) fail(file, `${where}.tls: certFile and keyFile go together`);
  if (tlsObj.insecure !== undefined && typeof tlsObj.insecure !== 'boolean') fail(file, `${where}.tls.insecure must be a boolean`);
  if (tlsObj.insecure === true) tls.insecure = true;
  return { ...out, tls };
}

/**
 * Loads the configuration file, then adds a credential from FERRY_AK / FERRY_SK /
 * FERRY_PROJECT_ID when those are set. Errors name the file and the entry, never a secret.
 */
export function loadServiceConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  const config: ServiceConfig = {
    akSk: [],
    tokens: [],
    instances: [],
    buckets: new Map(),
    objectStore: null,
    backupsDir: null,
    addressPolicy: null,
    rateLimit: { ...DEFAULT_RATE_LIMIT },
    firstConnectTimeoutSeconds: DEFAULT_FIRST_CONNECT_TIMEOUT_SECONDS,
    requireSignedHost: true,
    cutover: { hook: null, allowedHookCommands: [], ...DEFAULT_CUTOVER },
    metricsToken: null,
    store: { kind: 'sqlite' },
    node: nodeOf('', undefined),
    secretKeyFile: null,
  };
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
    } catch (e) {
      fail(file, `not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(file, 'the top level must be an object');
    const top = raw as Record<string, unknown>;
    const credentials = top.credentials ?? [];
    if (!Array.isArray(credentials)) fail(file, '"credentials" must be an array');
    credentials.forEach((c: unknown, i) => {
      const where = `credentials[${i}]`;
      if (c === null || typeof c !== 'object') fail(file, `${where} must be an object`);
      const o = c as Record<string, unknown>;
      const projectId = stringField(file, where, o, 'projectId')!;
      if (o.token !== undefined) config.tokens.push({ token: stringField(file, where, o, 'token')!, projectId });
      else config.akSk.push({ ak: stringField(file, where, o, 'ak')!, sk: stringField(file, where, o, 'sk')!, projectId });
    });
    const instances = top.instances ?? [];
    if (!Array.isArray(instances)) fail(file, '"instances" must be an array');
    instances.forEach((c: unknown, i) => {
      const where = `instances[${i}]`;
      if (c === null || typeof c !== 'object') fail(file, `${where} must be an object`);
      const o = c as Record<string, unknown>;
      config.instances.push({
        id: stringField(file, where, o, 'id')!,
        projectId: stringField(file, where, o, 'projectId')!,
        name: stringField(file, where, o, 'name', false) ?? '',
        addrs: stringField(file, where, o, 'addrs')!,
        password: stringField(file, where, o, 'password', false),
        ...instanceExtensions(file, where, o),
      });
    });
    const buckets = top.buckets ?? {};
    if (buckets === null || typeof buckets !== 'object' || Array.isArray(buckets)) fail(file, '"buckets" must be an object of bucket name to directory');
    for (const [name, dir] of Object.entries(buckets as Record<string, unknown>)) {
      if (typeof dir !== 'string' || dir === '') fail(file, `buckets.${name} must be a directory path`);
      config.buckets.set(name, path.resolve(path.dirname(file), dir));
    }
    if (top.objectStore !== undefined && top.objectStore !== null) {
      const o = top.objectStore as Record<string, unknown>;
      if (typeof o !== 'object') fail(file, '"objectStore" must be an object');
      config.objectStore = {
        endpoint: stringField(file, 'objectStore', o, 'endpoint', false),
        region: stringField(file, 'objectStore', o, 'region', false) ?? 'us-east-1',
        accessKeyId: stringField(file, 'objectStore', o, 'accessKeyId', false),
        secretAccessKey: stringField(file, 'objectStore', o, 'secretAccessKey', false),
        forcePathStyle: o.forcePathStyle === undefined ? true : o.forcePathStyle === true,
      };
    }
    const backups = stringField(file, 'config', top, 'backupsDir', false);
    if (backups) config.backupsDir = path.resolve(path.dirname(file), backups);
    config.addressPolicy = addressPolicyOf(file, top.addressPolicy);
    if (top.rateLimit !== undefined && top.rateLimit !== null) {
      const r = top.rateLimit as Record<string, unknown>;
      if (typeof r !== 'object') fail(file, '"rateLimit" must be {"max": N, "timeWindowMs": MS}');
      config.rateLimit = { max: positiveInt(file, 'rateLimit.max', r.max, DEFAULT_RATE_LIMIT.max), timeWindowMs: positiveInt(file, 'rateLimit.timeWindowMs', r.timeWindowMs, DEFAULT_RATE_LIMIT.timeWindowMs) };
    }
    config.firstConnectTimeoutSeconds = positiveInt(file, 'firstConnectTimeoutSeconds', top.firstConnectTimeoutSeconds, DEFAULT_FIRST_CONNECT_TIMEOUT_SECONDS);
    if (top.cutover !== undefined && top.cutover !== null) {
      const c = top.cutover as Record<string, unknown>;
      if (typeof c !== 'object' || Array.isArray(c)) fail(file, '"cutover" must be an object');
      const allowed = c.allowedHookCommands ?? [];
      if (!Array.isArray(allowed) || allowed.some((a) => typeof a !== 'string' || !path.isAbsolute(a))) fail(file, 'cutover.allowedHookCommands must be an array of absolute paths');
      config.cutover = {
        hook: hookOf(file, 'cutover.hook', c.hook),
        allowedHookCommands: allowed as string[],
        pauseTimeoutSeconds: positiveInt(file, 'cutover.pauseTimeoutSeconds', c.pauseTimeoutSeconds, DEFAULT_CUTOVER.pauseTimeoutSeconds),
        drainTimeoutSeconds: positiveInt(file, 'cutover.drainTimeoutSeconds', c.drainTimeoutSeconds, DEFAULT_CUTOVER.drainTimeoutSeconds),
      };
    }
    const metricsToken = stringField(file, 'config', top, 'metricsToken', false);
    if (metricsToken !== undefined) {
      if (metricsToken.length < 16) fail(file, '"metricsToken" must be at least 16 characters');
      config.metricsToken = metricsToken;
    }
    if (top.requireSignedHost !== undefined) {
      if (typeof top.requireSignedHost !== 'boolean') fail(file, '"requireSignedHost" must be true or false');
      config.requireSignedHost = top.requireSignedHost;
    }
    config.store = storeOf(file, top.store) ?? config.store;
    config.node = nodeOf(file, top.node);
    const keyFile = stringField(file, 'config', top, 'secretKeyFile', false);
    if (keyFile) config.secretKeyFile = path.resolve(path.dirname(file), keyFile);
  }
  // The environment names the database when the file does not (a container's usual way).
  if (config.store.kind === 'sqlite' && env.FERRY_DATABASE_URL) {
    if (!/^postgres(ql)?:\/\//.test(env.FERRY_DATABASE_URL)) throw new Error('FERRY_DATABASE_URL must be a postgres:// URL');
    config.store = { kind: 'postgres', url: env.FERRY_DATABASE_URL };
  }
  const { FERRY_AK: ak, FERRY_SK: sk, FERRY_PROJECT_ID: projectId } = env;
  if (ak || sk || projectId) {
    if (!ak || !sk || !projectId) throw new Error('FERRY_AK, FERRY_SK and FERRY_PROJECT_ID must be set together');
    config.akSk.push({ ak, sk, projectId });
  }
  return config;
}
