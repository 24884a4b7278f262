// Precision in experiments: the spec's `precision:` (one value or a list) and the global --precision
// enter run keys, tags and provenance only where not fp32, so every fp32 result keeps the key it had
// before the setting existed; a plan of several precisions runs one process per precision.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { onePerPrecision, formatSummary } from '../../src/cli/commands/run.js';
import { resolveTrainCommand, type TrainCommandOptions } from '../../src/cli/commands/train.js';
import { planRuns, type Plan, type PlannedRun } from '../../src/experiments/planner.js';
import { atPrecision, planStatus, prepare } from '../../src/experiments/prepare.js';
import { baseProvenance } from '../../src/experiments/provenance.js';
import { runExperiment, runInput, type RunGroups, type RunSummary } from '../../src/experiments/runner.js';
import { parseSpec } from '../../src/experiments/spec.js';
import { METRIC, TAG } from '../../src/store/names.js';
import { openStore } from '../../src/store/store.js';
import { UserError } from '../../src/util/errors.js';
import { ROOT } from '../cli.js';
import { query, tempDir, writeSpec } from './harness.js';
import { TINY_SPEC, edit } from './specs.js';

const FP = 'fingerprint-of-the-data';
const VERSION = '9.9.9';
const ENTRY = join(ROOT, 'src', 'cli', 'run.ts');

function plan(text: string): Plan {
  const spec = parseSpec(text);
  return planRuns({ spec, fingerprints: spec.variants.map(() => FP), toolVersion: VERSION });
}
const withPrecision = (value: string) => edit(TINY_SPEC, 'seeds: [0]', `seeds: [0]\nprecision: ${value}`);
const keys = (p: Plan) => p.runs.map((r) => r.key);
const sorted = (xs: string[]) => [...xs].sort();

test('a spec without precision and one with precision: fp32 give the same runs and keys; mixed gives others', () => {
  const none = plan(TINY_SPEC);
  const fp32 = plan(withPrecision('fp32'));
  const mixed = plan(withPrecision('mixed'));
  assert.deepEqual(fp32, none);
  for (const r of none.runs) {
    assert.equal(r.precision, 'fp32');
    assert.ok(!('precision' in r.config), `fp32 config names no precision: ${JSON.stringify(r.config)}`);
    assert.ok(!(TAG.precision in r.tags), 'fp32 runs carry no precision tag');
  }
  assert.equal(mixed.runs.length, none.runs.length);
  const fp32Keys = new Set(keys(none));
  for (const r of mixed.runs) {
    assert.ok(!fp32Keys.has(r.key), `mixed ${r.kind} run ${r.key} shares a key with an fp32 run`);
    assert.equal(r.precision, 'mixed');
    assert.equal((r.config as { precision?: string }).precision, 'mixed');
    assert.equal(r.tags[TAG.precision], 'mixed');
  }
  // the precision is the only difference: the mixed configs without it (and their train keys) are the fp32 ones
  const strip = (r: PlannedRun) => {
    const { precision: _p, ...rest } = r.config as unknown as Record<string, unknown>;
    return r.kind === 'sample' ? { ...rest, trainKey: null } : rest;
  };
  assert.deepEqual(mixed.runs.map(strip), none.runs.map(strip));
  for (const r of mixed.runs)
    if (r.kind === 'sample') {
      const parent = mixed.runs.find((t) => t.key === r.parentKey);
      assert.equal(parent?.precision, 'mixed', 'a mixed sample run samples a model trained at mixed');
    }
});

