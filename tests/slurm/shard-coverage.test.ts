// Which shards a set of bundles holds (shardCoverage): built from databases whose runs carry the
// `provenance.shard` record that `run --shard i/n` writes.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeShardGaps, shardCoverage, type ShardRecord } from '../../src/store/merge.js';
import { openStore, sha256Hex, type Store } from '../../src/store/index.js';

const root = mkdtempSync(join(tmpdir(), 'fpdm-coverage-'));
let n = 0;

interface R {
  key: string;
  parent?: string;
  status: 'pending' | 'running' | 'completed' | 'failed';
  shard?: ShardRecord;
  experiment?: string;
}

/** A database holding the runs `rs` in the given states. */
function bundle(rs: R[]): string {
  const s: Store = openStore(join(root, `b${n++}.sqlite`));
  for (const r of rs) {
    const input = {
      key: sha256Hex(r.key),
      experiment: r.experiment ?? 'e',
      kind: r.parent ? ('sample' as const) : ('train' as const),
      model: 'm',
      parentKey: r.parent ? sha256Hex(r.parent) : null,
      config: { k: r.key },
      provenance: r.shard ? { shard: r.shard } : {},
    };
    if (r.status === 'pending') {
      s.addPendingRuns([input]);
      continue;
    }
    const c = s.claimRun(input);
    assert.equal(c.outcome, 'claimed');
    if (r.status === 'completed') s.completeRun(c.run.id);
    if (r.status === 'failed') s.failRun(c.run.id, 'boom');
  }
  const path = s.path;
  s.close();
  return path;
}

const sh = (index: number, count: number, trainRuns: number): ShardRecord => ({ index, count, trainRuns });

test('a complete set of shards has no gaps; a missing bundle is named by its index', () => {
  const b0 = bundle([
    { key: 't0', status: 'completed', shard: sh(0, 3, 3) },
    { key: 's0', parent: 't0', status: 'completed', shard: sh(0, 3, 3) },
  ]);
  const b1 = bundle([{ key: 't1', status: 'completed', shard: sh(1, 3, 3) }]);
  const b2 = bundle([{ key: 't2', status: 'completed', shard: sh(2, 3, 3) }]);
  const all = shardCoverage([b0, b1, b2]);
  assert.deepEqual(all, [{ experiment: 'e', count: 3, expected: 3, missing: [], unfinished: [] }]);
  assert.deepEqual(describeShardGaps(all), []);
  const partial = shardCoverage([b2, b0]);
  assert.deepEqual(partial[0]!.missing, [1]);
  const [msg] = describeShardGaps(partial);
  assert.match(msg!, /experiment 'e': shard 1\/3 has no results/);
});

test('shards past the number of train runs are empty, not missing', () => {
  // 2 train runs over 4 shards: shards 2 and 3 plan nothing and leave no runs behind
  const b0 = bundle([{ key: 'u0', status: 'completed', shard: sh(0, 4, 2) }]);
  const b1 = bundle([{ key: 'u1', status: 'completed', shard: sh(1, 4, 2) }]);
  assert.deepEqual(shardCoverage([b0, b1]), [{ experiment: 'e', count: 4, expected: 2, missing: [], unfinished: [] }]);
  assert.deepEqual(shardCoverage([b1])[0]!.missing, [0]);
});

test('pending and running runs make a shard unfinished unless another database has them finished', () => {
  const killed = bundle([
    { key: 'v0', status: 'running', shard: sh(0, 2, 2) },
    { key: 'w0', parent: 'v0', status: 'pending', shard: sh(0, 2, 2) },
  ]);
  const done1 = bundle([{ key: 'v1', status: 'completed', shard: sh(1, 2, 2) }]);
  const cov = shardCoverage([killed, done1]);
  assert.deepEqual(cov[0]!.unfinished, [{ index: 0, runs: 2 }]);
  assert.match(describeShardGaps(cov)[0]!, /shard 0\/2 has 2 unfinished runs/);
  // the same runs finished in another copy (e.g. the destination of an earlier collect)
  const rerun = bundle([
    { key: 'v0', status: 'completed', shard: sh(0, 2, 2) },
    { key: 'w0', parent: 'v0', status: 'completed', shard: sh(0, 2, 2) },
  ]);
  assert.deepEqual(shardCoverage([killed, done1, rerun])[0]!.unfinished, []);
});

test('sample runs of a failed training are blocked, not unfinished; runs without a shard record are left out', () => {
  const b0 = bundle([
    { key: 'x0', status: 'failed', shard: sh(0, 2, 2) },
    { key: 'y0', parent: 'x0', status: 'pending', shard: sh(0, 2, 2) },
  ]);
  const b1 = bundle([
    { key: 'x1', status: 'completed', shard: sh(1, 2, 2) },
    { key: 'z', status: 'pending' },
  ]);
  assert.deepEqual(shardCoverage([b0, b1]), [{ experiment: 'e', count: 2, expected: 2, missing: [], unfinished: [] }]);
  assert.deepEqual(shardCoverage([bundle([{ key: 'plain', status: 'running' }])]), []);
});

test('experiments and shard counts are checked separately', () => {
  const a = bundle([{ key: 'a0', status: 'completed', shard: sh(0, 2, 2), experiment: 'alpha' }]);
  const b = bundle([{ key: 'b0', status: 'completed', shard: sh(1, 2, 2), experiment: 'beta' }]);
  const cov = shardCoverage([a, b]);
  assert.deepEqual(
    cov.map((c) => [c.experiment, c.missing]),
    [
      ['alpha', [1]],
      ['beta', [0]],
    ],
  );
  assert.equal(describeShardGaps(cov).length, 2);
});
