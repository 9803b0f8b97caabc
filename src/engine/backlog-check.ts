import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { RedisConnection } from '../resp/connection.js';

/** The backlog should hold at least this much of the source's writes. */
export const BACKLOG_SECONDS_WANTED = 60;

/**
 * How long the source's replication backlog lasts at its current write rate: that is how long
 * Ferry can be away (a restart, a network cut) and still continue with PSYNC instead of a full
 * resync. Two readings of INFO replication `sampleMs` apart give the rate; a warning names the
 * setting and the size to raise it to when the backlog holds less than a minute of writes.
 * Resolves with the seconds the backlog lasts (null: no writes, or the source would not say).
 */
export async function checkBacklog(source: Endpoint, logger: Logger, sampleMs = 1000): Promise<number | null> {
  let c: RedisConnection | null = null;
  try {
    c = await RedisConnection.connect({ ...source, name: 'ferry-preflight', connectTimeoutMs: 5000 });
    const read = async (): Promise<{ offset: number; backlog: number } | null> => {
      const reply = await c!.call(['INFO', 'replication']);
      const text = Buffer.isBuffer(reply) ? reply.toString('latin1') : '';
      const offset = /^master_repl_offset:(\d+)/m.exec(text)?.[1];
      const backlog = /^repl_backlog_size:(\d+)/m.exec(text)?.[1];
      return offset === undefined || backlog === undefined ? null : { offset: Number(offset), backlog: Number(backlog) };
    };
    const first = await read();
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, sampleMs));
    const second = await read();
    if (!first || !second) return null;
    const rate = (second.offset - first.offset) / ((Date.now() - startedAt) / 1000);
    if (rate <= 0) return null;
    const seconds = second.backlog / rate;
    if (seconds < BACKLOG_SECONDS_WANTED) {
      const wanted = Math.ceil((rate * BACKLOG_SECONDS_WANTED * 2) / (1024 * 1024));
      logger.warn(
        { source: describeEndpoint(source), backlogBytes: second.backlog, writeBytesPerSecond: Math.round(rate), seconds: Math.round(seconds * 10) / 10 },
        `the source's replication backlog (repl-backlog-size ${formatBytes(second.backlog)}) holds only ${seconds.toFixed(1)} s of its writes (${formatBytes(rate)}/s): if Ferry is away longer (a restart, a network cut), a full resync is needed; raise repl-backlog-size to ${wanted}mb or more on the source`,
      );
    }
    return seconds;
  } catch (e) {
    logger.debug({ err: (e as Error).message }, 'could not read the source backlog size');
    return null;
  } finally {
    c?.destroy('done');
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${Math.round(n)} B`;
}
