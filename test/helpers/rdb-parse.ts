import { NEED_DATA, RdbParser, type RdbParserOptions } from '../../src/rdb/parser.js';
import type { RdbEntry } from '../../src/rdb/entries.js';

/** Parses a whole file, feeding it in chunks of the given sizes (cycled): every chunking must agree. */
export function parseAll(data: Buffer, chunkSizes: number[], options: RdbParserOptions = {}): RdbEntry[] {
  const parser = new RdbParser(options);
  const entries: RdbEntry[] = [];
  let at = 0;
  let i = 0;
  for (;;) {
    const e = parser.next();
    if (e === null) break;
    if (e === NEED_DATA) {
      if (at >= data.length) {
        parser.end();
        continue;
      }
      const size = chunkSizes[i++ % chunkSizes.length]!;
      parser.push(data.subarray(at, at + size));
      at += size;
      continue;
    }
    entries.push(e);
  }
  return entries;
}
