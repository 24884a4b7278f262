import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  openStore,
  migrate,
  MIGRATIONS,
  SCHEMA_VERSION,
  sha256Hex,
  METRIC,
  TAG,
  canonicalJson,
} from '../../src/store/index.js';
import { APPLICATION_ID } from '../../src/store/store.js';
import { UserError } from '../../src/util/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'fpdm-store-'));
const key = (s: string) => sha256Hex(s);

test('a new database is created at the latest schema version, in WAL mode, and passes integrity_check', () => {
  const path = join(tmp(), 'r.sqlite');
  const s = openStore(path);
  assert.equal(s.schemaVersion(), SCHEMA_VERSION);
  assert.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(s.integrityCheck(), 'ok');
  const tables = (
    s.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]
  ).map((r) => r.name);
  assert.deepEqual(tables, ['artifacts', 'experiments', 'metrics', 'runs']);
  s.close();
});

test('a database from a newer schema version is refused with a UserError and left byte-identical', () => {
  const path = join(tmp(), 'new.sqlite');
  const raw = new Database(path);
  raw.exec('CREATE TABLE future (x)');
  raw.pragma(`application_id = ${APPLICATION_ID}`); // a newer fpdm-exp marks its databases as this one does
  raw.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
  raw.close();
  const before = readFileSync(path);
  assert.throws(
    () => openStore(path),
    (e: unknown) => e instanceof UserError && /newer/.test(e.message) && /untouched/.test(e.message),
  );
  assert.throws(() => openStore(path, { readonly: true }), UserError);
  assert.ok(before.equals(readFileSync(path)));
});

test('a file that is not a database is refused with a UserError', () => {
  const path = join(tmp(), 'junk.sqlite');
  writeFileSync(path, 'this is not sqlite at all, just some text that is long enough to have a header'.repeat(10));
  assert.throws(
    () => openStore(path),
    (e: unknown) => e instanceof UserError && /not an SQLite database/.test(e.message),
  );
});

test('migrations run forward from the stored user_version, keep rows, and roll back on failure', () => {
  const path = join(tmp(), 'm.sqlite');
  const s = openStore(path);
  s.upsertExperiment('e', 'spec: 1');
  s.close();
  const db = new Database(path);
  const extra = [
    ...MIGRATIONS,
    { description: 'add notes', up: (d: Database.Database) => d.exec('ALTER TABLE runs ADD COLUMN notes TEXT') },
    { description: 'add index', up: (d: Database.Database) => d.exec('CREATE INDEX runs_model ON runs(model)') },
  ];
  assert.deepEqual(migrate(db, extra), { from: SCHEMA_VERSION, to: SCHEMA_VERSION + 2 });
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION + 2);
  assert.equal(
    (db.prepare('SELECT spec FROM experiments WHERE name = ?').get('e') as { spec: string }).spec,
    'spec: 1',
  );
  // running them again is a no-op
  assert.deepEqual(migrate(db, extra), { from: SCHEMA_VERSION + 2, to: SCHEMA_VERSION + 2 });
  // a failing migration leaves the version and schema as they were
  const failing = [
    ...extra,
    {
      description: 'broken',
      up: (d: Database.Database) => {
        d.exec('CREATE TABLE half (x)');
        throw new Error('boom');
      },
    },
  ];
  assert.throws(() => migrate(db, failing), /boom/);
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION + 2);
  assert.equal((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'half'").get() as { n: number }).n, 0);
  db.close();
  // and a v0 (empty) file migrates to the latest
  const p0 = join(tmp(), 'v0.sqlite');
  new Database(p0).close();
  const s0 = openStore(p0);
  assert.equal(s0.schemaVersion(), SCHEMA_VERSION);
  s0.close();
});

