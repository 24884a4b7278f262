// The report and `check` with results at two precisions, from a database of known rows written through
// the store API (mixed precision needs a GPU, so its results are stored as a GPU run would store them:
// run tag precision=mixed, provenance backend.precision): mixed results are their own series
// ('<model> [mixed]'), paired with the DiT at the same precision; the precision section sets fp32 and
// mixed side by side against the seed spread; an fp32-only database reports as before (no section,
// no precision column).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { currentValue, type BaselineCheck } from '../../src/report/check.js';
import { buildReport, type ReportResult } from '../../src/report/index.js';
import { METRIC, openStore, sha256Hex, TAG, type MetricInput, type Tags } from '../../src/store/index.js';
import { csvRecords } from './csv.js';

const MODELS = [
  { model: 'DiT-S/2', family: 'dit' as const, a: 100 },
  { model: 'FPDM-S/2', family: 'fpdm' as const, a: 80 },
];
const BUDGETS = [5, 10];
const SEEDS = [0, 1, 2];
/** fd_mnist: a/budget + seed at fp32 (seed std 1); at mixed the DiT moves by 0.25 (within), the FPDM by 4 (not) */
const SHIFT: Record<string, number> = { dit: 0.25, fpdm: 4 };
const value = (m: (typeof MODELS)[number], budget: number, seed: number, precision: string) =>
  m.a / budget + seed + (precision === 'mixed' ? SHIFT[m.family]! : 0);
const stats = (f: (seed: number) => number) => {
  const v = SEEDS.map(f);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) };
};
const close = (got: string | undefined, want: number, what: string) =>
  assert.ok(
    got !== undefined && got !== '' && Math.abs(Number(got) - want) <= 1e-9 * Math.max(1, Math.abs(want)),
    `${what}: got ${got}, want ${want}`,
  );

function buildDb(path: string, precisions: string[]): string {
  const s = openStore(path);
  s.upsertExperiment('prec', 'name: prec\n');
  let i = 0;
  const add = (
    kind: 'train' | 'sample',
    m: (typeof MODELS)[number],
    seed: number,
    p: string,
    tags: Tags,
    metrics: MetricInput[],
  ) => {
    const runTags: Tags = { ...tags, ...(p === 'fp32' ? {} : { [TAG.precision]: p }) };
    const c = s.claimRun({
      key: sha256Hex(`prec-${i++}`),
      experiment: 'prec',
      kind,
      model: m.model,
      family: m.family,
      seed,
      config: { i },
      tags: runTags,
      provenance: {
        backend: { name: p === 'mixed' ? 'webgpu' : 'wasm', version: '4.22.0', device: 'test', precision: p },
      },
    });
    if (c.outcome !== 'claimed') throw new Error('claim');
    s.completeRun(c.run.id, { metrics });
  };
  for (const p of precisions)
    for (const m of MODELS)
      for (const seed of SEEDS) {
        add('train', m, seed, p, {}, [{ name: METRIC.params, value: m.a * 1e5 }]);
        for (const budget of BUDGETS)
          add('sample', m, seed, p, { budget, steps: budget, iters: 1 }, [
            { name: METRIC.fdMnist, value: value(m, budget, seed, p), tags: { num_images: 256 } },
          ]);
      }
  s.close();
  return path;
}

let root: string;
let both: ReportResult;
let fp32: ReportResult;
let db: string;
const table = (r: ReportResult, id: string) => csvRecords(readFileSync(join(r.out, 'tables', `${id}.csv`), 'utf8'));

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'fpdm-report-p-'));
  db = buildDb(join(root, 'both.sqlite'), ['fp32', 'mixed']);
  both = await buildReport({ db, experiment: 'prec', out: join(root, 'both') });
  const only = buildDb(join(root, 'fp32.sqlite'), ['fp32']);
  fp32 = await buildReport({ db: only, experiment: 'prec', out: join(root, 'fp32') });
});

