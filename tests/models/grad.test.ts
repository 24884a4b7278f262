// Issue 3 gradient checks on a tiny FPDM (cpu backend, float32):
//  - finite differences agree with TF.js gradients for parameters in every part of the model;
//  - S-JFB: the gradient with n_ng no-grad iterations (run outside the tape) equals the gradient of an
//    in-graph computation that stops the gradient after the n_ng iterations and then runs the with-grad ones;
//  - peak tensor memory of a training-style step does not grow with n_ng (but does with n_g);
//  - no tensor leak after forward, backward and dispose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../src/util/rng.js';
import { createModel, fpdmFrom, applyLabelDrop, type FPDM, type FPDMConfig } from '../../src/models/index.js';
import { useBackend } from '../helpers.js';
import { randomModel } from './helpers.js';

const BASE: FPDMConfig = fpdmFrom(
  {
    kind: 'dit',
    inputSize: 4,
    patchSize: 2,
    inChannels: 2,
    hiddenSize: 16,
    depth: 4,
    numHeads: 2,
    mlpRatio: 4,
    classDropoutProb: 0.1,
    numClasses: 3,
    learnSigma: true,
  },
  { preDepth: 1, postDepth: 1, noGradIters: [0, 4], withGradIters: [1, 3] },
);

/** A tiny FPDM whose every parameter is N(0, scale²). */
function tinyModel(seed: number, scale = 0.2): FPDM {
  return randomModel(BASE, seed, scale) as FPDM;
}

function batch(seed: number, n = 3) {
  const rng = new Rng(seed);
  return {
    x: tf.tensor4d(rng.normals(n * 2 * 4 * 4), [n, 2, 4, 4]),
    t: tf.tensor1d(Float32Array.from({ length: n }, () => rng.int(0, 999))),
    y: tf.tensor1d(
      Int32Array.from({ length: n }, (_, i) => i % 4),
      'int32',
    ), // includes the null class 3
    r: tf.tensor4d(rng.normals(n * 4 * 4 * 4), [n, 4, 4, 4]), // loss weights: loss = Σ out·r
  };
}

