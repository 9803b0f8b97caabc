/** Keys per database from an `INFO keyspace` reply (`db0:keys=12,expires=3,...`). */
export function keyspaceOf(info: string): { keys: number; dbs: number[] } {
  let keys = 0;
  const dbs: number[] = [];
  for (const m of info.matchAll(/^db(\d+):keys=(\d+)/gm)) {
    dbs.push(Number(m[1]));
    keys += Number(m[2]);
  }
  return { keys, dbs };
}
