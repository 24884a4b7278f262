import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { runCli } from '../cli.js';
import { MODELS, SEEDS, buildKnownDb, ipsValue, sweepValue } from '../report/known-db.js';

let dir: string;
let db: string;
const mean = (f: (s: number) => number) => SEEDS.map(f).reduce((a, b) => a + b, 0) / SEEDS.length;
const [DIT, FPDM] = MODELS as [(typeof MODELS)[0], (typeof MODELS)[1]];
// current values in the database, by formula
const ditFid20 = mean((s) => sweepValue(DIT, 20, s)); // 6
const fpdmIps5 = mean((s) => ipsValue('fpdm', 5, s)); // 31

function baseline(name: string, checks: unknown[], yaml = false): string {
  const p = join(dir, name);
  writeFileSync(p, yaml ? YAML.stringify({ checks }) : JSON.stringify({ checks }));
  return p;
}
const fid20 = (expected: number, tolerance: object) => ({
  name: 'dit-fid-20',
  metric: 'fid',
  select: { experiment: 'known', model: DIT.model, tags: { budget: 20 } },
  expected,
  tolerance,
  better: 'lower',
});
const ips5 = (expected: number) => ({
  name: 'fpdm-ips-5',
  metric: 'images_per_s',
  select: { model: FPDM.model, kind: 'sample', tags: { budget: 5 } },
  expected,
  tolerance: { rel: 0.1 },
  better: 'higher',
});

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fpdm-check-cli-'));
  db = await buildKnownDb(dir);
});

test('a baseline the current results beat or meet passes with exit 0', async () => {
  const b = baseline('pass.json', [fid20(ditFid20 + 2, { abs: 0.5 }), ips5(fpdmIps5 * 1.05)]);
  const r = runCli(['check', '--baseline', b, '--db', db]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /dit-fid-20\s+6\s+8\s+-2\s+0\.5\s+lower\s+3\s+IMPROVED/);
  assert.match(r.stdout, /fpdm-ips-5\s+31\s+.*higher\s+3\s+OK/);
  assert.match(r.stderr, /all 2 checks passed/);
});

test('a metric worse than its baseline beyond tolerance fails with exit 3 and is named', () => {
  const b = baseline('fail.yaml', [fid20(ditFid20 - 1, { abs: 0.5 }), ips5(fpdmIps5 * 1.5)], true);
  const r = runCli(['check', '--baseline', b, '--db', db, '--json']);
  assert.equal(r.code, 3, r.stderr);
  const out = JSON.parse(r.stdout) as { rows: { name: string; verdict: string; value: number; delta: number }[] };
  assert.deepEqual(
    out.rows.map((x) => x.verdict),
    ['regressed', 'regressed'],
  );
  assert.ok(Math.abs(out.rows[0]!.delta - 1) < 1e-9);
  assert.match(r.stderr, /regression: 2 of 2 checks regressed: dit-fid-20 \(6 vs 5, allowed 0\.5\); fpdm-ips-5/);
});

test('malformed baselines and missing metrics exit 2 naming the key; --update rewrites expected values', async () => {
  const bad = baseline('bad.json', [{ ...fid20(1, { abs: 1 }), better: 'smaller' }]);
  const r1 = runCli(['check', '--baseline', bad, '--db', db]);
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, /checks\[0\]\.better/);
  const missing = baseline('missing.json', [{ ...fid20(1, { abs: 1 }), select: { model: 'DiT-XL/2' } }]);
  const r2 = runCli(['check', '--baseline', missing, '--db', db]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /checks\[0\] \(dit-fid-20\): no completed run/);
  const r3 = runCli(['check', '--baseline', missing, '--db', join(dir, 'nope.sqlite')]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /does not exist/);

  const stale = baseline('update.yaml', [fid20(3, { abs: 0.25, rel: 0.01 }), ips5(99)], true);
  writeFileSync(stale, '# kept by --update\n' + readFileSync(stale, 'utf8'));
  assert.equal(runCli(['check', '--baseline', stale, '--db', db]).code, 3);
  const up = runCli(['check', '--baseline', stale, '--db', db, '--update']);
  assert.equal(up.code, 0, up.stderr);
  const next = YAML.parse(readFileSync(stale, 'utf8')) as {
    checks: { expected: number; tolerance: unknown; better: string }[];
  };
  assert.ok(Math.abs(next.checks[0]!.expected - ditFid20) < 1e-12);
  assert.ok(Math.abs(next.checks[1]!.expected - fpdmIps5) < 1e-12);
  assert.deepEqual(next.checks[0]!.tolerance, { abs: 0.25, rel: 0.01 });
  assert.equal(next.checks[1]!.better, 'higher');
  assert.match(readFileSync(stale, 'utf8'), /^# kept by --update\n/);
  // family selector
  const fam = baseline('family.json', [
    { ...fid20(ditFid20, { abs: 0 }), select: { family: 'dit', tags: { budget: 20 } } },
  ]);
  assert.equal(runCli(['check', '--baseline', fam, '--db', db]).code, 0);
  assert.equal(runCli(['check', '--baseline', stale, '--db', db]).code, 0);
});
