// The training step without a tape (src/backends/webgpu/train-step.ts: edges, blocks, FPDM iterations,
// loss and every backward as direct dispatches) against the taped step it replaces (tf.variableGrads over
// the model's forward and the loss, TF.js ops on the same backend: src/training/loop.ts's other branch),
// on webgpu (FPDM_TEST_BACKENDS=webgpu: a GPU, or SwiftShader's Vulkan on a CPU machine): the loss, the
// gradient of every parameter, and FPDM's residuals, for DiT and FPDM, with and without gradient
// checkpointing, with and without iterations outside the gradient, FPDM's pre/post conditioning with and
// without the timestep, a dropped label (the null class), v-prediction with zero terminal SNR and ε.
// And the training loop with the direct step against the loop with the taped one, and a step whose loss
// is not finite (its update is recorded on the device before the loss is read) leaving everything as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { directTrainingStep, setKernelOptions } from '../../src/backends/kernels.js';
import { createDiffusion, diffusionConfig, type DiffusionConfig } from '../../src/diffusion/process.js';
import type { ModelConfig } from '../../src/models/config.js';
import { openSynthetic } from '../../src/data/synthetic.js';
import { trainModel } from '../../src/training/loop.js';
import { readCheckpoint, readCheckpointMeta } from '../../src/training/checkpoint.js';
import { createModel } from '../../src/models/index.js';
import type { Dataset } from '../../src/data/dataset.js';
import { TEST_BACKENDS, maxAbsDiff, randomTensor, tensorRelErr, useBackend } from '../helpers.js';
import { TINY_TRUNK, randomModel, tapedStep, tinyFpdm } from './tiny-models.js';

const onGpu = TEST_BACKENDS.includes('webgpu');
const SKIP = 'webgpu only: npm run test:webgpu runs it (on a GPU, or on SwiftShader without one)';

interface Case {
  label: string;
  model: ModelConfig;
  diffusion: Partial<DiffusionConfig>;
  noGrad: number;
  withGrad: number;
  ckpt: boolean;
}

const FPDM = tinyFpdm;
const V = { parameterization: 'v' as const, zeroTerminalSnr: true };
const CASES: Case[] = [
  { label: 'DiT, v + zero terminal SNR', model: TINY_TRUNK, diffusion: V, noGrad: 0, withGrad: 0, ckpt: false },
  { label: 'DiT, eps, checkpointed', model: TINY_TRUNK, diffusion: {}, noGrad: 0, withGrad: 0, ckpt: true },
  { label: 'FPDM, n_ng 0, n_g 2', model: FPDM({}), diffusion: V, noGrad: 0, withGrad: 2, ckpt: false },
  { label: 'FPDM, n_ng 2, n_g 2', model: FPDM({}), diffusion: V, noGrad: 2, withGrad: 2, ckpt: false },
  {
    label: 'FPDM, c_pp = y_emb, pre 2 / post 0, n_ng 1, n_g 2, checkpointed',
    model: FPDM({ prePostTimestepConditioning: false, preDepth: 2, postDepth: 0 }),
    diffusion: {},
    noGrad: 1,
    withGrad: 2,
    ckpt: true,
  },
];

