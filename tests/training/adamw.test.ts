import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { AdamW, learningRateAt, ADAMW_DEFAULTS, type ParamMap } from '../../src/training/adamw.js';
import { Ema } from '../../src/training/ema.js';
import { TEST_BACKENDS, useBackend, maxAbsDiff } from '../helpers.js';

/** PyTorch's AdamW update written out in float64 on plain arrays (the hand computation). */
function referenceAdamW(
  p0: number[],
  grads: number[][],
  c: { lr: number; b1: number; b2: number; eps: number; wd: number; warmup?: number; clip?: number },
): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g0, i) => {
    const t = i + 1;
    const lr = c.warmup ? c.lr * Math.min(1, t / c.warmup) : c.lr;
    let g = g0;
    if (c.clip !== undefined) {
      const norm = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
      const coef = Math.min(1, c.clip / (norm + 1e-6));
      g = g.map((x) => x * coef);
    }
    for (let j = 0; j < p.length; j++) {
      p[j] = p[j]! * (1 - lr * c.wd);
      m[j] = c.b1 * m[j]! + (1 - c.b1) * g[j]!;
      v[j] = c.b2 * v[j]! + (1 - c.b2) * g[j]! * g[j]!;
      const denom = Math.sqrt(v[j]!) / Math.sqrt(1 - c.b2 ** t) + c.eps;
      p[j] = p[j]! - (lr / (1 - c.b1 ** t)) * (m[j]! / denom);
    }
  });
  return p;
}

const P0 = [0.5, -1.25, 2.0, 0.0, 3.5, -0.75];
const GRADS = [
  [0.1, -0.2, 0.3, 0.0, 1.5, -2.0],
  [-0.05, 0.4, 0.1, 0.2, -1.0, 0.5],
  [0.3, 0.3, -0.3, -0.1, 0.25, 0.0],
];

for (const backend of TEST_BACKENDS) {
  test(`AdamW matches the hand-computed PyTorch update (${backend})`, async () => {
    await useBackend(backend);
    const cases = [
      { name: 'defaults', cfg: {}, ref: { lr: 1e-4, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0 } },
      {
        name: 'lr 0.1, weight decay 0.05',
        cfg: { lr: 0.1, weightDecay: 0.05 },
        ref: { lr: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05 },
      },
      {
        name: 'warm-up 2 + clip 0.5',
        cfg: { lr: 0.01, warmupSteps: 2, clipGradNorm: 0.5 },
        ref: { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, warmup: 2, clip: 0.5 },
      },
    ];
    for (const c of cases) {
      const w = tf.variable(tf.tensor2d(P0, [2, 3]), true, `adamw-test-${backend}-${c.name}`);
      const params: ParamMap = new Map([['w', w]]);
      const opt = new AdamW(params, c.cfg);
      for (const g of GRADS) {
        const gt = tf.tensor2d(g, [2, 3]);
        await opt.step({ w: gt });
        gt.dispose();
      }
      const expected = referenceAdamW(P0, GRADS, c.ref);
      const got = Array.from(await w.data()); // asynchronous: webgpu under Node has no synchronous read
      // float32 arithmetic vs float64: the moved distance is up to ~3·lr, compare at float32 precision
      assert.ok(maxAbsDiff(got, expected) < 2e-6, `${c.name}: ${got} vs ${expected}`);
      // it moved at all (a no-op optimizer would fail this)
      assert.ok(maxAbsDiff(got, P0) > 1e-5, `${c.name}: parameters did not move`);
      opt.dispose();
      w.dispose();
    }
  });
}

test('warm-up schedule is linear then constant', () => {
  const cfg = { ...ADAMW_DEFAULTS, lr: 1e-3, warmupSteps: 4 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 100].map((t) => learningRateAt(cfg, t)),
    [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3],
  );
  assert.equal(learningRateAt(ADAMW_DEFAULTS, 1), 1e-4);
});

