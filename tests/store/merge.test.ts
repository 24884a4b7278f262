import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, mergeDatabase, sha256Hex, type Store } from '../../src/store/index.js';

function fill(s: Store, ids: number[], opts: { fail?: number[] } = {}) {
  s.upsertExperiment('e', 'name: e');
  for (const i of ids) {
    const c = s.claimRun({
      key: sha256Hex(`k${i}`),
      experiment: 'e',
      kind: 'sample',
      model: `m${i % 2}`,
      seed: i,
      config: { i },
      tags: { budget: i },
    });
    if (opts.fail?.includes(i)) {
      s.failRun(c.run.id, 'boom');
      continue;
    }
    const art = join(s.dir, `grid${i}.png`);
    writeFileSync(art, `g${i}`);
    s.completeRun(c.run.id, {
      metrics: [
        { name: 'fid', value: 10 + i },
        { name: 'train_loss', value: 1, step: 0 },
      ],
      artifacts: [{ kind: 'sample_grid', path: art }],
    });
  }
}

const snapshot = (s: Store) =>
  s
    .listRuns()
    .map((r) => ({
      key: r.key,
      status: r.status,
      model: r.model,
      tags: r.tags,
      metrics: s.metrics({ key: r.key }).map((m) => [m.name, m.value, m.step]),
      arts: s.artifacts({ key: r.key }).map((a) => [a.absPath, a.sha256]),
    }))
    .sort((x, y) => x.key.localeCompare(y.key));

test('merging shard bundles gives the unsharded contents, idempotently; completed beats failed', () => {
  const root = mkdtempSync(join(tmpdir(), 'fpdm-merge-'));
  for (const d of ['all', 'b0', 'b1', 'out']) mkdirSync(join(root, d));
  const whole = openStore(join(root, 'all', 'r.sqlite'));
  fill(whole, [0, 1, 2, 3]);
  const b0 = openStore(join(root, 'b0', 'r.sqlite'));
  fill(b0, [0, 2]);
  const b1 = openStore(join(root, 'b1', 'r.sqlite'));
  fill(b1, [1, 3], { fail: [3] });
  const out = openStore(join(root, 'out', 'r.sqlite'));
  assert.deepEqual(mergeDatabase(b1.path, out), { added: 2, replaced: 0, skipped: 0, unfinished: 0 });
  assert.deepEqual(mergeDatabase(b0.path, out), { added: 2, replaced: 0, skipped: 0, unfinished: 0 });
  assert.deepEqual(mergeDatabase(b0.path, out), { added: 0, replaced: 0, skipped: 2, unfinished: 0 });
  assert.equal(out.getRun(sha256Hex('k3'))!.status, 'failed');
  // the retried shard completes run 3; merging it replaces the failed copy
  const b1b = openStore(join(root, 'b1', 'retry.sqlite'));
  fill(b1b, [3]);
  assert.deepEqual(mergeDatabase(b1b.path, out), { added: 0, replaced: 1, skipped: 0, unfinished: 0 });
  const expected = snapshot(whole).map((r) => ({ ...r, arts: r.arts.map(([, h]) => h) }));
  const got = snapshot(out).map((r) => ({ ...r, arts: r.arts.map(([, h]) => h) }));
  assert.deepEqual(got, expected);
  // artifact paths still point at the bundle's files
  for (const a of out.artifacts()) assert.match(a.absPath, /\/b1\/|\/b0\//);
  assert.equal(out.integrityCheck(), 'ok');
  // an unfinished run is not merged
  const b2 = openStore(join(root, 'b1', 'running.sqlite'));
  b2.claimRun({ key: sha256Hex('k9'), kind: 'sample', model: 'm', config: {} });
  assert.equal(mergeDatabase(b2.path, out).unfinished, 1);
  for (const s of [whole, b0, b1, b1b, b2, out]) s.close();
});

test('collecting with copied artifacts makes the merged results independent of their bundles; checkpoints only with "all"', () => {
  const root = mkdtempSync(join(tmpdir(), 'fpdm-merge-copy-'));
  for (const d of ['b0', 'samples', 'all']) mkdirSync(join(root, d));
  const b0 = openStore(join(root, 'b0', 'r.sqlite'));
  b0.upsertExperiment('e', 'name: e');
  const c = b0.claimRun({ key: sha256Hex('kc'), experiment: 'e', kind: 'train', model: 'm', config: {} });
  mkdirSync(join(root, 'b0', 'artifacts', 'runs', 'x'), { recursive: true });
  const grid = join(root, 'b0', 'artifacts', 'runs', 'x', 'samples.png');
  const ckpt = join(root, 'b0', 'artifacts', 'runs', 'x', 'ckpt.safetensors');
  writeFileSync(grid, 'grid-bytes');
  writeFileSync(ckpt, 'ckpt-bytes');
  b0.completeRun(c.run.id, {
    artifacts: [
      { kind: 'sample_grid', path: grid },
      { kind: 'checkpoint', path: ckpt },
    ],
  });
  b0.close();
  const bundle = join(root, 'b0', 'r.sqlite');
  for (const mode of ['samples', 'all'] as const) {
    const out = openStore(join(root, mode, 'r.sqlite'));
    assert.equal(mergeDatabase(bundle, out, { copyArtifacts: mode }).added, 1);
    const arts = Object.fromEntries(out.artifacts().map((a) => [a.kind, a]));
    assert.equal(arts.sample_grid!.absPath, join(root, mode, 'artifacts', 'runs', 'x', 'samples.png'));
    assert.equal(readFileSync(arts.sample_grid!.absPath, 'utf8'), 'grid-bytes');
    if (mode === 'all') assert.equal(readFileSync(arts.checkpoint!.absPath, 'utf8'), 'ckpt-bytes');
    else assert.equal(arts.checkpoint!.absPath, ckpt, 'checkpoints stay referenced in their bundle');
    assert.equal(existsSync(join(root, mode, 'artifacts', 'runs', 'x', 'ckpt.safetensors')), mode === 'all');
    out.close();
  }
  rmSync(join(root, 'b0'), { recursive: true });
  const again = openStore(join(root, 'samples', 'r.sqlite'));
  assert.equal(readFileSync(again.artifacts().find((a) => a.kind === 'sample_grid')!.absPath, 'utf8'), 'grid-bytes');
  again.close();
});
