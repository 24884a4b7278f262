import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregate } from '../../src/report/aggregate.js';
import { summarize } from '../../src/report/stats.js';
import type { MetricRecord, Tags } from '../../src/store/types.js';

let id = 0;
const row = (model: string, value: number, tags: Tags): MetricRecord => ({
  runId: ++id,
  runKey: String(id),
  experiment: 'e',
  kind: 'sample',
  model,
  family: null,
  seed: (tags.seed as number) ?? null,
  status: 'completed',
  finishedAt: null,
  name: 'fid',
  value,
  unit: '',
  step: null,
  tags,
});

test('summarize: mean and sample std (N−1); a single value has no std', () => {
  assert.deepEqual(summarize([2, 4, 6]), { mean: 4, std: 2, n: 3 });
  assert.deepEqual(summarize([5]), { mean: 5, std: null, n: 1 });
});

test('aggregate pools seeds only: configurations differing at the same x become separate, labelled series', () => {
  const rows = [
    ...[0, 1].map((seed) => row('FPDM', 10 + seed, { seed, budget: 10, steps: 5 })),
    ...[0, 1].map((seed) => row('FPDM', 20 + seed, { seed, budget: 10, steps: 10 })),
    row('FPDM', 30, { seed: 0, budget: 20, steps: 10 }),
    row('DiT', 7, { seed: 0, budget: 10, steps: 10 }),
    row('DiT', Number.NaN, { seed: 1, budget: 10, steps: 10 }),
  ];
  const a = aggregate(rows, { x: (r) => r.tags.budget as number, consumed: ['budget'] });
  const by = Object.fromEntries(a.map((g) => [`${g.series}@${g.x}`, g]));
  assert.deepEqual(Object.keys(by).sort(), ['DiT@10', 'FPDM (steps=10)@10', 'FPDM (steps=10)@20', 'FPDM (steps=5)@10']);
  assert.equal(by['FPDM (steps=5)@10']!.mean, 10.5);
  assert.equal(by['FPDM (steps=10)@10']!.mean, 20.5);
  assert.equal(by['FPDM (steps=10)@20']!.n, 1);
  assert.equal(by['DiT@10']!.n, 1, 'a non-finite value is not averaged in');
  // consuming steps as well makes the two FPDM configurations one group (what the caller asked for)
  const b = aggregate(
    rows.filter((r) => r.model === 'FPDM'),
    { x: (r) => r.tags.budget as number, consumed: ['budget', 'steps'] },
  );
  assert.deepEqual(
    b.map((g) => [g.series, g.x, g.n]),
    [
      ['FPDM', 10, 4],
      ['FPDM', 20, 1],
    ],
  );
});
