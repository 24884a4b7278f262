// The DiT block / FPDM step as single ops with a hand-written backward (src/models/blockgrad.ts):
//  - forward bitwise equal to the autodiff oracle (blocks.ts ditBlock, blockgrad.ts fixedPointStep: the same forward definitions as plain ops);
//  - gradients equal to TF.js autodiff of that composition (float32 rounding: relative 1e-4);
//  - gradient checkpointing gives bitwise the same gradients as no checkpointing (DiT and FPDM, whole model);
//  - and a lower peak of tensor memory in a training-style step (measured, cpu backend).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../src/util/rng.js';
import { BLOCK_PARAM_NAMES, ditBlock } from '../../src/models/blocks.js';
import { PROJECTION_PARAM_NAMES, ditBlockOp, fixedPointStep, fixedPointStepOp } from '../../src/models/blockgrad.js';
import { fpdmFrom, type AnyModel, type DiTConfig, type ModelConfig } from '../../src/models/index.js';
import { measureMemory } from '../../src/metrics/memory.js';
import { useBackend, maxAbsDiff } from '../helpers.js';
import { randomModel } from './helpers.js';

const TRUNK: DiTConfig = {
  kind: 'dit',
  inputSize: 8,
  patchSize: 2,
  inChannels: 2,
  hiddenSize: 32,
  depth: 4,
  numHeads: 4,
  mlpRatio: 4,
  classDropoutProb: 0.1,
  numClasses: 3,
  learnSigma: true,
};
const FPDM_CFG = fpdmFrom(TRUNK, { preDepth: 1, postDepth: 1, noGradIters: [0, 2], withGradIters: [1, 4] });

function inputs(seed: number, n: number, c: ModelConfig) {
  const rng = new Rng(seed);
  const hw = c.inputSize;
  const co = c.inChannels * 2;
  return {
    x: tf.tensor4d(rng.normals(n * c.inChannels * hw * hw), [n, c.inChannels, hw, hw]),
    t: tf.tensor1d(Float32Array.from({ length: n }, () => rng.int(0, 999))),
    y: tf.tensor1d(
      Int32Array.from({ length: n }, (_, i) => i % (c.numClasses + 1)),
      'int32',
    ),
    r: tf.tensor4d(rng.normals(n * co * hw * hw), [n, co, hw, hw]), // loss = Σ out·r
  };
}

/** max |a − b| / max |b| over all entries */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  const bv = b.dataSync();
  let scale = 0;
  for (const v of bv) scale = Math.max(scale, Math.abs(v));
  return maxAbsDiff(a.dataSync(), bv) / Math.max(scale, 1e-12);
}

test('ditBlockOp: forward bitwise equal to ditBlock, gradients (x, c, all weights) equal to autodiff within 1e-4', async () => {
  await useBackend('cpu');
  const model = randomModel(TRUNK, 1);
  const p = model.params as ReadonlyMap<string, tf.Tensor>;
  const rng = new Rng(2);
  const [n, t, d] = [3, 16, TRUNK.hiddenSize];
  const x = tf.tensor3d(rng.normals(n * t * d), [n, t, d]);
  const c = tf.tensor2d(rng.normals(n * d), [n, d]);
  const r = tf.tensor3d(rng.normals(n * t * d), [n, t, d]);
  const w = BLOCK_PARAM_NAMES.map((k) => p.get(`blocks.1.${k}`)!);
  const ref = tf.grads((xi: tf.Tensor, ci: tf.Tensor) =>
    tf.sum(tf.mul(ditBlock(p, 'blocks.1', xi as tf.Tensor3D, ci as tf.Tensor2D, TRUNK.numHeads), r)),
  );
  const refOut = ditBlock(p, 'blocks.1', x, c, TRUNK.numHeads);
  for (const ckpt of [false, true]) {
    const out = ditBlockOp(p, 'blocks.1', x, c, TRUNK.numHeads, ckpt);
    assert.equal(maxAbsDiff(out.dataSync(), refOut.dataSync()), 0, 'forward differs from ditBlock');
    out.dispose();
    const f = (): tf.Scalar => tf.sum(tf.mul(ditBlockOp(p, 'blocks.1', x, c, TRUNK.numHeads, ckpt), r)) as tf.Scalar;
    const fRef = (): tf.Scalar => tf.sum(tf.mul(ditBlock(p, 'blocks.1', x, c, TRUNK.numHeads), r)) as tf.Scalar;
    const ours = tf.variableGrads(f);
    const theirs = tf.variableGrads(fRef);
    for (const v of w) {
      const e = relErr(ours.grads[(v as tf.Variable).name]!, theirs.grads[(v as tf.Variable).name]!);
      assert.ok(e < 1e-4, `${(v as tf.Variable).name}: relative error ${e}`);
    }
    const [gx, gc] = tf.grads((xi: tf.Tensor, ci: tf.Tensor) =>
      tf.sum(tf.mul(ditBlockOp(p, 'blocks.1', xi as tf.Tensor3D, ci as tf.Tensor2D, TRUNK.numHeads, ckpt), r)),
    )([x, c]);
    const [rx, rc] = ref([x, c]);
    assert.ok(relErr(gx!, rx!) < 1e-4, `dx: ${relErr(gx!, rx!)}`);
    assert.ok(relErr(gc!, rc!) < 1e-4, `dc: ${relErr(gc!, rc!)}`);
    tf.dispose([
      ours.value,
      theirs.value,
      ...Object.values(ours.grads),
      ...Object.values(theirs.grads),
      gx!,
      gc!,
      rx!,
      rc!,
    ]);
  }
  tf.dispose([x, c, r, refOut]);
  model.dispose();
});

