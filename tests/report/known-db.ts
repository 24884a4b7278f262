// Builds a results database with known rows for the report and check tests: two models (DiT-S/2,
// FPDM-S/2), three budgets, three seeds, ablations, params/memory/throughput, loss curves,
// residuals, sample grids, and one failed run. Every value comes from a formula given here, so tests
// compute the expected means and stds from the same formulas (not from the report's output).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  openStore,
  sha256Hex,
  METRIC,
  METRIC_UNITS,
  TAG,
  type MetricInput,
  type RunInput,
  type Store,
  type Tags,
} from '../../src/store/index.js';

export const MODELS = [
  {
    model: 'DiT-S/2',
    family: 'dit' as const,
    a: 100,
    seedSlope: 1,
    params: 32.9e6,
    train: 3.57 * 2 ** 30,
    trainCkpt: 1.36 * 2 ** 30,
    sample: 1.5 * 2 ** 30,
  },
  {
    model: 'FPDM-S/2',
    family: 'fpdm' as const,
    a: 80,
    seedSlope: 0.5,
    params: 10.0e6,
    train: 1.43 * 2 ** 30,
    trainCkpt: 0.98 * 2 ** 30,
    sample: 0.6 * 2 ** 30,
  },
];
export const BUDGETS = [5, 10, 20];
export const SEEDS = [0, 1, 2];
/** distribution metric of the main sweep: a/budget + seedSlope·seed (mean a/budget + seedSlope, std seedSlope) */
export const sweepValue = (m: (typeof MODELS)[number], budget: number, seed: number) =>
  m.a / budget + m.seedSlope * seed;
/** FPDM smoothing splits at budget 10: value = 8 + |steps − 5| + 0.1·seed (best split 5×2 has mean 8.1 — better than the sweep's 8.5) */
export const SPLITS = [
  [10, 1],
  [5, 2],
  [2, 5],
] as const;
export const splitValue = (steps: number, seed: number) => 8 + Math.abs(steps - 5) + 0.1 * seed;
/** allocation × reuse at budget 10 (steps 5): value = 9 + (alloc index) − (reuse ? 0.5 : 0) + 0.2·seed */
export const ALLOCS = ['increasing', 'decreasing'] as const;
export const allocValue = (i: number, reuse: boolean, seed: number) => 9 + i - (reuse ? 0.5 : 0) + 0.2 * seed;
export const ipsValue = (family: string, budget: number, seed: number) =>
  (family === 'dit' ? 200 : 150) / budget + seed;
export const lossValue = (family: string, step: number, seed: number) =>
  (family === 'dit' ? 1 : 1.2) / (1 + step) + 0.01 * seed;
export const residualValue = (t: number, k: number) => 0.5 ** k * (1 + t / 1000);
export const TIMESTEPS = [999, 500, 0];
export const DEPTHS = [
  [1, 1],
  [2, 2],
  [3, 3],
] as const;
export const depthValue = (pre: number, seed: number) => 12 - pre + 0.3 * seed;
export const SJFB = [
  ['0-0', '1-1'],
  ['1-3', '1-2'],
  ['3-5', '1-3'],
] as const;
export const sjfbValue = (nograd: string, seed: number) => 10 + Number(nograd[0]) * 0.5 + 0.1 * seed;
export const GRID_SIZE = { width: 64, height: 32 };

let counter = 0;
function addRun(
  s: Store,
  input: Omit<RunInput, 'key' | 'config'>,
  metrics: MetricInput[],
  artifacts: { path: string; tags?: Tags }[] = [],
): void {
  const key = sha256Hex(`known-${counter++}-${JSON.stringify(input)}`);
  const c = s.claimRun({
    ...input,
    key,
    config: { ...input, i: counter },
    provenance: {
      backend: { name: 'cpu', version: '4.22.0', device: 'test' },
      gitCommit: 'abc123',
      toolVersion: '0.1.0',
      host: 'testhost',
    },
  });
  if (c.outcome !== 'claimed') throw new Error('claim failed');
  s.completeRun(c.run.id, {
    metrics: metrics.map((m) => ({ unit: METRIC_UNITS[m.name as keyof typeof METRIC_UNITS] ?? '', ...m })),
    artifacts: artifacts.map((a) => ({ kind: 'sample_grid' as const, ...a })),
  });
}