test('claimRun: insert, done, busy for a live owner, re-claim from a dead owner, failed and retry', () => {
  const path = join(tmp(), 'c.sqlite');
  const a = openStore(path);
  const input = {
    key: key('run1'),
    experiment: 'exp',
    kind: 'sample' as const,
    model: 'FPDM-S/2',
    family: 'fpdm' as const,
    seed: 3,
    config: { b: 2, a: 1 },
    tags: { [TAG.budget]: 10 },
  };
  const c1 = a.claimRun(input);
  assert.equal(c1.outcome, 'claimed');
  assert.equal(c1.outcome === 'claimed' && c1.previous, null);
  assert.equal(c1.run.status, 'running');
  assert.equal(c1.run.attempts, 1);
  assert.deepEqual(c1.run.owner, { pid: process.pid, host: a.host });
  assert.equal(JSON.stringify(c1.run.config), canonicalJson({ a: 1, b: 2 }));
  assert.equal(c1.run.experiment, 'exp');

  // a run owned by a live process on this host (pid 1 exists, or a pid we cannot signal) is busy
  a.db.prepare('UPDATE runs SET owner_pid = ?, owner_token = ? WHERE id = ?').run(process.ppid, 'other', c1.run.id);
  assert.equal(a.claimRun(input).outcome, 'busy');
  // a dead owner's run is claimable again, as a resume
  a.db.prepare('UPDATE runs SET owner_pid = ?, owner_token = ? WHERE id = ?').run(2 ** 22 + 12345, 'dead', c1.run.id);
  const c2 = a.claimRun(input);
  assert.equal(c2.outcome, 'claimed');
  assert.equal(c2.outcome === 'claimed' && c2.previous, 'running');
  assert.equal(c2.run.attempts, 2);
  // another host: busy while its heartbeat is fresh, claimable once stale
  a.db
    .prepare("UPDATE runs SET owner_host = 'elsewhere', owner_token = 'x', heartbeat_at = ? WHERE id = ?")
    .run(new Date().toISOString(), c1.run.id);
  assert.equal(a.claimRun(input).outcome, 'busy');
  a.db
    .prepare('UPDATE runs SET heartbeat_at = ? WHERE id = ?')
    .run(new Date(Date.now() - 3_600_000).toISOString(), c1.run.id);
  assert.equal(a.claimRun(input).outcome, 'claimed');

  a.failRun(c1.run.id, 'loss is NaN at step 7', 'diverged');
  const f = a.claimRun(input);
  assert.equal(f.outcome, 'failed');
  assert.equal(f.run.status, 'diverged');
  assert.equal(f.run.error, 'loss is NaN at step 7');
  const r = a.claimRun(input, { retryFailed: true });
  assert.equal(r.outcome, 'claimed');
  assert.equal(r.run.error, null);
  a.completeRun(r.run.id, { metrics: [{ name: METRIC.fid, value: 12.5 }] });
  const d = a.claimRun(input);
  assert.equal(d.outcome, 'done');
  assert.equal(d.run.owner, null);
  assert.ok(d.run.finishedAt);
  assert.throws(() => a.claimRun({ ...input, key: 'not-a-hash' }), /64 lowercase hex/);
  a.close();
});

