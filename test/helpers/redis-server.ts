/**
 * Real redis-server processes for the tests: no mocks, each server on a free loopback port in
 * its own temp dir, and a process-wide registry so that nothing outlives the test process.
 *
 * The binary comes from env REDIS_SERVER (default `redis-server` on PATH); `opts.binary` lets a
 * cross-version test start a second binary. Only 127.0.0.1 is ever used, never the shared
 * server on 6379 (ports come from the kernel's ephemeral range, which never hands out 6379).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';

export type Version = [number, number, number];

export interface AclUser {
  name: string;
  password: string;
  /** ACL rules appended verbatim after `on >password`, e.g. '+@all ~* &*' (`&*` needs 6.2+). */
  rules: string;
}

export interface StartOptions {
  /** requirepass for the default user; client() authenticates with it. */
  password?: string;
  aclUsers?: AclUser[];
  /**
   * Extra redis.conf directives, written verbatim as `key value` (values are not quoted, so
   * multi-token values like `save "3600 1"` work). They override the harness defaults.
   */
  config?: Record<string, string>;
  /** Extra command-line arguments after the config file path, e.g. ['--loglevel', 'debug']. */
  args?: string[];
  /** Binary to run instead of $REDIS_SERVER, for cross-version tests. */
  binary?: string;
  /**
   * Also listen with TLS on `tlsPort` (the plain port stays open for the test's own clients).
   * `authClients`: demand a client certificate signed by `caFile` (mutual TLS). Default false.
   */
  tls?: { certFile: string; keyFile: string; caFile: string; authClients?: boolean };
}

/** What the server can do, derived from its version, for `t.skip(reason)` decisions. */
export interface ServerFeatures {
  /** FUNCTION LOAD/LIST/DUMP (7.0). */
  functions: boolean;
  /** HPEXPIRE & co., listpackex encoding, INFO keyspace subexpiry (7.4). */
  hashFieldTtl: boolean;
  /** Small sets of strings use listpack instead of hashtable (7.2). */
  setListpack: boolean;
  /** Small lists are a plain listpack, not a one-node quicklist (7.2). */
  listListpack: boolean;
  /** *-listpack-* config names and listpack encodings for hash/zset (7.0; ziplist before). */
  listpackConfigNames: boolean;
  /** Quicklist PLAIN nodes exist (7.0; before 7.2 only via DEBUG QUICKLIST-PACKED-THRESHOLD). */
  plainNodes: boolean;
  /** XSETID ENTRIESADDED/MAXDELETEDID, XGROUP CREATE ENTRIESREAD, entries-read in XINFO (7.0). */
  streamV2: boolean;
  /** XGROUP CREATECONSUMER, exclusive ranges in XRANGE (6.2). */
  createConsumer: boolean;
  /** ACL selectors for pub/sub channels (`&*`, 6.2). */
  aclChannels: boolean;
  /** `enable-debug-command` exists and the harness turns DEBUG on (7.0). */
  debugCommandConfig: boolean;
}

export interface RedisServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** '127.0.0.1:port' */
  readonly addr: string;
  /** The TLS port, when started with `tls`. */
  readonly tlsPort: number | undefined;
  readonly dir: string;
  readonly pid: number;
  readonly password: string | undefined;
  readonly aclUsers: readonly AclUser[];
  readonly version: Version;
  /** RDB format version this server writes (see rdbVersionFor). */
  readonly rdbVersion: number;
  readonly features: ServerFeatures;
  /** A shared ioredis client on `db` (default 0), created lazily, closed by stop(). */
  client(db?: number): Redis;
  /** A new, untracked-by-cache ioredis client (still closed by stop()), e.g. for blocking commands. */
  newClient(db?: number): Redis;
  stop(): Promise<void>;
  /** Last lines of the server log (and of its stdout/stderr), for failure messages. */
  logTail(lines?: number): string;
}

