// File helpers: crash-safe writes (temporary file, fsync, rename) and clear errors for missing files.
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, statSync, writeSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { UserError, isNodeError } from './errors.js';

/** Throws a UserError unless `path` is an existing regular file; returns its size in bytes. */
export function requireFile(path: string, what = 'file'): number {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${what} '${path}' is not a regular file`);
    return st.size;
  } catch (e) {
    if (isNodeError(e, 'ENOENT')) throw new UserError(`${what} '${path}' does not exist: check the path`);
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
