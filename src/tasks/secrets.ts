/**
 * Passwords at rest: tasks keep their endpoints' passwords sealed with a key that lives next to
 * the database (`<dataDir>/secret.key`), so a copy of the database alone (a backup, a support
 * bundle) does not give away the Redis passwords. Whoever can read the key file can open them:
 * this protects the database file, not a compromised host.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { EncryptedSecret } from './model.js';

const KEY_FILE = 'secret.key';
const KEY_BYTES = 32; // AES-256
const IV_BYTES = 12; // the GCM standard nonce size; random per seal
const TAG_BYTES = 16;
const PREFIX = 'v1:'; // names the format, so a later key or cipher change can tell old from new

/** One message for every failure, so nothing about the input or the key leaks through it. */
const CANNOT_OPEN = 'stored secret cannot be decrypted: wrong key or corrupted';

export class SecretBox {
  // A #private field: util.inspect and JSON.stringify do not show it, so logging the box by
  // mistake does not print the key.
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /**
   * Reads `<dataDir>/secret.key`, creating it (32 random bytes, mode 0600) the first time.
   * Creation is atomic: the key is written to a temporary file and then hard-linked into place,
   * which fails if another process got there first; we then use that process's key. So there is
   * never a half-written key file, nor two processes sealing with different keys.
   */
  static loadOrCreate(dataDir: string): SecretBox {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return SecretBox.loadOrCreateFile(path.join(dataDir, KEY_FILE));
  }

  /** The same, for a key file at a path of its own (config `secretKeyFile`: nodes sharing one database share it). */
  static loadOrCreateFile(keyPath: string): SecretBox {
    if (!fs.existsSync(keyPath)) createKeyFile(keyPath);
    // Whoever reads the key opens every stored password: the owner's only, whatever it was.
    if ((fs.statSync(keyPath).mode & 0o077) !== 0) fs.chmodSync(keyPath, 0o600);
    const key = fs.readFileSync(keyPath);
    if (key.length !== KEY_BYTES) {
      throw new Error(`secret key file ${keyPath} holds ${key.length} bytes, expected ${KEY_BYTES}: restore it from a backup (a new key cannot open the stored passwords)`);
    }
    return new SecretBox(key);
  }

  seal(plain: string): EncryptedSecret {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.#key, iv);
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return `${PREFIX}${Buffer.concat([iv, tag, ciphertext]).toString('base64')}` as EncryptedSecret;
  }

  open(sealed: EncryptedSecret): string {
    // Checked before decoding: Buffer.from(..., 'base64') skips bad characters silently.
    if (typeof sealed !== 'string' || !sealed.startsWith(PREFIX)) throw new Error(CANNOT_OPEN);
    const body = sealed.slice(PREFIX.length);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new Error(CANNOT_OPEN);
    const raw = Buffer.from(body, 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error(CANNOT_OPEN);
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      return plain.toString('utf8');
    } catch {
      // GCM's tag check failed: another key, or the stored text was altered.
      throw new Error(CANNOT_OPEN);
    }
  }

  toJSON(): string {
    return '[SecretBox]';
  }
}

function createKeyFile(keyPath: string): void {
  const key = crypto.randomBytes(KEY_BYTES);
  const tmp = `${keyPath}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  writeExclusive(tmp, key);
  try {
    fs.linkSync(tmp, keyPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EEXIST: another process created the key in the meantime; the caller reads theirs.
    if (code !== 'EEXIST') {
      // A file system without hard links (some network or FUSE mounts): create exclusively in
      // place instead; a concurrent reader could then see a short file, and would refuse it.
      try {
        writeExclusive(keyPath, key);
      } catch (fallbackErr) {
        if ((fallbackErr as NodeJS.ErrnoException).code !== 'EEXIST') throw fallbackErr;
      }
    }
  } finally {
    fs.unlinkSync(tmp);
  }
  syncDir(path.dirname(keyPath));
}

/** Creates `file` (failing with EEXIST if it exists), mode 0600, contents synced to disk. */
function writeExclusive(file: string, data: Buffer): void {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeSync(fd, data);
    // The umask can only remove bits from 0600, but say it explicitly rather than rely on that.
    fs.fchmodSync(fd, 0o600);
    // On disk before it is used: losing the key after sealing with it loses the passwords.
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes the new directory entry durable (POSIX); not possible on Windows, where it is skipped. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open or fsync a directory; the key file itself is already synced.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** For API responses and logs: never the secret itself. */
export function maskSecret(present: boolean): string | null {
  return present ? '********' : null;
}
