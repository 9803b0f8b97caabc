/**
 * Concurrent, pipelined live load with non-commutative pairs (SET then DEL of the same key,
 * RPUSH then LPOP, INCR): if a migration reorders, drops or repeats a write, the target ends up
 * different from the source. Several connections write at once, each a pipeline at a time.
 */
import type { Redis } from 'ioredis';

export interface LoadOptions {
  /** A client to write with (called per connection and again after an error, e.g. a failover). */
  client: () => Redis;
  connections?: number;
  /** Commands per pipeline. */
  batch?: number;
  prefix?: string;
  signal: AbortSignal;
  /** Upper bound, whatever the signal says. */
  maxMs?: number;
}

export interface LoadResult {
  pipelines: number;
  commands: number;
  /** Pipelines refused as a whole (READONLY during a failover, a closed connection). */
  failedPipelines: number;
}

export async function pipelinedLoad(opts: LoadOptions): Promise<LoadResult> {
  const p = opts.prefix ?? 'load:';
  const batch = opts.batch ?? 20;
  const until = Date.now() + (opts.maxMs ?? 60_000);
  const result: LoadResult = { pipelines: 0, commands: 0, failedPipelines: 0 };
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
      } catch {
        result.failedPipelines++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.connections ?? 4 }, (_, w) => worker(w)));
  return result;
}
