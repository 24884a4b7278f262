// The DiT block on our own directly dispatched WGSL kernels (src/backends/webgpu/dit-block.ts) against
// the TF.js op sequence it replaces (blocks.ts blockForward, blockgrad.ts blockBackward), on the webgpu
// backend (FPDM_TEST_BACKENDS=webgpu: a GPU, or SwiftShader's Vulkan on a CPU machine): the output and
// every saved intermediate of the forward, and through the block op (ditBlockOp, with and without
// gradient checkpointing) the gradients of x, c and all ten block weights; FPDM's fixed-point step op
// (its input projection on src/backends/webgpu/fpdm-step.ts, then the block): output and the gradients
// of z, inj, c and all fourteen weights; and the fixed-point solver's relative residual
// (src/backends/webgpu/residual.ts) against its TF.js ops; the training loss (learned variance, hybrid)
// and its hand-derived gradient (src/backends/webgpu/loss.ts) against the TF.js ops and their autodiff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { rawBlockKernels, relativeResidualKernel, setKernelOptions } from '../../src/backends/kernels.js';
import { rawKernels } from '../../src/backends/webgpu/raw.js';
import { BLOCK_PARAM_NAMES, SAVED_ORDER, blockForward } from '../../src/models/blocks.js';
import { blockSpec } from '../../src/models/params.js';
import { PROJECTION_PARAM_NAMES, ditBlockOp, fixedPointStepOp } from '../../src/models/blockgrad.js';
import { createDiffusion, diffusionConfig } from '../../src/diffusion/process.js';
import { trainingLossMean } from '../../src/diffusion/losses.js';
import { TEST_BACKENDS, randomTensor, tensorRelErr, useBackend } from '../helpers.js';

const onGpu = TEST_BACKENDS.includes('webgpu');
const SKIP = 'webgpu only: npm run test:webgpu runs it (on a GPU, or on SwiftShader without one)';

/** Block weights with nonzero adaLN (so every gate, shift and scale is exercised), in BLOCK_PARAM_NAMES order. */
function blockWeights(d: number): tf.Tensor[] {
  const shapes = new Map(blockSpec('b', d, 4).map((spec) => [spec.name.slice(2), spec.shape]));
  return BLOCK_PARAM_NAMES.map((name) => {
    const shape = shapes.get(name)!;
    const fanIn = shape.length === 2 ? shape[1]! : 1;
    return randomTensor(`w.${name}.${d}`, shape, shape.length === 2 ? 1 / Math.sqrt(fanIn) : 0.1);
  });
}

// rows longer than the 128-thread row workgroup (d 192, t 256), heads of 64 as DiT's, 512 token rows
// (the matmuls' 128-wide tiles); and a shape
// where nothing is a multiple of the tiles and the weight gradients' reduction over 3·87 = 261 token
// rows is split in two unequal chunks (gemm.ts splitK). (SwiftShader runs a DiT-S/2 block, 2×256×384,
// in minutes: the bench runs that size on the GPU.)
const SHAPES: Array<[n: number, t: number, d: number, heads: number]> = [
  [2, 256, 192, 3],
  [3, 87, 48, 3],
];

