// Crash safety: a run killed with SIGKILL during training, and another killed during sampling, then
// re-run, end with the same stored results as an uninterrupted run; the database stays intact.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, integrity, query, results, startCli, tempDir, waitFor, writeSpec } from './harness.js';
import { TINY_SPEC, edit } from './specs.js';

// longer training with frequent checkpoints, and enough sampling to be caught in the middle of it
const SPEC = edit(
  edit(
    edit(TINY_SPEC, '  steps: 4\n', '  steps: 24\n  checkpointEvery: 2\n'),
    '  samples: 4\n  batchSize: 4\n',
    '  samples: 48\n  batchSize: 8\n',
  ),
  'metrics: [params]',
  'metrics: [params, memory]',
);

const dir = tempDir('fpdm-crash-');
const spec = writeSpec(dir, 'crash.yaml', SPEC);
const args = (db: string) => ['--backend', 'wasm', 'run', spec, '--db', db, '--progress', 'none'];

function checkpointStep(root: string): number {
  const runs = join(root, 'artifacts', 'runs');
  if (!existsSync(runs)) return 0;
  let best = 0;
  for (const k of readdirSync(runs)) {
    const side = join(runs, k, 'checkpoint.json');
    if (!existsSync(side)) continue;
    try {
      const meta = JSON.parse(readFileSync(side, 'utf8')) as { step: number; status: string };
      if (meta.status === 'running') best = Math.max(best, meta.step);
    } catch {
      // being replaced right now
    }
  }
  return best;
}

test(
  'SIGKILL during training and during sampling, then re-run: same results as an uninterrupted run',
  { timeout: 600_000 },
  async () => {
    const refDir = join(dir, 'ref');
    const killDir = join(dir, 'kill');
    const refDb = join(refDir, 'fpdm.sqlite');
    const db = join(killDir, 'fpdm.sqlite');
    const [ref, first] = await Promise.all([
      cli(args(refDb)),
      (async () => {
        const p = startCli(args(db));
        const caught = await waitFor(() => checkpointStep(killDir) >= 2, 240_000);
        p.child.kill('SIGKILL');
        return { caught, r: await p.done };
      })(),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.ok(first.caught, `training never reached a checkpoint before the kill:\n${first.r.stderr}`);
    assert.equal(first.r.signal, 'SIGKILL', 'the run finished before it could be killed during training');
    assert.equal(integrity(db), 'ok');
    const running =
      query<{ status: string }>(db, "SELECT status FROM runs WHERE kind = 'train' AND status = 'running'") ?? [];
    assert.ok(running.length >= 1, 'the killed train run is not left as running');

    // second attempt: let training finish, kill it while a sample run is in progress
    const p = startCli(args(db));
    const caught = await waitFor(
      () =>
        (query<{ n: number }>(db, "SELECT count(*) AS n FROM runs WHERE kind = 'sample' AND status = 'running'")?.[0]
          ?.n ?? 0) > 0,
      300_000,
    );
    p.child.kill('SIGKILL');
    const second = await p.done;
    assert.ok(caught, `no sample run was seen running:\n${second.stderr}`);
    assert.equal(integrity(db), 'ok');
    assert.match(second.stderr, /resuming/, 'the interrupted train run was not resumed from its checkpoint');

    const last = await cli(args(db));
    assert.equal(last.code, 0, last.stderr);
    assert.equal(integrity(db), 'ok');
    const got = results(db);
    const want = results(refDb);
    assert.deepEqual(got.runs, want.runs);
    assert.ok(want.runs.every((r) => r.includes(' completed ')));
    assert.deepEqual(got.metrics, want.metrics);
    const attempts = query<{ kind: string; attempts: number }>(db, 'SELECT kind, attempts FROM runs') ?? [];
    assert.ok(
      attempts.some((a) => a.kind === 'train' && a.attempts >= 2),
      'no train run was resumed',
    );
    assert.ok(
      attempts.some((a) => a.kind === 'sample' && a.attempts >= 2),
      'no sample run was re-run after its kill',
    );
  },
);
