// A shard killed in the middle of training: the other shard's bundle stays intact, `collect` refuses
// the incomplete set and names the shard (unless --allow-partial), re-running the shard into its
// bundle resumes it, and collecting then gives the results of one unsharded run.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  checkpointStep,
  cli,
  integrity,
  query,
  results,
  startCli,
  tempDir,
  waitFor,
  writeSpec,
} from '../experiments/harness.js';
import { TINY_SPEC, edit } from '../experiments/specs.js';

// two models = two train runs = one per shard; long enough training, with checkpoints, to be killed in
const SPEC = edit(TINY_SPEC, '  steps: 4\n', '  steps: 24\n  checkpointEvery: 2\n');

test(
  'killed shard: others intact, collect names it, re-run resumes, then collect == unsharded',
  { timeout: 600_000 },
  async () => {
    const dir = tempDir('fpdm-killed-shard-');
    const spec = writeSpec(dir, 's.yaml', SPEC);
    const b0 = join(dir, 'shards', 'shard-0');
    const b1 = join(dir, 'shards', 'shard-1');
    const run = (db: string, extra: string[] = []) => [
      '--backend',
      'wasm',
      'run',
      spec,
      '--db',
      db,
      '--progress',
      'none',
      ...extra,
    ];
    const [ref, s0, killed] = await Promise.all([
      cli(run(join(dir, 'all', 'fpdm.sqlite'))),
      cli(run(join(b0, 'fpdm.sqlite'), ['--shard', '0/2'])),
      (async () => {
        const p = startCli(run(join(b1, 'fpdm.sqlite'), ['--shard', '1/2']));
        const caught = await waitFor(() => checkpointStep(b1) >= 2, 300_000);
        p.child.kill('SIGKILL');
        return { caught, r: await p.done };
      })(),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.equal(s0.code, 0, s0.stderr);
    assert.ok(
      killed.caught && killed.r.signal === 'SIGKILL',
      `shard 1 was not killed during training:\n${killed.r.stderr}`,
    );
    const intact = results(join(b0, 'fpdm.sqlite'));
    assert.ok(intact.runs.length > 0 && intact.runs.every((r) => r.includes(' completed ')));
    const open = query<{ n: number }>(
      join(b1, 'fpdm.sqlite'),
      "SELECT count(*) AS n FROM runs WHERE status IN ('pending', 'running')",
    )![0]!.n;
    assert.ok(open >= 1);

    // collect refuses the incomplete set, names the shard, and writes nothing
    const merged = join(dir, 'fpdm.sqlite');
    const refused = await cli(['collect', b0, b1, '--db', merged]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`shard 1/2 has ${open} unfinished runs?`));
    assert.match(refused.stderr, /nothing merged/);
    assert.ok(!existsSync(merged), 'collect created the database although it refused');
    const lonely = await cli(['collect', join(dir, 'shards', 'shard-0'), '--db', merged]);
    assert.equal(lonely.code, 2);
    assert.match(lonely.stderr, /shard 1\/2 has no results in the bundles given/);
    // --allow-partial merges what is there, with a warning
    const partial = await cli(['collect', b0, '--db', merged, '--allow-partial', '--json']);
    assert.equal(partial.code, 0, partial.stderr);
    assert.match(partial.stderr, /warning: merging an incomplete set of shards: .*shard 1\/2/);
    assert.deepEqual(
      (JSON.parse(partial.stdout) as { shards: { missing: number[] }[] }).shards.map((s) => s.missing),
      [[1]],
    );

    // re-running the shard into its bundle resumes it; shard 0's bundle is unchanged
    const again = await cli(run(join(b1, 'fpdm.sqlite'), ['--shard', '1/2']));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming interrupted train run/);
    assert.deepEqual(results(join(b0, 'fpdm.sqlite')), intact);

    // now complete: collect (into the partially merged database) gives the unsharded results
    const done = await cli(['collect', join(dir, 'shards'), '--db', merged, '--json']);
    assert.equal(done.code, 0, done.stderr);
    assert.deepEqual((JSON.parse(done.stdout) as { shards: unknown[] }).shards, [
      { experiment: 'tiny', count: 2, expected: 2, missing: [], unfinished: [] },
    ]);
    const want = results(join(dir, 'all', 'fpdm.sqlite'));
    assert.ok(want.runs.every((r) => r.includes(' completed ')));
    assert.deepEqual(results(merged), want);
    assert.equal(integrity(merged), 'ok');
  },
);
