// The fused webgpu block kernels (src/backends/webgpu/block.ts) against the TF.js op sequences they
// replace, on webgpu only (`npm run test:webgpu`, on a GPU or SwiftShader; `npm test` states that it did
// not run): LayerNorm + modulate and LayerNorm alone, GELU and its backward, the registered
// gradients under autodiff, and a whole DiT block op's forward and hand-written backward (which uses the
// LN backward and the softmax backward kernels), at a width below and above the workgroup size; the
// gated residual x + g ⊙ a, the gate/scale gradient Σ_T a ⊙ b, the LN backward with a residual and the
// bias-in-matMul linear layer against their op sequences; the block op's gradients of every weight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { fusedBlockKernels, setKernelOptions } from '../../src/backends/kernels.js';
import {
  BLOCK_PARAM_NAMES,
  gatedResidual,
  geluTanh,
  geluTanhBackward,
  layerNorm,
  linear,
  lnModulate,
} from '../../src/models/blocks.js';
import { ditBlockOp } from '../../src/models/blockgrad.js';
import { blockSpec } from '../../src/models/params.js';
import { TEST_BACKENDS, randomTensor, tensorRelErr, useBackend } from '../helpers.js';

const onGpu = TEST_BACKENDS.includes('webgpu');

/** runs f with the fused kernels on and off (the TF.js programs of block.ts: the direct-dispatch block off) */
function both<T>(f: () => T): [T, T] {
  const prev = setKernelOptions({ fusedBlock: true, rawBlock: false });
  try {
    const fused = f();
    setKernelOptions({ fusedBlock: false });
    return [fused, f()];
  } finally {
    setKernelOptions(prev);
  }
}

test(
  'fused webgpu block kernels equal the TF.js op sequences',
  { skip: onGpu ? false : 'webgpu only: npm run test:webgpu runs it (on a GPU, or on SwiftShader without one)' },
  async () => {
    await useBackend('webgpu');
    setKernelOptions({ fusedBlock: true });
    assert.ok(fusedBlockKernels(), 'fused kernels available on webgpu');
    for (const [n, t, d] of [
      [2, 16, 384],
      [3, 5, 64],
    ] as const) {
      const x = randomTensor(`x${d}`, [n, t, d], 3) as tf.Tensor3D;
      const shift = randomTensor(`sh${d}`, [n, d]) as tf.Tensor2D;
      const scale = randomTensor(`sc${d}`, [n, d]) as tf.Tensor2D;
      const dy = randomTensor(`dy${d}`, [n, t, d]) as tf.Tensor3D;
      const h = randomTensor(`h${d}`, [n, t, 4 * d], 2);
      const dh = randomTensor(`dh${d}`, [n, t, 4 * d]);
      const a = randomTensor(`a${d}`, [n, t, d]) as tf.Tensor3D;
      const w = randomTensor(`w${d}`, [2 * d, d], 0.1) as tf.Tensor2D;
      const bias = randomTensor(`b${d}`, [2 * d]);
      const fk = fusedBlockKernels()!;
      const checks: Array<[string, [tf.Tensor, tf.Tensor], number]> = [
        ['gated residual', both(() => gatedResidual(x, shift, a)), 1e-6],
        ['gate gradient Σ_T a·b', [fk.colDot(dy, a), tf.sum(tf.mul(dy, a), 1)], 1e-5],
        ['linear with bias', both(() => linear(x, w, bias)), 1e-5],
        [
          'LN backward + residual',
          [fk.lnModulateBackward(x, shift, scale, dy, a).dx, tf.add(a, fk.lnModulateBackward(x, shift, scale, dy).dx)],
          1e-6,
        ],
        ['lnModulate', both(() => lnModulate(x, shift, scale)), 2e-6],
        ['layerNorm', both(() => fusedBlockKernels()?.layerNorm(x) ?? layerNorm(x)), 2e-6],
        ['gelu', both(() => geluTanh(h)), 1e-6],
        ['gelu backward', both(() => geluTanhBackward(h, dh)), 1e-6],
      ];
      // registered gradients (autodiff through the fused forward ops)
      const g = both(() =>
        tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.mul(lnModulate(a as tf.Tensor3D, b as tf.Tensor2D, c as tf.Tensor2D), dy)),
        )([x, shift, scale]),
      );
      g[0].forEach((gi, i) => checks.push([`lnModulate autodiff gradient ${i}`, [gi, g[1][i]!], 1e-5]));
      const gr = both(() =>
        tf.grads((u: tf.Tensor, v: tf.Tensor, z: tf.Tensor) =>
          tf.sum(tf.mul(gatedResidual(u as tf.Tensor3D, v as tf.Tensor2D, z as tf.Tensor3D), dy)),
        )([x, shift, a]),
      );
      gr[0].forEach((gi, i) => checks.push([`gated residual autodiff gradient ${i}`, [gi, gr[1][i]!], 1e-5]));
      const gl = both(() =>
        tf.grads((u: tf.Tensor, v: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(linear(u, v, z), 0.5)))([x, w, bias]),
      );
      gl[0].forEach((gi, i) => checks.push([`linear autodiff gradient ${i}`, [gi, gl[1][i]!], 1e-5]));
      const gg = both(() => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(geluTanh(a), dh)))(h));
      checks.push(['gelu autodiff gradient', gg, 1e-6]);
      for (const [name, [a, b], tol] of checks) {
        const e = await tensorRelErr(a, b);
        assert.ok(e <= tol, `D=${d} ${name}: relative error ${e} > ${tol}`);
      }
      tf.dispose([x, shift, scale, dy, h, dh, a, w, bias, ...checks.flatMap(([, p]) => p)]);
    }
    // a whole block op, forward and hand-written backward (LN backward, softmax backward, GELU backward)
    const [n, t, d, heads] = [2, 16, 96, 6];
    const shapes = new Map(blockSpec('b', d, 4).map((spec) => [spec.name.slice(2), spec.shape]));
    const p = new Map(BLOCK_PARAM_NAMES.map((k) => [`b.${k}`, randomTensor(k, shapes.get(k)!, 0.2)]));
    const x = randomTensor('bx', [n, t, d]) as tf.Tensor3D;
    const c = randomTensor('bc', [n, d]) as tf.Tensor2D;
    const r = randomTensor('br', [n, t, d]);
    const ws = BLOCK_PARAM_NAMES.map((k) => p.get(`b.${k}`)!);
    const names = ['x', 'c', ...BLOCK_PARAM_NAMES];
    const [fused, plain] = both(() =>
      tf.grads((...args: tf.Tensor[]) => {
        const q = new Map(BLOCK_PARAM_NAMES.map((k, i) => [`b.${k}`, args[2 + i]!]));
        return tf.sum(tf.mul(ditBlockOp(q, 'b', args[0] as tf.Tensor3D, args[1] as tf.Tensor2D, heads), r));
      })([x, c, ...ws]),
    );
    const [outF, outP] = both(() => ditBlockOp(p, 'b', x, c, heads));
    assert.ok((await tensorRelErr(outF, outP)) <= 1e-5, 'block forward');
    for (let i = 0; i < names.length; i++) {
      const e = await tensorRelErr(fused[i]!, plain[i]!);
      assert.ok(e <= 1e-4, `block gradient ${names[i]}: relative error ${e}`);
    }
    tf.dispose([x, c, r, outF, outP, ...fused, ...plain, ...p.values()]);
  },
);
