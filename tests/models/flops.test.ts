// FLOPs by formula vs the matrix multiplications the model actually runs (counted from tf.profile's
// kernel records: 2·|A|·(columns of the output) per BatchMatMul / _FusedMatMul), per sample; the documented ratios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { numel } from '../../src/util/shapes.js';
import { Rng } from '../../src/util/rng.js';
import { createModel, ditPreset, fpdmFrom, modelFlops, type DiTConfig } from '../../src/models/index.js';
import { useBackend } from '../helpers.js';

async function measuredMatmulFlops(run: () => void): Promise<number> {
  const info = await tf.profile(run);
  let flops = 0;
  for (const k of info.kernels) {
    if (k.name !== 'BatchMatMul' && k.name !== '_FusedMatMul') continue;
    const out = k.outputShapes[0]!;
    flops += 2 * numel(k.inputShapes[0]!) * out[out.length - 1]!;
  }
  return flops;
}

const TINY: DiTConfig = {
  kind: 'dit',
  inputSize: 8,
  patchSize: 2,
  inChannels: 3,
  hiddenSize: 32,
  depth: 3,
  numHeads: 4,
  mlpRatio: 4,
  classDropoutProb: 0.1,
  numClasses: 5,
  learnSigma: true,
};

test('formula = counted matmul FLOPs per sample (DiT, FPDM at 1 and 3 iterations)', async () => {
  await useBackend('cpu');
  const n = 2;
  const rng = new Rng(1);
  const x = tf.tensor4d(rng.normals(n * 3 * 64), [n, 3, 8, 8]);
  const t = tf.tensor1d([3, 700]);
  const y = tf.tensor1d([1, 5], 'int32');
  const dit = createModel(TINY, 1);
  const dm = await measuredMatmulFlops(() => tf.dispose(dit.forward(x, t, y).out));
  assert.equal(dm / n, modelFlops(TINY).forward());
  const fc = fpdmFrom(TINY, { preDepth: 1, postDepth: 2 });
  const fpdm = createModel(fc, 2);
  for (const iters of [1, 3]) {
    const m = await measuredMatmulFlops(() => {
      const r = fpdm.forward(x, t, y, { iters, trackResiduals: false });
      tf.dispose([r.out, r.state!.z]);
    });
    assert.equal(m / n, modelFlops(fc).forward(iters), `iters ${iters}`);
  }
  console.log(
    `tiny DiT: ${modelFlops(TINY).forward()} FLOPs/sample counted = formula; FPDM per iteration ${modelFlops(fc).perIteration}`,
  );
  dit.dispose();
  fpdm.dispose();
  tf.dispose([x, t, y]);
});

test("XL/2 anchors: an FPDM iteration ≈ 1.48 DiT blocks; DiT-XL/2 = 2 × the DiT paper's 118.6 G multiply-adds", () => {
  const xl = ditPreset('DiT-XL/2');
  const f = modelFlops(fpdmFrom(xl));
  const ratio = f.perIteration / f.perBlock;
  console.log(
    `FPDM-XL/2 iteration / DiT-XL/2 block = ${ratio.toFixed(3)}; DiT-XL/2 forward ${(modelFlops(xl).forward() / 1e9).toFixed(2)} GFLOPs`,
  );
  assert.ok(Math.abs(ratio - 1.48) < 0.005);
  assert.ok(Math.abs(modelFlops(xl).forward() / 2e9 - 118.6) < 0.5);
  assert.ok(Math.abs(modelFlops(ditPreset('DiT-S/2')).forward() / 2e9 - 6.06) < 0.05);
});
