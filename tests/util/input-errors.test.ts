// The one mapping of library and OS errors to exit-2 messages (src/util/input-errors.ts), fed with
// errors the real libraries throw: the YAML parser's alias limit, SQLite busy / read-only / corrupt /
// not-a-database, sharp decode failures, ENOSPC (/dev/full), ENOTDIR, EEXIST, EISDIR. Errors that
// are bugs (TypeError, RangeError, a constraint violation, ENOENT of an internal file) stay unmapped.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { parseDocument } from 'yaml';
import { openStore } from '../../src/store/store.js';
import { UserError } from '../../src/util/errors.js';
import { inputErrorOf } from '../../src/util/input-errors.js';
import { runCli } from '../cli.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fpdm-input-errors-'));
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('expected a rejection');
}

function mapsTo(e: unknown, re: RegExp): void {
  const u = inputErrorOf(e);
  assert.ok(u instanceof UserError, `not mapped: ${String(e)}`);
  assert.match(u.message, re);
  assert.equal(u.cause, e, 'the original error is kept as the cause');
}

/** nine aliases of nine aliases of …: 9^5 nodes from a few lines */
const BOMB = [
  'a: &a [x, x, x, x, x, x, x, x, x]',
  'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
  'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
  'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
  'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
  '',
].join('\n');

test('YAML: the alias limit of the yaml library becomes a message; as a spec, exit 2 naming the file', () => {
  mapsTo(
    thrown(() => parseDocument(BOMB).toJS({ maxAliasCount: 100 })),
    /resource limit.*alias/,
  );
  const spec = join(dir, 'bomb.yaml');
  writeFileSync(spec, BOMB);
  const r = runCli(['plan', spec]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `^error: spec '${spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' was refused by the YAML parser's resource limit`,
    ),
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('SQLite: busy, read-only, corrupt and not-a-database map to messages naming the database', () => {
  const path = join(dir, 'busy.sqlite');
  const store = openStore(path);
  store.close();
  const holder = new Database(path);
  holder.prepare('BEGIN IMMEDIATE').run(); // another writer holds the lock
  const s = openStore(path, { busyTimeoutMs: 50 });
  try {
    assert.throws(
      () => s.upsertExperiment('e', ''),
      (e: unknown) =>
        e instanceof UserError && e.message.includes(path) && /locked by another process.*SQLITE_BUSY/.test(e.message),
    );
  } finally {
    s.close();
    holder.prepare('ROLLBACK').run();
    holder.close();
  }
  const ro = openStore(path, { readonly: true });
  try {
    assert.throws(
      () => ro.upsertExperiment('e', ''),
      (e: unknown) => e instanceof UserError && e.message.includes(path) && /SQLITE_READONLY/.test(e.message),
    );
  } finally {
    ro.close();
  }
  // corrupt: every page after the first overwritten (the schema on page 1 still reads)
  const corrupt = join(dir, 'corrupt.sqlite');
  const c = openStore(corrupt);
  c.upsertExperiment('e', 'x'.repeat(20_000));
  c.close();
  const bytes = readFileSync(corrupt);
  bytes.fill(0xa5, bytes.readUInt16BE(16));
  writeFileSync(corrupt, bytes);
  const cs = openStore(corrupt, { readonly: true });
  try {
    const e = thrown(() => cs.experiments());
    assert.equal((e as { code?: string }).code, 'SQLITE_CORRUPT');
    // named from the databases this process opened (two in this test: "one of the databases …")
    mapsTo(e, /'[^']*corrupt\.sqlite' is corrupt \(SQLITE_CORRUPT/);
  } finally {
    cs.close();
  }
  const r = runCli(['report', '--db', corrupt, '--out', join(dir, 'rep')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: database '.*corrupt\.sqlite' is corrupt/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // not a database: the raw library error maps too (the store refuses such a file before SQLite sees it)
  const junk = join(dir, 'junk.bin');
  writeFileSync(junk, Buffer.alloc(4096, 7));
  mapsTo(
    thrown(() => new Database(junk).pragma('user_version')),
    /is not an SQLite database \(SQLITE_NOTADB/,
  );
});

test('sharp: an image that does not decode maps to a message', async () => {
  const bad = join(dir, 'bad.png');
  writeFileSync(
    bad,
    Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 1)]),
  );
  mapsTo(await rejected(sharp(bad).raw().toBuffer()), /cannot be decoded/);
  mapsTo(
    await rejected(sharp(Buffer.from('not an image at all')).raw().toBuffer()),
    /cannot be decoded.*unsupported image format/,
  );
});

test('file-system errors on user paths (ENOSPC, ENOTDIR, EEXIST, EISDIR) map to messages naming the path', () => {
  if (existsSync('/dev/full')) {
    const fd = openSync('/dev/full', 'w');
    try {
      mapsTo(
        thrown(() => writeSync(fd, Buffer.alloc(16))),
        /no space left on the device \(ENOSPC\)/,
      );
    } finally {
      closeSync(fd);
    }
  }
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  mapsTo(
    thrown(() => writeFileSync(join(file, 'inside'), 'y')),
    /a-file\/inside'.*a part of the path is a file.*ENOTDIR/,
  );
  mapsTo(
    thrown(() => mkdirSync(dir)),
    /something already exists at that path \(EEXIST\)/,
  );
  mapsTo(
    thrown(() => writeFileSync(dir, 'y')),
    /it is a directory where a file is needed \(EISDIR\)/,
  );
});

test('errors that are bugs stay unmapped (exit 1 with a stack)', () => {
  assert.equal(inputErrorOf(new TypeError("Cannot read properties of undefined (reading 'x')")), undefined);
  assert.equal(inputErrorOf(thrown(() => new Array(-1))), undefined); // RangeError
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
  db.exec('INSERT INTO t VALUES (1)');
  const constraint = thrown(() => db.exec('INSERT INTO t VALUES (1)'));
  assert.match(String((constraint as { code?: string }).code), /SQLITE_CONSTRAINT/);
  assert.equal(inputErrorOf(constraint), undefined);
  assert.equal(inputErrorOf(thrown(() => db.exec('SELECT * FROM no_such_table'))), undefined);
  assert.equal(
    inputErrorOf(thrown(() => statSync(join(dir, 'no-such-file')))),
    undefined,
    'ENOENT: callers check user paths themselves',
  );
  assert.equal(inputErrorOf('a string'), undefined);
});
