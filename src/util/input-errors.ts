// The one place where errors thrown by libraries and the operating system are recognised as being
// about the user's input (a full disk, a read-only path, a locked or corrupt database, a YAML file
// that trips the parser's resource limits, an image that does not decode) and turned into a
// UserError (exit 2) with a message that says what to do. Everything not recognised here stays what
// it is: a bug, reported with its stack (exit 1).
//
// Used by the CLI's catch site (src/cli/main.ts) for whatever reaches it, and by boundaries that know
// which file they were working on (the store, for its database path), so the message can name it.
import { UserError } from './errors.js';

/** errno codes that describe the user's file system, not a bug: code → (what happened, what to do) */
const FS_CODES: Record<string, [string, string]> = {
  ENOSPC: ['no space left on the device', 'free some space or choose a path on another disk'],
  EDQUOT: ['the disk quota is exhausted', 'free some space or choose a path on another disk'],
  EACCES: ['permission denied', 'check the permissions of the path and its directories, or choose another path'],
  EPERM: ['operation not permitted', 'check the permissions of the path and its directories, or choose another path'],
  EROFS: ['the file system is read-only', 'choose a path on a writable file system'],
  ENOTDIR: ['a part of the path is a file, not a directory', 'choose a path whose directories are directories'],
  EEXIST: ['something already exists at that path', 'remove it or choose another path'],
  EISDIR: ['it is a directory where a file is needed', 'give a file path, not a directory'],
  ENAMETOOLONG: ['the path is too long', 'choose a shorter path'],
  ELOOP: ['the path has a loop of symbolic links', 'fix the links or choose another path'],
};

/** SQLite result codes (better-sqlite3's SqliteError.code, extended codes included) → (what, what to do) */
function sqliteAdvice(code: string): [string, string] | undefined {
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return [
      'is locked by another process for longer than the busy timeout',
      'wait for the other fpdm-exp process to finish, or use another --db',
    ];
  if (code.startsWith('SQLITE_READONLY'))
    return [
      'cannot be written (read-only file, directory or file system)',
      'make the file and its directory writable, or use another --db',
    ];
  if (code.startsWith('SQLITE_CORRUPT'))
    return ['is corrupt', 'restore it from a copy (`sqlite3 FILE .recover` may salvage its rows) or use another --db'];
  if (code === 'SQLITE_NOTADB') return ['is not an SQLite database', 'give the path of an fpdm-exp results database'];
  if (code.startsWith('SQLITE_CANTOPEN'))
    return ['cannot be opened', 'check that the path and its directory exist and are accessible'];
  if (code === 'SQLITE_FULL') return ['cannot grow: the disk is full', 'free some space or use a --db on another disk'];
  if (code.startsWith('SQLITE_IOERR') && /ENOSPC|full/i.test(code))
    return ['cannot be written: the disk is full', 'free some space'];
  return undefined;
}

function isYamlLimit(e: Error): boolean {
  // yaml's resource guard (maxAliasCount) throws a plain ReferenceError from its Alias node
  return e instanceof ReferenceError && /alias count|resource exhaustion/i.test(e.message);
}

function isSharpDecode(e: Error): boolean {
  const fromSharp = /[\\/]sharp[\\/]/.test(e.stack ?? '');
  const decode =
    /unsupported image format|Input (file|buffer)|load: |VipsJpeg|VipsPng|Premature end|corrupt|truncated|bad (seek|huffman)|Invalid (PNG|JPEG|image)/i;
  return fromSharp && decode.test(e.message);
}

/** Databases this process opened (the store notes them), so a database error can name its file. */
const openedDatabases = new Set<string>();

export function noteDatabase(path: string): void {
  openedDatabases.add(path);
}

function databaseSubject(): string {
  const paths = [...openedDatabases];
  if (paths.length === 1) return `database '${paths[0]}'`;
  if (paths.length > 1) return `one of the databases ${paths.map((p) => `'${p}'`).join(', ')}`;
  return 'the database';
}

/**
 * The UserError that `e` amounts to when it is about the input, or undefined when it is a bug.
 * `subject` names the file being worked on when the caller knows it (e.g. "database 'x.sqlite'").
 */
export function inputErrorOf(e: unknown, subject?: string): UserError | undefined {
  if (e instanceof UserError) return e;
  if (!(e instanceof Error)) return undefined;
  const code = (e as { code?: unknown }).code;
  if (e.name === 'SqliteError' && typeof code === 'string') {
    const advice = sqliteAdvice(code);
    if (!advice) return undefined;
    return new UserError(`${subject ?? databaseSubject()} ${advice[0]} (${code}: ${e.message}): ${advice[1]}`, {
      cause: e,
    });
  }
  if (typeof code === 'string' && FS_CODES[code]) {
    const [what, todo] = FS_CODES[code];
    const p = (e as NodeJS.ErrnoException).path;
    const dest = (e as { dest?: unknown }).dest;
    const syscall = (e as NodeJS.ErrnoException).syscall;
    const where = p ? `'${p}'${typeof dest === 'string' ? ` → '${dest}'` : ''}` : (subject ?? 'a file');
    return new UserError(`cannot ${syscall ?? 'access'} ${where}: ${what} (${code}): ${todo}`, { cause: e });
  }
  if (isYamlLimit(e))
    return new UserError(
      `${subject ?? 'the YAML input'} was refused by the YAML parser's resource limit (${e.message}): ` +
        'write the values out instead of nesting aliases (*name) of aliases',
      { cause: e },
    );
  if (isSharpDecode(e))
    return new UserError(
      `${subject ?? 'an image'} cannot be decoded (${e.message.split('\n')[0]}): remove or replace the file`,
      { cause: e },
    );
  return undefined;
}
