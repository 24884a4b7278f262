// Wall-time estimates: each run's FLOPs follow the formula (computed here from modelFlops and the
// spec's numbers, independently of the estimator), its seconds are FLOPs ÷ the measured rate, the
// calibration is cached per backend/device/version and reused, and `plan` prints the estimate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimatePlan, formatEstimate, type PlanEstimate } from '../../src/experiments/estimate.js';
import { prepare } from '../../src/experiments/prepare.js';
import { modelFlops } from '../../src/models/index.js';
import { formatPlan, run as planRun } from '../../src/cli/commands/plan.js';

const SPEC = 'experiments/quickstart.yaml';

test('estimates every run from the FLOPs formula and a cached calibration', { timeout: 120_000 }, async () => {
  const cache = mkdtempSync(join(tmpdir(), 'fpdm-estimate-cache-'));
  const before = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = cache;
  try {
    const p = await prepare(SPEC);
    const rows = p.plan.runs.map((r, i) => ({ key: r.key, status: i === 0 ? 'completed' : 'new' }));
    const first = (await estimatePlan(p.plan, rows, 'wasm')) as PlanEstimate;
    assert.ok(!('error' in first), JSON.stringify(first));
    assert.equal(first.backend, 'wasm');
    assert.equal(first.runs.length, p.plan.runs.length);
    assert.ok(first.calibrationSeconds > 0, 'measured on the first call');
    const file = join(cache, 'fpdm-exp', 'calibration.json');
    assert.ok(existsSync(file));
    const keys = Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object);
    assert.ok(
      keys.length >= 2 && keys.every((k) => k.startsWith(`wasm|${first.version}|${first.device}|`)),
      keys.join('\n'),
    );
    for (const r of p.plan.runs) {
      const e = first.runs.find((x) => x.key === r.key)!;
      let want: number;
      if (r.kind === 'train') {
        const m = r.config.model;
        const f = modelFlops(m);
        const perImage =
          m.kind === 'dit'
            ? 3 * f.forward()
            : 3 * (f.fixed + ((m.withGradIters[0] + m.withGradIters[1]) / 2) * f.perIteration) +
              ((m.noGradIters[0] + m.noGradIters[1]) / 2) * f.perIteration;
        want = r.config.training.steps * r.config.training.batchSize * perImage;
      } else {
        const parent = p.plan.runs.find((x) => x.key === r.parentKey)!;
        const s = r.config.sampling;
        want =
          s.samples *
          (s.cfg > 1 ? 2 : 1) *
          s.steps *
          modelFlops((parent.config as { model: Parameters<typeof modelFlops>[0] }).model).forward(s.iters ?? 0);
      }
      assert.ok(Math.abs(e.flops - want) <= 1e-9 * want, `${r.kind} ${r.modelName}: ${e.flops} vs ${want}`);
      const rate = first.rates.find(
        (x) => x.batch === Math.min(64, r.kind === 'train' ? r.config.training.batchSize : r.config.sampling.batchSize),
      )!;
      const perSecond = r.kind === 'train' ? rate.trainFlops : rate.forwardFlops;
      assert.ok(perSecond > 0 && Math.abs(e.seconds - e.flops / perSecond) < 1e-9 * e.seconds);
    }
    const sum = first.runs.reduce((a, x) => a + x.seconds, 0);
    assert.ok(Math.abs(first.totalSeconds - sum) < 1e-9 * sum);
    assert.ok(
      Math.abs(first.pendingSeconds - (sum - first.runs[0]!.seconds)) < 1e-9 * sum,
      'the completed run is not pending',
    );
    // the second estimate measures nothing and gives the same numbers
    const second = (await estimatePlan(p.plan, rows, 'wasm')) as PlanEstimate;
    assert.equal(second.calibrationSeconds, 0);
    assert.deepEqual(second.runs, first.runs);
    assert.match(
      formatEstimate(second),
      /^estimated wall time on wasm .+: .+ in all, .+ still to do\n( {2}train dit: 1 run|[\s\S]*)/,
    );
    assert.match(formatEstimate(second), /from the calibration cache/);
    // plan (and run --dry-run, which prints formatPlan) carries it
    const plan = await planRun({ spec: SPEC, db: join(cache, 'none.sqlite'), backend: 'wasm' });
    assert.ok(!('error' in plan.estimate));
    assert.match(formatPlan(plan), /estimated wall time on wasm/);
  } finally {
    if (before === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = before;
  }
});
