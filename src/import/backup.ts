/**
 * Backup files to import: which formats they are, in which order their parts apply, and the
 * parts' bytes as streams.
 *
 * Formats, recognised by content first and by name second:
 *  - RDB (`REDIS0012`, `VALKEY080`): a dump.rdb, or the base of a multi-part AOF;
 *  - AOF (`*`, or a `#` annotation line then `*`): RESP commands;
 *  - AOF with an RDB preamble (RDB magic, name `*.aof`): an RDB, then commands (Redis 4-6 with
 *    aof-use-rdb-preamble, or a Redis 7 base/incr pair concatenated);
 *  - multi-part AOF (Redis 7+): a manifest (`*.manifest`, or content `file ... seq ... type ...`)
 *    that names a base (RDB or AOF) and incremental AOFs in its directory; applied base first,
 *    then incrementals in manifest order; history files are skipped;
 *  - zip (`PK\x03\x04`), tar (`ustar` at 257), gzip (`\x1f\x8b`: a .tar.gz, or one gzipped file),
 *    holding any of the above (several backups, or a whole appendonlydir with its manifest).
 *
 * planBackup() looks at every file (and every archive entry) up front and fails, before anything
 * is written to a target, on what it can see: an unknown format, an empty file, a manifest Redis
 * would refuse or that names a missing file, an archive with no backup inside. backupParts()
 * then yields the parts in order as streams, reading each file once more.
 *
 * Memory: parts are streams, read on demand; planning keeps the first 4 KiB of each file and
 * whole manifests (at most 1 MiB each). Disk: a zip that is not a local file is copied to a
 * temporary file (zip needs random access); a tar whose multi-part AOF entries are not in
 * application order has the early entries copied to temporary files until their turn.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { openPromise as openZipFile, type Entry as ZipEntry, type ZipFile } from 'yauzl';
import { toReadable, type ByteStream } from './byte-source.js';
import { BackupError, describeBytes, errorMessage, type BackupWarning } from './errors.js';
import { looksLikeManifest, parseManifest, type ManifestEntry } from './manifest.js';

export { BackupError, type BackupWarning, type BackupWarningCode } from './errors.js';
export { ByteSource, type ByteStream } from './byte-source.js';
export {
  aofCommands,
  readRdb,
  readBackupPart,
  type AofReadOptions,
  type AofSummary,
  type PartHandlers,
  type PartReadOptions,
  type PartSummary,
  type RdbReadOptions,
  type RdbSummary,
} from './read.js';
export { parseManifest, type AofManifest, type ManifestEntry } from './manifest.js';

/** A byte range of a file, `end` inclusive (HTTP Range semantics). */
export interface ByteRange {
  start: number;
  end?: number;
}

/** A readable, seek-free source of one file's bytes. */
export interface BackupFile {
  /** The name as configured ('/'-separated: a bucket key, a path relative to the directory). */
  readonly name: string;
  /** Size in bytes, null while unknown. */
  readonly size: number | null;
  /** Set when the bytes are a local file: a zip is then read in place instead of copied. */
  readonly localPath?: string;
  /**
   * A new stream of the file's bytes. `range` is only a hint (planning reads the first bytes
   * with it); an implementation may ignore it and return the whole file.
   */
  open(range?: ByteRange): Promise<ByteStream>;
  /** Resolves the size, failing clearly when the file does not exist. Optional. */
  stat?(): Promise<number>;
}

export type BackupPartKind = 'rdb' | 'aof' | 'aof-with-preamble';

/** What the importer applies, in order. */
export interface BackupPart {
  /**
   * - 'rdb': an RDB (RdbParser; bytes after its end are not data: readRdb warns about them);
   * - 'aof': RESP commands (aofCommands);
   * - 'aof-with-preamble': an RDB, then RESP commands from the byte after the RDB's checksum.
   */
  kind: BackupPartKind;
  /** For messages: the file's name, or `entry in archive`. */
  file: string;
  /** The part's bytes. Read it to its end before asking backupParts for the next part. */
  stream: Readable;
  /** Uncompressed size, when known. */
  size: number | null;
  /**
   * Whether this is the last file of its AOF: only then may its last command be cut or its
   * last transaction be open (Redis's aof-load-truncated); pass it as allowTruncatedTail.
   */
  last: boolean;
  /** Position in plan.parts. */
  index: number;
}

export interface PlannedPart {
  kind: BackupPartKind;
  file: string;
  size: number | null;
  last: boolean;
}

