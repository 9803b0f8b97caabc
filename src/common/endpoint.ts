/**
 * TLS settings of one endpoint. Files are named, not inlined: they are read when a socket is
 * opened (`dial`), so a private key never travels in a task record, a log or an IPC message,
 * and a renewed certificate is picked up by the next connection.
 */
export interface EndpointTls {
  /** PEM CA bundle that signs the server's certificate; absent: the system's CAs. */
  caFile?: string;
  /** PEM client certificate and key, for servers that ask for one (mutual TLS). */
  certFile?: string;
  keyFile?: string;
  /** Name sent for SNI and checked against the certificate; default: the host when it is a name. */
  servername?: string;
  /** Skip certificate verification: only with an explicit flag, and Ferry warns. */
  insecure?: boolean;
}

/**
 * An endpoint found through Redis Sentinel: `host`/`port` name one Sentinel, `masterName` the
 * monitored master. `user`/`password` are Sentinel's own (many Sentinels have none or their
 * own `requirepass`); the data nodes use the endpoint's.
 */
export interface SentinelSpec {
  masterName: string;
  user?: string;
  password?: string;
}

/** Where a Redis deployment is and how to log in; the password never leaves this object in text. */
export interface Endpoint {
  host: string;
  port: number;
  user?: string;
  password?: string;
  /** Present: every connection to this endpoint (and to nodes learned from it) speaks TLS. */
  tls?: EndpointTls;
  /** Present: this is a Sentinel, asked where the master `masterName` is. */
  sentinel?: SentinelSpec;
}

/** `host:port` for messages: never the user or password. */
export function describeEndpoint(e: Pick<Endpoint, 'host' | 'port'>): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export interface EndpointOptions {
  user?: string;
  password?: string;
  /** TLS settings from options (CLI flags, API fields); `rediss://` turns TLS on by itself. */
  tls?: EndpointTls;
  /** Sentinel's own credentials, for `sentinel://` lists (they win over the URI's). */
  sentinelUser?: string;
  sentinelPassword?: string;
}

/** Copies only the connection settings shared by every node of a deployment. */
export function credentialsOf(e: Endpoint): Pick<Endpoint, 'user' | 'password' | 'tls'> {
  const c: Pick<Endpoint, 'user' | 'password' | 'tls'> = {};
  if (e.user !== undefined) c.user = e.user;
  if (e.password !== undefined) c.password = e.password;
  if (e.tls !== undefined) c.tls = e.tls;
  return c;
}

/** Any TLS settings object turns TLS on, an empty one too (TLS with the system's CAs). */
function hasTlsSettings(tls: EndpointTls | undefined): boolean {
  return tls !== undefined && tls !== null;
}

/**
 * Parses ADDRS as the CLI and the API take it: `host:port`, `[v6]:port`, or a `redis://` /
 * `rediss://` URI (`redis://[user[:password]@]host[:port]`; `rediss://` is TLS). A password
 * given separately wins over one inside the URI. Lists (`a:1,b:2`) are split by
 * `parseAddressList`. TLS settings given in `options.tls` turn TLS on too.
 */
export function parseEndpoint(text: string, options: EndpointOptions = {}): Endpoint {
  const trimmed = text.trim();
  let endpoint: Endpoint;
  let tls = hasTlsSettings(options.tls);
  if (/^rediss?:\/\//i.test(trimmed)) {
    if (/^rediss:/i.test(trimmed)) tls = true;
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      throw new Error(`invalid Redis URI: ${redactUri(trimmed)}`);
    }
    endpoint = { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : 6379 };
    if (url.username) endpoint.user = decodeURIComponent(url.username);
    if (url.password) endpoint.password = decodeURIComponent(url.password);
  } else {
    endpoint = parseHostPort(trimmed);
  }
  checkPort(endpoint);
  if (options.user !== undefined) endpoint.user = options.user;
  if (options.password !== undefined) endpoint.password = options.password;
  if (tls) endpoint.tls = { ...options.tls };
  return endpoint;
}

/**
 * An address list: `host:port[,host:port...]` (cluster nodes, or a master and its replicas),
 * or one `sentinel://[user:password@]host:port[,host:port...]/master-name`, which gives one
 * endpoint per Sentinel. A `sentinel://` URI's user and password are Sentinel's own; the
 * master's come from `options.user`/`options.password`.
 */
export function parseAddressList(text: string, options: EndpointOptions = {}): Endpoint[] {
  const trimmed = text.trim();
  if (/^sentinels?:\/\//i.test(trimmed)) return parseSentinelUri(trimmed, options);
  const parts = trimmed.split(',').map((a) => a.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('an address list is empty');
  return parts.map((a) => parseEndpoint(a, options));
}

function parseSentinelUri(text: string, options: EndpointOptions): Endpoint[] {
  const m = /^sentinels?:\/\/(?:([^@/]*)@)?([^/]+)\/([^/?#]+)\/?$/i.exec(text);
  if (!m) throw new Error(`invalid Sentinel URI ${redactUri(text)}: expected sentinel://host:port[,host:port...]/master-name`);
  const [, userinfo, hosts, name] = m as unknown as [string, string | undefined, string, string];
  const spec: SentinelSpec = { masterName: decodeURIComponent(name) };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    // As in any URI: `user@`, `user:password@`, or `:password@` for a password alone.
    const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
    if (colon >= 0) spec.password = decodeURIComponent(userinfo.slice(colon + 1));
    if (user !== '') spec.user = user;
  }
  if (options.sentinelUser !== undefined) spec.user = options.sentinelUser;
  if (options.sentinelPassword !== undefined) spec.password = options.sentinelPassword;
  const tls = hasTlsSettings(options.tls);
  return hosts.split(',').map((h) => {
    const e = parseHostPort(h.trim());
    checkPort(e);
    if (options.user !== undefined) e.user = options.user;
    if (options.password !== undefined) e.password = options.password;
    if (tls) e.tls = { ...options.tls };
    e.sentinel = { ...spec };
    return e;
  });
}

function parseHostPort(text: string): Endpoint {
  const m = /^(?:\[([^\]]+)\]|([^:\s,/@]+)):(\d+)$/.exec(text);
  if (!m) throw new Error(`invalid address "${text}": expected host:port, redis://host:port, rediss://host:port or sentinel://host:port/master-name`);
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}

function checkPort(endpoint: Endpoint): void {
  if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
    throw new Error(`invalid port in address ${describeEndpoint(endpoint)}`);
  }
}

function redactUri(uri: string): string {
  return uri.replace(/\/\/[^@/]*@/, '//***@');
}