/** `second`: a further distribution metric on the budget sweep's runs, valued 0.01 × the first. */
export async function buildKnownDb(
  dir: string,
  opts: { metric?: string; second?: string; experiment?: string; ablations?: boolean } = {},
): Promise<string> {
  const metric = opts.metric ?? METRIC.fid;
  const experiment = opts.experiment ?? 'known';
  mkdirSync(join(dir, 'grids'), { recursive: true });
  const path = join(dir, 'fpdm.sqlite');
  const s = openStore(path);
  s.upsertExperiment(experiment, 'name: known\n');
  for (const m of MODELS) {
    for (const seed of SEEDS) {
      // training run: loss curve, params, peak training memory
      addRun(s, { experiment, kind: 'train', model: m.model, family: m.family, seed }, [
        ...Array.from({ length: 11 }, (_, step) => ({
          name: METRIC.trainLoss,
          value: lossValue(m.family, step * 10, seed),
          step: step * 10,
        })),
        { name: METRIC.params, value: m.params },
        { name: METRIC.peakTrainBytes, value: m.train, tags: { [TAG.gradCheckpoint]: false } },
        { name: METRIC.peakTrainBytes, value: m.trainCkpt, tags: { [TAG.gradCheckpoint]: true } },
      ]);
      for (const budget of BUDGETS) {
        const steps = m.family === 'dit' ? budget : budget;
        const arts: { path: string; tags?: Tags }[] = [];
        if (seed === 0) {
          const file = join(dir, 'grids', `${m.family}-${budget}.png`);
          const shade = m.family === 'dit' ? 60 : 200;
          await sharp({ create: { ...GRID_SIZE, channels: 3, background: { r: shade, g: budget * 10, b: 128 } } })
            .png()
            .toFile(file);
          arts.push({ path: file });
        }
        addRun(
          s,
          {
            experiment,
            kind: 'sample',
            model: m.model,
            family: m.family,
            seed,
            tags: { budget, steps, iters: 1, ...(m.family === 'fpdm' ? { allocation: 'fixed', reuse: false } : {}) },
          },
          [
            { name: metric, value: sweepValue(m, budget, seed), tags: { num_images: 1000 } },
            ...(opts.second
              ? [{ name: opts.second, value: 0.01 * sweepValue(m, budget, seed), tags: { num_images: 1000 } }]
              : []),
            { name: METRIC.imagesPerSecond, value: ipsValue(m.family, budget, seed) },
            { name: METRIC.blockEvals, value: 12 * budget },
            { name: METRIC.flops, value: 1e9 * budget },
            { name: METRIC.sampleSeconds, value: budget / 10 },
            { name: METRIC.peakSampleBytes, value: m.sample },
            ...(m.family === 'fpdm' && budget === 10
              ? TIMESTEPS.flatMap((t) =>
                  [0, 1, 2, 3].map((k) => ({
                    name: METRIC.fpResidual,
                    value: residualValue(t, k),
                    step: k,
                    tags: { t },
                  })),
                )
              : []),
          ],
          arts,
        );
      }
      if (m.family === 'fpdm') {
        for (const [steps, iters] of SPLITS)
          if (!(steps === 10 && iters === 1))
            addRun(
              s,
              {
                experiment,
                kind: 'sample',
                model: m.model,
                family: m.family,
                seed,
                tags: { budget: 10, steps, iters, allocation: 'fixed', reuse: false },
              },
              [{ name: metric, value: splitValue(steps, seed), tags: { num_images: 1000 } }],
            );
        for (const [i, allocation] of ALLOCS.entries())
          for (const reuse of [false, true])
            addRun(
              s,
              {
                experiment,
                kind: 'sample',
                model: m.model,
                family: m.family,
                seed,
                tags: { budget: 10, steps: 5, iters: 2, allocation, reuse },
              },
              [{ name: metric, value: allocValue(i, reuse, seed), tags: { num_images: 1000 } }],
            );
      }
    }
  }
  if (opts.ablations) {
    // a second experiment: pre/post depth and S-JFB ranges (FPDM only, budget 10)
    s.upsertExperiment('ablation', 'name: ablation\n');
    for (const seed of SEEDS) {
      for (const [pre, post] of DEPTHS)
        addRun(
          s,
          {
            experiment: 'ablation',
            kind: 'sample',
            model: `FPDM ${pre}/${post}`,
            family: 'fpdm',
            seed,
            tags: { budget: 10, pre_depth: pre, post_depth: post },
          },
          [{ name: metric, value: depthValue(pre, seed) }],
        );
      // only the final iteration's residual per timestep (step = iterations − 1 = 2)
      addRun(
        s,
        { experiment: 'ablation', kind: 'sample', model: 'FPDM-S/2', family: 'fpdm', seed, tags: { budget: 30 } },
        TIMESTEPS.map((t) => ({
          name: METRIC.fpResidual,
          value: residualValue(t, 2) + 0.01 * seed,
          step: 2,
          tags: { t },
        })),
      );
      addRun(
        s,
        { experiment: 'ablation', kind: 'sample', model: 'FPDM-S/2', family: 'fpdm', seed, tags: { budget: 50 } },
        TIMESTEPS.map((t) => ({ name: METRIC.fpResidual, value: residualValue(t, 4), step: 4, tags: { t } })),
      );
      for (const [ng, g] of SJFB)
        addRun(
          s,
          {
            experiment: 'ablation',
            kind: 'sample',
            model: 'FPDM-S/2',
            family: 'fpdm',
            seed,
            tags: { budget: 10, sjfb_nograd: ng, sjfb_grad: g },
          },
          [{ name: metric, value: sjfbValue(ng, seed) }],
        );
    }
  }
  // a failed run: counted in the runs table, never in the numbers
  const c = s.claimRun({
    key: sha256Hex('failed-run'),
    experiment,
    kind: 'sample',
    model: 'FPDM-S/2',
    family: 'fpdm',
    seed: 9,
    config: {},
    tags: { budget: 5 },
  });
  if (c.outcome === 'claimed') {
    s.addMetrics(c.run.id, [{ name: metric, value: 1e6 }]);
    s.failRun(c.run.id, 'out of memory');
  }
  s.close();
  return path;
}