// TF.js has no stop_gradient: an identity whose gradient is zero.
const stopGradient = tf.customGrad((...inputs) => ({
  value: tf.clone(inputs[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

test('finite differences agree with TF.js gradients (tiny FPDM, 2 with-grad iterations from x_pre)', async () => {
  await useBackend('cpu');
  const model = tinyModel(1);
  const { x, t, y, r } = batch(2);
  const lossFn = (): tf.Scalar =>
    tf.tidy(() => {
      const { out, state } = model.forward(x, t, y, { iters: 2, trackResiduals: false });
      state?.z.dispose();
      return tf.sum(tf.mul(out, r)) as tf.Scalar;
    });
  const { value, grads } = tf.variableGrads(lossFn);
  value.dispose();
  const checks = [
    'x_embedder.proj.weight',
    't_embedder.mlp.0.weight',
    'y_embedder.embedding_table.weight',
    'blocks_pre.0.attn.qkv.weight',
    'block_pre_projection.weight',
    'block_fixed_point_projection_fc1.weight',
    'block_fixed_point_projection_fc2.bias',
    'block_fixed_point.adaLN_modulation.1.weight',
    'block_fixed_point.mlp.fc1.weight',
    'blocks_post.0.attn.proj.weight',
    'final_layer.linear.weight',
  ];
  const rng = new Rng(3);
  const eps = 1e-2;
  let worst = 0;
  for (const name of checks) {
    const v = model.params.get(name)!;
    const gv = grads[v.name];
    assert.ok(gv, `no gradient for ${name}`);
    const g = gv.dataSync();
    for (let k = 0; k < 2; k++) {
      const i = rng.int(0, v.size - 1);
      const base = v.dataSync().slice();
      const at = (delta: number): number => {
        const b = base.slice();
        b[i] = b[i]! + delta;
        const tmp = tf.tensor(b, v.shape);
        v.assign(tmp);
        tmp.dispose();
        const l = lossFn();
        const val = l.dataSync()[0]!;
        l.dispose();
        return val;
      };
      const fd = (at(eps) - at(-eps)) / (2 * eps);
      const tmp = tf.tensor(base, v.shape);
      v.assign(tmp);
      tmp.dispose();
      const err = Math.abs(fd - g[i]!) / Math.max(1, Math.abs(fd));
      worst = Math.max(worst, err);
      assert.ok(err < 2e-2, `${name}[${i}]: finite difference ${fd} vs gradient ${g[i]}`);
    }
  }
  console.log(
    `finite differences vs gradients over ${checks.length * 2} entries: worst error ${worst.toExponential(2)} (relative to max(1, |fd|))`,
  );
  tf.dispose(grads);
  tf.dispose([x, t, y, r]);
  model.dispose();
});

test('S-JFB: gradient with n_ng no-grad iterations = gradient with a stop-gradient after n_ng in-graph iterations', async () => {
  await useBackend('cpu');
  const model = tinyModel(4);
  const { x, t, y, r } = batch(5);
  const names = new Map([...model.params].map(([k, v]) => [v.name, k]));
  const nNg = 3;
  const nG = 2;
  // ours: no-grad state outside the tape, then with-grad iterations inside it
  const state = model.noGradState(x, t, y, nNg)!;
  const ours = tf.variableGrads(() =>
    tf.tidy(() => {
      const { out, state: s } = model.forward(x, t, y, { state, iters: nG, trackResiduals: false });
      s?.z.dispose();
      return tf.sum(tf.mul(out, r)) as tf.Scalar;
    }),
  );
  state.z.dispose();
  // reference: everything in-graph with an explicit stop-gradient after n_ng iterations
  const inGraph = (stop: boolean) =>
    tf.variableGrads(() =>
      tf.tidy(() => {
        const pre = model.pre(x, t, y);
        let z = pre.xPre;
        for (let k = 0; k < nNg; k++) z = model.step(z, pre.inj, pre.c);
        if (stop) z = stopGradient(z) as tf.Tensor3D;
        for (let k = 0; k < nG; k++) z = model.step(z, pre.inj, pre.c);
        return tf.sum(tf.mul(model.post(z, pre.cPP), r)) as tf.Scalar;
      }),
    );
  const ref = inGraph(true);
  const full = inGraph(false);
  assert.ok(Math.abs(ours.value.dataSync()[0]! - ref.value.dataSync()[0]!) < 1e-5, 'losses equal');
  let worst = 0;
  let fullDiff = 0;
  for (const [vname, g] of Object.entries(ref.grads)) {
    const a = ours.grads[vname];
    assert.ok(a, `missing gradient for ${names.get(vname)}`);
    const ga = a.dataSync();
    const gr = g.dataSync();
    const gf = full.grads[vname]!.dataSync();
    for (let i = 0; i < gr.length; i++) {
      worst = Math.max(worst, Math.abs(ga[i]! - gr[i]!));
      fullDiff = Math.max(fullDiff, Math.abs(gf[i]! - gr[i]!));
    }
  }
  console.log(
    `S-JFB gradient vs stop-gradient reference: max abs diff ${worst.toExponential(2)}; vs full backprop through all iterations: ${fullDiff.toExponential(2)}`,
  );
  assert.ok(worst < 1e-5, `S-JFB gradient differs by ${worst}`);
  assert.ok(fullDiff > 1e-3, 'the stop-gradient must change the gradient (else this test proves nothing)');
  tf.dispose([
    ours.value,
    ref.value,
    full.value,
    ...Object.values(ours.grads),
    ...Object.values(ref.grads),
    ...Object.values(full.grads),
  ]);
  tf.dispose([x, t, y, r]);
  model.dispose();
});

/** One training-style step (plan → no-grad state → variableGrads → dispose); returns the engine's peak bytes above those alive before it (weights, inputs). */
async function stepPeak(model: FPDM, nNg: number, nG: number, b: ReturnType<typeof batch>): Promise<number> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(() => {
    const state = model.noGradState(b.x, b.t, b.y, nNg);
    const { value, grads } = tf.variableGrads(() =>
      tf.tidy(() => {
        const { out, state: s } = model.forward(b.x, b.t, b.y, { state, iters: nG, trackResiduals: false });
        s?.z.dispose();
        return tf.sum(tf.mul(out, b.r)) as tf.Scalar;
      }),
    );
    state?.z.dispose();
    tf.dispose([value, ...Object.values(grads)]);
  });
  return info.peakBytes - start;
}

test('peak tensor memory of a training step does not grow with n_ng (and does with n_g); no leak', async () => {
  await useBackend('cpu');
  const model = tinyModel(6);
  const b = batch(7, 8);
  const before = tf.memory().numTensors;
  const p1 = await stepPeak(model, 1, 2, b);
  const p12 = await stepPeak(model, 12, 2, b);
  const g1 = await stepPeak(model, 1, 1, b);
  const g4 = await stepPeak(model, 1, 4, b);
  const g8 = await stepPeak(model, 1, 8, b);
  console.log(
    `peak tensor bytes: n_ng=1 ${p1}, n_ng=12 ${p12} (n_g=2); n_g=1 ${g1}, n_g=4 ${g4}, n_g=8 ${g8} (n_ng=1)`,
  );
  assert.ok(p12 <= p1, `peak grew with n_ng: ${p1} → ${p12}`);
  // each unrolled iteration keeps its saved activations (blockgrad.ts: ~12·D + K·T floats per token)
  assert.ok(g1 < g4 && g4 < g8 && g8 > g1 * 1.25, `peak should grow with unrolled n_g: ${g1} → ${g4} → ${g8}`);
  assert.equal(tf.memory().numTensors, before, 'a training step leaked tensors');
  tf.dispose([b.x, b.t, b.y, b.r]);
  model.dispose();
});

test('training plan: counts in the configured ranges, label drop reproducible from the seed', () => {
  const model = createModel(BASE, 0) as FPDM;
  const a = model.sampleTrainingPlan(new Rng(9), 1000);
  const b = model.sampleTrainingPlan(new Rng(9), 1000);
  assert.deepEqual(a, b);
  const seen = new Set<number>();
  for (let s = 0; s < 200; s++) {
    const p = model.sampleTrainingPlan(new Rng(s), 4);
    assert.ok(p.noGrad >= 0 && p.noGrad <= 4 && p.withGrad >= 1 && p.withGrad <= 3);
    seen.add(p.noGrad);
  }
  assert.equal(seen.size, 5, 'every n_ng in U{0..4} occurs');
  const frac = a.dropMask.reduce((s, v) => s + v, 0) / a.dropMask.length;
  assert.ok(Math.abs(frac - 0.1) < 0.03, `drop fraction ${frac}`);
  const y = applyLabelDrop(Int32Array.from([0, 1, 2]), Uint8Array.from([0, 1, 0]), 3);
  assert.deepEqual([...y], [0, 3, 2]);
  model.dispose();
});
