/**
 * The manifest of a Redis 7+ multi-part AOF (`<appendfilename>.manifest` in `appenddirname`),
 * read with the rules of Redis's own loader (aofLoadManifestFromFile in src/aof.c), so that a
 * manifest Redis would refuse is refused here too, with the same reason and the line:
 *
 *     file appendonly.aof.2.base.rdb seq 2 type b
 *     file appendonly.aof.1.incr.aof seq 1 type h
 *     file appendonly.aof.2.incr.aof seq 2 type i
 *
 * - a line starting with '#' is a comment; any other line must be non-blank after trimming
 *   " \t\r\n", and at most 1024 bytes with its newline;
 * - a line is split like redis.conf (sdssplitargs: "double quotes" with \xHH \n \r \t \b \a
 *   escapes, 'single quotes' with \'; a closing quote must be followed by a space or the end);
 *   names that need it are written quoted (sdscatrepr);
 * - at least 6 tokens, an even number: key/value pairs, keys case-insensitive; unknown keys are
 *   ignored (forward compatibility), a repeated key keeps its last value;
 * - `file` must be a bare file name (no '/' or '\'), `seq` is read like atoll and must not be 0,
 *   `type` is the first character of its value: b (base), h (history) or i (incremental);
 * - at most one base; incremental seqs strictly increase in file order (they are applied in
 *   that order); history entries are superseded files, never loaded.
 *
 * Deviations, all stricter or harmless: an empty file name and the names '.' and '..' are
 * refused (Redis would accept them and fail later opening them); a last line without a newline
 * is accepted (Redis's fgets check reports it as "too long"); a manifest with no base and no
 * incremental file is refused by the planner (Redis would load an empty dataset).
 */
import { BackupError } from './errors.js';

export type ManifestFileType = 'base' | 'incr' | 'history';

export interface ManifestEntry {
  /** The file name, relative to the manifest's directory. */
  file: string;
  seq: number;
  type: ManifestFileType;
  /** 1-based line number in the manifest, for messages. */
  line: number;
}

export interface AofManifest {
  base: ManifestEntry | null;
  /** In application order (strictly increasing seq). */
  incrs: ManifestEntry[];
  history: ManifestEntry[];
}

/** Redis's MANIFEST_MAX_LINE: fgets reads at most this many bytes of a line, newline included. */
const MAX_LINE = 1024;

