import type { KeyChunk, KeyHeader, StreamId, StreamMeta } from './entries.js';
import type { Arg } from '../resp/encode.js';
import { temporaryKeyInSlotOf } from '../common/slots.js';

/** One command that rebuilds part of a key, with the key it touches (for error reports). */
export type Command = Arg[];

const U64_MAX = (1n << 64n) - 1n;

/**
 * The name a key is built under before it is renamed into place, so that a reader of the
 * target never sees half a key. It lies in the key's cluster slot whatever the key looks like
 * (its hash tag, the key wrapped in braces, or a tag chosen for the slot), so RENAME works on a
 * cluster; the key itself ends the name, which keeps names of different keys apart.
 */
export function temporaryKeyFor(key: Buffer): Buffer {
  return temporaryKeyInSlotOf(key, key);
}

function streamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}

export interface KeyRewriterOptions {
  /** The target knows XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD (7.0+). */
  streamCounters: boolean;
  /** False: do not overwrite an existing key (RENAMENX instead of RENAME). Default true. */
  replace?: boolean;
}

/**
 * Turns a key that arrives as chunks into commands: everything is written under a temporary
 * name, then given its TTL and renamed over the real key (RENAME replaces, like RESTORE
 * REPLACE). Each call returns the commands for what it was given; nothing is accumulated
 * beyond the stream group metadata, which is small.
 */
export class KeyRewriter {
  private readonly temp: Buffer;
  private created = false;
  private stringStarted = false;
  private error: string | null = null;
  /** Entries added only so that pending entries referring to them can be claimed; deleted after. */
  private readonly deletedStreamIds: string[] = [];

  constructor(
    private readonly header: KeyHeader,
    private readonly options: KeyRewriterOptions = { streamCounters: true },
  ) {
    this.temp = temporaryKeyFor(header.key);
  }

  get key(): Buffer {
    return this.header.key;
  }

  /** RENAME, or RENAMENX when existing keys must not be overwritten. */
  get renamedWith(): 'RENAME' | 'RENAMENX' {
    return this.options.replace === false ? 'RENAMENX' : 'RENAME';
  }

  /** Set when the key cannot be rebuilt; the caller reports it and the key is skipped. */
  get failure(): string | null {
    return this.error;
  }

  begin(): Command[] {
    return [['DEL', this.temp]];
  }

  chunk(chunk: KeyChunk): Command[] {
    const t = this.temp;
    switch (chunk.type) {
      case 'string': {
        const first = !this.stringStarted;
        this.stringStarted = true;
        this.created = true;
        return [first ? ['SET', t, chunk.data] : ['APPEND', t, chunk.data]];
      }
      case 'list':
        this.created = true;
        return [['RPUSH', t, ...chunk.items]];
      case 'set':
        this.created = true;
        return [['SADD', t, ...chunk.members]];
      case 'zset': {
        const args: Arg[] = ['ZADD', t];
        for (let i = 0; i < chunk.members.length; i++) args.push(chunk.scores[i]!, chunk.members[i]!);
        this.created = true;
        return [args];
      }
      case 'hash': {
        const args: Arg[] = ['HSET', t];
        for (let i = 0; i < chunk.fields.length; i++) args.push(chunk.fields[i]!, chunk.values[i]!);
        const out: Command[] = [args];
        if (chunk.expireAtMs) {
          chunk.expireAtMs.forEach((at, i) => {
            if (at > 0) out.push(['HPEXPIREAT', t, at, 'FIELDS', 1, chunk.fields[i]!]);
          });
        }
        this.created = true;
        return out;
      }
      case 'stream-entries':
        this.created = true;
        for (const e of chunk.entries) if (e.deleted) this.deletedStreamIds.push(streamId(e.id));
        return chunk.entries.map((e) => ['XADD', t, streamId(e.id), ...e.fields]);
      case 'stream-meta':
        return this.streamMeta(chunk.meta);
      case 'unrewritable':
        this.error = chunk.reason;
        return [];
    }
  }

  private streamMeta(meta: StreamMeta): Command[] {
    const t = this.temp;
    const out: Command[] = [];
    if (!this.created) {
      // An empty stream: create it through a throwaway group, which leaves no entry behind.
      out.push(['XGROUP', 'CREATE', t, '__ferry_tmp__', '0', 'MKSTREAM'], ['XGROUP', 'DESTROY', t, '__ferry_tmp__']);
      this.created = true;
    }
    for (const group of meta.groups) {
      const create: Arg[] = ['XGROUP', 'CREATE', t, group.name, streamId(group.lastId)];
      if (this.options.streamCounters && group.entriesRead !== null && group.entriesRead !== U64_MAX) {
        create.push('ENTRIESREAD', group.entriesRead);
      }
      out.push(create);
      // Pending entries come back through XCLAIM ... FORCE, which also creates the consumer.
      // (An entry deleted from the stream cannot be claimed: the server ignores it.)
      for (const p of group.pending) {
        if (p.consumer === null) continue;
        out.push([
          'XCLAIM', t, group.name, p.consumer, 0, streamId(p.id),
          'TIME', p.deliveryTimeMs, 'RETRYCOUNT', p.deliveryCount, 'FORCE', 'JUSTID',
        ]);
      }
      for (const c of group.consumers) {
        if (c.pending.length === 0) out.push(['XGROUP', 'CREATECONSUMER', t, group.name, c.name]);
      }
    }
    for (let i = 0; i < this.deletedStreamIds.length; i += 1000) {
      out.push(['XDEL', t, ...this.deletedStreamIds.slice(i, i + 1000)]);
    }
    // Last, because XDEL moves the max-deleted id and XADD the entries-added counter.
    const setId: Arg[] = ['XSETID', t, streamId(meta.lastId)];
    if (this.options.streamCounters) {
      // A v1 stream (Redis < 7.0) has no counters: a loader takes entries-added = length and
      // max-deleted = 0-0, and so does this, rather than what the XADD/XDEL above left.
      const entriesAdded = meta.entriesAdded ?? meta.length;
      const maxDeleted = meta.maxDeletedId ? streamId(meta.maxDeletedId) : '0-0';
      setId.push('ENTRIESADDED', entriesAdded, 'MAXDELETEDID', maxDeleted);
    }
    out.push(setId);
    return out;
  }

  end(): Command[] {
    if (this.error !== null) return [['DEL', this.temp]];
    if (!this.created) return [['DEL', this.header.key]]; // an empty collection loads as no key
    const out: Command[] = [];
    // RENAME first: an expiry already in the past deletes the key it is set on, and on the
    // temporary key that would leave the old value of the real key in place.
    out.push([this.renamedWith, this.temp, this.header.key]);
    if (this.header.expireAtMs !== null) out.push(['PEXPIREAT', this.header.key, this.header.expireAtMs]);
    return out;
  }
}