/** `body` on webgpu with the direct step and the fused optimizer; the run directories it adds to `dirs` are removed after. */
async function withDirectStep(body: (dirs: string[]) => Promise<void>): Promise<void> {
  await useBackend('webgpu');
  const prev = setKernelOptions({ rawBlock: true, directStep: true, fusedOptimizer: true });
  const dirs: string[] = [];
  try {
    await body(dirs);
  } finally {
    setKernelOptions(prev);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

test(
  'the training step without a tape equals the taped step: loss, every gradient, residuals',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true, directStep: true });
    try {
      const N = 4;
      for (const cs of CASES) {
        const model = randomModel(cs.model, cs.label);
        const process = createDiffusion(diffusionConfig({ diffusionSteps: 1000, ...cs.diffusion }));
        const x0 = tf.clipByValue(randomTensor(`${cs.label}/x0`, [N, 3, 8, 8], 0.8), -1, 1) as tf.Tensor4D;
        const noise = randomTensor(`${cs.label}/noise`, [N, 3, 8, 8]) as tf.Tensor4D;
        const t = [0, 3, 500, 999]; // t = 0: the decoder NLL; 999: ᾱ = 0 with zero terminal SNR
        const y = tf.tensor1d([1, 5, 4, 1], 'int32'); // 5: the null class (a dropped label); label 1 twice
        const inp = {
          x0,
          noise,
          t,
          y,
          noGrad: cs.noGrad,
          withGrad: cs.withGrad,
          gradCheckpoint: cs.ckpt,
          trackResiduals: true,
        };
        const direct = directTrainingStep(process, model)!;
        assert.ok(direct, 'the direct step is available on webgpu for the hybrid loss');
        const ours = direct(inp);
        // the taped step, TF.js ops (no direct dispatch) on the same backend
        const ref = tapedStep(model, process, { ...inp, ckpt: cs.ckpt });
        const eLoss = await tensorRelErr(ours.loss, ref.loss);
        assert.ok(
          eLoss <= 1e-5,
          `${cs.label}: loss ${await ours.loss.data()} vs ${await ref.loss.data()} (rel. ${eLoss})`,
        );
        assert.equal(ours.grads.size, model.params.size, `${cs.label}: a gradient for every parameter`);
        let worst = { e: 0, name: '' };
        for (const [name, g] of ref.grads) {
          const mine = ours.grads.get(name);
          assert.ok(mine, `${cs.label}: no gradient for ${name}`);
          const e = await tensorRelErr(mine, g);
          if (e > worst.e) worst = { e, name };
        }
        assert.ok(worst.e <= 2e-4, `${cs.label}: largest gradient rel. error ${worst.e} (${worst.name})`);
        if (cs.model.kind === 'fpdm' && cs.withGrad > 0) {
          assert.ok(ours.residuals && ref.residuals, `${cs.label}: residuals from both`);
          const eRes = await tensorRelErr(ours.residuals, ref.residuals);
          assert.ok(eRes <= 1e-4, `${cs.label}: residuals rel. error ${eRes}`);
        }
        tf.dispose([ours.loss, ...ours.grads.values(), ...(ours.residuals ? [ours.residuals] : []), ref.loss]);
        tf.dispose([...ref.grads.values(), ...(ref.residuals ? [ref.residuals] : []), x0, noise, y]);
        model.dispose();
      }
    } finally {
      setKernelOptions(prev);
    }
  },
);

test(
  'the training loop with the direct step follows the taped loop (losses, gradient norms, residuals)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true });
    const dirs: string[] = [];
    try {
      const model = FPDM({});
      const dataset = openSynthetic({ size: 32, channels: 3, imageSize: 8, numClasses: 5, seed: 3 });
      const run = async (directStep: boolean) => {
        setKernelOptions({ directStep });
        const outDir = mkdtempSync(join(tmpdir(), 'direct-step-'));
        dirs.push(outDir);
        const before = tf.memory().numTensors;
        const r = await trainModel({
          model,
          diffusion: diffusionConfig({ parameterization: 'v', zeroTerminalSnr: true }),
          dataset,
          steps: 4,
          batch: 4,
          seed: 11,
          outDir,
          optimizer: { clipGradNorm: 1 },
        });
        assert.equal(tf.memory().numTensors, before, 'no tensor left after the run');
        return r.history;
      };
      const ours = await run(true);
      const ref = await run(false);
      for (let i = 0; i < ref.length; i++) {
        const [a, b] = [ours[i]!, ref[i]!];
        assert.equal(a.noGradIters, b.noGradIters);
        assert.ok(Math.abs(a.loss - b.loss) <= 1e-4 * Math.abs(b.loss), `step ${i + 1}: loss ${a.loss} vs ${b.loss}`);
        assert.ok(
          Math.abs(a.gradNorm - b.gradNorm) <= 1e-3 * b.gradNorm,
          `step ${i + 1}: grad norm ${a.gradNorm} vs ${b.gradNorm}`,
        );
        assert.ok(
          Math.abs(a.residual! - b.residual!) <= 1e-3 * b.residual!,
          `step ${i + 1}: residual ${a.residual} vs ${b.residual}`,
        );
      }
    } finally {
      setKernelOptions(prev);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  },
);

