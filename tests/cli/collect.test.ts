// `--shard 0/2` + `--shard 1/2` into separate bundles, then `collect`, gives the same database contents
// as one unsharded run; collecting again changes nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, integrity, results, tempDir, writeSpec } from '../experiments/harness.js';
import { TINY_SPEC, edit } from '../experiments/specs.js';

const SPEC = edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0, 1]');

test('shard 0/2 + shard 1/2 + collect == one unsharded run', { timeout: 600_000 }, async () => {
  const dir = tempDir('fpdm-shard-');
  const spec = writeSpec(dir, 's.yaml', SPEC);
  const run = (db: string, extra: string[] = []) =>
    cli(['--backend', 'wasm', 'run', spec, '--db', db, '--progress', 'none', ...extra]);
  const [s0, s1, all] = await Promise.all([
    run(join(dir, 'bundles', 'shard-0', 'fpdm.sqlite'), ['--shard', '0/2']),
    run(join(dir, 'bundles', 'shard-1', 'fpdm.sqlite'), ['--shard', '1/2']),
    run(join(dir, 'all', 'fpdm.sqlite')),
  ]);
  for (const r of [s0, s1, all]) assert.equal(r.code, 0, r.stderr);
  const merged = join(dir, 'merged.sqlite');
  const c = await cli([
    'collect',
    join(dir, 'bundles', 'shard-0'),
    join(dir, 'bundles', 'shard-1'),
    '--db',
    merged,
    '--json',
  ]);
  assert.equal(c.code, 0, c.stderr);
  const info = JSON.parse(c.stdout) as { bundles: { added: number }[] };
  assert.ok(
    info.bundles.every((b) => b.added > 0),
    'each shard contributed runs',
  );
  const want = results(join(dir, 'all', 'fpdm.sqlite'));
  assert.equal(want.runs.length, 4 + 2 * 5);
  assert.deepEqual(results(merged), want);
  assert.equal(integrity(merged), 'ok');
  // idempotent
  const again = await cli(['collect', join(dir, 'bundles'), '--db', merged, '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(
    (JSON.parse(again.stdout) as { bundles: { added: number; replaced: number }[] }).bundles.every(
      (b) => b.added === 0 && b.replaced === 0,
    ),
  );
  assert.deepEqual(results(merged), want);
  // the merged database plans as done
  const plan = await cli(['plan', spec, '--db', merged, '--json']);
  assert.equal(plan.code, 0, plan.stderr);
  assert.equal((JSON.parse(plan.stdout) as { totals: { pending: number } }).totals.pending, 0);
});

test('collect of a path that is not a bundle exits 2', async () => {
  const dir = tempDir('fpdm-shard-bad-');
  const r = await cli(['collect', join(dir, 'nope'), '--db', join(dir, 'm.sqlite')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /does not exist/);
  const e = await cli(['collect', dir, '--db', join(dir, 'm.sqlite')]);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /no \.sqlite database/);
});