test('the precision section: fp32 and mixed mean ± std over seeds per model and budget, and the difference against the seed spread', () => {
  const rows = table(both, 'precision_fd_mnist');
  assert.equal(rows.length, MODELS.length * BUDGETS.length);
  for (const m of MODELS)
    for (const b of BUDGETS) {
      const row = rows.find((r) => r['model @ budget'] === `${m.model} @ budget ${b}`);
      assert.ok(row, `${m.model} @ ${b}: no row`);
      const f = stats((seed) => value(m, b, seed, 'fp32'));
      const x = stats((seed) => value(m, b, seed, 'mixed'));
      close(row['fp32 mean'], f.mean, 'fp32 mean');
      close(row['fp32 std'], f.std, 'fp32 std');
      close(row['mixed mean'], x.mean, 'mixed mean');
      close(row['mixed std'], x.std, 'mixed std');
      assert.equal(Number(row['fp32 seeds']), SEEDS.length);
      assert.equal(Number(row['mixed seeds']), SEEDS.length);
      close(row['mixed − fp32'], x.mean - f.mean, 'difference');
      close(row['seed spread (fp32 std)'], f.std, 'spread');
      assert.equal(row['within the seed spread'], Math.abs(x.mean - f.mean) <= f.std ? 'yes' : 'no');
    }
  assert.ok(both.figures.includes('precision_fd_mnist'));
  const md = readFileSync(join(both.out, 'report.md'), 'utf8');
  const judged = MODELS.length * BUDGETS.length;
  const within = MODELS.filter((m) => SHIFT[m.family]! <= 1).length * BUDGETS.length;
  assert.ok(md.includes(`${within} of ${judged} configurations`), 'the summary note counts the configurations within');
});

test('mixed results are their own series everywhere, paired with the DiT at the same precision', () => {
  const budget = table(both, 'fd_mnist_vs_budget');
  for (const m of MODELS)
    for (const p of ['fp32', 'mixed'])
      for (const b of BUDGETS) {
        const series = p === 'fp32' ? m.model : `${m.model} [mixed]`;
        const row = budget.find((r) => r.model === series && Number(r.budget) === b);
        assert.ok(row, `${series} @ ${b}`);
        close(row[`FD (MNIST classifier) mean`], stats((seed) => value(m, b, seed, p)).mean, `${series} @ ${b}`);
      }
  const pairs = new Set(table(both, 'paper_vs_ours_fd_mnist').map((r) => r.ours));
  assert.ok(pairs.has('FPDM-S/2 vs DiT-S/2'), [...pairs].join('; '));
  assert.ok(pairs.has('FPDM-S/2 [mixed] vs DiT-S/2 [mixed]'), [...pairs].join('; '));
  // the runs and provenance tables name the precision
  const runs = table(both, 'runs');
  assert.deepEqual(new Set(runs.map((r) => r.precision)), new Set(['fp32', 'mixed']));
  for (const r of runs) assert.equal(Number(r.runs), SEEDS.length * (r.kind === 'train' ? 1 : BUDGETS.length));
  assert.deepEqual(new Set(table(both, 'provenance').map((r) => r.precision)), new Set(['fp32', 'mixed']));
});

test('an fp32-only database: no precision section, column or label, and the same fp32 numbers as beside mixed ones', () => {
  assert.ok(!existsSync(join(fp32.out, 'tables', 'precision_fd_mnist.csv')));
  assert.ok(!fp32.tables.some((t) => t.startsWith('precision')));
  const md = readFileSync(join(fp32.out, 'report.md'), 'utf8');
  assert.ok(!md.includes('[mixed]') && !/precision/i.test(md), 'the fp32 report mentions a precision');
  for (const id of ['runs', 'provenance']) assert.ok(!('precision' in table(fp32, id)[0]!), `${id}: precision column`);
  const alone = table(fp32, 'fd_mnist_vs_budget');
  const beside = table(both, 'fd_mnist_vs_budget').filter((r) => !r.model.endsWith('[mixed]'));
  assert.deepEqual(beside, alone);
});

test('check compares fp32 results unless its selector names the precision', () => {
  const store = openStore(db, { readonly: true });
  const rows = store.metrics({ status: ['completed'], names: [METRIC.fdMnist] });
  store.close();
  const m = MODELS[1]!;
  const check = (tags: Tags): BaselineCheck => ({
    metric: METRIC.fdMnist,
    select: { model: m.model, tags: { budget: 10, ...tags } },
    expected: 0,
    tolerance: { abs: 1 },
    better: 'lower',
  });
  const want = (p: string) => stats((seed) => value(m, 10, seed, p)).mean;
  close(String(currentValue(rows, check({}), 0).value), want('fp32'), 'no precision named');
  close(String(currentValue(rows, check({ precision: 'fp32' }), 0).value), want('fp32'), 'precision fp32');
  close(String(currentValue(rows, check({ precision: 'mixed' }), 0).value), want('mixed'), 'precision mixed');
});
