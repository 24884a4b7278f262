// No command writes to a database it did not create. Every command that takes a database (run,
// run --dry-run, plan, report, check, collect as target and as bundle) is pointed at files that are
// not fpdm-exp databases: an SQLite file of another program (its own tables, no mark), one carrying
// another program's application_id, an SQLite file that is ours in name only (our table names but
// user_version 0), and a text file. Each must exit 2 with one message and leave the file's bytes and
// mtime as they were, with no -wal/-shm beside it. An fpdm-exp database made before the mark existed
// (the committed reproduction database) still opens, read-only without change, and is marked (and
// keeps its rows) when opened for writing.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { APPLICATION_ID, inspectDatabase, openStore } from '../../src/store/store.js';
import { SCHEMA_VERSION } from '../../src/store/schema.js';
import { UserError } from '../../src/util/errors.js';
import { ROOT, runCli } from '../cli.js';
import { main } from '../../src/cli/main.js';
import { buildKnownDb } from '../report/known-db.js';

/**
 * The CLI in this process, capturing stderr only: the test runner reports through this process's
 * stdout, so it must not be captured (the commands here print nothing on stdout when they refuse).
 */
async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const err: string[] = [];
  const ew = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(['node', 'fpdm-exp', ...args]), stderr: err.join('') };
  } finally {
    process.stderr.write = ew;
  }
}

let dir: string;
let ours: string;
const foreign: Record<string, string> = {};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fpdm-foreign-'));
  ours = await buildKnownDb(join(dir, 'ours'));
  const notes = join(dir, 'notes.sqlite');
  let d = new Database(notes);
  d.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me')");
  d.close();
  const marked = join(dir, 'marked.db');
  d = new Database(marked);
  d.pragma('application_id = 1886680168'); // another program's mark
  d.exec('CREATE TABLE runs (run_key TEXT)'); // even with a table name like ours
  d.close();
  const lookalike = join(dir, 'lookalike.sqlite');
  d = new Database(lookalike);
  d.exec(
    'CREATE TABLE experiments (x); CREATE TABLE runs (run_key TEXT); CREATE TABLE metrics (x); CREATE TABLE artifacts (x)',
  ); // user_version 0
  d.close();
  const text = join(dir, 'text.sqlite');
  writeFileSync(text, 'name,value\nfid,3.2\n'.repeat(20));
  Object.assign(foreign, { notes, marked, lookalike, text });
  // an old mtime, so that any write would show
  for (const p of Object.values(foreign)) utimesSync(p, new Date(2020, 0, 1), new Date(2020, 0, 1));
});

function snapshot(p: string): { bytes: Buffer; mtimeMs: number } {
  return { bytes: readFileSync(p), mtimeMs: statSync(p).mtimeMs };
}

function assertUntouched(p: string, before: { bytes: Buffer; mtimeMs: number }, what: string): void {
  const now = snapshot(p);
  assert.ok(now.bytes.equals(before.bytes), `${what}: bytes changed`);
  assert.equal(now.mtimeMs, before.mtimeMs, `${what}: mtime changed`);
  assert.ok(!existsSync(`${p}-wal`) && !existsSync(`${p}-journal`), `${what}: a journal was created beside it`);
}

test('inspectDatabase tells ours (marked or not) and empty files from everything else, reading only', () => {
  assert.equal(inspectDatabase(join(dir, 'absent.sqlite')), 'absent');
  const empty = join(dir, 'empty.sqlite');
  writeFileSync(empty, '');
  assert.equal(inspectDatabase(empty), 'empty');
  assert.deepEqual(inspectDatabase(ours), { version: SCHEMA_VERSION, marked: true });
  for (const [k, p] of Object.entries(foreign)) {
    const before = snapshot(p);
    assert.throws(
      () => inspectDatabase(p),
      (e: unknown) => e instanceof UserError && e.message.includes(p) && /untouched/.test(e.message),
      k,
    );
    assert.throws(() => openStore(p), UserError, k);
    assert.throws(() => openStore(p, { readonly: true }), UserError, k);
    assertUntouched(p, before, k);
  }
  assert.throws(
    () => inspectDatabase(dir),
    (e: unknown) => e instanceof UserError && /is a directory/.test(e.message),
  );
});

test('no command writes to a database it did not create: each exits 2 and leaves the file as it was', async () => {
  const baseline = join(dir, 'baseline.json');
  writeFileSync(
    baseline,
    JSON.stringify({
      checks: [{ name: 'x', metric: 'fid', select: {}, expected: 1, tolerance: { abs: 1 }, better: 'lower' }],
    }),
  );
  const spec = join(ROOT, 'experiments', 'quickstart.yaml');
  for (const [k, p] of Object.entries(foreign)) {
    const commands = [
      ['run', spec, '--db', p],
      ['run', spec, '--db', p, '--dry-run'],
      ['plan', spec, '--db', p],
      ['report', '--db', p, '--out', join(dir, 'report')],
      ['check', '--baseline', baseline, '--db', p],
      ['collect', ours, '--db', p],
      ['collect', p, '--db', join(dir, 'merged.sqlite')],
    ];
    for (const args of commands) {
      const before = snapshot(p);
      const r = await cli(args);
      assert.equal(r.code, 2, `${k}: ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^error: .*not an (fpdm-exp|SQLite)/, `${k}: ${args.join(' ')}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assertUntouched(p, before, `${k}: ${args.join(' ')}`);
    }
  }
  assert.ok(!existsSync(join(dir, 'merged.sqlite')), 'collect checked its bundles before creating its target');
  // and from a child process, with the real exit status
  const before = snapshot(foreign.notes!);
  const r = runCli(['run', spec, '--db', foreign.notes!]);
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assertUntouched(foreign.notes!, before, 'run (child process)');
  const rows = new Database(foreign.notes!, { readonly: true }).prepare('SELECT body FROM notes').all();
  assert.deepEqual(rows, [{ body: 'keep me' }]);
});

test('an fpdm-exp database made before the mark: report reads it unchanged; opening it for writing marks it and keeps every row', async () => {
  const committed = join(ROOT, 'results', 'reproduce-mnist', 'fpdm.sqlite');
  const raw = new Database(committed, { readonly: true });
  const appId = raw.pragma('application_id', { simple: true });
  const runs = (raw.prepare('SELECT count(*) AS n FROM runs').get() as { n: number }).n;
  const metrics = (raw.prepare('SELECT count(*) AS n FROM metrics').get() as { n: number }).n;
  raw.close();
  assert.equal(appId, 0, 'the committed database predates the mark');
  assert.ok(runs > 0 && metrics > 0);
  const before = snapshot(committed);
  assert.deepEqual(inspectDatabase(committed), { version: SCHEMA_VERSION, marked: false });
  const r = runCli(['report', '--db', committed, '--out', join(dir, 'report-committed'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { runs: number }).runs, runs);
  const after = snapshot(committed);
  assert.ok(
    after.bytes.equals(before.bytes) && after.mtimeMs === before.mtimeMs,
    'report opened the committed database read-only',
  );

  const copy = join(dir, 'old.sqlite');
  copyFileSync(committed, copy);
  const s = openStore(copy);
  try {
    assert.equal(s.db.pragma('application_id', { simple: true }), APPLICATION_ID);
    assert.equal(s.listRuns().length, runs);
    assert.equal(s.metrics().length, metrics);
  } finally {
    s.close();
  }
  assert.deepEqual(inspectDatabase(copy), { version: SCHEMA_VERSION, marked: true });
});
