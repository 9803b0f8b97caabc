/**
 * PostgreSQL for tests: the server on 127.0.0.1:5432 (scripts/test.sh starts it when it can),
 * or FERRY_TEST_DATABASE_URL. Every store a test makes lives in a schema of its own, dropped at
 * the end. When no server answers, `pgSkip` says why, and the tests that need it are reported
 * as skipped with that reason (never passed silently).
 */
import { after } from 'node:test';
import pg from 'pg';
import { PgTaskStore } from '../../src/tasks/pg-store.js';

export const pgUrl = process.env.FERRY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probe(): Promise<string | false> {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return false;
  } catch (e) {
    return `no PostgreSQL at ${pgUrl} (${(e as Error).message}): start PostgreSQL (scripts/test.sh does when pg_ctlcluster is installed) or set FERRY_TEST_DATABASE_URL`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** False when PostgreSQL answers, else the reason its tests are skipped. */
export const pgSkip: string | false = await probe();
if (pgSkip) process.stderr.write(`\n*** PostgreSQL tests SKIPPED: ${pgSkip}\n\n`);

let count = 0;
const schemas = new Set<string>();
const stores: PgTaskStore[] = [];

/** A new, unused schema name (dropped with everything in it after the test file). */
export function newSchema(): string {
  const name = `ferry_t${process.pid}_${Date.now().toString(36)}_${count++}`;
  schemas.add(name);
  return name;
}

/** An empty PostgreSQL store in a schema of its own. */
export async function freshPgStore(): Promise<PgTaskStore> {
  const store = await PgTaskStore.open(pgUrl, { schema: newSchema(), poolSize: 4 });
  stores.push(store);
  return store;
}

export async function dropSchemas(): Promise<void> {
  for (const s of stores.splice(0)) await s.close();
  if (schemas.size === 0 || pgSkip) return;
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    schemas.clear();
  } finally {
    await client.end();
  }
}

after(dropSchemas);