test(
  'DiT block on directly dispatched kernels equals the TF.js op sequence (forward, saved values, gradients)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true });
    try {
      assert.ok(rawBlockKernels(), 'direct-dispatch block kernels available on webgpu');
      const rk = rawKernels()!;
      for (const [n, t, d, heads] of SHAPES) {
        const label = `n ${n}, t ${t}, d ${d}, heads ${heads}`;
        const x = randomTensor(`x${d}`, [n, t, d]) as tf.Tensor3D;
        const c = randomTensor(`c${d}`, [n, d]) as tf.Tensor2D;
        const dy = randomTensor(`dy${d}`, [n, t, d]) as tf.Tensor3D;
        const w = blockWeights(d);

        // forward: output and every saved intermediate
        setKernelOptions({ rawBlock: true });
        const before = rk.counters.dispatches;
        const raw = blockForward(x, c, w, heads);
        assert.equal(rk.counters.dispatches - before, 10, 'the forward is 10 direct dispatches');
        setKernelOptions({ rawBlock: false });
        const ref = blockForward(x, c, w, heads);
        const errs: Record<string, number> = { out: await tensorRelErr(raw.out, ref.out) };
        for (const k of SAVED_ORDER) if (k !== 'x') errs[k] = await tensorRelErr(raw.s[k], ref.s[k]);
        for (const [k, e] of Object.entries(errs)) assert.ok(e <= 2e-5, `${label}: forward ${k} rel. error ${e}`);
        tf.dispose([raw.out, ref.out, ...SAVED_ORDER.filter((k) => k !== 'x').flatMap((k) => [raw.s[k], ref.s[k]])]);

        // gradients of x, c and every weight through the block op, plain and with checkpointing
        // checkpointing recomputes the same forward: checked at the small shape only (SwiftShader time)
        for (const checkpoint of t * n > 300 ? [false] : [false, true]) {
          const grads = (rawBlock: boolean) => {
            setKernelOptions({ rawBlock });
            const f = (...args: tf.Tensor[]) => {
              const [xi, ci, ...wi] = args;
              const p = new Map(BLOCK_PARAM_NAMES.map((name, i) => [`b.${name}`, wi[i]!]));
              return tf.sum(tf.mul(ditBlockOp(p, 'b', xi as tf.Tensor3D, ci as tf.Tensor2D, heads, checkpoint), dy));
            };
            return tf.grads(f)([x, c, ...w]);
          };
          const before = rk.counters.dispatches;
          const gRaw = grads(true);
          // backward: 25 kernels, plus one sum per product whose reduction is split
          const backward = rk.counters.dispatches - before - (checkpoint ? 20 : 10);
          assert.ok(backward >= 25 && backward <= 30, `the backward is 25–30 direct dispatches (${backward})`);
          const gRef = grads(false);
          const names = ['x', 'c', ...BLOCK_PARAM_NAMES];
          for (let i = 0; i < names.length; i++) {
            const e = await tensorRelErr(gRaw[i]!, gRef[i]!);
            assert.ok(
              e <= 1e-4,
              `${label}${checkpoint ? ', checkpointed' : ''}: gradient of ${names[i]} rel. error ${e}`,
            );
          }
          tf.dispose([...gRaw, ...gRef]);
        }
        tf.dispose([x, c, dy, ...w]);
      }
    } finally {
      setKernelOptions(prev);
    }
  },
);

test(
  "the forward without save reuses ADA only for the same c and adaLN weights (an FPDM solve's iterations)",
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true });
    try {
      const raw = rawBlockKernels()!;
      const rk = rawKernels()!;
      // d 256: ADA's reduction is split in two (gemm.ts splitK), then summed with the bias
      const [n, t, d, heads] = [2, 16, 256, 4];
      const x = randomTensor('ax', [n, t, d]) as tf.Tensor3D;
      const c = randomTensor('ac', [n, d]) as tf.Tensor2D;
      const c2 = randomTensor('ac2', [n, d]) as tf.Tensor2D;
      const w = blockWeights(d);
      // other adaLN weights, the rest the same (a DiT's next block shares nothing, but only these matter here)
      const w2 = [tf.mul(w[0]!, -0.5), tf.add(w[1]!, 0.25), ...w.slice(2)];
      const reference = (ci: tf.Tensor2D, wi: tf.Tensor[]) => {
        setKernelOptions({ rawBlock: false });
        const r = blockForward(x, ci, wi, heads);
        setKernelOptions({ rawBlock: true });
        tf.dispose(Object.values(r.s).filter((v) => v !== x));
        return r.out;
      };
      const cases: Array<[string, tf.Tensor2D, tf.Tensor[], number]> = [
        ['first call', c, w, 11], // adaLN split in two + its sum, then 9 more
        ['same c and weights again (ADA reused)', c, w, 9],
        ['same c, other adaLN weights', c, w2, 11],
        ['other c, same weights', c2, w2, 11],
      ];
      for (const [label, ci, wi, dispatches] of cases) {
        const before = rk.counters.dispatches;
        const out = raw.forwardOutput(x, ci, wi, heads);
        assert.equal(rk.counters.dispatches - before, dispatches, `${label}: direct dispatches`);
        const ref = reference(ci, wi);
        const e = await tensorRelErr(out, ref);
        assert.ok(e <= 2e-5, `${label}: rel. error ${e}`);
        tf.dispose([out, ref]);
      }
      tf.dispose([x, c, c2, ...w, w2[0]!, w2[1]!]);
    } finally {
      setKernelOptions(prev);
    }
  },
);

test(
  'relative residual on directly dispatched kernels equals the TF.js ops',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true });
    try {
      for (const shape of [
        [3, 7, 5],
        [2, 256, 384],
        // more than 4 grid strides of 256 × 256 values: the unrolled loop of partialSumsWgsl, then its tail
        [5, 256, 300],
        [1, 1, 1],
      ]) {
        const a = randomTensor(`ra${shape}`, shape);
        const b = tf.add(a, randomTensor(`rb${shape}`, shape, 0.01));
        const raw = relativeResidualKernel(a, b);
        assert.ok(raw, 'kernel available on webgpu');
        assert.deepEqual(raw.shape, []);
        const ref = tf.div(tf.norm(tf.sub(a, b)), tf.add(tf.norm(b), 1e-12));
        const e = await tensorRelErr(raw, ref);
        assert.ok(e <= 1e-5, `shape ${shape}: rel. error ${e} (${(await raw.data())[0]} vs ${(await ref.data())[0]})`);
        tf.dispose([a, b, raw, ref]);
      }
    } finally {
      setKernelOptions(prev);
    }
  },
);