test(
  'a step whose loss is not finite changes nothing on the device: weights, moments and EMA stay those of the last good step',
  { skip: onGpu ? false : SKIP },
  () =>
    withDirectStep(async (dirs) => {
      const clean = openSynthetic({ size: 32, channels: 3, imageSize: 8, numClasses: 5, seed: 4 });
      // the third batch drawn holds a NaN: step 3's loss is NaN (its update is recorded before the read)
      let calls = 0;
      const poisoned: Dataset = {
        ...clean,
        async batch(idx) {
          const b = await clean.batch(idx);
          calls += 1;
          if (calls === 3) b.x[5] = NaN;
          return b;
        },
      };
      const run = async (dataset: Dataset, steps: number) => {
        const outDir = mkdtempSync(join(tmpdir(), 'direct-div-'));
        dirs.push(outDir);
        const r = await trainModel({
          model: TINY_TRUNK,
          diffusion: diffusionConfig({}),
          dataset,
          steps,
          batch: 4,
          seed: 5,
          outDir,
          checkpointEvery: 1,
          optimizer: { lr: 1e-3, clipGradNorm: 0.5 },
        });
        return { r, meta: readCheckpointMeta(outDir)! };
      };
      const good = await run(clean, 2);
      const bad = await run(poisoned, 5);
      assert.equal(bad.r.status, 'diverged');
      assert.equal(bad.r.divergedAt, 3);
      assert.ok(Number.isNaN(bad.r.history.at(-1)!.loss));
      assert.deepEqual(
        bad.r.history.slice(0, 2).map((h) => h.loss),
        good.r.history.map((h) => h.loss),
        'the same first two steps',
      );
      assert.equal(bad.meta.optimizer.stepCount, 2, 'the diverged step is not counted');
      assert.equal(bad.meta.sha256, good.meta.sha256, 'weights, moments and EMA equal those after step 2');
    }),
);

/** Trains TINY_TRUNK on a synthetic set; the run's result, sidecar and weights. */
async function trainTiny(
  dirs: string[],
  steps: number,
  extra: { initialLossScale?: number; stopAfter?: number; outDir?: string } = {},
) {
  const outDir = extra.outDir ?? mkdtempSync(join(tmpdir(), 'direct-scale-'));
  if (!extra.outDir) dirs.push(outDir);
  const r = await trainModel({
    model: TINY_TRUNK,
    diffusion: diffusionConfig({ parameterization: 'v', zeroTerminalSnr: true }),
    dataset: openSynthetic({ size: 32, channels: 3, imageSize: 8, numClasses: 5, seed: 6 }),
    steps,
    batch: 4,
    seed: 7,
    outDir,
    checkpointEvery: 1,
    optimizer: { lr: 1e-3, clipGradNorm: 1 },
    ...(extra.initialLossScale !== undefined ? { initialLossScale: extra.initialLossScale } : {}),
    ...(extra.stopAfter !== undefined ? { stopAfter: extra.stopAfter } : {}),
  });
  return { r, outDir, ckpt: readCheckpoint(outDir)! };
}

