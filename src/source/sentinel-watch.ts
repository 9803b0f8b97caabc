/**
 * Sentinel's `+switch-master` events for one master, so a migration leaves the old master at
 * the moment of a failover instead of when the old master is reconfigured (Sentinel does that
 * on its next look at it, up to 10 s later, and until then the link just goes quiet).
 *
 * Best effort: a Sentinel that cannot be subscribed to is retried; the engine's own reconnect
 * (on a lost link) asks Sentinel again in any case.
 */
import { credentialsOf, describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { RedisConnection } from '../resp/connection.js';
import { encodeCommand } from '../resp/encode.js';
import { PushReply } from '../resp/reply-decoder.js';

export interface SentinelWatch {
  close(): void;
}

/** Calls `onSwitch(newMaster)` on every +switch-master of the endpoints' master, from any of the Sentinels. */
export function watchSwitchMaster(sentinels: readonly Endpoint[], onSwitch: (master: Endpoint) => void): SentinelWatch {
  const name = sentinels[0]?.sentinel?.masterName;
  if (name === undefined) return { close: () => undefined };
  let closed = false;
  const conns = new Set<RedisConnection>();
  const timers = new Set<NodeJS.Timeout>();
  let last = '';

  const subscribe = async (s: Endpoint): Promise<void> => {
    if (closed) return;
    const spec = s.sentinel!;
    try {
      const conn = await RedisConnection.connect({
        host: s.host,
        port: s.port,
        ...(spec.user !== undefined ? { user: spec.user } : {}),
        ...(spec.password !== undefined ? { password: spec.password } : {}),
        ...(s.tls !== undefined ? { tls: s.tls } : {}),
        name: 'ferry-sentinel-watch',
        connectTimeoutMs: 5000,
        onPush: (push: PushReply) => handle(push),
      });
      if (closed) return conn.destroy('closed');
      conns.add(conn);
      // In RESP3 the subscription's messages (and its confirmation) are pushes, which answer no
      // command: the connection hands them to onPush and its reply matching stays intact.
      await conn.call(['HELLO', '3']);
      conn.send(encodeCommand(['SUBSCRIBE', '+switch-master']));
      const error = await conn.closed;
      conns.delete(conn);
      if (error && !closed) retry(s);
    } catch {
      retry(s);
    }
  };
  const retry = (s: Endpoint): void => {
    if (closed) return;
    const t = setTimeout(() => {
      timers.delete(t);
      void subscribe(s);
    }, 2000);
    t.unref();
    timers.add(t);
  };
  const handle = (push: PushReply): void => {
    // ['message', '+switch-master', '<name> <old-ip> <old-port> <new-ip> <new-port>']
    const parts = push.items.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
    if (parts[0] !== 'message' || parts[1] !== '+switch-master') return;
    const [master, , , host, port] = (parts[2] ?? '').split(' ');
    if (master !== name || host === undefined || port === undefined) return;
    const endpoint: Endpoint = { host, port: Number(port), ...credentialsOf(sentinels[0]!) };
    const key = describeEndpoint(endpoint);
    if (key === last) return; // the same event from several Sentinels
    last = key;
    onSwitch(endpoint);
  };
  for (const s of sentinels) void subscribe(s);
  return {
    close(): void {
      closed = true;
      for (const t of timers) clearTimeout(t);
      for (const c of conns) c.destroy('closed');
    },
  };
}
