// Issue 3, "How it is checked": the dit_tiny / fpdm_tiny golden outputs of the PyTorch reference,
// reproduced on every test backend through the path the CLI uses (loadModel → forward), max abs
// error <= 1e-4; weights from .safetensors, .pt (zip) and .pt (legacy) are identical; no tensor leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors } from '../../src/io/safetensors.js';
import { getTensor, toFloat32 } from '../../src/io/tensor.js';
import { posEmbed2d } from '../../src/models/blocks.js';
import { loadModel } from '../../src/models/load.js';
import { exportStateDict, type FPDM } from '../../src/models/index.js';
import { TEST_BACKENDS, useBackend, fixture, maxAbsDiff } from '../helpers.js';
import { expected, inputsOf, tinyConfig, tinyIO } from './helpers.js';

const TOL = 1e-4;

test('pos_embed computed = the fixture buffer (both tiny models)', () => {
  for (const name of ['dit_tiny', 'fpdm_tiny'] as const) {
    const c = tinyConfig(name);
    const pe = toFloat32(getTensor(readSafetensors(fixture(`${name}.safetensors`)).tensors, 'pos_embed'));
    const err = maxAbsDiff(posEmbed2d(c.hiddenSize, c.inputSize / c.patchSize), pe);
    assert.ok(err < 1e-6, `${name} pos_embed max abs err ${err}`);
  }
});

