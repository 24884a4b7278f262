// File helpers: crash-safe writes (temporary file, fsync, rename) and clear errors for missing files.
import {
  accessSync,
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  writeSync,
  rmSync,
  type Stats,
} from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { UserError, isNodeError } from './errors.js';
import { inputErrorOf } from './input-errors.js';

/** Throws a UserError unless `path` is an existing regular file; returns its size in bytes. */
export function requireFile(path: string, what = 'file'): number {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${what} '${path}' is not a regular file`);
    return st.size;
  } catch (e) {
    if (isNodeError(e, 'ENOENT')) throw new UserError(`${what} '${path}' does not exist: check the path`);
    if (isNodeError(e, 'ENOTDIR'))
      throw new UserError(
        `${what} '${path}' does not exist: a part of its path is a file, not a directory; check the path`,
      );
    if (isNodeError(e, 'EACCES')) throw new UserError(`${what} '${path}' cannot be read (permission denied)`);
    throw e;
  }
}

/**
 * Writes a file so that a crash at any moment leaves either the old file or the complete new one:
 * the chunks go to `<name>.tmp-<pid>` beside it, which is fsynced, renamed over `path`, and the
 * directory is fsynced.
 */
export function atomicWrite(path: string, chunks: Iterable<Uint8Array | string>): void {
  try {
    atomicWriteUnchecked(path, chunks);
  } catch (e) {
    throw inputErrorOf(e, `'${path}'`) ?? e; // a full disk or a read-only directory names the file being written
  }
}

function atomicWriteUnchecked(path: string, chunks: Iterable<Uint8Array | string>): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c) : c;
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  try {
    const dfd = openSync(dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // some file systems do not fsync directories; the rename is still atomic
  }
}

/** The first `n` bytes of a file (fewer if it is shorter), for format detection. */
export function readHead(path: string, n: number, what = 'file'): Uint8Array {
  requireFile(path, what);
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

// ---- checks of output paths, made before any work starts ----------------------------------------

/** stat that answers undefined for a path that does not exist (or cannot, because a parent is a file) */
function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    if (isNodeError(e, 'ENOENT') || isNodeError(e, 'ENOTDIR')) return undefined;
    throw inputErrorOf(e) ?? e;
  }
}

function writable(path: string): string | undefined {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (e) {
    return isNodeError(e, 'EROFS') ? 'it is on a read-only file system' : 'it is not writable (permission denied)';
  }
}

/**
 * Checks that `path` is, or can be created as, a writable directory, and creates it unless
 * `create` is false. `what` names the option in messages (e.g. "--artifacts directory").
 * Returns the absolute path.
 */
export function prepareDir(path: string, what: string, opts: { create?: boolean } = {}): string {
  const abs = resolve(path);
  const st = statOrUndefined(abs);
  if (st) {
    if (!st.isDirectory())
      throw new UserError(`${what} '${path}' is a file, not a directory: choose a directory path (or remove the file)`);
    const why = writable(abs);
    if (why)
      throw new UserError(`${what} '${path}' cannot be written to: ${why}; choose another path or fix its permissions`);
    return abs;
  }
  // the nearest ancestor that exists must be a writable directory
  let anc = dirname(abs);
  let ast = statOrUndefined(anc);
  while (!ast && dirname(anc) !== anc) {
    anc = dirname(anc);
    ast = statOrUndefined(anc);
  }
  if (ast && !ast.isDirectory())
    throw new UserError(
      `${what} '${path}' cannot be created: '${anc}' is a file, not a directory; choose another path`,
    );
  const why = writable(anc);
  if (why) throw new UserError(`${what} '${path}' cannot be created inside '${anc}': ${why}; choose another path`);
  if (opts.create !== false) {
    try {
      mkdirSync(abs, { recursive: true });
    } catch (e) {
      throw inputErrorOf(e) ?? e;
    }
  }
  return abs;
}

/**
 * Checks that a file can be written at `path` (an existing regular, writable file, or a new file in a
 * directory that is or can be created writable); creates the directory unless `createDir` is false.
 * Returns the absolute path.
 */
export function prepareFileTarget(path: string, what: string, opts: { createDir?: boolean } = {}): string {
  const abs = resolve(path);
  const st = statOrUndefined(abs);
  if (st) {
    if (st.isDirectory()) throw new UserError(`${what} '${path}' is a directory: give a file path inside it`);
    if (!st.isFile()) throw new UserError(`${what} '${path}' is not a regular file`);
    try {
      accessSync(abs, constants.W_OK);
    } catch (e) {
      const why = isNodeError(e, 'EROFS') ? 'it is on a read-only file system' : 'it is read-only (permission denied)';
      throw new UserError(`${what} '${path}' cannot be written: ${why}; make it writable or choose another path`);
    }
  }
  prepareDir(dirname(abs), `${what} '${path}': its directory`, { create: opts.createDir });
  return abs;
}
