/** Small conversions between RDB representations and command arguments. */

/**
 * A double as Redis would accept it back with no loss: JavaScript's shortest round-trip form,
 * plus the spellings Redis uses for infinities and negative zero.
 */
export function formatDouble(d: number): string {
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  if (Number.isNaN(d)) return 'nan';
  if (Object.is(d, -0)) return '-0';
  return String(d);
}

const MODULE_ID_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The 9-character module type name packed in a 64-bit module id (module.c moduleTypeEncodeId:
 * nine 6-bit characters, then a 10-bit encoding version).
 */
export function moduleNameFromId(id: bigint): string {
  let name = '';
  for (let i = 0; i < 9; i++) {
    const shift = BigInt(10 + (8 - i) * 6);
    name += MODULE_ID_CHARSET[Number((id >> shift) & 63n)];
  }
  return `${name} (encoding version ${Number(id & 1023n)})`;
}