export interface BackupPlan {
  /** The parts, in application order. */
  readonly parts: readonly PlannedPart[];
  /** Files left out (history files, non-backup archive entries), with the reason. */
  readonly warnings: readonly BackupWarning[];
  /** Sum of the parts' (uncompressed) sizes, or null when one is unknown: for progress. */
  readonly totalBytes: number | null;
  /**
   * Removes temporary files made while planning (a remote zip is copied to disk). backupParts
   * calls it when it finishes or fails; call it yourself when the plan is not applied.
   */
  dispose(): Promise<void>;
}

export interface BackupOptions {
  /** Where temporary files go (a copied zip, out-of-order tar entries). Default os.tmpdir(). */
  tempDir?: string;
}

export interface PartsOptions extends BackupOptions {
  /** The plan made by planBackup(files): saves reading every file a second time to plan. */
  plan?: BackupPlan;
}

/** Bytes read from the start of each file to recognise its format. */
const SNIFF_BYTES = 4096;
/** A manifest larger than this is not one. */
const MAX_MANIFEST_BYTES = 1 << 20;
const EMPTY = Buffer.alloc(0);

type Content = 'rdb' | 'aof' | 'manifest' | 'zip' | 'tar' | 'gzip' | 'empty' | 'unknown';

// ---------------------------------------------------------------------------------------------
// Format detection

function hasRdbMagic(head: Buffer): boolean {
  const s = head.toString('latin1', 0, 9);
  // A head shorter than the magic but starting with it is a truncated RDB: the parser says so.
  if (head.length < 9) return s.startsWith('REDIS') || s.startsWith('VALKEY');
  return /^REDIS\d{4}$/.test(s) || /^VALKEY\d{3}/.test(s);
}

function isTar(head: Buffer): boolean {
  // POSIX "ustar\0" and GNU "ustar  \0" both start with "ustar" at offset 257.
  return head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar';
}

/**
 * An AOF that starts with annotation lines (`#TS:<time>` with aof-timestamp-enabled): after
 * them a command starts, or nothing (the base of an empty dataset is one annotation line).
 */
function annotatedAof(head: Buffer, name: string): boolean {
  let i = 0;
  while (i < head.length && head[i] === 0x23) {
    const nl = head.indexOf(0x0a, i);
    // An annotation longer than the sniffed bytes: trust the name.
    if (nl < 0) return /\.aof$/i.test(name);
    i = nl + 1;
  }
  return i > 0 && (i === head.length || head[i] === 0x2a);
}

function classify(head: Buffer, name: string): Content {
  if (head.length === 0) return 'empty';
  if (hasRdbMagic(head)) return 'rdb';
  if (head[0] === 0x2a) return 'aof';
  if (head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 0x03 && head[3] === 0x04) || (head[2] === 0x05 && head[3] === 0x06))) return 'zip';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (isTar(head)) return 'tar';
  if (/\.manifest$/i.test(name) || looksLikeManifest(head)) return 'manifest';
  if (annotatedAof(head, name)) return 'aof';
  return 'unknown';
}

function looksLikeBackupName(p: string): boolean {
  return /\.(rdb|aof|manifest)$/i.test(p);
}

/** macOS archivers add AppleDouble metadata (`__MACOSX/`, `._name`): never data, skipped. */
function isArchiveJunk(p: string): boolean {
  return p.startsWith('__MACOSX/') || path.posix.basename(p).startsWith('._');
}

/** An archive entry's path, '/'-separated, without './' or a leading '/'. */
function normalizeEntryPath(name: string): string {
  const n = path.posix.normalize(name.replace(/\\/g, '/')).replace(/^(\.\/)+/, '').replace(/^\/+/, '');
  return n === '.' ? '' : n.replace(/\/+$/, '');
}

function unknownFormat(display: string, head: Buffer): BackupError {
  return new BackupError(
    `${display}: unknown format (first bytes: ${describeBytes(head)}); expected an RDB (REDIS/VALKEY), ` +
      `an AOF (*), an AOF manifest, a .zip, a .tar or a .tar.gz`,
    display,
    0,
  );
}

// ---------------------------------------------------------------------------------------------
// Reading helpers

/** Reads up to `max` bytes from the start of a stream, then stops (destroying it). */
async function readHead(stream: Readable, max: number, display: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      chunks.push(b);
      n += b.length;
      if (n >= max) break; // leaving the loop destroys the stream: the rest is not needed
    }
  } catch (err) {
    throw wrapReadError(err, display);
  }
  const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  return all.length > max ? all.subarray(0, max) : all;
}

function wrapReadError(err: unknown, display: string): BackupError {
  if (err instanceof BackupError) return err;
  return new BackupError(`${display}: reading failed: ${errorMessage(err)}`, display, null, { cause: err });
}