test('precision: [fp32, mixed] plans both sets (the fp32 one with the keys of a plain spec); a grid over it the same', () => {
  const none = plan(TINY_SPEC);
  const mixed = plan(withPrecision('mixed'));
  const both = plan(withPrecision('[fp32, mixed]'));
  assert.deepEqual(sorted(keys(both)), sorted([...keys(none), ...keys(mixed)]));
  assert.equal(
    both.runs.filter((r) => r.kind === 'train').length,
    2 * none.runs.filter((r) => r.kind === 'train').length,
  );
  assert.deepEqual(keys(atPrecision(both, 'fp32')), keys(none));
  const grid = plan(edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\ngrid:\n  precision: [fp32, mixed]'));
  assert.deepEqual(sorted(keys(grid)), sorted(keys(both)));
});

test('the train command at --precision mixed gives the run key of a spec with precision: mixed', () => {
  const flags: TrainCommandOptions = {
    data: 'synthetic',
    imageSize: 8,
    channels: 1,
    classes: 2,
    size: 32,
    hiddenSize: 16,
    depth: 3,
    heads: 2,
    patchSize: 4,
    steps: 4,
    batchSize: 4,
    lr: 0.001,
    diffusionSteps: 100,
    seed: 0,
    out: 'unused',
  };
  const specTrain = (p: Plan) => p.runs.find((r) => r.kind === 'train' && r.modelName === 'dit')!.key;
  assert.equal(resolveTrainCommand(flags, FP, VERSION, 'mixed').key, specTrain(plan(withPrecision('mixed'))));
  assert.equal(resolveTrainCommand(flags, FP, VERSION, 'fp32').key, specTrain(plan(TINY_SPEC)));
  assert.equal(resolveTrainCommand(flags, FP, VERSION).key, specTrain(plan(TINY_SPEC)));
});

test('provenance records the precision of the backend a run computed on', () => {
  const info = { name: 'webgpu' as const, usable: true, package: '@tensorflow/tfjs-backend-webgpu' };
  assert.equal(baseProvenance(info).backend?.precision, 'fp32');
  assert.equal(baseProvenance({ ...info, precision: 'mixed' }).backend?.precision, 'mixed');
});

const dir = tempDir('fpdm-precision-');
const CPU_SPEC = edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\nbackend: cpu');

test(
  'stored fp32 results are not run again: precision: fp32 and --precision fp32 skip every run; mixed finds none done',
  { timeout: 600_000 },
  async () => {
    const db = join(dir, 'fp32.sqlite');
    const first = await runExperiment({
      spec: writeSpec(dir, 'a.yaml', CPU_SPEC),
      db,
      backend: 'auto',
      progress: 'none',
    });
    assert.ok(first.runs.length > 0);
    assert.ok(first.runs.every((r) => r.outcome === 'completed' && r.precision === 'fp32'));
    const count = () => query<{ n: number }>(db, 'SELECT count(*) AS n FROM runs')![0]!.n;
    const n = count();
    const field = await runExperiment({
      spec: writeSpec(dir, 'b.yaml', edit(CPU_SPEC, 'backend: cpu', 'backend: cpu\nprecision: fp32')),
      db,
      backend: 'auto',
      progress: 'none',
    });
    const flag = await runExperiment({
      spec: join(dir, 'a.yaml'),
      db,
      backend: 'auto',
      precision: 'fp32',
      progress: 'none',
    });
    for (const s of [field, flag]) {
      assert.deepEqual(sorted(s.runs.map((r) => r.key)), sorted(first.runs.map((r) => r.key)));
      assert.ok(
        s.runs.every((r) => r.outcome === 'skipped'),
        s.runs.map((r) => r.outcome).join(),
      );
    }
    assert.equal(count(), n, 'no run was added');
    // every stored run's provenance names its precision
    const store = openStore(db, { readonly: true });
    try {
      for (const r of store.listRuns({})) assert.equal(r.provenance.backend?.precision, 'fp32', r.key);
    } finally {
      store.close();
    }
    // the same spec at mixed: none of its runs is done (planning needs no GPU)
    const p = await prepare(join(dir, 'a.yaml'), undefined, { precision: 'mixed', backend: 'webgpu' });
    const rows = planStatus(p.plan, db);
    assert.equal(rows.length, first.runs.length);
    assert.ok(rows.every((r) => r.status === 'new' && r.precision === 'mixed'));
  },
);

test('a plan of two precisions: one process per precision, then a summary of both read from the database', async () => {
  const spec = writeSpec(dir, 'both.yaml', edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\nprecision: [fp32, mixed]'));
  const db = join(dir, 'both.sqlite');
  // without a way to start processes (a library caller), such a plan is refused, and nothing is stored
  await assert.rejects(
    runExperiment({ spec, db, backend: 'auto', progress: 'none' }),
    (e: Error) => e instanceof UserError && /a process per precision/.test(e.message),
  );
  assert.ok(!existsSync(db));
  const calls: { precisions: string[]; backend: string }[] = [];
  // fp32 runs for real (on cpu); the mixed process is stood in for by results stored through the store
  // API, as a GPU process would store them
  const groups: RunGroups = async ({ precisions, backend }) => {
    calls.push({ precisions, backend });
    const fp32 = await runExperiment({ spec, db, backend: 'cpu', only: 'fp32', progress: 'none' });
    const p = await prepare(spec, undefined, { only: 'mixed' });
    const mixedPlan = atPrecision(p.plan, 'mixed');
    const store = openStore(db);
    const prov = baseProvenance({ name: 'webgpu', usable: true, package: 'x', precision: 'mixed' });
    try {
      for (const r of mixedPlan.runs) {
        const c = store.claimRun(
          runInput(r, mixedPlan.experiment, { ...prov, config: r.config, runKey: r.key, seed: r.seed }),
        );
        assert.equal(c.outcome, 'claimed');
        if (c.outcome === 'claimed') store.completeRun(c.run.id, { metrics: [{ name: METRIC.params, value: 1 }] });
      }
    } finally {
      store.close();
    }
    const mixed: RunSummary = {
      ...fp32,
      precisions: ['mixed'],
      runs: mixedPlan.runs.map((r) => ({
        ...fp32.runs[0]!,
        key: r.key,
        kind: r.kind,
        precision: 'mixed',
        outcome: 'completed',
      })),
    };
    return [fp32, mixed];
  };
  const s = await runExperiment({ spec, db, backend: 'auto', progress: 'none', runGroups: groups });
  assert.deepEqual(calls, [{ precisions: ['fp32', 'mixed'], backend: 'auto' }]);
  const both = plan(edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\nprecision: [fp32, mixed]'));
  assert.equal(s.runs.length, both.runs.length);
  assert.deepEqual(s.precisions, ['fp32', 'mixed']);
  assert.ok(s.runs.every((r) => r.status === 'completed' && r.outcome === 'completed'));
  for (const r of s.runs.filter((x) => x.kind === 'train'))
    assert.equal(r.metrics.params === 1, r.precision === 'mixed', `${r.precision} train run's params read back`);
  // the summary table names the precision of each run where some are mixed, and only then
  const text = formatSummary({ ...s, report: null });
  assert.match(text, /at fp32 and mixed/);
  assert.match(text.split('\n')[2]!, /\bprecision\b/);
  const fp32Only = formatSummary({ ...s, report: null, runs: s.runs.filter((r) => r.precision === 'fp32') });
  assert.doesNotMatch(fp32Only.split('\n')[2]!, /\bprecision\b/);
});

test("the CLI's processes per precision: checked before any starts, each a `run --only-precision`, a failure a UserError", async () => {
  const spec = writeSpec(dir, 'cli.yaml', edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\nprecision: [fp32, mixed]'));
  const db = join(dir, 'cli.sqlite');
  const cli = ['--import', 'tsx', ENTRY];
  const opts = { spec, db, globals: { backend: 'cpu' as const, quiet: true }, progress: 'none' as const };
  const asked = (p: string) => `precision: ${p} (${spec})`;
  // mixed cannot run on cpu: refused before the fp32 process starts
  await assert.rejects(
    onePerPrecision(opts, cli)({ precisions: ['fp32', 'mixed'], backend: 'cpu', asked }),
    (e: Error) => e instanceof UserError && /precision: mixed .* runs on the webgpu backend only/.test(e.message),
  );
  assert.ok(!existsSync(db), 'no process started');
  // the fp32 process: the spec's fp32 runs only, in this database
  const [fp32] = await onePerPrecision(opts, cli)({ precisions: ['fp32'], backend: 'cpu', asked });
  const expected = keys(atPrecision((await prepare(spec, undefined, { only: 'fp32' })).plan, 'fp32'));
  assert.deepEqual(sorted(fp32!.runs.map((r) => r.key)), sorted(expected));
  assert.ok(fp32!.runs.every((r) => r.precision === 'fp32' && r.status === 'completed'));
  const stored = query<{ run_key: string }>(db, 'SELECT run_key FROM runs')!.map((r) => r.run_key);
  assert.deepEqual(sorted(stored), sorted(expected));
  // a process that stops on bad input stops the others, as a UserError
  await assert.rejects(
    onePerPrecision({ ...opts, db: dir }, cli)({ precisions: ['fp32'], backend: 'cpu', asked }),
    (e: Error) => e instanceof UserError && /the runs at precision fp32 stopped/.test(e.message),
  );
});
