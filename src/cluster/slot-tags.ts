import { slotOf } from './split.js';

let table: string[] | null = null;

/**
 * A short hash tag for every slot: `{tag}` in a key name puts the key in that slot. Built once
 * by trying `0`, `1`, `2`... (CRC16 spreads them evenly: about 170k tries fill all 16384).
 */
export function slotTag(slot: number): string {
  if (!table) {
    const t = new Array<string>(16384);
    let filled = 0;
    for (let n = 0; filled < 16384; n++) {
      const tag = n.toString(36);
      const s = slotOf(Buffer.from(tag));
      if (t[s] === undefined) {
        t[s] = tag;
        filled++;
      }
    }
    table = t;
  }
  return table[slot]!;
}