async function openFile(file: BackupFile, range?: ByteRange): Promise<Readable> {
  try {
    return toReadable(await file.open(range));
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${file.name}: cannot open: ${errorMessage(err)}`, file.name, null, { cause: err });
  }
}

async function sizeOf(file: BackupFile): Promise<number | null> {
  if (!file.stat) return file.size;
  try {
    return await file.stat();
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${file.name}: ${errorMessage(err)}`, file.name, null, { cause: err });
  }
}

/** A gunzipping stream over a file's bytes; errors of either side surface on it. */
function gunzipOf(raw: Readable, display: string): Readable {
  const gunzip = createGunzip();
  // zlib's messages ("incorrect header check") do not say what was being decompressed.
  gunzip.prependListener('error', (err: Error) => {
    if (!(err instanceof BackupError)) err.message = `not valid gzip data: ${err.message}`;
  });
  raw.on('error', (err) => gunzip.destroy(wrapReadError(err, display)));
  gunzip.on('close', () => raw.destroy());
  raw.pipe(gunzip);
  return gunzip;
}

// ---------------------------------------------------------------------------------------------
// Tar

interface TarHeader {
  name: string;
  size: number;
  type: string;
}

/** A tar entry as tar-stream (streamx) hands it out: async-iterable bytes plus its header. */
interface TarEntry extends AsyncIterable<unknown> {
  header: TarHeader;
  resume(): unknown;
  destroyed: boolean;
}

interface TarReader {
  entries: AsyncIterator<TarEntry>;
  destroy(): void;
}

