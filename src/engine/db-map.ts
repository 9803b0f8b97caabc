/** Where a source database's keys land on the target. */
export interface DbPlacement {
  db: number;
  /** Prepended to every key name (to keep merged databases apart), or null. */
  prefix: Buffer | null;
  /**
   * False when another source database lands in the same place without a prefix: its keys
   * are then written without REPLACE, so a name that exists in both reports a collision
   * instead of silently overwriting the other database's key.
   */
  replace: boolean;
}

export interface DbMapperOptions {
  /** Source db N → target db M (standalone targets). */
  mapping?: ReadonlyMap<number, number>;
  /** Only these source dbs are migrated (all when absent). */
  only?: ReadonlySet<number>;
  /** A key prefix per source db. */
  prefixes?: ReadonlyMap<number, Buffer>;
  /** Every db goes to this one (a cluster target has db 0 only). */
  forceDb?: number;
}

/**
 * Which target database (and key prefix) a source database's keys go to. By default every
 * database keeps its number; on a cluster target all go to db 0.
 */
export class DbMapper {
  private readonly cache = new Map<number, DbPlacement | null>();
  private mergeLosers = new Set<number>();

  constructor(private readonly options: DbMapperOptions = {}) {}

  /** Target db for a source db, or null when the source db is not migrated. */
  map(sourceDb: number): number | null {
    return this.placement(sourceDb)?.db ?? null;
  }

  placement(sourceDb: number): DbPlacement | null {
    let p = this.cache.get(sourceDb);
    if (p === undefined) {
      if (this.options.only && !this.options.only.has(sourceDb)) p = null;
      else {
        const db = this.options.forceDb ?? this.options.mapping?.get(sourceDb) ?? sourceDb;
        p = { db, prefix: this.options.prefixes?.get(sourceDb) ?? null, replace: !this.mergeLosers.has(sourceDb) };
      }
      this.cache.set(sourceDb, p);
    }
    return p;
  }

  /** A copy of these options with every db sent to `db` (for a cluster target). */
  withForcedDb(db: number): DbMapper {
    return new DbMapper({ ...this.options, forceDb: db });
  }

  /**
   * Told which source dbs hold keys, works out which ones share a destination (same db, same
   * prefix): the lowest keeps REPLACE, the others lose it and so report collisions.
   */
  noteSourceDbs(dbs: readonly number[]): void {
    const seen = new Map<string, number>();
    this.mergeLosers = new Set();
    for (const db of [...dbs].sort((a, b) => a - b)) {
      this.cache.delete(db);
      const p = this.placement(db);
      if (!p) continue;
      const where = `${p.db}/${p.prefix?.toString('hex') ?? ''}`;
      if (seen.has(where)) this.mergeLosers.add(db);
      else seen.set(where, db);
    }
    this.cache.clear();
  }

  /** Parses `0:1,3:5` (source:target pairs). */
  static parse(text: string | undefined, extra: Omit<DbMapperOptions, 'mapping'> = {}): DbMapper {
    const mapping = new Map<number, number>();
    for (const pair of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
      const m = /^(\d+):(\d+)$/.exec(pair);
      if (!m) throw new Error(`invalid db mapping "${pair}": expected SOURCE:TARGET, e.g. 0:1`);
      mapping.set(Number(m[1]), Number(m[2]));
    }
    return new DbMapper({ ...extra, mapping });
  }

  /** Parses `--dbs 0,1,5`. */
  static parseDbList(text: string | undefined): Set<number> | undefined {
    if (!text) return undefined;
    const dbs = text.split(',').map((d) => d.trim());
    if (dbs.some((d) => !/^\d+$/.test(d))) throw new Error(`invalid --dbs "${text}": expected numbers like 0,1,5`);
    return new Set(dbs.map(Number));
  }

  /** Parses `--db-prefix 1=db1:,2=db2:`. */
  static parsePrefixes(text: string | undefined): Map<number, Buffer> | undefined {
    if (!text) return undefined;
    const prefixes = new Map<number, Buffer>();
    for (const pair of text.split(',')) {
      const m = /^\s*(\d+)=(.*)$/.exec(pair);
      if (!m) throw new Error(`invalid --db-prefix "${pair}": expected DB=PREFIX, e.g. 1=db1:`);
      prefixes.set(Number(m[1]), Buffer.from(m[2]!));
    }
    return prefixes;
  }
}
