// A results database the size and shape of the MNIST reproduction (78 runs: 2 models with long names
// × 3 seeds; DiT at budgets 5/10/20/40, FPDM at every split of each budget plus allocation × reuse at
// budget 10; final residuals per timestep for every FPDM run, every iteration's residual for a few;
// loss curves, memory, throughput, one sample grid per sample run), optionally with more model pairs.
// Values come from simple formulas; the tests here check structure, not numbers.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  openStore,
  sha256Hex,
  METRIC,
  METRIC_UNITS,
  type MetricInput,
  type Store,
  type Tags,
} from '../../src/store/index.js';

export const LONG_DIT = 'DiT(D=64, depth=4, heads=4, P=4)';
export const LONG_FPDM = 'FPDM(DiT(D=64, depth=4, heads=4, P=4), pre=1, post=1)';
export const BUDGETS = [5, 10, 20, 40];
export const SEEDS = [0, 1, 2];
const DEPTH = 4;
/** FPDM splits of budget K at depth 4 with 1 pre + 1 post: S steps of 4K/S − 2 iterations, S ∈ {5, 10, 20, 40}, S ≤ K */
export const splits = (k: number) =>
  [5, 10, 20, 40].filter((s) => s <= k).map((s) => ({ steps: s, iters: (DEPTH * k) / s - 2 }));

let counter = 0;
function addRun(
  s: Store,
  experiment: string,
  run: { kind: 'train' | 'sample'; model: string; family: 'dit' | 'fpdm'; seed: number; tags?: Tags },
  metrics: MetricInput[],
  grid?: string,
): void {
  const c = s.claimRun({
    ...run,
    experiment,
    key: sha256Hex(`large-${counter++}`),
    config: { i: counter },
    provenance: {
      backend: { name: 'wasm', version: '4.22.0', device: 'test' },
      gitCommit: 'abc123',
      toolVersion: '0.1.0',
      host: 'testhost',
    },
  });
  if (c.outcome !== 'claimed') throw new Error('claim failed');
  s.completeRun(c.run.id, {
    metrics: metrics.map((m) => ({ unit: METRIC_UNITS[m.name as keyof typeof METRIC_UNITS] ?? '', ...m })),
    artifacts: grid ? [{ kind: 'sample_grid' as const, path: grid, tags: { images: 64 } }] : [],
  });
}

/**
 * `quality`: fd_mnist level of the DiT at budget 40 (the reproduction: ~150; real digits 21–32);
 * FPDM is `fpdmOffset` worse. `pairs`: model pairs (the first has the reproduction's long names).
 */
export async function buildLargeDb(
  dir: string,
  opts: { quality?: number; fpdmOffset?: number; pairs?: number } = {},
): Promise<string> {
  const quality = opts.quality ?? 150;
  const offset = opts.fpdmOffset ?? 60;
  mkdirSync(join(dir, 'grids'), { recursive: true });
  const path = join(dir, 'fpdm.sqlite');
  const s = openStore(path);
  const experiment = 'large';
  s.upsertExperiment(experiment, 'name: large\n');
  const grid = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 40, g: 40, b: 40 } } })
    .png()
    .toBuffer();
  let g = 0;
  const gridFile = async () => {
    const f = join(dir, 'grids', `g${g++}.png`);
    await sharp(grid).toFile(f);
    return f;
  };
  const dist = (base: number, budget: number, seed: number) => [
    {
      name: METRIC.fdMnist,
      value: base * (1 + 2 / budget) + 5 * seed,
      tags: { num_images: 256, reference_images: 256 },
    },
    {
      name: METRIC.kidMnist,
      value: 0.4 * base * (1 + 2 / budget) + seed,
      tags: { num_images: 256, reference_images: 256 },
    },
  ];
  const speed = (budget: number, seed: number) => [
    { name: METRIC.imagesPerSecond, value: 800 / budget + seed },
    { name: METRIC.blockEvals, value: DEPTH * budget },
    { name: METRIC.flops, value: 1.7e6 * DEPTH * budget },
    { name: METRIC.sampleSeconds, value: budget / 3 },
    { name: METRIC.peakSampleBytes, value: 2e7 },
  ];
  for (let p = 0; p < (opts.pairs ?? 1); p++) {
    const [dit, fpdm] =
      p === 0
        ? [LONG_DIT, LONG_FPDM]
        : [
            `DiT(D=${64 + 32 * p}, depth=4, heads=4, P=4)`,
            `FPDM(DiT(D=${64 + 32 * p}, depth=4, heads=4, P=4), pre=1, post=1)`,
          ];
    for (const seed of SEEDS) {
      for (const [model, family, bytes] of [
        [dit, 'dit', 4.6e7],
        [fpdm, 'fpdm', 6.6e7],
      ] as const) {
        const loss = Array.from({ length: 200 }, (_, k) => ({
          name: METRIC.trainLoss,
          value: 0.05 + 1 / (1 + k) + 0.001 * seed,
          step: k * 25,
        }));
        addRun(s, experiment, { kind: 'train', model, family, seed }, [
          ...loss,
          { name: METRIC.params, value: family === 'dit' ? 331552 : 285792 },
          { name: METRIC.peakTrainBytes, value: bytes, tags: { grad_checkpoint: false } },
          { name: METRIC.peakTrainBytes, value: 0.8 * bytes, tags: { grad_checkpoint: true } },
        ]);
      }
      for (const budget of BUDGETS)
        addRun(
          s,
          experiment,
          { kind: 'sample', model: dit, family: 'dit', seed, tags: { budget, steps: budget } },
          [...dist(quality, budget, seed), ...speed(budget, seed)],
          await gridFile(),
        );
      const fp = { pre_depth: 1, post_depth: 1, sjfb_nograd: '0-4', sjfb_grad: '1-6' };
      const fpdmRun = async (
        budget: number,
        steps: number,
        iters: number,
        allocation: string,
        reuse: boolean,
        curves: boolean,
      ) => {
        const ts = Array.from({ length: steps }, (_, i) => Math.round((999 * i) / Math.max(1, steps - 1)));
        const resid = ts.flatMap((t) => {
          const last = 0.5 ** iters * (1 + t / 1000) * (reuse ? 1 : 1.2);
          return curves
            ? Array.from({ length: iters }, (_, k) => ({
                name: METRIC.fpResidual,
                value: last * 2 ** (iters - 1 - k),
                step: k,
                tags: { t },
              }))
            : [{ name: METRIC.fpResidual, value: last, step: iters - 1, tags: { t } }];
        });
        const penalty = Math.abs(steps - budget) + (allocation === 'fixed' ? 0 : 3) + (reuse ? 0 : 1);
        addRun(
          s,
          experiment,
          {
            kind: 'sample',
            model: fpdm,
            family: 'fpdm',
            seed,
            tags: { ...fp, budget, steps, iters, allocation, reuse },
          },
          [...dist(quality + offset + penalty, budget, seed), ...speed(budget, seed), ...resid],
          await gridFile(),
        );
      };
      for (const budget of BUDGETS)
        for (const sp of splits(budget))
          await fpdmRun(budget, sp.steps, sp.iters, 'fixed', true, budget === 20 && sp.steps === 10);
      for (const sp of splits(10))
        for (const allocation of ['fixed', 'increasing', 'decreasing'])
          for (const reuse of [true, false])
            if (!(allocation === 'fixed' && reuse)) await fpdmRun(10, sp.steps, sp.iters, allocation, reuse, false);
    }
  }
  s.close();
  return path;
}
