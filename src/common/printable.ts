/** A key as people can read it in logs and JSON: UTF-8 when it is, escaped bytes when not. */
export function printable(key: Buffer, max = 200): string {
  const cut = key.length > max ? key.subarray(0, max) : key;
  let out = '';
  for (const byte of cut) {
    if (byte >= 0x20 && byte < 0x7f && byte !== 0x5c) out += String.fromCharCode(byte);
    else if (byte === 0x5c) out += '\\\\';
    else out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return key.length > max ? `${out}...(${key.length} bytes)` : out;
}
