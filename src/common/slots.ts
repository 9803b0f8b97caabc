/**
 * Hash slots as Redis Cluster computes them, and key names Ferry makes in a given slot. Used
 * wherever a key meets a cluster: routing, the snapshot's temporary keys, checkpoints, verify.
 */
export const SLOT_COUNT = 16384;

/** CRC16/XMODEM (poly 0x1021, init 0), the table Redis uses (`src/crc16.c`). */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

export function crc16(buf: Buffer, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ buf[i]!) & 0xff]!;
  return crc;
}

export const OPEN = 0x7b; // '{'
export const CLOSE = 0x7d; // '}'

/** [start, end) of the hash tag of `key`, or null when the whole key is hashed. */
function tagRange(key: Buffer): [number, number] | null {
  const s = key.indexOf(OPEN);
  if (s === -1) return null;
  const e = key.indexOf(CLOSE, s + 1);
  if (e === -1 || e === s + 1) return null;
  return [s + 1, e];
}

/**
 * The hash slot of a key, exactly as `keyHashSlot` (`src/cluster.c`): the first `{`, then the
 * first `}` after it, with at least one byte between, delimit the hashed part.
 *
 * Not cluster-key-slot: its loop keeps scanning after an empty `{}` and then hashes what lies
 * between the `{}` and a later `}` (for "{}{a}" it returns slot("{a"), Redis hashes the whole
 * key), so keys of that shape would be grouped into the wrong slot.
 */
export function slotOf(key: Buffer): number {
  const tag = tagRange(key);
  return (tag === null ? crc16(key, 0, key.length) : crc16(key, tag[0], tag[1])) & (SLOT_COUNT - 1);
}

/** The bytes a cluster hashes for `key` when it has a hash tag (between `{` and `}`), else null. */
export function hashTagOf(key: Buffer): Buffer | null {
  const tag = tagRange(key);
  return tag === null ? null : key.subarray(tag[0], tag[1]);
}

const TMP_MARK = Buffer.from('}__ferry_tmp__:', 'latin1');

/**
 * A temporary key name in the same slot as `key`: `{<tag>}__ferry_tmp__:<suffix>`, where the
 * tag is the key's hash tag, the key itself when it has no tag and no `}` (then `{key}` hashes
 * what the whole key hashes), and otherwise (a `}` but no valid tag, as in "user}42", or an
 * empty key) a short tag chosen for the key's slot (slotTag). Readable where it can be, and
 * always in the key's slot, so that RENAME into place works on a cluster.
 *
 * The prefix belongs to Ferry: a user key with this exact name would be overwritten and removed.
 */
export function temporaryKeyInSlotOf(key: Buffer, suffix: Buffer | string | number): Buffer {
  let tag = hashTagOf(key);
  if (tag === null) tag = key.length === 0 || key.includes(CLOSE) ? Buffer.from(slotTag(slotOf(key)), 'latin1') : key;
  const tail = Buffer.isBuffer(suffix) ? suffix : Buffer.from(String(suffix), 'latin1');
  return Buffer.concat([Buffer.from('{', 'latin1'), tag, TMP_MARK, tail]);
}

let tags: string[] | null = null;

/**
 * A short hash tag for every slot: `{tag}` in a key name puts the key in that slot. Built once
 * by trying `0`, `1`, `2`... in base 36 (CRC16 spreads them evenly: about 170k tries fill all
 * 16384).
 */
export function slotTag(slot: number): string {
  if (!tags) {
    const t = new Array<string>(SLOT_COUNT);
    let filled = 0;
    for (let n = 0; filled < SLOT_COUNT; n++) {
      const tag = n.toString(36);
      const s = slotOf(Buffer.from(tag, 'latin1'));
      if (t[s] === undefined) {
        t[s] = tag;
        filled++;
      }
    }
    tags = t;
  }
  return tags[slot]!;
}