function openTar(raw: Readable, gzip: boolean, display: string): TarReader {
  const extract = tarExtract();
  const input = gzip ? gunzipOf(raw, display) : raw;
  const fail = (err: unknown): void => {
    extract.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  input.on('error', fail);
  raw.on('error', fail);
  input.pipe(extract as unknown as NodeJS.WritableStream);
  const iterable = extract as unknown as AsyncIterable<TarEntry>;
  return {
    entries: iterable[Symbol.asyncIterator](),
    destroy: () => {
      raw.destroy();
      if (input !== raw) input.destroy();
      extract.destroy();
    },
  };
}

async function nextTarEntry(reader: TarReader, display: string): Promise<TarEntry | null> {
  try {
    const step = await reader.entries.next();
    return step.done === true ? null : step.value;
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${display}: not a valid tar archive: ${errorMessage(err)}`, display, null, { cause: err });
  }
}

function isTarFile(header: TarHeader): boolean {
  return header.type === 'file' || header.type === 'contiguous-file';
}

// ---------------------------------------------------------------------------------------------
// Planning

/** How to get a part's bytes at apply time. */
type PartSource =
  | { kind: 'file'; file: BackupFile }
  | { kind: 'gunzip'; file: BackupFile }
  | { kind: 'zip'; zip: ZipContainer; entryName: string }
  | { kind: 'tar'; tar: TarContainer; entryIndex: number; entryPath: string };

interface ZipContainer {
  file: BackupFile;
  /** The local file yauzl reads: the file itself, or its copy in the temp dir. */
  path: string;
}

interface TarContainer {
  file: BackupFile;
  gzip: boolean;
}

interface Item {
  /** Path within its scope (the list of files, or one archive). */
  path: string;
  display: string;
  size: number | null;
  content: Content;
  head: Buffer;
  /** Whole text of a manifest. */
  text: Buffer | null;
  source: PartSource;
}

interface Positioned {
  position: number;
  item: Item;
}

interface PlannedSource {
  planned: PlannedPart;
  source: PartSource;
}

interface Group {
  position: number;
  parts: PlannedSource[];
}

interface PlanInternals {
  files: readonly BackupFile[];
  sources: PartSource[];
  temp: TempDir;
}

const internals = new WeakMap<BackupPlan, PlanInternals>();

/** A temp dir made on first use, removed by dispose(). */
class TempDir {
  private dir: Promise<string> | null = null;
  private count = 0;

  constructor(private readonly parent: string) {}

  async file(label: string): Promise<string> {
    this.dir ??= mkdtemp(path.join(this.parent, 'ferry-import-'));
    const dir = await this.dir;
    return path.join(dir, `${++this.count}-${label.replace(/[^A-Za-z0-9._-]/g, '_').slice(-80)}`);
  }

  async dispose(): Promise<void> {
    const dir = this.dir;
    this.dir = null;
    if (dir) await rm(await dir.catch(() => ''), { recursive: true, force: true }).catch(() => undefined);
  }
}

class Planner {
  readonly warnings: BackupWarning[] = [];

  constructor(readonly temp: TempDir) {}

  warn(code: BackupWarning['code'], file: string, message: string): void {
    this.warnings.push({ code, file, offset: null, message });
  }

  async plan(files: readonly BackupFile[]): Promise<Group[]> {
    const groups: Group[] = [];
    const top: Positioned[] = [];
    for (const [position, file] of files.entries()) {
      const size = await sizeOf(file);
      const head = size === 0 ? EMPTY : await readHead(await openFile(file, size !== null ? { start: 0, end: Math.min(size, SNIFF_BYTES) - 1 } : undefined), SNIFF_BYTES, file.name);
      const content = classify(head, file.name);
      if (content === 'zip') {
        groups.push({ position, parts: await this.zip(file) });
      } else if (content === 'tar') {
        groups.push({ position, parts: await this.tar(file, false) });
      } else if (content === 'gzip') {
        groups.push({ position, parts: await this.gzip(file) });
      } else {
        const text = content === 'manifest' ? await this.manifestText(await openFile(file), file.name) : null;
        const item: Item = { path: normalizeEntryPath(file.name), display: file.name, size, content, head, text, source: { kind: 'file', file } };
        top.push({ position, item });
      }
    }
    groups.push(...this.group(top, null));
    groups.sort((a, b) => a.position - b.position);
    return groups;
  }

  private async manifestText(stream: Readable, display: string): Promise<Buffer> {
    const text = await readHead(stream, MAX_MANIFEST_BYTES + 1, display);
    if (text.length > MAX_MANIFEST_BYTES) throw new BackupError(`${display}: larger than ${MAX_MANIFEST_BYTES} bytes: not an AOF manifest`, display);
    return text;
  }

  /** One gzipped file: a .tar.gz, or a single gzipped RDB/AOF. */
  private async gzip(file: BackupFile): Promise<PlannedSource[]> {
    const head = await readHead(gunzipOf(await openFile(file), file.name), SNIFF_BYTES, file.name);
    if (isTar(head)) return this.tar(file, true);
    const inner = normalizeEntryPath(file.name.replace(/\.gz$/i, '')) || 'content';
    const display = `${path.posix.basename(inner)} in ${file.name}`;
    const content = classify(head, inner);
    if (content === 'rdb' || content === 'aof') {
      const item: Item = { path: inner, display, size: null, content, head, text: null, source: { kind: 'gunzip', file } };
      return this.group([{ position: 0, item }], file.name).flatMap((g) => g.parts);
    }
    if (content === 'empty') throw new BackupError(`${display}: the file is empty`, file.name);
    throw unknownFormat(`${display} (gunzipped)`, head);
  }

  private async zip(file: BackupFile): Promise<PlannedSource[]> {
    // yauzl needs random access: it reads the central directory at the end of the file, then
    // seeks to each entry. A local file is read in place; anything else (an object in a bucket)
    // only streams, so it is copied to a temporary file first, kept for backupParts.
    let zipPath = file.localPath;
    if (zipPath === undefined) {
      zipPath = await this.temp.file(path.posix.basename(file.name));
      try {
        await pipeline(await openFile(file), createWriteStream(zipPath));
      } catch (err) {
        throw wrapReadError(err, file.name);
      }
    }
    const container: ZipContainer = { file, path: zipPath };
    const zip = await openZip(zipPath, file.name);
    const items: Positioned[] = [];
    try {
      let position = 0;
      for await (const entry of zipEntries(zip, file.name)) {
        if (entry.fileName.endsWith('/')) continue; // a directory
        const entryPath = normalizeEntryPath(entry.fileName);
        if (entryPath === '' || isArchiveJunk(entryPath)) continue;
        const display = `${entryPath} in ${file.name}`;
        if (entry.isEncrypted()) throw new BackupError(`${display}: encrypted zip entries are not supported`, display);
        const size = entry.uncompressedSize;
        const open = async (): Promise<Readable> => {
          try {
            return await zip.openReadStreamPromise(entry);
          } catch (err) {
            throw new BackupError(`${display}: cannot read the entry: ${errorMessage(err)}`, display, null, { cause: err });
          }
        };
        const head = size === 0 ? EMPTY : await readHead(await open(), SNIFF_BYTES, display);
        const content = classify(head, entryPath);
        const text = content === 'manifest' ? await this.manifestText(await open(), display) : null;
        items.push({ position: position++, item: { path: entryPath, display, size, content, head, text, source: { kind: 'zip', zip: container, entryName: entry.fileName } } });
      }
    } finally {
      zip.close();
    }
    return this.archiveParts(items, file.name);
  }

  private async tar(file: BackupFile, gzip: boolean): Promise<PlannedSource[]> {
    const container: TarContainer = { file, gzip };
    const reader = openTar(await openFile(file), gzip, file.name);
    const items: Positioned[] = [];
    try {
      for (let entryIndex = 0; ; entryIndex++) {
        const entry = await nextTarEntry(reader, file.name);
        if (entry === null) break;
        const entryPath = normalizeEntryPath(entry.header.name);
        const display = `${entryPath} in ${file.name}`;
        if (!isTarFile(entry.header) || entryPath === '' || isArchiveJunk(entryPath)) {
          if (entry.header.type !== 'directory' && !isArchiveJunk(entryPath) && looksLikeBackupName(entryPath)) {
            this.warn('skipped-file', display, `${display}: skipped, a ${entry.header.type} entry is not a regular file`);
          }
          entry.resume();
          continue;
        }
        const { head, text } = await this.tarEntryHead(entry, entryPath, display);
        const content = classify(head, entryPath);
        items.push({ position: entryIndex, item: { path: entryPath, display, size: entry.header.size, content, head, text, source: { kind: 'tar', tar: container, entryIndex, entryPath } } });
      }
    } finally {
      reader.destroy();
    }
    return this.archiveParts(items, file.name);
  }

  /**
   * Reads a tar entry to its end (a tar only streams: the next entry comes after this one's
   * bytes), keeping its first bytes, and all of it when it is a manifest.
   */
  private async tarEntryHead(entry: TarEntry, entryPath: string, display: string): Promise<{ head: Buffer; text: Buffer | null }> {
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let keep = true;
    let manifest = /\.manifest$/i.test(entryPath);
    try {
      for await (const chunk of entry) {
        if (!keep) continue;
        const b = chunk as Buffer;
        kept.push(b);
        keptBytes += b.length;
        if (keptBytes >= SNIFF_BYTES && !manifest) {
          manifest = classify(Buffer.concat(kept).subarray(0, SNIFF_BYTES), entryPath) === 'manifest';
          keep = manifest;
        }
        if (keptBytes > MAX_MANIFEST_BYTES) keep = false;
      }
    } catch (err) {
      throw wrapReadError(err, display);
    }
    const all = Buffer.concat(kept);
    const head = all.subarray(0, SNIFF_BYTES);
    if (classify(head, entryPath) !== 'manifest') return { head, text: null };
    if (all.length > MAX_MANIFEST_BYTES) throw new BackupError(`${display}: larger than ${MAX_MANIFEST_BYTES} bytes: not an AOF manifest`, display);
    return { head, text: all };
  }

  private archiveParts(items: Positioned[], archive: string): PlannedSource[] {
    const seen = new Map<string, Item>();
    for (const { item } of items) {
      const other = seen.get(item.path);
      if (other) throw new BackupError(`${item.path} appears twice in ${archive}`, archive);
      seen.set(item.path, item);
    }
    const parts = this.group(items, archive).flatMap((g) => g.parts);
    if (parts.length === 0) {
      const listing = items.slice(0, 10).map(({ item }) => `${item.path} (${item.content === 'unknown' ? describeBytes(item.head, 8) : item.content})`);
      if (items.length > 10) listing.push(`... ${items.length - 10} more`);
      throw new BackupError(
        `${archive}: no RDB or AOF file inside` + (items.length > 0 ? ` (entries: ${listing.join(', ')})` : ' (the archive has no files)'),
        archive,
      );
    }
    return parts;
  }

  /**
   * Groups the files of one scope (the list of files, or one archive) into backups: each
   * manifest with the files it names in its directory, and every other RDB or AOF on its own.
   */
  private group(entries: Positioned[], archive: string | null): Group[] {
    const byPath = new Map<string, Item>();
    for (const { item } of entries) byPath.set(item.path, item);
    const used = new Set<Item>();
    const groups: Group[] = [];
    const manifestDirs = new Set<string>();
    const aofDirs: { dir: string; display: string; ownDir: boolean }[] = [];
    const where = archive !== null ? `in ${archive}` : 'among the files given (list the manifest and every base and incremental file it names)';

    for (const { position, item } of entries) {
      if (item.content !== 'manifest') continue;
      const manifest = parseManifest(item.text ?? EMPTY, item.display);
      const dir = path.posix.dirname(item.path);
      manifestDirs.add(dir);
      aofDirs.push({ dir, display: item.display, ownDir: true });
      used.add(item);
      const named: [ManifestEntry, Item][] = [];
      const chain = manifest.base !== null ? [manifest.base, ...manifest.incrs] : manifest.incrs;
      if (chain.length === 0) throw new BackupError(`${item.display}: the manifest names no base and no incremental file: nothing to import`, item.display);
      for (const entry of chain) {
        const found = byPath.get(dir === '.' ? entry.file : `${dir}/${entry.file}`);
        if (found === undefined) {
          throw new BackupError(`${item.display} line ${entry.line} names the ${entry.type} file ${entry.file} (seq ${entry.seq}), which is not ${where}`, item.display);
        }
        if (used.has(found)) throw new BackupError(`${found.display} is named by two manifests (or twice)`, found.display);
        const ok = found.content === 'rdb' || found.content === 'aof' || (found.content === 'empty' && entry.type === 'incr');
        if (!ok) {
          if (found.content === 'empty') throw new BackupError(`${found.display}: the base file named by ${item.display} is empty`, found.display);
          const what = found.content === 'unknown' ? `its format is unknown (first bytes: ${describeBytes(found.head)})` : `it is a ${found.content}`;
          throw new BackupError(`${found.display}: named by ${item.display} as the ${entry.type} file, but ${what}`, found.display);
        }
        used.add(found);
        named.push([entry, found]);
      }
      for (const entry of manifest.history) {
        const found = byPath.get(dir === '.' ? entry.file : `${dir}/${entry.file}`);
        if (found === undefined || used.has(found)) continue;
        used.add(found);
        this.warn('history-file', found.display, `${found.display}: skipped, a history file of ${item.display} (superseded by its base)`);
      }
      groups.push({
        position,
        parts: named.map(([entry, found], i) => ({
          planned: { kind: partKind(found, entry.type === 'base' ? 'base' : 'incr'), file: found.display, size: found.size, last: i === named.length - 1 },
          source: found.source,
        })),
      });
    }

    const rdbs: Item[] = [];
    for (const { position, item } of entries) {
      if (used.has(item)) continue;
      if (manifestDirs.has(path.posix.dirname(item.path))) {
        this.warn('skipped-file', item.display, `${item.display}: skipped, it is in the directory of an AOF manifest that does not name it`);
        continue;
      }
      const single = (kind: BackupPartKind): void => {
        groups.push({ position, parts: [{ planned: { kind, file: item.display, size: item.size, last: true }, source: item.source }] });
      };
      const strict = archive === null || looksLikeBackupName(item.path);
      switch (item.content) {
        case 'rdb': {
          const kind = partKind(item, 'single');
          if (kind === 'rdb') rdbs.push(item);
          else aofDirs.push({ dir: path.posix.dirname(item.path), display: item.display, ownDir: false });
          single(kind);
          break;
        }
        case 'aof':
          aofDirs.push({ dir: path.posix.dirname(item.path), display: item.display, ownDir: false });
          single('aof');
          break;
        case 'empty':
          if (strict) throw new BackupError(`${item.display}: the file is empty`, item.display);
          this.warn('skipped-file', item.display, `${item.display}: skipped, an empty file`);
          break;
        case 'unknown':
          if (strict) throw unknownFormat(item.display, item.head);
          this.warn('skipped-file', item.display, `${item.display}: skipped, not a backup file (first bytes: ${describeBytes(item.head, 8)})`);
          break;
        default:
          // zip/tar/gzip inside an archive (top-level archives never get here)
          this.warn('skipped-file', item.display, `${item.display}: skipped, archives inside archives are not read`);
      }
    }

    // A Redis data directory holds dump.rdb next to appendonlydir/ (or appendonly.aof): two
    // copies of the same data. Applying both would apply every write twice (INCR, RPUSH...).
    for (const rdb of rdbs) {
      const rdbDir = path.posix.dirname(rdb.path);
      for (const aof of aofDirs) {
        const sameServer = aof.ownDir ? path.posix.dirname(aof.dir) === rdbDir || aof.dir === rdbDir : aof.dir === rdbDir;
        if (sameServer) {
          throw new BackupError(
            `${rdb.display} and ${aof.display} look like two copies of one server's data (an RDB and an AOF of the same data directory); ` +
              `applying both would apply the same writes twice: import only one of them`,
            rdb.display,
          );
        }
      }
    }
    return groups;
  }
}

