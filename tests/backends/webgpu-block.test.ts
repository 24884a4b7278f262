// The fused webgpu block kernels (src/backends/webgpu/block.ts) against the TF.js op sequences they
// replace, on the GPU (FPDM_TEST_BACKENDS=webgpu; CI has no GPU, so on CPU machines the test states that
// it did not run): LayerNorm + modulate and LayerNorm alone, GELU and its backward, the registered
// gradients under autodiff, and a whole DiT block op's forward and hand-written backward (which uses the
// LN backward and the softmax backward kernels), at a width below and above the workgroup size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { fusedBlockKernels, setKernelOptions } from '../../src/backends/kernels.js';
import { BLOCK_PARAM_NAMES, geluTanh, geluTanhBackward, layerNorm, lnModulate } from '../../src/models/blocks.js';
import { ditBlockOp } from '../../src/models/blockgrad.js';
import { Rng } from '../../src/util/rng.js';
import { TEST_BACKENDS, useBackend } from '../helpers.js';

const onGpu = TEST_BACKENDS.includes('webgpu');

/** max |a − b| / max |b| */
async function relErr(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [av, bv] = [await a.data(), await b.data()];
  assert.equal(av.length, bv.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < av.length; i++) {
    scale = Math.max(scale, Math.abs(bv[i]!));
    diff = Math.max(diff, Math.abs(av[i]! - bv[i]!));
    if (!Number.isFinite(av[i]!)) return Infinity;
  }
  return diff / Math.max(scale, 1e-12);
}

function rand(seed: string, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(new Rng(seed).normals(n).map((v) => v * scale), shape);
}

/** runs f with the fused kernels on and off */
function both<T>(f: () => T): [T, T] {
  const prev = setKernelOptions({ fusedBlock: true });
  try {
    const fused = f();
    setKernelOptions({ fusedBlock: false });
    return [fused, f()];
  } finally {
    setKernelOptions(prev);
  }
}

test('fused webgpu block kernels equal the TF.js op sequences', { skip: onGpu ? false : 'webgpu only: set FPDM_TEST_BACKENDS=webgpu on a machine with a GPU (CI has none)' }, async () => {
  await useBackend('webgpu');
  setKernelOptions({ fusedBlock: true });
  assert.ok(fusedBlockKernels(), 'fused kernels available on webgpu');
  for (const [n, t, d] of [[2, 16, 384], [3, 5, 64]] as const) {
    const x = rand(`x${d}`, [n, t, d], 3) as tf.Tensor3D;
    const shift = rand(`sh${d}`, [n, d]) as tf.Tensor2D;
    const scale = rand(`sc${d}`, [n, d]) as tf.Tensor2D;
    const dy = rand(`dy${d}`, [n, t, d]) as tf.Tensor3D;
    const h = rand(`h${d}`, [n, t, 4 * d], 2);
    const dh = rand(`dh${d}`, [n, t, 4 * d]);
    const checks: Array<[string, [tf.Tensor, tf.Tensor], number]> = [
      ['lnModulate', both(() => lnModulate(x, shift, scale)), 2e-6],
      ['layerNorm', both(() => (fusedBlockKernels()?.layerNorm(x) ?? layerNorm(x))), 2e-6],
      ['gelu', both(() => geluTanh(h)), 1e-6],
      ['gelu backward', both(() => geluTanhBackward(h, dh)), 1e-6],
    ];
    // registered gradients (autodiff through the fused forward ops)
    const g = both(() => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(lnModulate(a as tf.Tensor3D, b as tf.Tensor2D, c as tf.Tensor2D), dy)))([x, shift, scale]));
    g[0].forEach((gi, i) => checks.push([`lnModulate autodiff gradient ${i}`, [gi, g[1][i]!], 1e-5]));
    const gg = both(() => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(geluTanh(a), dh)))(h));
    checks.push(['gelu autodiff gradient', gg, 1e-6]);
    for (const [name, [a, b], tol] of checks) {
      const e = await relErr(a, b);
      assert.ok(e <= tol, `D=${d} ${name}: relative error ${e} > ${tol}`);
    }
    tf.dispose([x, shift, scale, dy, h, dh, ...checks.flatMap(([, p]) => p)]);
  }
  // a whole block op, forward and hand-written backward (LN backward, softmax backward, GELU backward)
  const [n, t, d, heads] = [2, 16, 96, 6];
  const shapes: Record<string, number[]> = {
    'adaLN_modulation.1.weight': [6 * d, d], 'adaLN_modulation.1.bias': [6 * d], 'attn.qkv.weight': [3 * d, d], 'attn.qkv.bias': [3 * d],
    'attn.proj.weight': [d, d], 'attn.proj.bias': [d], 'mlp.fc1.weight': [4 * d, d], 'mlp.fc1.bias': [4 * d], 'mlp.fc2.weight': [d, 4 * d], 'mlp.fc2.bias': [d],
  };
  const p = new Map(BLOCK_PARAM_NAMES.map((k) => [`b.${k}`, rand(k, shapes[k]!, 0.2)]));
  const x = rand('bx', [n, t, d]) as tf.Tensor3D;
  const c = rand('bc', [n, d]) as tf.Tensor2D;
  const r = rand('br', [n, t, d]);
  const [fused, plain] = both(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(ditBlockOp(p, 'b', a as tf.Tensor3D, b as tf.Tensor2D, heads), r)))([x, c]));
  const [outF, outP] = both(() => ditBlockOp(p, 'b', x, c, heads));
  assert.ok((await relErr(outF, outP)) <= 1e-5, 'block forward');
  for (let i = 0; i < 2; i++) {
    const e = await relErr(fused[i]!, plain[i]!);
    assert.ok(e <= 1e-4, `block gradient ${i === 0 ? 'x' : 'c'}: relative error ${e}`);
  }
  tf.dispose([x, c, r, outF, outP, ...fused, ...plain, ...p.values()]);
});