/** C isspace(). */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function isHex(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

/**
 * sdssplitargs(): tokens of a line (as latin1 strings, one char per byte), or null on unbalanced
 * quotes or a closing quote not followed by a space.
 */
export function splitArgs(input: string): string[] | null {
  // A C string ends at its first NUL.
  const nul = input.indexOf('\0');
  const line = nul >= 0 ? input.slice(0, nul) : input;
  const n = line.length;
  const out: string[] = [];
  let p = 0;
  for (;;) {
    while (p < n && isSpace(line.charCodeAt(p))) p++;
    if (p >= n) return out;
    let inq = false;
    let insq = false;
    let done = false;
    let cur = '';
    while (!done) {
      const c: string | undefined = p < n ? line[p] : undefined;
      if (inq) {
        if (c === '\\' && line[p + 1] === 'x' && isHex(line[p + 2]) && isHex(line[p + 3])) {
          cur += String.fromCharCode(parseInt(line.slice(p + 2, p + 4), 16));
          p += 3;
        } else if (c === '\\' && p + 1 < n) {
          p++;
          const e = line[p]!;
          cur += e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e === 'b' ? '\b' : e === 'a' ? '\x07' : e;
        } else if (c === '"') {
          if (p + 1 < n && !isSpace(line.charCodeAt(p + 1))) return null;
          done = true;
        } else if (c === undefined) {
          return null;
        } else {
          cur += c;
        }
      } else if (insq) {
        if (c === '\\' && line[p + 1] === "'") {
          p++;
          cur += "'";
        } else if (c === "'") {
          if (p + 1 < n && !isSpace(line.charCodeAt(p + 1))) return null;
          done = true;
        } else if (c === undefined) {
          return null;
        } else {
          cur += c;
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case undefined:
            done = true;
            break;
          case '"':
            inq = true;
            break;
          case "'":
            insq = true;
            break;
          default:
            cur += c;
        }
      }
      if (p < n) p++;
    }
    out.push(cur);
  }
}

/** atoll(): optional leading spaces and sign, then digits; 0 when there are none. */
function atoll(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? Number(m[1]) : 0;
}

function trim(s: string): string {
  return s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}

/** A token (latin1, one char per byte) as the UTF-8 text file names are compared in. */
function bytesToName(token: string): string {
  return Buffer.from(token, 'latin1').toString('utf8');
}

/**
 * Parses a manifest; throws BackupError naming `display`, the line number and the line, with
 * the reason Redis would give.
 */
export function parseManifest(text: Buffer, display: string): AofManifest {
  if (text.length === 0) {
    throw new BackupError(`${display}: the AOF manifest is empty (Redis refuses it: "Found an empty AOF manifest")`, display);
  }
  const lines = text.toString('latin1').split('\n');
  // The newline that ends the last line does not start another one.
  if (lines[lines.length - 1] === '') lines.pop();

  const manifest: AofManifest = { base: null, incrs: [], history: [] };
  let maxIncrSeq = 0;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!;
    if (raw.startsWith('#')) continue;
    const fail = (reason: string): never => {
      throw new BackupError(`${display} line ${lineNo}: ${reason}: '${printable(trim(raw))}'`, display);
    };
    if (raw.length + 1 > MAX_LINE) fail(`line longer than ${MAX_LINE - 1} bytes (Redis refuses it)`);
    const line = trim(raw);
    if (line === '') fail('blank line (Redis refuses it: "Invalid AOF manifest file format")');
    const argv = splitArgs(line);
    if (argv === null) fail('unbalanced quotes (Redis refuses it: "Invalid AOF manifest file format")');
    if (argv!.length < 6 || argv!.length % 2 !== 0) {
      fail('expected key/value pairs "file <name> seq <n> type <b|h|i>" (Redis refuses it: "Invalid AOF manifest file format")');
    }
    let file: string | null = null;
    let seq = 0;
    let type = '';
    for (let j = 0; j < argv!.length; j += 2) {
      const key = argv![j]!.toLowerCase();
      const value = argv![j + 1]!;
      if (key === 'file') {
        file = bytesToName(value);
        if (file.includes('/') || file.includes('\\')) fail(`the file name must be a bare name, not a path (Redis refuses it: "File can't be a path, just a filename")`);
      } else if (key === 'seq') {
        seq = atoll(value);
      } else if (key === 'type') {
        type = value.slice(0, 1);
      }
      // Other keys: ignored, as Redis does for forward compatibility.
    }
    if (file === null || seq === 0 || type === '') {
      fail('a line needs a file, a non-zero seq and a type (Redis refuses it: "Invalid AOF manifest file format")');
    }
    if (file === '' || file === '.' || file === '..') fail(`'${file}' is not a file name`);
    if (type === 'b') {
      if (manifest.base !== null) fail(`a second base file (the first is on line ${manifest.base.line}; Redis refuses it: "Found duplicate base file information")`);
      manifest.base = { file: file!, seq, type: 'base', line: lineNo };
    } else if (type === 'h') {
      manifest.history.push({ file: file!, seq, type: 'history', line: lineNo });
    } else if (type === 'i') {
      if (seq <= maxIncrSeq) fail(`incremental file seq ${seq} does not follow ${maxIncrSeq} (Redis refuses it: "Found a non-monotonic sequence number")`);
      manifest.incrs.push({ file: file!, seq, type: 'incr', line: lineNo });
      maxIncrSeq = seq;
    } else {
      fail(`unknown file type '${printable(type)}', expected b, h or i (Redis refuses it: "Unknown AOF file type")`);
    }
  }
  return manifest;
}

/** Does this look like a manifest? (its first non-comment line parses as one with a `file` key) */
export function looksLikeManifest(head: Buffer): boolean {
  for (const raw of head.toString('latin1').split('\n')) {
    if (raw.startsWith('#')) continue;
    const argv = splitArgs(trim(raw));
    if (argv === null || argv.length < 6 || argv.length % 2 !== 0) return false;
    const keys = new Set(argv.filter((_, i) => i % 2 === 0).map((k) => k.toLowerCase()));
    return keys.has('file') && keys.has('seq') && keys.has('type');
  }
  return false;
}

function printable(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    out += c >= 0x20 && c < 0x7f ? ch : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out.length > 200 ? `${out.slice(0, 200)}...` : out;
}