test(
  'loss scaling at fp32 (S = 2^10) trains as without it: the same losses, gradient norms and weights',
  { skip: onGpu ? false : SKIP },
  () =>
    withDirectStep(async (dirs) => {
      const plain = await trainTiny(dirs, 4);
      const scaled = await trainTiny(dirs, 4, { initialLossScale: 2 ** 10 });
      assert.equal(plain.ckpt.meta.lossScale, undefined, 'no loss scaling at fp32 by default');
      assert.deepEqual(scaled.ckpt.meta.lossScale, { scale: 2 ** 10, goodSteps: 4 });
      scaled.r.history.forEach((h, i) => {
        const ref = plain.r.history[i]!;
        assert.equal(h.lossScale, 2 ** 10);
        assert.equal(h.overflow, undefined);
        assert.equal(h.loss, ref.loss, `step ${i + 1}: the loss is not scaled`);
        assert.ok(
          Math.abs(h.gradNorm - ref.gradNorm) <= 1e-6 * ref.gradNorm,
          `step ${i + 1}: norm ${h.gradNorm} vs ${ref.gradNorm}`,
        );
      });
      for (const [name, t] of plain.ckpt.tensors) {
        const other = scaled.ckpt.tensors.get(name)!;
        assert.ok(maxAbsDiff(other.data as Float32Array, t.data as Float32Array) <= 1e-6, `${name} differs`);
      }
    }),
);

test(
  'an overflow under loss scaling skips the update and halves the scale; a resume keeps the scale',
  { skip: onGpu ? false : SKIP },
  () =>
    withDirectStep(async (dirs) => {
      // S₀ = 2^72: S·‖g‖ squared overflows float32 in the norm (above 2^128) while S·‖g‖ > 2^64; this
      // run's ‖g‖ is 0.1–0.4, so its first ≈ 6–8 steps overflow
      const S0 = 2 ** 72;
      const steps = 14;
      const full = await trainTiny(dirs, steps, { initialLossScale: S0 });
      const h = full.r.history;
      assert.equal(full.r.status, 'completed');
      const skipped = h.filter((x) => x.overflow).length;
      assert.ok(skipped > 0 && skipped < steps, `some steps overflow, then training goes on (${skipped} of ${steps})`);
      let scale = S0;
      h.forEach((x, i) => {
        assert.equal(x.lossScale, scale, `step ${i + 1}'s scale`);
        assert.ok(Number.isFinite(x.loss), `step ${i + 1}: the loss is finite`);
        assert.equal(Number.isFinite(x.gradNorm), !x.overflow, `step ${i + 1}: overflow iff the norm is not finite`);
        if (x.overflow) scale /= 2;
      });
      const lastSkip = h.map((x) => x.overflow === true).lastIndexOf(true);
      assert.deepEqual(full.ckpt.meta.lossScale, { scale, goodSteps: steps - 1 - lastSkip });
      assert.equal(
        full.ckpt.meta.optimizer.stepCount,
        steps - skipped,
        'skipped steps are not counted by the optimizer',
      );
      // a run stopped after the first (skipped) step kept its initial weights
      const first = await trainTiny(dirs, steps, { initialLossScale: S0, stopAfter: 1 });
      assert.ok(h[0]!.overflow, 'the first step overflows');
      const init = createModel(TINY_TRUNK, '7/init'); // the loop's initial weights (seed 7)
      for (const [name, v] of init.params) {
        const want = Array.from((await v.data()) as Float32Array);
        for (const prefix of ['model', 'ema'])
          assert.deepEqual(
            Array.from(first.ckpt.tensors.get(`${prefix}.${name}`)!.data as Float32Array),
            want,
            `${prefix}.${name} changed by a skipped step`,
          );
      }
      init.dispose();
      // resumed in the middle of the skips: the same end, bitwise
      const part = await trainTiny(dirs, steps, { initialLossScale: S0, stopAfter: Math.ceil(skipped / 2) });
      const resumed = await trainTiny(dirs, steps, { initialLossScale: 2, outDir: part.outDir });
      assert.equal(resumed.ckpt.meta.sha256, full.ckpt.meta.sha256, 'the resumed run ends with the same weights');
      assert.deepEqual(resumed.ckpt.meta.lossScale, full.ckpt.meta.lossScale);
    }),
);
