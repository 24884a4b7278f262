// Fixed-point solvers: plain iteration with a residual tolerance vs Anderson acceleration reach the
// same fixed point (<= 1e-4), with the iteration counts to tolerance 1e-4 printed; reports are
// consistent; bad solver options are UserErrors; no tensor leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../src/util/rng.js';
import { UserError } from '../../src/util/errors.js';
import { solveFixedPoint, solveFixedPointAsync, validateSolver } from '../../src/models/solver.js';
import { createModel, fpdmFrom, type FPDM } from '../../src/models/index.js';
import { loadModel } from '../../src/models/load.js';
import { fixture, maxAbsDiff, useBackend } from '../helpers.js';
import { inputsOf, tinyConfig, tinyIO } from './helpers.js';

function maxAbs(a: tf.Tensor, b: tf.Tensor): number {
  return maxAbsDiff(a.dataSync(), b.dataSync());
}

test('linear contraction: Anderson needs far fewer iterations than plain, same fixed point, no leak', async () => {
  await useBackend('cpu');
  const L = 6;
  const rng = new Rng(1);
  const A = tf.tidy(() => tf.mul(tf.linalg.qr(tf.tensor2d(rng.normals(L * L), [L, L]))[0], 0.95)); // spectral radius 0.95
  const b = tf.tensor3d(rng.normals(2 * L), [2, 1, L]);
  const f = (z: tf.Tensor3D): tf.Tensor3D =>
    tf.add(tf.reshape(tf.matMul(tf.reshape(z, [-1, L]), A), z.shape), b) as tf.Tensor3D;
  const z0 = tf.ones([2, 1, L]) as tf.Tensor3D;
  const before = tf.memory().numTensors;
  const p = await solveFixedPointAsync(f, z0, { kind: 'tolerance', tol: 1e-5, maxIters: 2000 });
  const a = await solveFixedPointAsync(f, z0, { kind: 'anderson', tol: 1e-5, maxIters: 2000, window: 8 });
  console.log(
    `linear map (ρ = 0.95, 6-d): plain ${p.report.iterations} iterations, Anderson ${a.report.iterations} to tol 1e-5`,
  );
  assert.equal(p.report.converged, true);
  assert.equal(a.report.converged, true);
  assert.ok(a.report.iterations * 5 < p.report.iterations, 'Anderson accelerates a linear contraction');
  assert.ok(maxAbs(p.z, a.z) < 1e-4, `fixed points differ by ${maxAbs(p.z, a.z)}`);
  assert.equal(p.report.residuals.length, p.report.iterations);
  assert.equal(a.report.residuals.length, a.report.iterations);
  tf.dispose([p.z, a.z]);
  // fixed: the synchronous form (residuals as a tensor) and the asynchronous one agree exactly
  const fa = await solveFixedPointAsync(f, z0, { kind: 'fixed', iters: 7 });
  const fs = solveFixedPoint(f, z0, { kind: 'fixed', iters: 7 }, { trackResiduals: true });
  assert.equal(maxAbs(fa.z, fs.z), 0);
  assert.deepEqual(Array.from(await fs.residuals!.data()), fa.report.residuals);
  assert.equal(fa.report.residuals.length, 7);
  assert.deepEqual(fs.report.residuals, []);
  const fn = solveFixedPoint(f, z0, { kind: 'fixed', iters: 3 });
  assert.equal(fn.residuals, undefined, 'no residual tensor unless asked');
  tf.dispose([fa.z, fs.z, fs.residuals!, fn.z]);
  assert.equal(tf.memory().numTensors, before, 'solver leaked tensors');
  assert.equal(z0.isDisposed, false, 'z0 stays with the caller');
  // the synchronous solver refuses the solvers that must read the host, naming the async form
  for (const o of [
    { kind: 'tolerance', tol: 1e-5, maxIters: 10 },
    { kind: 'anderson', tol: 1e-5, maxIters: 10 },
  ] as const) {
    assert.throws(
      () => solveFixedPoint(f, z0, o),
      (e: unknown) => e instanceof Error && !(e instanceof UserError) && /solveFixedPointAsync/.test(e.message),
    );
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([A, b, z0]);
});

async function compare(label: string, model: FPDM, x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D): Promise<void> {
  const before = tf.memory().numTensors;
  const p = await model.forwardAsync(x, t, y, { solver: { kind: 'tolerance', tol: 1e-4, maxIters: 200 } });
  const a = await model.forwardAsync(x, t, y, {
    solver: { kind: 'anderson', tol: 1e-4, maxIters: 200, window: 5, beta: 1 },
  });
  const dz = maxAbs(p.state!.z, a.state!.z);
  const dout = maxAbs(p.out, a.out);
  console.log(
    `${label}: iterations to relative residual < 1e-4: plain ${p.solve!.iterations}, Anderson(m=5, β=1) ${a.solve!.iterations}; ` +
      `fixed points differ by ${dz.toExponential(2)} (state), ${dout.toExponential(2)} (output)`,
  );
  assert.equal(p.solve!.converged, true, 'plain iteration converged');
  assert.equal(a.solve!.converged, true, 'Anderson converged');
  assert.ok(dz <= 1e-4 && dout <= 1e-4, `fixed points differ: state ${dz}, output ${dout}`);
  // the tolerance solver stops at the first residual below tol
  const r = p.solve!.residuals;
  assert.ok(r.at(-1)! < 1e-4 && r.slice(0, -1).every((v) => v >= 1e-4));
  tf.dispose([p.out, p.state!.z, a.out, a.state!.z]);
  assert.equal(tf.memory().numTensors, before, 'forward with a solver leaked tensors');
}

test('fpdm_tiny (fixture weights): plain and Anderson reach the same fixed point', async () => {
  await useBackend('cpu');
  const { x, t, y } = inputsOf(tinyIO('fpdm_tiny'));
  const { model } = loadModel(fixture('fpdm_tiny.safetensors'), tinyConfig('fpdm_tiny'));
  await compare('fpdm_tiny (weights N(0, 0.05²))', model as FPDM, x, t, y);
  // a fixed count equal to plain's count gives the same output as the tolerance stop
  const p = await (model as FPDM).forwardAsync(x, t, y, { solver: { kind: 'tolerance', tol: 1e-4, maxIters: 200 } });
  const q = model.forward(x, t, y, { iters: p.solve!.iterations });
  assert.equal(maxAbs(p.out, q.out), 0);
  tf.dispose([p.out, p.state!.z, q.out, q.state!.z]);
  // the synchronous forward refuses tolerance/Anderson with a programming Error naming forwardAsync, and leaks nothing
  const before = tf.memory().numTensors;
  for (const solver of [
    { kind: 'tolerance', tol: 1e-4, maxIters: 5 },
    { kind: 'anderson', tol: 1e-4, maxIters: 5 },
  ] as const) {
    assert.throws(
      () => model.forward(x, t, y, { solver }),
      (e: unknown) => e instanceof Error && !(e instanceof UserError) && /forwardAsync/.test(e.message),
    );
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, t, y]);
  model.dispose();
});