const LOOPBACK = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const BIND_RETRIES = 5;

export function redisServerBinary(): string {
  const fromEnv = process.env['REDIS_SERVER'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'redis-server';
}

const versionCache = new Map<string, Version>();

/** Version of the binary (`redis-server --version` prints `v=7.0.15`), cached per binary. */
export function redisServerVersion(binary: string = redisServerBinary()): Version {
  const cached = versionCache.get(binary);
  if (cached) return cached;
  let out: string;
  try {
    out = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  } catch (err) {
    throw new Error(
      `cannot run '${binary} --version' (${(err as Error).message}); install redis-server ` +
        `or set REDIS_SERVER=/path/to/redis-server`,
    );
  }
  const m = /\bv=(\d+)\.(\d+)\.(\d+)/.exec(out);
  if (!m) throw new Error(`cannot parse the version from '${binary} --version': ${out.trim()}`);
  const v: Version = [Number(m[1]), Number(m[2]), Number(m[3])];
  versionCache.set(binary, v);
  return v;
}

export function atLeast(v: readonly number[], major: number, minor = 0, patch = 0): boolean {
  const want = [major, minor, patch];
  for (let i = 0; i < 3; i++) {
    const have = v[i] ?? 0;
    const w = want[i] ?? 0;
    if (have !== w) return have > w;
  }
  return true;
}

/**
 * RDB version written by a Redis version. The <2.6 values are approximate (old servers wrote
 * 1 and 2); 7.4 through 8.4 write 12, 8.6 writes 13, and anything newer is assumed >= 13.
 */
export function rdbVersionFor(v: readonly number[]): number {
  if (!atLeast(v, 2, 4)) return 1;
  if (!atLeast(v, 2, 6)) return 2;
  if (!atLeast(v, 3, 2)) return 6;
  if (!atLeast(v, 4, 0)) return 7;
  if (!atLeast(v, 5, 0)) return 8;
  if (!atLeast(v, 7, 0)) return 9;
  if (!atLeast(v, 7, 2)) return 10;
  if (!atLeast(v, 7, 4)) return 11;
  if (!atLeast(v, 8, 6)) return 12;
  return 13;
}

export function featuresFor(v: readonly number[]): ServerFeatures {
  return {
    functions: atLeast(v, 7, 0),
    hashFieldTtl: atLeast(v, 7, 4),
    setListpack: atLeast(v, 7, 2),
    listListpack: atLeast(v, 7, 2),
    listpackConfigNames: atLeast(v, 7, 0),
    plainNodes: atLeast(v, 7, 0),
    streamV2: atLeast(v, 7, 0),
    createConsumer: atLeast(v, 6, 2),
    aclChannels: atLeast(v, 6, 2),
    debugCommandConfig: atLeast(v, 7, 0),
  };
}

/**
 * Runtime skip with a reason (the suite must run on servers that lack features).
 * Returns true when skipped: `if (skipUnless(t, s.features.functions, 'needs 7.0')) return;`
 */
export function skipUnless(t: TestContext, ok: boolean, reason: string): boolean {
  if (!ok) t.skip(reason);
  return !ok;
}

// ---------------------------------------------------------------------------------------------
// Ports

function listenOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A loopback port that was free a moment ago (listen on port 0, then close). Another process
 * can still take it before redis binds it: startRedis retries on that race. `max` keeps room
 * above the port, e.g. 55535 for a pre-7.0 cluster bus at port+10000.
 */
export async function freePort(opts: { max?: number } = {}): Promise<number> {
  const max = opts.max ?? 65535;
  for (let i = 0; i < 200; i++) {
    const port = await listenOnce();
    if (port > 0 && port <= max) return port;
  }
  throw new Error(`no free loopback port <= ${max}`);
}

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: LOOPBACK, port });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A loopback port with nothing listening on it (checked), for "unreachable server" tests. */
export async function closedPort(): Promise<number> {
  for (let i = 0; i < 10; i++) {
    const port = await freePort();
    if (await connectRefused(port)) return port;
  }
  throw new Error('could not find a closed loopback port');
}

