/**
 * Redis Sentinel as a way to find a master: `sentinel://h:p[,h:p]/name` gives one endpoint per
 * Sentinel, and the master is whatever the first Sentinel that answers says it is now
 * (`SENTINEL get-master-addr-by-name`). Asked again after a lost link (the engine's `locate`),
 * it is how a migration follows a failover: the promoted replica carries the same history, so
 * the shard continues there with PSYNC.
 */
import { credentialsOf, describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { RedisAuthError, RedisConnection } from '../resp/connection.js';
import { ReplyError } from '../resp/reply-decoder.js';

/** No Sentinel could say where the master is; the message names Sentinels and the master name. */
export class SentinelError extends Error {
  override readonly name = 'SentinelError';
}

function text(r: unknown): string {
  return Buffer.isBuffer(r) ? r.toString('utf8') : typeof r === 'number' ? String(r) : '';
}

async function askOne(sentinel: Endpoint, timeoutMs: number): Promise<Endpoint> {
  const spec = sentinel.sentinel!;
  const conn = await RedisConnection.connect({
    host: sentinel.host,
    port: sentinel.port,
    ...(spec.user !== undefined ? { user: spec.user } : {}),
    ...(spec.password !== undefined ? { password: spec.password } : {}),
    ...(sentinel.tls !== undefined ? { tls: sentinel.tls } : {}),
    name: 'ferry-sentinel',
    connectTimeoutMs: timeoutMs,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const reply = await Promise.race([
      conn.call(['SENTINEL', 'get-master-addr-by-name', spec.masterName]),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no reply within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
      }),
    ]);
    if (!Array.isArray(reply) || reply.length < 2) throw new SentinelError(`does not monitor a master named "${spec.masterName}"`);
    const host = text(reply[0]);
    const port = Number(text(reply[1]));
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) throw new SentinelError(`gave an unusable address for "${spec.masterName}"`);
    // The data nodes take the endpoint's credentials and TLS settings, not Sentinel's.
    return { host, port, ...credentialsOf(sentinel) };
  } finally {
    clearTimeout(timer);
    conn.destroy('closed');
  }
}

/** The master's address now, from the first Sentinel of the list that knows it. */
export async function masterFromSentinels(sentinels: readonly Endpoint[], timeoutMs = 5000): Promise<Endpoint> {
  const name = sentinels[0]?.sentinel?.masterName ?? '';
  const failures: string[] = [];
  for (const s of sentinels) {
    try {
      return await askOne(s, timeoutMs);
    } catch (e) {
      let why = e instanceof Error ? e.message : String(e);
      if (e instanceof RedisAuthError) why = `${why} (Sentinel's own password: the sentinel:// URI's or --*-sentinel-password)`;
      else if (e instanceof ReplyError) why = `refused SENTINEL get-master-addr-by-name: ${why}`;
      failures.push(`Sentinel ${describeEndpoint(s)}: ${why}`);
    }
  }
  throw new SentinelError(`no Sentinel could tell where master "${name}" is (${failures.join('; ')})`);
}
