/** Where a Redis deployment is and how to log in; the password never leaves this object in text. */
export interface Endpoint {
  host: string;
  port: number;
  user?: string;
  password?: string;
}

/** `host:port` for messages: never the user or password. */
export function describeEndpoint(e: Pick<Endpoint, 'host' | 'port'>): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/**
 * Parses ADDRS as the CLI and the API take it: `host:port`, `[v6]:port`, or a `redis://`
 * URI (`redis://[user[:password]@]host[:port]`). A password given separately wins over one
 * inside the URI. Lists (`a:1,b:2`) are split by the caller.
 */
export function parseEndpoint(text: string, credentials: { user?: string; password?: string } = {}): Endpoint {
  const trimmed = text.trim();
  let endpoint: Endpoint;
  if (/^rediss?:\/\//i.test(trimmed)) {
    if (/^rediss:/i.test(trimmed)) throw new Error('TLS (rediss://) is not supported yet');
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
    const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d+)$/.exec(trimmed);
    if (!m) throw new Error(`invalid address "${trimmed}": expected host:port or redis://host:port`);
    endpoint = { host: (m[1] ?? m[2])!, port: Number(m[3]) };
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
    throw new Error(`invalid port in address ${describeEndpoint(endpoint)}`);
  }
  if (credentials.user !== undefined) endpoint.user = credentials.user;
  if (credentials.password !== undefined) endpoint.password = credentials.password;
  return endpoint;
}

function redactUri(uri: string): string {
  return uri.replace(/\/\/[^@/]*@/, '//***@');
}
