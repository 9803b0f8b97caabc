import type { Redis } from 'ioredis';
import type { RedisServer } from './redis-server.js';

export interface PipelinedLoadOptions {
  /** Concurrent clients, each with its own connection. Default 4. */
  clients?: number;
  /** Commands per pipelined burst (at least 50 by default). */
  burst?: number;
  /** Distinct keys per kind and client: small, so that pairs overlap and order matters. Default 20. */
  keys?: number;
  /** Pause between bursts (ms). Default 0. */
  pauseMs?: number;
  /** Database. Default 0. */
  db?: number;
  /** Prefix of every key. */
  prefix?: string;
}

export interface PipelinedLoad {
  /** Stops after the bursts in flight; resolves with how many commands were sent. */
  stop(): Promise<{ commands: number; bursts: number }>;
  /** Bursts completed so far. */
  readonly bursts: number;
}

/**
 * A live load that shows reordering: several clients send pipelined bursts of
 * non-commutative pairs on a small set of keys — SET/DEL, RPUSH/LPOP/LPOP, SADD/SREM,
 * HSET/HDEL, INCR, APPEND — so a write applied out of order, twice or not at all leaves the
 * target different from the source. Runs until stopped.
 */
export function pipelinedLoad(server: RedisServer, opts: PipelinedLoadOptions = {}): PipelinedLoad {
  const clients = opts.clients ?? 4;
  const burst = Math.max(50, opts.burst ?? 60);
  const keys = opts.keys ?? 20;
  const prefix = opts.prefix ?? 'load:';
  let stopping = false;
  let commands = 0;
  let bursts = 0;
  const connections: Redis[] = [];
  const loops: Promise<void>[] = [];
  for (let c = 0; c < clients; c++) {
    const redis = server.newClient(opts.db ?? 0);
    connections.push(redis);
    loops.push(
      (async () => {
        let n = 0;
        while (!stopping) {
          const p = redis.pipeline();
          let sent = 0;
          while (sent < burst) {
            const k = `${prefix}${c}:${n % keys}`;
            const v = `${c}-${n}`;
            switch (n % 6) {
              case 0:
                p.set(`${k}:str`, v).del(`${k}:str`).set(`${k}:str2`, v);
                sent += 3;
                break;
              case 1:
                p.rpush(`${k}:list`, v, `${v}b`).lpop(`${k}:list`).lpop(`${k}:list`).rpush(`${k}:list2`, v);
                sent += 4;
                break;
              case 2:
                p.sadd(`${k}:set`, v).srem(`${k}:set`, v).sadd(`${k}:set2`, v);
                sent += 3;
                break;
              case 3:
                p.hset(`${k}:hash`, 'f', v).hdel(`${k}:hash`, 'f').hset(`${k}:hash2`, `f${n % 7}`, v);
                sent += 3;
                break;
              case 4:
                p.incr(`${prefix}counter:${n % 5}`).append(`${k}:log`, `${v},`);
                sent += 2;
                break;
              case 5:
                // A transaction inside the burst (ioredis' multi() would send the pipeline).
                p.call('MULTI').incr(`${prefix}tx:${c}`).del(`${k}:str2`).call('EXEC');
                sent += 4;
                break;
            }
            n++;
          }
          try {
            await p.exec();
          } catch {
            if (stopping) break;
          }
          commands += sent;
          bursts++;
          if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
        }
      })(),
    );
  }
  return {
    get bursts() {
      return bursts;
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
      for (const r of connections) r.disconnect();
      return { commands, bursts };
    },
  };
}

/** The source's master_repl_offset now. */
export async function replOffset(server: RedisServer): Promise<number> {
  return Number(/master_repl_offset:(\d+)/.exec(await server.client().info('replication'))?.[1]);
}

/** How many times the server refused commands with `code` (INFO errorstats, Redis 6.2+). */
export async function refusals(server: RedisServer, code: string): Promise<number> {
  const info = await server.client().info('errorstats');
  return Number(new RegExp(`^errorstat_${code}:count=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
}

/** Sets maxmemory just under what the server uses now: every write that needs memory is refused. */
export async function exhaustMemory(server: RedisServer): Promise<void> {
  const used = Number(/^used_memory:(\d+)/m.exec(await server.client().info('memory'))?.[1]);
  await server.client().config('SET', 'maxmemory-policy', 'noeviction');
  await server.client().config('SET', 'maxmemory', String(Math.max(1, used - 64 * 1024)));
}

export async function liftMemoryLimit(server: RedisServer): Promise<void> {
  await server.client().config('SET', 'maxmemory', '0');
}

/**
 * The same kind of load, driven by an AbortSignal and a client factory (a new client after an
 * error, e.g. across a failover), for tests that run it alongside something else.
 */
export interface AbortableLoadOptions {
  /** A client to write with (called per connection and again after an error, e.g. a failover). */
  client: () => Redis;
  connections?: number;
  /** Commands per pipeline. */
  batch?: number;
  prefix?: string;
  signal: AbortSignal;
  /** Upper bound, whatever the signal says. */
  maxMs?: number;
  /** Pause after each pipeline (ms), per connection. Default 0. */
  pauseMs?: number;
}

export interface AbortableLoadResult {
  pipelines: number;
  commands: number;
  /** Pipelines refused as a whole (READONLY during a failover, a closed connection). */
  failedPipelines: number;
}

export async function abortableLoad(opts: AbortableLoadOptions): Promise<AbortableLoadResult> {
  const p = opts.prefix ?? 'load:';
  const batch = opts.batch ?? 20;
  const until = Date.now() + (opts.maxMs ?? 60_000);
  const result: AbortableLoadResult = { pipelines: 0, commands: 0, failedPipelines: 0 };
  const worker = async (w: number): Promise<void> => {
    let i = 0;
    while (!opts.signal.aborted && Date.now() < until) {
      const c = opts.client();
      const pipe = c.pipeline();
      for (let k = 0; k < batch; k++, i++) {
        const n = (w * 7919 + i) % 50;
        switch (i % 6) {
          case 0:
            pipe.set(`${p}kv:${n}`, `w${w}:${i}`);
            break;
          case 1:
            pipe.del(`${p}kv:${(n + 3) % 50}`);
            break;
          case 2:
            pipe.rpush(`${p}list:${n % 5}`, `w${w}:${i}`);
            break;
          case 3:
            pipe.lpop(`${p}list:${n % 5}`);
            break;
          case 4:
            pipe.incr(`${p}counter:${n % 10}`);
            break;
          default:
            pipe.hset(`${p}hash:${n % 5}`, `f${i % 17}`, `w${w}:${i}`);
        }
      }
      try {
        const replies = await pipe.exec();
        result.pipelines++;
        result.commands += batch;
        if (replies?.some(([e]) => e)) result.failedPipelines++;
        if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
      } catch {
        result.failedPipelines++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.connections ?? 4 }, (_, w) => worker(w)));
  return result;
}