/**
 * The kind of a part. A file with RDB magic is an RDB when it is named so (dump.rdb, a
 * `.base.rdb`), else an AOF whose RDB preamble is followed by commands (Redis loads every AOF
 * file the same way: RDB if it starts with REDIS, then commands to the end).
 */
function partKind(item: Item, role: 'single' | 'base' | 'incr'): BackupPartKind {
  if (item.content !== 'rdb') return 'aof';
  if (role === 'single') return /\.aof$/i.test(item.path) ? 'aof-with-preamble' : 'rdb';
  if (role === 'base') return /\.rdb$/i.test(item.path) ? 'rdb' : 'aof-with-preamble';
  return 'aof-with-preamble';
}

async function openZip(zipPath: string, display: string): Promise<ZipFile> {
  try {
    return await openZipFile(zipPath, { lazyEntries: true, autoClose: false });
  } catch (err) {
    throw new BackupError(`${display}: not a readable zip archive: ${errorMessage(err)}`, display, null, { cause: err });
  }
}

async function* zipEntries(zip: ZipFile, display: string): AsyncGenerator<ZipEntry> {
  const it = zip.eachEntry();
  for (;;) {
    let step: IteratorResult<ZipEntry>;
    try {
      step = await it.next();
    } catch (err) {
      throw new BackupError(`${display}: not a readable zip archive: ${errorMessage(err)}`, display, null, { cause: err });
    }
    if (step.done === true) return;
    yield step.value;
  }
}