// ---------------------------------------------------------------------------------------------
// Process-wide registry: whatever happens to the test process, no redis-server survives it.

interface Running {
  child: ChildProcess;
  watchdog: ChildProcess | undefined;
  dir: string;
}

interface Registry {
  running: Set<Running>;
  servers: Set<RedisServer>;
}

// A global symbol so that two copies of this module (e.g. loaded via different URLs) still
// share one registry and install the process hooks only once.
const REGISTRY_KEY = Symbol.for('ferry.test.redis-registry');
type GlobalWithRegistry = typeof globalThis & { [REGISTRY_KEY]?: Registry };

function registry(): Registry {
  const g = globalThis as GlobalWithRegistry;
  let reg = g[REGISTRY_KEY];
  if (!reg) {
    reg = { running: new Set(), servers: new Set() };
    g[REGISTRY_KEY] = reg;
    installProcessHooks(reg);
  }
  return reg;
}

/** Synchronous, because 'exit' handlers cannot await: SIGKILL everything, remove the dirs. */
function killAllSync(reg: Registry): void {
  for (const r of reg.running) {
    if (r.child.pid !== undefined && r.child.exitCode === null && r.child.signalCode === null) {
      try {
        process.kill(r.child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    r.watchdog?.kill('SIGKILL');
    try {
      rmSync(r.dir, { recursive: true, force: true });
    } catch {
      /* best effort at exit */
    }
  }
  reg.running.clear();
}

function installProcessHooks(reg: Registry): void {
  process.on('exit', () => killAllSync(reg));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // A listener replaces Node's default "die on signal", so die explicitly after cleanup.
    process.on(sig, () => {
      killAllSync(reg);
      process.exit(128 + (os.constants.signals[sig] ?? 1));
    });
  }
  // A monitor, not an 'uncaughtException' listener: a listener would keep a crashing process
  // alive. When someone else handles the exception (node:test does, and reports it as a test
  // failure) the process goes on and its servers must stay; when nobody does, it dies now and
  // 'exit' may not run every handler in time, so kill here.
  process.on('uncaughtExceptionMonitor', () => {
    if (process.listenerCount('uncaughtException') === 0) killAllSync(reg);
  });
}

/**
 * A tiny detached shell per server that SIGKILLs it when our end of its stdin pipe closes,
 * i.e. when this process dies in a way no JS handler sees (SIGKILL, OOM killer, abort), and
 * then removes its temp dir.
 * Detached so that a Ctrl-C to our process group does not take the watchdog down first.
 */
const WATCHDOG_SCRIPT = [
  'read _ignored',
  'kill -9 "$0" 2>/dev/null',
  // give the kernel a moment to tear the process down before removing its files
  'i=0; while kill -0 "$0" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done',
  'rm -rf "$1"',
].join('\n');

function startWatchdog(pid: number, dir: string): ChildProcess | undefined {
  try {
    const wd = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, String(pid), dir], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    wd.on('error', () => {
      /* no /bin/sh: the JS hooks still cover normal deaths */
    });
    wd.unref();
    (wd.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return wd;
  } catch {
    return undefined;
  }
}

/** Stop every server this process started (also the ones a failed test left running). */
export async function stopAll(): Promise<void> {
  const reg = registry();
  await Promise.all([...reg.servers].map((s) => s.stop()));
  killAllSync(reg);
}

// ---------------------------------------------------------------------------------------------
// Starting

/** Double-quote for redis.conf (sdssplitargs understands \xHH, \\ and \"). */
function confQuote(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out + '"';
}

function tailOfFile(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.split('\n').filter((l) => l !== '').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function resp(...args: string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
}

/**
 * Asks whoever listens on the port for INFO server (after AUTH when there is a password):
 * 'up' when it is our process, 'other' when another server holds the port (it won the bind
 * race and ours is about to exit), 'down' when nothing answers yet or it is still loading.
 */
function probe(port: number, pid: number | undefined, password: string | undefined): Promise<'up' | 'down' | 'other'> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: LOOPBACK, port });
    let buf = '';
    const done = (r: 'up' | 'down' | 'other'): void => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(1000, () => done('down'));
    sock.once('error', () => done('down'));
    sock.once('connect', () => sock.write((password !== undefined ? resp('AUTH', password) : '') + resp('INFO', 'server')));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (password !== undefined) {
        if (!buf.includes('\r\n')) return;
        if (!buf.startsWith('+OK\r\n')) return done('down');
      }
      const body = password !== undefined ? buf.slice(5) : buf;
      if (body.startsWith('-')) return done('down'); // -LOADING, -NOAUTH: not (yet) usable
      const m = /process_id:(\d+)\r\n/.exec(body);
      if (m) done(Number(m[1]) === pid ? 'up' : 'other');
    });
  });
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