for (const backend of TEST_BACKENDS) {
  test(`[${backend}] dit_tiny: out matches the reference (<= 1e-4), no leak`, async () => {
    await useBackend(backend);
    const io = tinyIO('dit_tiny');
    const { x, t, y } = inputsOf(io);
    const before = tf.memory().numTensors;
    const { model } = loadModel(fixture('dit_tiny.safetensors'), tinyConfig('dit_tiny'));
    const r = model.forward(x, t, y);
    assert.deepEqual(r.out.shape, [4, 8, 8, 8]);
    const err = maxAbsDiff(await r.out.data(), expected(io, 'out'));
    console.log(`[${backend}] dit_tiny out max abs err ${err.toExponential(2)}`);
    assert.ok(err <= TOL, `max abs err ${err}`);
    r.out.dispose();
    model.dispose();
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    tf.dispose([x, t, y]);
  });

  test(`[${backend}] fpdm_tiny: out_iters1/2/4/8 and out_pptc (<= 1e-4), no leak`, async () => {
    await useBackend(backend);
    const io = tinyIO('fpdm_tiny');
    const { x, t, y } = inputsOf(io);
    const before = tf.memory().numTensors;
    const { model } = loadModel(fixture('fpdm_tiny.safetensors'), tinyConfig('fpdm_tiny'));
    for (const [iters, key] of [
      [1, 'out_iters1'],
      [2, 'out_iters2'],
      [4, 'out_iters4'],
      [8, 'out_iters8'],
      [4, 'out_pptc'],
    ] as const) {
      const r = model.forward(x, t, y, { iters });
      const err = maxAbsDiff(await r.out.data(), expected(io, key));
      console.log(`[${backend}] fpdm_tiny ${key} max abs err ${err.toExponential(2)}`);
      assert.ok(err <= TOL, `${key}: max abs err ${err}`);
      assert.equal(r.solve?.iterations, iters);
      assert.equal(r.solve?.residuals.length, 0, 'the synchronous forward reads nothing');
      // forwardAsync: the same output, residuals read (tracked by default)
      const ra = await model.forwardAsync(x, t, y, { iters });
      assert.equal(maxAbsDiff(await ra.out.data(), await r.out.data()), 0, `${key}: forwardAsync = forward`);
      assert.equal(ra.solve?.residuals.length, iters);
      tf.dispose([r.out, r.state!.z, ra.out, ra.state!.z]);
    }
    // the default iteration count of this config (no-grad max 0 + with-grad max 4) is 4
    const d = model.forward(x, t, y);
    assert.ok(maxAbsDiff(await d.out.data(), expected(io, 'out_iters4')) <= TOL);
    tf.dispose([d.out, d.state!.z]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    tf.dispose([x, t, y]);
  });

  test(`[${backend}] fpdm_tiny: solution reuse (pre/post timestep conditioning off) reuse_out1/2 (<= 1e-4)`, async () => {
    await useBackend(backend);
    const io = tinyIO('fpdm_tiny');
    const a = inputsOf(io, 'reuse_x1', 'reuse_t1', 'y');
    const b = inputsOf(io, 'reuse_x2', 'reuse_t2', 'y');
    const before = tf.memory().numTensors;
    const { model } = loadModel(
      fixture('fpdm_tiny.safetensors'),
      tinyConfig('fpdm_tiny', { fixed_point_pre_post_timestep_conditioning: false }),
    );
    const r1 = model.forward(a.x, a.t, a.y, { iters: 4 });
    const r2 = model.forward(b.x, b.t, b.y, { iters: 4, state: r1.state });
    const e1 = maxAbsDiff(await r1.out.data(), expected(io, 'reuse_out1'));
    const e2 = maxAbsDiff(await r2.out.data(), expected(io, 'reuse_out2'));
    console.log(`[${backend}] reuse_out1 ${e1.toExponential(2)} reuse_out2 ${e2.toExponential(2)}`);
    assert.ok(e1 <= TOL && e2 <= TOL, `reuse errs ${e1} ${e2}`);
    // without reuse the second output differs (the test can fail)
    const r3 = model.forward(b.x, b.t, b.y, { iters: 4 });
    assert.ok(maxAbsDiff(await r3.out.data(), expected(io, 'reuse_out2')) > 10 * TOL, 'reuse must matter');
    // the state passed in still belongs to the caller and is alive
    assert.equal(r1.state!.z.isDisposed, false);
    tf.dispose([r1.out, r1.state!.z, r2.out, r2.state!.z, r3.out, r3.state!.z]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    tf.dispose([a.x, a.t, a.y, b.x, b.t, b.y]);
  });
}

test('weights from .pt (zip) and .pt (legacy) equal the .safetensors ones; export round-trips', async () => {
  await useBackend('cpu');
  for (const name of ['dit_tiny', 'fpdm_tiny'] as const) {
    const cfg = tinyConfig(name);
    const ref = readSafetensors(fixture(`${name}.safetensors`)).tensors;
    for (const file of [`${name}.pt`, `${name}.legacy.pt`]) {
      const { model } = loadModel(fixture(file), cfg);
      const sd = await exportStateDict(model);
      assert.deepEqual([...sd.keys()].sort(), [...ref.keys()].sort(), `${file}: names`);
      for (const [k, v] of ref) assert.equal(maxAbsDiff(toFloat32(sd.get(k)!), toFloat32(v)), 0, `${file}: ${k}`);
      model.dispose();
    }
  }
});

test('FPDM reports solver residuals that shrink (the fixture contracts)', async () => {
  await useBackend('cpu');
  const io = tinyIO('fpdm_tiny');
  const { x, t, y } = inputsOf(io);
  const { model } = loadModel(fixture('fpdm_tiny.safetensors'), tinyConfig('fpdm_tiny'));
  const r = await (model as FPDM).forwardAsync(x, t, y, { iters: 8 });
  const res = r.solve!.residuals;
  console.log(`fpdm_tiny residuals over 8 iterations: ${res.map((v) => v.toExponential(2)).join(' ')}`);
  assert.equal(res.length, 8);
  for (let i = 1; i < res.length; i++) assert.ok(res[i]! < res[i - 1]!, `residual ${i} did not shrink`);
  // the synchronous forward returns the same residuals as a tensor (no host read)
  const s = (model as FPDM).forward(x, t, y, { iters: 8, trackResiduals: true });
  assert.deepEqual(s.residuals!.shape, [8]);
  assert.deepEqual(Array.from(await s.residuals!.data()), res);
  tf.dispose([r.out, r.state!.z, s.out, s.state!.z, s.residuals!, x, t, y]);
  model.dispose();
});