test('wider random FPDM (D=32, weights N(0, 0.1²)): plain and Anderson reach the same fixed point', async () => {
  await useBackend('cpu');
  const cfg = fpdmFrom({
    kind: 'dit',
    inputSize: 8,
    patchSize: 2,
    inChannels: 4,
    hiddenSize: 32,
    depth: 4,
    numHeads: 4,
    mlpRatio: 4,
    classDropoutProb: 0.1,
    numClasses: 10,
    learnSigma: true,
  });
  const model = createModel(cfg, 1) as FPDM;
  const rng = new Rng('randomize');
  for (const v of model.params.values()) {
    const w = tf.tensor(
      Float32Array.from(rng.normals(v.size), (a) => a * 0.1),
      v.shape,
    );
    v.assign(w);
    w.dispose();
  }
  const r2 = new Rng(2);
  const x = tf.tensor4d(r2.normals(4 * 4 * 64), [4, 4, 8, 8]);
  const t = tf.tensor1d([10, 200, 500, 900]);
  const y = tf.tensor1d([0, 1, 2, 10], 'int32');
  await compare('random FPDM D=32 (weights N(0, 0.1²))', model, x, t, y);
  tf.dispose([x, t, y]);
  model.dispose();
});

test('bad solver options are UserErrors', () => {
  assert.throws(() => validateSolver({ kind: 'fixed', iters: -1 }), UserError);
  assert.throws(() => validateSolver({ kind: 'tolerance', tol: 0, maxIters: 5 }), UserError);
  assert.throws(() => validateSolver({ kind: 'anderson', tol: 1e-4, maxIters: 0 }), UserError);
  assert.throws(() => validateSolver({ kind: 'anderson', tol: 1e-4, maxIters: 5, beta: 1.5 }), UserError);
});
