/**
 * The part of better-sqlite3 (v12) that Ferry uses. Written here because @types/better-sqlite3
 * is not a dependency; if it is ever added, delete this file (the two would conflict).
 * Only positional parameters are declared: Ferry binds nothing by name.
 */
declare module 'better-sqlite3' {
  namespace Database {
    /** What SQLite can bind to a `?` (better-sqlite3 maps booleans to nothing: use 0/1). */
    type SqlValue = string | number | bigint | Buffer | null;

    interface RunResult {
      changes: number;
      lastInsertRowid: number | bigint;
    }

    interface Statement<P extends SqlValue[] = SqlValue[], R = unknown> {
      run(...params: P): RunResult;
      get(...params: P): R | undefined;
      all(...params: P): R[];
      readonly reader: boolean;
    }

    /** A function wrapped by `db.transaction()`: BEGIN / COMMIT around it, ROLLBACK on throw. */
    interface Transaction<F extends (...args: never[]) => unknown> {
      (...args: Parameters<F>): ReturnType<F>;
      deferred(...args: Parameters<F>): ReturnType<F>;
      immediate(...args: Parameters<F>): ReturnType<F>;
      exclusive(...args: Parameters<F>): ReturnType<F>;
    }

    interface Options {
      readonly?: boolean;
      fileMustExist?: boolean;
      /** busy timeout in ms (better-sqlite3's default is 5000). */
      timeout?: number;
    }

    interface Database {
      prepare<P extends SqlValue[] = SqlValue[], R = unknown>(sql: string): Statement<P, R>;
      exec(sql: string): this;
      pragma(source: string, options?: { simple?: boolean }): unknown;
      transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F>;
      close(): this;
      readonly open: boolean;
      readonly inTransaction: boolean;
      readonly name: string;
    }
  }

  interface DatabaseConstructor {
    new (filename: string, options?: Database.Options): Database.Database;
  }

  const Database: DatabaseConstructor;
  export = Database;
}