test('fixedPointStepOp: forward bitwise equal to projection + ditBlock, gradients (z, inj, c, weights) equal to autodiff within 1e-4', async () => {
  await useBackend('cpu');
  const model = randomModel(FPDM_CFG, 3);
  const p = model.params as ReadonlyMap<string, tf.Tensor>;
  const rng = new Rng(4);
  const [n, t, d] = [2, 16, TRUNK.hiddenSize];
  const z = tf.tensor3d(rng.normals(n * t * d), [n, t, d]);
  const inj = tf.tensor3d(rng.normals(n * t * d), [n, t, d]);
  const c = tf.tensor2d(rng.normals(n * d), [n, d]);
  const r = tf.tensor3d(rng.normals(n * t * d), [n, t, d]);
  const refStep = (zi: tf.Tensor3D, ii: tf.Tensor3D, ci: tf.Tensor2D): tf.Tensor3D =>
    fixedPointStep(p, zi, ii, ci, TRUNK.numHeads);
  const refOut = refStep(z, inj, c);
  const weights = [...PROJECTION_PARAM_NAMES, ...BLOCK_PARAM_NAMES.map((k) => `block_fixed_point.${k}`)].map(
    (k) => p.get(k)! as tf.Variable,
  );
  for (const ckpt of [false, true]) {
    const out = fixedPointStepOp(p, z, inj, c, TRUNK.numHeads, ckpt);
    assert.equal(maxAbsDiff(out.dataSync(), refOut.dataSync()), 0, 'forward differs from the autodiff step');
    out.dispose();
    // two chained steps, so the gradient also flows through z of the second
    const loss = (step: (a: tf.Tensor3D) => tf.Tensor3D) => (): tf.Scalar =>
      tf.sum(tf.mul(step(step(z)), r)) as tf.Scalar;
    const ours = tf.variableGrads(loss((a) => fixedPointStepOp(p, a, inj, c, TRUNK.numHeads, ckpt)));
    const theirs = tf.variableGrads(loss((a) => refStep(a, inj, c)));
    for (const v of weights) {
      const e = relErr(ours.grads[v.name]!, theirs.grads[v.name]!);
      assert.ok(e < 1e-4, `${v.name}: relative error ${e}`);
    }
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) =>
      tf.sum(
        tf.mul(fixedPointStepOp(p, a as tf.Tensor3D, b as tf.Tensor3D, e as tf.Tensor2D, TRUNK.numHeads, ckpt), r),
      ),
    )([z, inj, c]);
    const gr = tf.grads((a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) =>
      tf.sum(tf.mul(refStep(a as tf.Tensor3D, b as tf.Tensor3D, e as tf.Tensor2D), r)),
    )([z, inj, c]);
    for (let i = 0; i < 3; i++) assert.ok(relErr(g[i]!, gr[i]!) < 1e-4, `input ${i}: ${relErr(g[i]!, gr[i]!)}`);
    tf.dispose([ours.value, theirs.value, ...Object.values(ours.grads), ...Object.values(theirs.grads), ...g, ...gr]);
  }
  tf.dispose([z, inj, c, r, refOut]);
  model.dispose();
});

