/**
 * Where backup files come from: a local directory configured as a bucket, or an S3-compatible
 * object store (AWS S3, OBS, MinIO...). Both hand out BackupFiles whose bytes are streamed,
 * never held whole.
 */
import { realpathSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { open as openFd, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
// Types only: the SDK (a large module tree) is loaded when an object is first touched, so
// commands and services that never read from an object store do not pay for it.
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { BackupFile, ByteRange } from './backup.js';
import { BackupError, errorMessage } from './errors.js';

// ---------------------------------------------------------------------------------------------
// A local directory

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Rejects names that could leave the directory before touching the file system. */
function checkName(dir: string, name: string): void {
  const fail = (why: string): never => {
    throw new BackupError(`backup file name ${JSON.stringify(name)} in ${dir} is refused: ${why}`, name);
  };
  if (typeof name !== 'string' || name === '') fail('it is empty');
  if (name.includes('\0')) fail('it contains a NUL byte');
  // Names are '/'-separated like bucket keys; a backslash would be a separator on Windows.
  if (name.includes('\\')) fail("it contains '\\' (use '/')");
  if (path.isAbsolute(name) || /^[A-Za-z]:/.test(name)) fail('it is an absolute path');
  if (name.split('/').includes('..')) fail("it goes up out of the directory ('..')");
}

/**
 * The real path of `name` under `root`, checked to stay inside it after following symbolic
 * links (a link may point anywhere). Null when the file does not exist.
 */
function resolveInside(root: string, dir: string, name: string, real: string | null): string | null {
  if (real === null) return null;
  if (!inside(root, real)) {
    throw new BackupError(`backup file ${name} in ${dir} is refused: it resolves (through a symbolic link) outside the directory`, name);
  }
  return real;
}

function realpathOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

class LocalFile implements BackupFile {
  readonly localPath: string | undefined;
  private knownSize: number | null;

  constructor(
    private readonly root: string,
    private readonly dir: string,
    readonly name: string,
  ) {
    checkName(dir, name);
    const real = resolveInside(root, dir, name, realpathOrNull(path.join(root, name)));
    this.localPath = real ?? undefined;
    this.knownSize = real !== null ? statSync(real).size : null;
  }

  get size(): number | null {
    return this.knownSize;
  }

  /** Resolves the path again at each use: the file may have been replaced by a link since. */
  private async resolve(): Promise<string> {
    let real: string;
    try {
      real = await realpath(path.join(this.root, this.name));
    } catch (err) {
      throw this.error(err);
    }
    return resolveInside(this.root, this.dir, this.name, real)!;
  }

  private error(err: unknown): BackupError {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : errorMessage(err);
    return new BackupError(`${this.name} in ${this.dir}: ${why}`, this.name);
  }

  async stat(): Promise<number> {
    const real = await this.resolve();
    let s;
    try {
      s = await stat(real);
    } catch (err) {
      throw this.error(err);
    }
    if (!s.isFile()) throw new BackupError(`${this.name} in ${this.dir}: not a regular file`, this.name);
    this.knownSize = s.size;
    return s.size;
  }

  async open(range?: ByteRange): Promise<Readable> {
    const real = await this.resolve();
    let handle;
    try {
      handle = await openFd(real, 'r');
    } catch (err) {
      throw this.error(err);
    }
    const s = await handle.stat();
    if (!s.isFile()) {
      await handle.close();
      throw new BackupError(`${this.name} in ${this.dir}: not a regular file`, this.name);
    }
    return handle.createReadStream({ start: range?.start ?? 0, ...(range?.end !== undefined ? { end: range.end } : {}), autoClose: true });
  }
}

/**
 * Files of a local directory configured as a bucket. `names` are relative to it and
 * '/'-separated; a name that is absolute, contains '..', or resolves through a symbolic link to
 * outside the directory is refused (BackupError, thrown here). A file that does not exist is
 * not refused here: planBackup reports it (stat()).
 */
export function localDirectoryFiles(dir: string, names: readonly string[]): BackupFile[] {
  let root: string;
  try {
    root = realpathSync(dir);
  } catch (err) {
    throw new BackupError(`backup directory ${dir}: ${errorMessage(err)}`);
  }
  if (!statSync(root).isDirectory()) throw new BackupError(`backup directory ${dir}: not a directory`);
  return names.map((name) => new LocalFile(root, dir, name));
}

// ---------------------------------------------------------------------------------------------
// An S3-compatible object store

export interface ObjectStoreConfig {
  /** e.g. https://obs.cn-north-4.myhuaweicloud.com, http://127.0.0.1:9000; default AWS S3. */
  endpoint?: string;
  /** Default us-east-1. */
  region?: string;
  /** Both or neither; without them the SDK's default chain applies (environment, profile...). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** bucket in the path (http://host/bucket/key) instead of the host name; needed by most non-AWS stores. */
  forcePathStyle?: boolean;
  /** Name resolution for the store's connections (the service's address policy). */
  lookup?: LookupFunction;
}

/** How many times a download that breaks is resumed from the byte where it broke. */
const RESUME_ATTEMPTS = 3;

interface S3ErrorShape {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * A message naming bucket and key and what went wrong, never the credentials: the SDK's own
 * error objects are not passed on as `cause` (they carry request metadata), and the key id and
 * secret are masked should a store echo them in a message.
 */
function s3Error(err: unknown, where: string, secrets: readonly string[]): BackupError {
  if (err instanceof BackupError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as S3ErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? 'Error';
  const message = e.message ?? String(err);
  let what: string;
  if (name === 'NoSuchKey' || (name === 'NotFound' && status === 404)) what = 'no such object'; // NotFound: a HEAD's 404 once the bucket is known to exist
  else if (name === 'NoSuchBucket') what = 'no such bucket';
  else if (status === 404) what = 'not found (no such bucket or object)';
  else if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') what = `the object store refused the credentials (${name})`;
  else if (name === 'AccessDenied' || status === 403) what = `access denied (${name}): check the credentials and the bucket's policy`;
  else if (name === 'PreconditionFailed' || status === 412) what = 'the object changed while it was being read';
  else if (status === undefined) what = `cannot reach the object store: ${message}`;
  else what = `${name}: ${message} (HTTP ${status})`;
  for (const s of secrets) if (s !== '') what = what.split(s).join('***');
  return new BackupError(`${where}: ${what}`, where);
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
}

type S3Sdk = typeof import('@aws-sdk/client-s3');

/** One client per s3Files() call, made with the SDK on first use. */
class LazyS3 {
  private made: Promise<{ sdk: S3Sdk; client: S3Client }> | null = null;

  constructor(private readonly options: S3ClientConfig) {}

  get(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    this.made ??= import('@aws-sdk/client-s3').then((sdk) => ({ sdk, client: new sdk.S3Client(this.options) }));
    return this.made;
  }
}

class S3File implements BackupFile {
  private knownSize: number | null = null;
  private etag: string | undefined;

  constructor(
    private readonly s3: LazyS3,
    private readonly bucket: string,
    readonly name: string,
    private readonly secrets: readonly string[],
  ) {}

  get size(): number | null {
    return this.knownSize;
  }

  private get where(): string {
    return `s3://${this.bucket}/${this.name}`;
  }

  async stat(): Promise<number> {
    try {
      const { sdk, client } = await this.s3.get();
      const head = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.name }));
      if (head.ContentLength === undefined) throw new BackupError(`${this.where}: the object store did not give the object's size`, this.where);
      this.knownSize = head.ContentLength;
      this.etag = head.ETag;
      return head.ContentLength;
    } catch (err) {
      // A HEAD answer has no body, so a 404 does not say whether the key or the bucket is
      // missing: ask about the bucket to say which.
      if ((err as S3ErrorShape).$metadata?.httpStatusCode === 404 && !(await this.bucketExists())) {
        throw new BackupError(`${this.where}: no such bucket`, this.where);
      }
      throw s3Error(err, this.where, this.secrets);
    }
  }

  private async bucketExists(): Promise<boolean> {
    try {
      const { sdk, client } = await this.s3.get();
      await client.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (err) {
      return (err as S3ErrorShape).$metadata?.httpStatusCode !== 404;
    }
  }

  private async get(start: number, end: number | undefined, ifMatch: string | undefined): Promise<{ body: AsyncIterable<Uint8Array>; length: number | null; etag: string | undefined }> {
    const range = start > 0 || end !== undefined ? `bytes=${start}-${end ?? ''}` : undefined;
    try {
      const { sdk, client } = await this.s3.get();
      const out = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.name, Range: range, IfMatch: ifMatch }));
      if (!isByteStream(out.Body)) throw new BackupError(`${this.where}: the object store returned no body`, this.where);
      if (range === undefined && out.ContentLength !== undefined) this.knownSize = out.ContentLength;
      return { body: out.Body, length: out.ContentLength ?? null, etag: out.ETag };
    } catch (err) {
      throw s3Error(err, this.where, this.secrets);
    }
  }

  /**
   * The object's bytes. A download that breaks (a reset connection, a body cut short) is
   * resumed with a Range request from the byte where it broke, pinned to the same object
   * version with If-Match on its ETag, so a multi-GB download survives a flaky network
   * without being restarted or mixing two versions of the object.
   */
  async open(range?: ByteRange): Promise<Readable> {
    const start = range?.start ?? 0;
    const end = range?.end;
    const first = await this.get(start, end, undefined);
    return Readable.from(this.bytes(first, start, end), { objectMode: false });
  }

  private async *bytes(
    first: { body: AsyncIterable<Uint8Array>; length: number | null; etag: string | undefined },
    start: number,
    end: number | undefined,
  ): AsyncGenerator<Buffer, void, undefined> {
    let body = first.body;
    const etag = first.etag ?? this.etag;
    const stop = first.length !== null ? start + first.length : null;
    let pos = start;
    let failures = 0;
    for (;;) {
      const before = pos;
      try {
        for await (const chunk of body) {
          const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          pos += b.length;
          yield b;
        }
        if (stop === null || pos >= stop) return;
        throw new Error(`the response ended after ${pos - start} of ${stop - start} bytes`);
      } catch (err) {
        if (err instanceof BackupError) throw err;
        if (pos > before) failures = 0; // progress since the last failure: a new chance
        if (++failures > RESUME_ATTEMPTS) {
          throw new BackupError(`${this.where}: download failed at byte ${pos}: ${s3Error(err, this.where, this.secrets).message.slice(this.where.length + 2)}`, this.where, pos);
        }
        if (stop !== null && pos >= stop) return;
        body = (await this.get(pos, end, etag)).body;
      }
    }
  }
}