class BindRace extends Error {}

export async function startRedis(opts: StartOptions = {}): Promise<RedisServer> {
  const binary = opts.binary ?? redisServerBinary();
  const version = redisServerVersion(binary);
  let lastErr: unknown;
  for (let attempt = 0; attempt < BIND_RETRIES; attempt++) {
    try {
      return await startOnce(binary, version, opts);
    } catch (err) {
      if (!(err instanceof BindRace)) throw err;
      lastErr = err; // someone took the port between freePort() and redis' bind(): retry
    }
  }
  throw new Error(`redis-server could not bind a port after ${BIND_RETRIES} tries: ${String(lastErr)}`);
}

async function startOnce(binary: string, version: Version, opts: StartOptions): Promise<RedisServer> {
  const reg = registry();
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-redis-'));
  const logFile = path.join(dir, 'redis.log');
  const stdioFile = path.join(dir, 'stdio.log');
  const features = featuresFor(version);

  const conf = new Map<string, string>([
    ['port', String(port)],
    ['bind', LOOPBACK],
    ['dir', confQuote(dir)],
    ['save', '""'],
    ['appendonly', 'no'],
    ['logfile', confQuote(logFile)],
    ['daemonize', 'no'],
    ['dbfilename', 'dump.rdb'],
  ]);
  // DEBUG lets the dataset build PLAIN quicklist nodes on 7.0 and lets tests use DEBUG SLEEP /
  // DEBUG OBJECT; from 7.0 on it is off unless configured ('local' = loopback clients only).
  if (features.debugCommandConfig) conf.set('enable-debug-command', 'local');
  if (opts.password !== undefined) conf.set('requirepass', confQuote(opts.password));
  let tlsPort: number | undefined;
  if (opts.tls) {
    tlsPort = await freePort();
    conf.set('tls-port', String(tlsPort));
    conf.set('tls-cert-file', confQuote(opts.tls.certFile));
    conf.set('tls-key-file', confQuote(opts.tls.keyFile));
    conf.set('tls-ca-cert-file', confQuote(opts.tls.caFile));
    conf.set('tls-auth-clients', opts.tls.authClients ? 'yes' : 'no');
  }
  for (const [k, v] of Object.entries(opts.config ?? {})) conf.set(k, v);

  const lines = [...conf].map(([k, v]) => `${k} ${v}`);
  for (const u of opts.aclUsers ?? []) {
    lines.push(`user ${confQuote(u.name)} on ${confQuote(`>${u.password}`)} ${u.rules}`);
  }
  const confFile = path.join(dir, 'redis.conf');
  writeFileSync(confFile, lines.join('\n') + '\n');

  // stdout/stderr go to a file, not a pipe: config errors are printed there before the log
  // file opens, and a file does not keep our event loop alive or fill up unread.
  const out = openSync(stdioFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(binary, [confFile, ...(opts.args ?? [])], { cwd: dir, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  let spawnErr: Error | undefined;
  void spawnError.then((e) => (spawnErr = e));
  // unref: a test that forgets stop() must not hang the run; the 'exit' hook still kills it.
  child.unref();

  const running: Running = { child, watchdog: undefined, dir };
  reg.running.add(running);
  if (child.pid !== undefined) running.watchdog = startWatchdog(child.pid, dir);

  let lastTail = '';
  const logTail = (n = 40): string => {
    const log = tailOfFile(logFile, n);
    const stdio = tailOfFile(stdioFile, n);
    const text = [log, stdio && `--- stdout/stderr ---\n${stdio}`].filter((s) => s !== '').join('\n');
    if (text !== '') lastTail = text;
    return text !== '' ? text : lastTail;
  };

  const killNow = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await waitForExit(child, 5000);
    running.watchdog?.kill('SIGKILL');
    reg.running.delete(running);
    await rm(dir, { recursive: true, force: true });
  };

  // Wait until our process answers, failing fast if it dies (bad config, port taken).
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    await sleep(20);
    if (spawnErr) {
      await killNow();
      throw new Error(`cannot start '${binary}': ${spawnErr.message} (set REDIS_SERVER=/path/to/redis-server)`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = logTail();
      await killNow();
      if (/Address already in use/i.test(tail)) throw new BindRace(`port ${port} taken`);
      throw new Error(
        `redis-server exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${tail}`,
      );
    }
    const state = await probe(port, child.pid, opts.password);
    if (state === 'up') break;
    if (state === 'other') {
      await killNow();
      throw new BindRace(`port ${port} answered by another server`);
    }
    if (Date.now() > deadline) {
      const tail = logTail();
      await killNow();
      throw new Error(`redis-server on port ${port} did not answer within ${START_TIMEOUT_MS} ms:\n${tail}`);
    }
  }

  const clients = new Set<Redis>();
  const shared = new Map<number, Redis>();
  let stopping: Promise<void> | undefined;

  const makeClient = (db: number): Redis => {
    if (stopping) throw new Error(`redis ${LOOPBACK}:${port} is stopped`);
    const c = new Redis({
      host: LOOPBACK,
      port,
      db,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      // Fail a command after a few reconnects instead of 20: a dead server should fail the
      // test quickly with a clear error, not after minutes.
      maxRetriesPerRequest: 3,
      retryStrategy: (times: number) => (times > 50 ? null : Math.min(times * 50, 500)),
    });
    // Errors surface as rejected commands; without a listener ioredis also prints each
    // reconnect error as "Unhandled error event", which only clutters the test output.
    c.on('error', () => {});
    clients.add(c);
    c.once('end', () => clients.delete(c));
    return c;
  };

  const server: RedisServer = {
    host: LOOPBACK,
    port,
    addr: `${LOOPBACK}:${port}`,
    tlsPort,
    dir,
    pid: child.pid ?? -1,
    password: opts.password,
    aclUsers: opts.aclUsers ?? [],
    version,
    rdbVersion: rdbVersionFor(version),
    features,
    client(db = 0): Redis {
      let c = shared.get(db);
      if (!c || c.status === 'end') {
        c = makeClient(db);
        shared.set(db, c);
      }
      return c;
    },
    newClient(db = 0): Redis {
      return makeClient(db);
    },
    logTail,
    stop(): Promise<void> {
      stopping ??= (async () => {
        for (const c of clients) c.disconnect();
        clients.clear();
        shared.clear();
        logTail(); // keep the tail for messages written after the dir is gone
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          if (!(await waitForExit(child, STOP_GRACE_MS))) {
            child.kill('SIGKILL');
            await waitForExit(child, 5000);
          }
        }
        running.watchdog?.kill('SIGKILL');
        reg.running.delete(running);
        reg.servers.delete(server);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  reg.servers.add(server);
  return server;
}