/**
 * Looks at every file up front: formats, manifests, archive listings (a .tar.gz is read once
 * in full for its listing). Throws BackupError, before anything is applied, on an unknown
 * format, an empty file, an invalid manifest or one naming a missing file, an archive without a
 * backup inside, or an RDB and an AOF of the same data directory.
 */
export async function planBackup(files: readonly BackupFile[], options: BackupOptions = {}): Promise<BackupPlan> {
  if (files.length === 0) throw new BackupError('no backup files given');
  const names = new Set<string>();
  for (const f of files) {
    if (names.has(f.name)) throw new BackupError(`${f.name} is listed twice`, f.name);
    names.add(f.name);
  }
  const temp = new TempDir(options.tempDir ?? os.tmpdir());
  const planner = new Planner(temp);
  let groups: Group[];
  try {
    groups = await planner.plan(files);
  } catch (err) {
    await temp.dispose();
    throw err;
  }
  const parts = groups.flatMap((g) => g.parts);
  if (parts.length === 0) throw new BackupError('no RDB or AOF among the files given');
  let total: number | null = 0;
  for (const p of parts) total = total === null || p.planned.size === null ? null : total + p.planned.size;
  const plan: BackupPlan = {
    parts: parts.map((p) => p.planned),
    warnings: planner.warnings,
    totalBytes: total,
    dispose: () => temp.dispose(),
  };
  internals.set(plan, { files, sources: parts.map((p) => p.source), temp });
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Parts

/**
 * The parts of the backup, in order, as streams. Read each part's stream to its end (or let
 * readBackupPart do it) before asking for the next: a tar is one stream, its next entry comes
 * after this one's bytes. Leaving the loop early (break, an exception) closes every stream and
 * removes temporary files.
 */
export async function* backupParts(files: readonly BackupFile[], options: PartsOptions = {}): AsyncGenerator<BackupPart, void, undefined> {
  const plan = options.plan ?? (await planBackup(files, options));
  const inner = internals.get(plan);
  if (!inner) throw new Error('backupParts: options.plan must come from planBackup()');
  if (inner.files.length !== files.length || inner.files.some((f, i) => f !== files[i])) {
    throw new Error('backupParts: options.plan was made for other files');
  }
  try {
    let i = 0;
    while (i < plan.parts.length) {
      const source = inner.sources[i]!;
      // Consecutive parts of one archive are read in one pass over it.
      let j = i + 1;
      while (j < plan.parts.length && sameContainer(inner.sources[j]!, source)) j++;
      if (source.kind === 'zip') {
        yield* zipParts(plan, inner, i, j);
      } else if (source.kind === 'tar') {
        yield* tarParts(plan, inner, i, j);
      } else {
        for (let k = i; k < j; k++) {
          const s = inner.sources[k]! as Extract<PartSource, { kind: 'file' | 'gunzip' }>;
          const raw = await openFile(s.file);
          const stream = s.kind === 'gunzip' ? gunzipOf(raw, s.file.name) : raw;
          try {
            yield makePart(plan, k, stream);
          } finally {
            stream.destroy();
          }
        }
      }
      i = j;
    }
  } finally {
    await plan.dispose();
  }
}

function sameContainer(a: PartSource, b: PartSource): boolean {
  if (a.kind === 'zip' && b.kind === 'zip') return a.zip === b.zip;
  if (a.kind === 'tar' && b.kind === 'tar') return a.tar === b.tar;
  return false;
}

function makePart(plan: BackupPlan, index: number, stream: Readable): BackupPart {
  const p = plan.parts[index]!;
  return { kind: p.kind, file: p.file, stream, size: p.size, last: p.last, index };
}

async function* zipParts(plan: BackupPlan, inner: PlanInternals, from: number, to: number): AsyncGenerator<BackupPart, void, undefined> {
  const first = inner.sources[from]! as Extract<PartSource, { kind: 'zip' }>;
  const display = first.zip.file.name;
  const zip = await openZip(first.zip.path, display);
  try {
    const entries = new Map<string, ZipEntry>();
    for await (const entry of zipEntries(zip, display)) entries.set(entry.fileName, entry);
    for (let k = from; k < to; k++) {
      const s = inner.sources[k]! as Extract<PartSource, { kind: 'zip' }>;
      const entry = entries.get(s.entryName);
      if (!entry) throw new BackupError(`${plan.parts[k]!.file}: no longer in the archive (it changed since it was planned)`, plan.parts[k]!.file);
      let stream: Readable;
      try {
        stream = await zip.openReadStreamPromise(entry);
      } catch (err) {
        throw new BackupError(`${plan.parts[k]!.file}: cannot read the entry: ${errorMessage(err)}`, plan.parts[k]!.file, null, { cause: err });
      }
      try {
        yield makePart(plan, k, stream);
      } finally {
        stream.destroy();
      }
    }
  } finally {
    zip.close();
  }
}

/** Entry bytes as a Node Readable (tar-stream hands out streamx streams). */
function entryStream(entry: TarEntry): Readable {
  return Readable.from(entry as AsyncIterable<Buffer>, { objectMode: false });
}

/**
 * Streams a tar once, yielding its parts in plan order. An entry needed later than the next
 * part (a multi-part AOF whose files are not in application order in the archive) is copied
 * to a temporary file until its turn; a tar cannot be read backwards.
 */
async function* tarParts(plan: BackupPlan, inner: PlanInternals, from: number, to: number): AsyncGenerator<BackupPart, void, undefined> {
  const first = inner.sources[from]! as Extract<PartSource, { kind: 'tar' }>;
  const container = first.tar;
  const display = container.file.name;
  /** Tar entry index -> plan index. */
  const wanted = new Map<number, number>();
  for (let k = from; k < to; k++) wanted.set((inner.sources[k]! as Extract<PartSource, { kind: 'tar' }>).entryIndex, k);
  const spooled = new Map<number, string>();
  let next = from;
  const reader = openTar(await openFile(container.file), container.gzip, display);

  try {
    for (let entryIndex = 0; next < to; entryIndex++) {
      const entry = await nextTarEntry(reader, display);
      if (entry === null) break;
      const k = wanted.get(entryIndex);
      if (k === undefined) {
        entry.resume(); // not a part: let its bytes flow past
        continue;
      }
      const s = inner.sources[k]! as Extract<PartSource, { kind: 'tar' }>;
      if (normalizeEntryPath(entry.header.name) !== s.entryPath) {
        throw new BackupError(`${display}: entry ${entryIndex} is ${entry.header.name}, planned as ${s.entryPath}: the archive changed since it was planned`, display);
      }
      if (k === next) {
        const stream = entryStream(entry);
        yield makePart(plan, k, stream);
        await finishEntry(stream, plan.parts[k]!.file);
        next++;
        // Parts copied earlier whose turn has come.
        for (let p = spooled.get(next); p !== undefined; p = spooled.get(next)) {
          yield* spooledPart(plan, next, p);
          spooled.delete(next);
          next++;
        }
      } else {
        const file = await inner.temp.file(path.posix.basename(s.entryPath));
        try {
          await pipeline(entryStream(entry), createWriteStream(file));
        } catch (err) {
          throw wrapReadError(err, plan.parts[k]!.file);
        }
        spooled.set(k, file);
      }
    }
    if (next < to) {
      throw new BackupError(`${plan.parts[next]!.file}: not found when reading ${display} again (the archive changed since it was planned)`, display);
    }
  } finally {
    reader.destroy();
    for (const file of spooled.values()) await unlink(file).catch(() => undefined);
  }
}

async function* spooledPart(plan: BackupPlan, k: number, file: string): AsyncGenerator<BackupPart, void, undefined> {
  const stream = createReadStream(file);
  try {
    yield makePart(plan, k, stream);
  } finally {
    stream.destroy();
    await unlink(file).catch(() => undefined);
  }
}

/** After the consumer's turn: the rest of a tar entry must be read before the next entry. */
async function finishEntry(stream: Readable, display: string): Promise<void> {
  if (stream.readableEnded) return;
  if (stream.destroyed) {
    throw new BackupError(`${display}: its stream was closed before its end; the rest of the archive cannot be read`, display);
  }
  stream.resume();
  try {
    await finished(stream);
  } catch (err) {
    throw wrapReadError(err, display);
  }
}