/**
 * Objects of a bucket, streamed with GetObject (HeadObject gives the size and fails early on a
 * missing key). Errors name s3://bucket/key, never the credentials.
 */
export function s3Files(config: ObjectStoreConfig, bucket: string, names: readonly string[]): BackupFile[] {
  if (bucket === '') throw new BackupError('no bucket given');
  if ((config.accessKeyId === undefined) !== (config.secretAccessKey === undefined)) {
    throw new BackupError('object store: give both accessKeyId and secretAccessKey, or neither');
  }
  const options: S3ClientConfig = {
    region: config.region ?? 'us-east-1',
    followRegionRedirects: true,
    ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
    ...(config.forcePathStyle !== undefined ? { forcePathStyle: config.forcePathStyle } : {}),
    ...(config.accessKeyId !== undefined && config.secretAccessKey !== undefined
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }
      : {}),
    ...(config.lookup !== undefined ? { requestHandler: { httpAgent: new http.Agent({ lookup: config.lookup, keepAlive: true }), httpsAgent: new https.Agent({ lookup: config.lookup, keepAlive: true }) } } : {}),
  };
  const client = new LazyS3(options);
  const secrets = [config.secretAccessKey ?? '', config.accessKeyId ?? ''];
  return names.map((name) => {
    if (name === '') throw new BackupError(`s3://${bucket}/: empty object key`);
    return new S3File(client, bucket, name, secrets);
  });
}
