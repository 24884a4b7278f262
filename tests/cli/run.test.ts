// `fpdm-exp run` / `plan` through the CLI: every malformed spec of the corpus exits 2 naming its path
// (and line) and leaves no rows behind; bad --shard values exit 2; --dry-run computes nothing.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, pool, query, tempDir, writeSpec } from '../experiments/harness.js';
import { MALFORMED, TINY_SPEC, lineOfMarker } from '../experiments/specs.js';

const dir = tempDir('fpdm-run-cli-');
// every malformed spec is checked in-process (tests/experiments/spec.test.ts); through the CLI (a child
// process each, seconds of start-up on a 2-core machine) a spread of them: all YAML and top-level cases
// and every other one after those
const CLI_CASES = MALFORMED.filter((_, i) => i < 6 || i % 2 === 0);

test(
  `each of ${CLI_CASES.length} malformed specs exits 2 via the CLI naming the path, with no rows stored`,
  { timeout: 600_000 },
  async () => {
    assert.ok(CLI_CASES.length >= 25);
    const db = join(dir, 'bad.sqlite');
    const results = await pool(CLI_CASES, 3, async (c) => {
      const file = writeSpec(dir, `bad-${MALFORMED.indexOf(c)}.yaml`, c.text);
      return { c, file, r: await cli(['run', file, '--db', db]) };
    });
    for (const { c, file, r } of results) {
      assert.equal(r.code, 2, `${c.id}: exit ${r.code}\n${r.stderr}`);
      assert.ok(r.stderr.includes(c.path), `${c.id}: stderr does not name '${c.path}':\n${r.stderr}`);
      if (c.lineOf !== undefined)
        assert.ok(r.stderr.includes(`${file}:${lineOfMarker(c.text, c.lineOf)}`), `${c.id}: no line:\n${r.stderr}`);
      assert.ok(!r.stderr.includes('internal error'), `${c.id}: ${r.stderr}`);
    }
    const rows = existsSync(db) ? (query<{ n: number }>(db, 'SELECT count(*) AS n FROM runs')?.[0]?.n ?? 0) : 0;
    assert.equal(rows, 0, 'a malformed spec left runs in the database');
  },
);

test('a missing spec file, a bad --shard and a directory as spec exit 2', async () => {
  const spec = writeSpec(dir, 'tiny.yaml', TINY_SPEC);
  const cases: [string[], RegExp][] = [
    [['run', join(dir, 'nope.yaml')], /does not exist/],
    [['run', spec, '--shard', '2/2', '--dry-run'], /--shard '2\/2'/],
    [['run', spec, '--shard', 'x', '--dry-run'], /--shard 'x'/],
    [['plan', dir], /is a directory/],
  ];
  const rs = await pool(cases, 2, ([args]) => cli(args));
  rs.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, cases[i]![1]);
  });
});

test('--dry-run prints every run with its key and cost and computes nothing', async () => {
  const spec = writeSpec(dir, 'dry.yaml', TINY_SPEC);
  const db = join(dir, 'dry.sqlite');
  const r = await cli(['run', spec, '--db', db, '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as {
    runs: { kind: string; key: string; status: string; cost: number }[];
    totals: { runs: number; train: number; costBlockEvals: number };
  };
  assert.equal(plan.totals.train, 2);
  assert.equal(plan.totals.runs, 2 + 2 + 3);
  for (const run of plan.runs) {
    assert.match(run.key, /^[0-9a-f]{64}$/);
    assert.equal(run.status, 'new');
    assert.ok(run.cost > 0);
  }
  assert.equal(
    plan.totals.costBlockEvals,
    plan.runs.reduce((a, x) => a + x.cost, 0),
  );
  assert.ok(!existsSync(db), 'a dry run created the database');
  const text = await cli(['run', spec, '--db', db, '--dry-run']);
  assert.equal(text.code, 0);
  for (const run of plan.runs) assert.ok(text.stdout.includes(run.key.slice(0, 12)));
  assert.match(text.stdout, /estimated cost: [\d,]+ block evaluations/);
});
