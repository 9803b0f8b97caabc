/**
 * Who may call the API: AK/SK pairs (for SDK-HMAC-SHA256 signing) and static tokens (for
 * X-Auth-Token), each bound to the project id its requests must address.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface AkSkCredential {
  ak: string;
  sk: string;
  projectId: string;
}

export interface TokenCredential {
  token: string;
  projectId: string;
}

/** Fixed-length digest so tokens of any length can go through timingSafeEqual. */
function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class CredentialRegistry {
  private readonly byAk = new Map<string, AkSkCredential>();
  private readonly tokens: { digest: Buffer; projectId: string }[];

  constructor(ak: AkSkCredential[], tokens: TokenCredential[]) {
    for (const c of ak) {
      if (c.ak === '' || c.sk === '') throw new Error('credential with an empty AK or SK');
      // Two secrets for one AK would make verification depend on list order; refuse instead.
      if (this.byAk.has(c.ak)) throw new Error(`duplicate access key ${c.ak}`);
      this.byAk.set(c.ak, { ...c });
    }
    for (const t of tokens) if (t.token === '') throw new Error('token credential with an empty token');
    this.tokens = tokens.map((t) => ({ digest: digest(t.token), projectId: t.projectId }));
  }

  /** The SK for an AK. A plain map lookup is fine: the AK travels in clear in every request. */
  secretFor(ak: string): string | undefined {
    return this.byAk.get(ak)?.sk;
  }

  projectOfAk(ak: string): string | undefined {
    return this.byAk.get(ak)?.projectId;
  }

  /**
   * The project a token is scoped to. Compares against every configured token in constant time
   * and without stopping at the first hit, so timing reveals neither prefix matches nor position.
   */
  projectOfToken(token: string): string | undefined {
    const given = digest(token);
    let found: string | undefined;
    for (const t of this.tokens) {
      if (timingSafeEqual(given, t.digest) && found === undefined) found = t.projectId;
    }
    return found;
  }

  get isEmpty(): boolean {
    return this.byAk.size === 0 && this.tokens.length === 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Generated credential for a fresh install

export const GENERATED_CREDENTIALS_FILE = 'credentials.json';

const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** randomInt is unbiased, unlike `byte % alphabet.length`. */
function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)]!;
  return out;
}

/** Same shapes as Huawei Cloud issues: 20-char upper-case AK, 40-char SK, 32-hex project id. */
export function generateCredential(): AkSkCredential {
  return {
    ak: randomString(UPPER_ALNUM, 20),
    sk: randomString(ALNUM, 40),
    projectId: randomBytes(16).toString('hex'),
  };
}

function parseCredentialFile(text: string, path: string): AkSkCredential {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON; delete it to generate a new credential`);
  }
  if (typeof data !== 'object' || data === null) throw new Error(`${path} must hold a JSON object`);
  const rec = data as Record<string, unknown>;
  const { ak, sk, projectId } = rec;
  if (typeof ak !== 'string' || !/^[A-Za-z0-9]{1,128}$/.test(ak)) throw new Error(`${path}: "ak" is missing or invalid`);
  if (typeof sk !== 'string' || sk.length === 0) throw new Error(`${path}: "sk" is missing or invalid`);
  if (typeof projectId !== 'string' || !/^[0-9a-f]{32}$/.test(projectId)) {
    throw new Error(`${path}: "projectId" is missing or not 32 lower-case hex digits`);
  }
  return { ak, sk, projectId };
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}

function isExists(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'EEXIST';
}

function load(path: string): AkSkCredential {
  // The SK is a secret: tighten a file someone loosened rather than keep serving it world-readable.
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } catch {
    // Best effort: a read-only data dir must not stop the server from starting.
  }
  return parseCredentialFile(readFileSync(path, 'utf8'), path);
}

/**
 * Loads or creates <dataDir>/credentials.json (mode 0600) holding one generated AK (20 upper-case
 * alphanumerics), SK (40 chars) and project id (32 lower hex); returns it and whether it was
 * created now.
 */
export function loadOrCreateGeneratedCredential(dataDir: string): { credential: AkSkCredential; created: boolean } {
  const path = join(dataDir, GENERATED_CREDENTIALS_FILE);
  try {
    return { credential: load(path), created: false };
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const credential = generateCredential();
  const body = JSON.stringify({ ...credential, createdAt: new Date().toISOString() }, null, 2) + '\n';
  // Write a private temp file, fsync it, then hard-link it into place: the final name never holds
  // a half-written file, and link() fails with EEXIST instead of overwriting a credential another
  // process created concurrently (which we then adopt, so both agree on one AK).
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    // The umask may have masked bits off, never on, but make the mode explicit anyway.
    chmodSync(tmp, 0o600);
    linkSync(tmp, path);
  } catch (err) {
    if (!isExists(err)) throw err;
    return { credential: load(path), created: false };
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone; nothing to clean up.
    }
  }
  return { credential, created: true };
}