function lossOf(model: AnyModel, b: ReturnType<typeof inputs>, ckpt: boolean, iters = 3, trackResiduals = false) {
  return (): tf.Scalar =>
    tf.tidy(() => {
      const r = model.forward(
        b.x,
        b.t,
        b.y,
        model.config.kind === 'fpdm' ? { iters, trackResiduals, gradCheckpoint: ckpt } : { gradCheckpoint: ckpt },
      );
      const { out, state } = r;
      state?.z.dispose();
      if ('residuals' in r) (r.residuals as tf.Tensor | undefined)?.dispose();
      return tf.sum(tf.mul(out, b.r)) as tf.Scalar;
    });
}

for (const cfg of [TRUNK, FPDM_CFG] as ModelConfig[]) {
  test(`${cfg.kind}: gradient checkpointing gives bitwise the same loss and gradients; no tensor leak`, async () => {
    await useBackend('cpu');
    const model = randomModel(cfg, 5);
    const b = inputs(6, 3, cfg);
    const before = tf.memory().numTensors;
    const plain = tf.variableGrads(lossOf(model, b, false));
    const ckpt = tf.variableGrads(lossOf(model, b, true));
    assert.equal(plain.value.dataSync()[0], ckpt.value.dataSync()[0]);
    let n = 0;
    for (const [name, v] of model.params) {
      const g0 = plain.grads[v.name];
      const g1 = ckpt.grads[v.name];
      assert.ok(g0 && g1, `no gradient for ${name}`);
      assert.equal(maxAbsDiff(g0.dataSync(), g1.dataSync()), 0, `${name}: checkpointed gradient differs`);
      n++;
    }
    assert.ok(n > 20);
    tf.dispose([plain.value, ckpt.value, ...Object.values(plain.grads), ...Object.values(ckpt.grads)]);
    assert.equal(tf.memory().numTensors, before, 'leaked tensors');
    tf.dispose([b.x, b.t, b.y, b.r]);
    model.dispose();
  });

  test(`${cfg.kind}: a training-style step peaks lower with gradient checkpointing (measured)`, async () => {
    await useBackend('cpu');
    const model = randomModel(cfg, 7);
    const b = inputs(8, 8, cfg);
    const peak = async (ckpt: boolean): Promise<number> => {
      const { memory } = await measureMemory(() => {
        const { value, grads } = tf.variableGrads(lossOf(model, b, ckpt, 4));
        tf.dispose([value, ...Object.values(grads)]);
      }, 'profile');
      return memory.peakRegionBytes;
    };
    const plain = await peak(false);
    const ckpt = await peak(true);
    console.log(
      `${cfg.kind}: peak tensor bytes above the start: ${plain} without, ${ckpt} with gradient checkpointing`,
    );
    assert.ok(ckpt < plain, `checkpointing did not lower the peak: ${plain} → ${ckpt}`);
    tf.dispose([b.x, b.t, b.y, b.r]);
    model.dispose();
  });
}

test('fpdm: tracking the fixed-point residuals during training keeps nothing extra on the gradient tape', async () => {
  await useBackend('cpu');
  const model = randomModel(FPDM_CFG, 7);
  const b = inputs(8, 8, FPDM_CFG);
  const peak = async (track: boolean): Promise<number> => {
    const { memory } = await measureMemory(() => {
      const { value, grads } = tf.variableGrads(lossOf(model, b, false, 6, track));
      tf.dispose([value, ...Object.values(grads)]);
    }, 'profile');
    return memory.peakRegionBytes;
  };
  const off = await peak(false);
  const on = await peak(true);
  console.log(`fpdm: peak tensor bytes above the start: ${off} without, ${on} with residual tracking (6 iterations)`);
  // the residuals themselves are 6 scalars plus one transient [N, T, D] difference at a time
  const zBytes = 8 * (FPDM_CFG.inputSize / FPDM_CFG.patchSize) ** 2 * FPDM_CFG.hiddenSize * 4;
  assert.ok(on <= off + 2 * zBytes, `residual tracking raised the peak by ${on - off} bytes (one z is ${zBytes})`);
  tf.dispose([b.x, b.t, b.y, b.r]);
  model.dispose();
});