test('metrics: one row per value, tags merged with the run, re-writing replaces, non-finite kept', () => {
  const s = openStore(join(tmp(), 'x.sqlite'));
  const c = s.claimRun({
    key: key('m'),
    experiment: 'e',
    kind: 'train',
    model: 'DiT-S/2',
    family: 'dit',
    seed: 1,
    config: {},
    tags: { budget: 5, reuse: false },
  });
  assert.equal(c.outcome, 'claimed');
  const id = c.run.id;
  s.addMetrics(
    id,
    [0, 1, 2, 3].map((step) => ({ name: METRIC.trainLoss, value: 1 / (step + 1), step })),
  );
  s.addMetrics(id, [{ name: METRIC.trainLoss, value: 0.3, step: 2 }]); // resume rewrites step 2
  s.addMetrics(id, [
    { name: METRIC.trainLoss, value: NaN, step: 4 },
    { name: METRIC.fid, value: 7, tags: { preprocessing: 'tf', budget: 6 } },
  ]);
  const loss = s.metrics({ names: [METRIC.trainLoss] });
  assert.deepEqual(
    loss.map((m) => m.step),
    [0, 1, 2, 3, 4],
  );
  assert.equal(loss[2]!.value, 0.3);
  assert.ok(Number.isNaN(loss[4]!.value));
  const fid = s.metrics({ names: [METRIC.fid], experiment: 'e' })[0]!;
  assert.deepEqual(fid.tags, { budget: 6, reuse: false, seed: 1, preprocessing: 'tf' });
  assert.equal(fid.model, 'DiT-S/2');
  assert.equal(s.deleteMetrics(id, { name: METRIC.trainLoss, fromStep: 3 }), 2);
  assert.equal(s.metrics({ names: [METRIC.trainLoss] }).length, 3);
  assert.equal(s.metrics({ experiment: 'other' }).length, 0);
  assert.equal(s.metrics({ status: ['completed'] }).length, 0);
  assert.throws(() => s.addMetrics(id, [{ name: 'x', value: 1, tags: { bad: NaN } }]), /tag 'bad'/);
  assert.throws(
    () =>
      s.addMetrics(id, [
        { name: 'ok', value: 1 },
        { name: 'x', value: 1, step: 0.5 },
      ]),
    /integer/,
  );
  assert.equal(s.metrics({ names: ['ok'] }).length, 0, 'a failed addMetrics leaves no partial rows');
  s.close();
});

test('artifacts: stored relative to the database directory with sha256 and size', () => {
  const dir = tmp();
  const s = openStore(join(dir, 'a.sqlite'));
  const file = join(dir, 'grids', 'g.png');
  mkdirSync(join(dir, 'grids'));
  writeFileSync(file, 'pngbytes');
  const c = s.claimRun({ key: key('a'), kind: 'sample', model: 'm', config: {} });
  s.completeRun(c.run.id, { artifacts: [{ kind: 'sample_grid', path: file, tags: { budget: 4 } }] });
  const [a] = s.artifacts({ artifactKinds: ['sample_grid'] });
  assert.equal(a!.path, 'grids/g.png');
  assert.equal(a!.absPath, file);
  assert.equal(a!.sha256, sha256Hex('pngbytes'));
  assert.equal(a!.bytes, 8);
  assert.equal(a!.tags.budget, 4);
  assert.throws(
    () => s.addArtifact(c.run.id, { kind: 'checkpoint', path: join(dir, 'missing.safetensors') }),
    UserError,
  );
  s.close();
});

test('pending runs are claimable; heartbeats only from the owner; bad paths and old schemas read-only are UserErrors', () => {
  const dir = tmp();
  const s = openStore(join(dir, 'p.sqlite'));
  const input = { key: key('p'), experiment: 'e', kind: 'sample' as const, model: 'm', config: {} };
  s.addPendingRuns([input, input]);
  assert.equal(s.listRuns().length, 1);
  assert.equal(s.getRun(input.key)!.status, 'pending');
  const c = s.claimRun(input);
  assert.equal(c.outcome === 'claimed' && c.previous, 'pending');
  const before = s.getRun(input.key)!.heartbeatAt;
  const other = openStore(join(dir, 'p.sqlite'));
  other.heartbeat(c.run.id); // not the owner: no effect
  assert.equal(s.getRun(input.key)!.heartbeatAt, before);
  other.close();
  s.close();
  assert.throws(
    () => openStore(join(dir, 'no', 'such', 'dir', 'r.sqlite')),
    (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
  );
  const old = join(dir, 'old.sqlite');
  new Database(old).close(); // a zero-byte file: nothing in it to report
  assert.throws(
    () => openStore(old, { readonly: true }),
    (e: unknown) => e instanceof UserError && /is empty/.test(e.message),
  );
});