test('cosine schedule: warm-up, then ½(1 + cos) down to 0 at decaySteps, 0 after; bad horizons refused', () => {
  const cfg = { ...ADAMW_DEFAULTS, lr: 1e-3, warmupSteps: 4, decaySteps: 12 };
  const got = [2, 4, 6, 8, 10, 12, 20].map((t) => learningRateAt(cfg, t));
  // p = (t − 4) / 8 after the warm-up: 0.25 → ½(1 + cos(π/4)), 0.5 → ½, 0.75 → ½(1 − cos(π/4)), 1 → 0
  const expected = [5e-4, 1e-3, 5e-4 * (1 + Math.SQRT1_2), 5e-4, 5e-4 * (1 - Math.SQRT1_2), 0, 0];
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]!) < 1e-15, `step ${[2, 4, 6, 8, 10, 12, 20][i]}: ${v} vs ${expected[i]}`),
  );
  const w = new Map([['w', tf.variable(tf.zeros([2]))]]) as ParamMap;
  assert.throws(
    () => new AdamW(w, { warmupSteps: 10, decaySteps: 10 }),
    /decaySteps must be an integer above the warm-up steps \(10\)/,
  );
  assert.throws(() => new AdamW(w, { decaySteps: 2.5 }), /decaySteps/);
  tf.dispose([...w.values()]);
});

test('AdamW state export/load restores the moments bitwise and continues identically', async () => {
  await useBackend('cpu');
  const step = async (opt: AdamW, g: number[]): Promise<void> => {
    const gt = tf.tensor1d(g);
    await opt.step({ w: gt });
    gt.dispose();
  };
  const run = async (stepsBefore: number, restore: boolean): Promise<Float32Array> => {
    const w = tf.variable(tf.tensor1d(P0), true);
    const params: ParamMap = new Map([['w', w]]);
    let opt = new AdamW(params, { lr: 0.05 });
    for (const g of GRADS.slice(0, stepsBefore)) await step(opt, g);
    if (restore) {
      const { tensors, stepCount } = await opt.exportState();
      assert.deepEqual([...tensors.keys()], ['opt.m.w', 'opt.v.w']);
      opt.dispose();
      opt = new AdamW(params, { lr: 0.05 });
      opt.loadState(tensors, stepCount);
    }
    for (const g of GRADS.slice(stepsBefore)) await step(opt, g);
    const out = w.dataSync().slice() as Float32Array;
    opt.dispose();
    w.dispose();
    return out;
  };
  assert.deepEqual(await run(2, true), await run(2, false));
});

test('EMA starts at the weights and follows ema = d·ema + (1-d)·θ', async () => {
  await useBackend('cpu');
  const w = tf.variable(tf.tensor1d([1, 2, 3]), true);
  const ema = new Ema(new Map([['w', w]]), 0.9);
  assert.deepEqual(Array.from(ema.weights().get('w')!.dataSync()), [1, 2, 3]);
  w.assign(tf.tensor1d([2, 2, 0]));
  ema.update();
  const after1 = [0.9 * 1 + 0.1 * 2, 2, 0.9 * 3];
  assert.ok(maxAbsDiff(ema.weights().get('w')!.dataSync(), after1) < 1e-6);
  ema.update();
  const after2 = after1.map((e, i) => 0.9 * e + 0.1 * [2, 2, 0][i]!);
  assert.ok(maxAbsDiff(ema.weights().get('w')!.dataSync(), after2) < 1e-6);
  // weights stay untouched, and export carries the 'ema.' prefix
  assert.deepEqual(Array.from(w.dataSync()), [2, 2, 0]);
  assert.deepEqual([...(await ema.exportState()).keys()], ['ema.w']);
  const before = tf.memory().numTensors;
  ema.update();
  assert.equal(tf.memory().numTensors, before, 'EMA update leaks no tensors');
  ema.dispose();
  w.dispose();
});

test('AdamW and EMA leave no tensors behind after dispose', async () => {
  await useBackend('cpu');
  const w = tf.variable(tf.tensor1d(P0), true);
  const before = tf.memory().numTensors;
  const opt = new AdamW(new Map([['w', w]]));
  const ema = new Ema(new Map([['w', w]]), 0.99);
  const g0 = tf.tensor1d(GRADS[0]!);
  await opt.step({ w: g0 });
  g0.dispose();
  ema.update();
  opt.dispose();
  ema.dispose();
  assert.equal(tf.memory().numTensors, before);
  w.dispose();
});
