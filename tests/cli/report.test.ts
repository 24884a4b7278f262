import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli.js';
import { buildKnownDb } from '../report/known-db.js';

test('fpdm-exp report writes index.html from the database; --json summarises; bad --db and --experiment exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-report-cli-'));
  const db = await buildKnownDb(dir);
  const out = join(dir, 'rep');
  const r = runCli(['report', '--db', db, '--out', out, '--experiment', 'known', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { index: string; metric: string; figures: string[]; tables: string[] };
  assert.equal(j.metric, 'fid');
  assert.ok(existsSync(j.index) && j.index.startsWith(out));
  assert.ok(j.figures.includes('fid_vs_budget') && j.tables.includes('fid_vs_budget'));
  const plain = runCli(['report', '--db', db, '--out', out]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout.trim(), join(out, 'index.html'));
  assert.match(plain.stderr, /report: \d+ runs, metric fid, \d+ tables, \d+ figures, 6 sample grids/);
  const bad = runCli(['report', '--db', join(dir, 'missing.sqlite'), '--out', out]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /does not exist/);
  const exp = runCli(['report', '--db', db, '--out', out, '--experiment', 'nope']);
  assert.equal(exp.code, 2);
  assert.match(exp.stderr, /experiment 'nope' is not in .*; it has: known/);
});