test(
  "FPDM's fixed-point step on directly dispatched kernels equals the TF.js op sequence (output, gradients)",
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true });
    try {
      const [n, t, d, heads] = [3, 87, 48, 3];
      const z = randomTensor('fz', [n, t, d]) as tf.Tensor3D;
      const inj = randomTensor('finj', [n, t, d]) as tf.Tensor3D;
      const c = randomTensor('fc', [n, d]) as tf.Tensor2D;
      const dy = randomTensor('fdy', [n, t, d]) as tf.Tensor3D;
      const proj = [
        randomTensor('fw1', [2 * d, 2 * d], 1 / Math.sqrt(2 * d)),
        randomTensor('fb1', [2 * d], 0.1),
        randomTensor('fw2', [d, 2 * d], 1 / Math.sqrt(2 * d)),
        randomTensor('fb2', [d], 0.1),
      ];
      const w = [...proj, ...blockWeights(d)];
      const names = [...PROJECTION_PARAM_NAMES, ...BLOCK_PARAM_NAMES.map((k) => `block_fixed_point.${k}`)];
      for (const checkpoint of [false, true]) {
        const run = (rawBlock: boolean) => {
          setKernelOptions({ rawBlock });
          const f = (...args: tf.Tensor[]) => {
            const [zi, ii, ci, ...wi] = args;
            const p = new Map(names.map((name, i) => [name, wi[i]!]));
            const out = fixedPointStepOp(p, zi as tf.Tensor3D, ii as tf.Tensor3D, ci as tf.Tensor2D, heads, checkpoint);
            return tf.sum(tf.mul(out, dy));
          };
          const { value, grads } = tf.valueAndGrads(f)([z, inj, c, ...w]);
          return [value, ...grads];
        };
        const raw = run(true);
        const ref = run(false);
        const labels = ['loss', 'z', 'inj', 'c', ...names];
        for (let i = 0; i < labels.length; i++) {
          const e = await tensorRelErr(raw[i]!, ref[i]!);
          assert.ok(e <= 1e-4, `${checkpoint ? 'checkpointed: ' : ''}${labels[i]} rel. error ${e}`);
        }
        tf.dispose([...raw, ...ref]);
      }
      tf.dispose([z, inj, c, dy, ...w]);
    } finally {
      setKernelOptions(prev);
    }
  },
);

test(
  'training loss and its gradient on directly dispatched kernels equal the TF.js ops and autodiff',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: true });
    try {
      const [N, C, H] = [6, 3, 5];
      // t = 0 (decoder NLL) and t > 0 (KL); data with values beyond ±0.999 (the NLL's edge bins)
      const t = [0, 1, 7, 0, 499, 999];
      const xStart = tf.clipByValue(randomTensor('lx0', [N, C, H, H], 0.8), -1, 1) as tf.Tensor4D;
      const noise = randomTensor('lnoise', [N, C, H, H]) as tf.Tensor4D;
      const modelOutput = randomTensor('lmo', [N, 2 * C, H, H], 0.7) as tf.Tensor4D;
      for (const prediction of ['eps', 'v', 'x0'] as const) {
        const process = createDiffusion({
          ...diffusionConfig(),
          parameterization: prediction,
          variance: 'learned-range',
          loss: 'hybrid',
        });
        const xT = process.qSample(xStart, t, noise);
        const inp = { xStart, xT, noise, t };
        const run = (rawBlock: boolean) => {
          setKernelOptions({ rawBlock });
          const { value, grad } = tf.valueAndGrad((mo: tf.Tensor) =>
            trainingLossMean(process, { ...inp, modelOutput: mo as tf.Tensor4D }),
          )(modelOutput);
          return [value, grad];
        };
        const raw = run(true);
        const ref = run(false);
        const eLoss = await tensorRelErr(raw[0]!, ref[0]!);
        const eGrad = await tensorRelErr(raw[1]!, ref[1]!);
        assert.ok(eLoss <= 1e-5, `${prediction}: loss rel. error ${eLoss}`);
        assert.ok(eGrad <= 1e-4, `${prediction}: gradient rel. error ${eGrad}`);
        tf.dispose([...raw, ...ref, xT]);
      }
      tf.dispose([xStart, noise, modelOutput]);
    } finally {
      setKernelOptions(prev);
    }
  },
);
