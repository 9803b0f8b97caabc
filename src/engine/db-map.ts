/**
 * Which target database a source database's keys go to. By default every database keeps its
 * number; a mapping sends source db N to target db M.
 */
export class DbMapper {
  constructor(private readonly mapping: ReadonlyMap<number, number> = new Map()) {}

  /** Target db for a source db, or null when the source db is not migrated. */
  map(sourceDb: number): number | null {
    return this.mapping.get(sourceDb) ?? sourceDb;
  }

  /** Parses `0:1,3:5` (source:target pairs). */
  static parse(text: string | undefined): DbMapper {
    const mapping = new Map<number, number>();
    for (const pair of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
      const m = /^(\d+):(\d+)$/.exec(pair);
      if (!m) throw new Error(`invalid db mapping "${pair}": expected SOURCE:TARGET, e.g. 0:1`);
      mapping.set(Number(m[1]), Number(m[2]));
    }
    return new DbMapper(mapping);
  }
}
