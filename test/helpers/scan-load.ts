/**
 * A concurrent, pipelined write load with the operations that matter to scan mode: several
 * connections at once, each sending pipelines that mix non-commutative pairs (SET/DEL,
 * RPUSH/LPOP, INCR), SELECT, MULTI/EXEC, EVAL, RENAME, EXPIRE, MOVE, and now and then FLUSHDB of
 * a scratch db and SWAPDB of two scratch dbs (neither emits per-key notifications).
 * TTLs are an hour or more: nothing expires while a test compares.
 */
import type { RedisServer } from './redis-server.js';
import { prng } from './dataset.js';

export interface MixedLoadOptions {
  durationMs: number;
  /** Connections writing at once (default 4). */
  connections?: number;
  /** Commands per pipeline (default 20). */
  pipeline?: number;
  prefix?: string;
  seed?: number;
  signal?: AbortSignal;
  /** Dbs written besides 0 (default [1]); scratch dbs: 9 (FLUSHDB), 10 and 11 (SWAPDB), 12 (MOVE). */
  dbs?: number[];
  /** Whole-db operations (FLUSHDB, SWAPDB) on (default true). */
  wholeDb?: boolean;
}

export interface MixedLoadResult {
  commands: number;
  pipelines: number;
  errors: number;
}

const LUA = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('RPUSH', KEYS[2], ARGV[1]); return redis.call('INCR', KEYS[3])";

export async function mixedLoad(server: RedisServer, opts: MixedLoadOptions): Promise<MixedLoadResult> {
  const p = opts.prefix ?? 'load:';
  const deadline = Date.now() + opts.durationMs;
  const dbs = [0, ...(opts.dbs ?? [1])];
  const result: MixedLoadResult = { commands: 0, pipelines: 0, errors: 0 };
  const worker = async (w: number): Promise<void> => {
    const rnd = prng((opts.seed ?? 99) * 31 + w);
    const n = (k: number): number => Math.floor(rnd() * k);
    const c = server.newClient(0);
    try {
      let i = 0;
      while (Date.now() < deadline && !opts.signal?.aborted) {
        const pl = c.pipeline();
        const db = dbs[n(dbs.length)]!;
        pl.select(db);
        for (let j = 0; j < (opts.pipeline ?? 20); j++, i++) {
          const k = n(50);
          switch (n(14)) {
            case 0:
              pl.set(`${p}s:${k}`, `v${w}-${i}`);
              break;
            case 1:
              pl.del(`${p}s:${k}`);
              break;
            case 2:
              pl.rpush(`${p}l:${k % 10}`, `e${w}-${i}`);
              break;
            case 3:
              pl.lpop(`${p}l:${k % 10}`);
              break;
            case 4:
              pl.incr(`${p}n:${k % 10}`);
              break;
            case 5:
              pl.hset(`${p}h:${k % 10}`, `f${n(20)}`, `v${i}`);
              break;
            case 6:
              pl.zincrby(`${p}z:${k % 10}`, 1, `m${n(20)}`);
              break;
            case 7:
              pl.expire(`${p}s:${k}`, 3600 + n(100));
              break;
            case 8:
              // RENAME: both names change (rename_from / rename_to)
              pl.set(`${p}r:${w}:${k}`, `r${i}`);
              pl.rename(`${p}r:${w}:${k}`, `${p}renamed:${k}`);
              break;
            case 9:
              pl.call('MULTI');
              pl.incr(`${p}n:${k % 10}`).rpush(`${p}l:${k % 10}`, `tx${i}`).hincrby(`${p}h:${k % 10}`, 'tx', 1).set(`${p}tx:${k}`, `t${i}`, 'EX', 3600);
              pl.call('EXEC');
              break;
            case 10:
              pl.eval(LUA, 3, `${p}lua:s:${k}`, `${p}lua:l:${k % 5}`, `${p}lua:n`, `lua${i}`);
              break;
            case 11:
              // MOVE to a scratch db (fails when the name is taken there: fine)
              pl.set(`${p}mv:${w}:${i}`, `m${i}`);
              pl.move(`${p}mv:${w}:${i}`, 12);
              break;
            case 12:
              // writes into the scratch dbs of the whole-db operations
              pl.select(9 + n(3));
              pl.set(`${p}scratch:${k}`, `x${i}`);
              pl.rpush(`${p}scratch:l:${k % 5}`, `x${i}`);
              pl.select(db);
              break;
            case 13:
              if (opts.wholeDb !== false && n(8) === 0) {
                if (n(2) === 0) {
                  pl.select(9);
                  pl.flushdb();
                } else pl.swapdb(10, 11);
                pl.select(db);
              } else pl.set(`${p}s:${k}`, `v${w}-${i}`, 'PX', 3_600_000);
              break;
          }
          result.commands++;
        }
        pl.select(0);
        const res = await pl.exec();
        result.pipelines++;
        for (const [err] of res ?? []) if (err && !/ERR no such key/.test(String(err))) result.errors++;
      }
    } finally {
      c.disconnect();
    }
  };
  await Promise.all(Array.from({ length: opts.connections ?? 4 }, (_, w) => worker(w)));
  return result;
}
