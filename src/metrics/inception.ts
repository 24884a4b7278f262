// Stage 2 of FID/KID/IS: the FID Inception network, exactly as pytorch-fid's `fid_inception_v3`
// (torchvision Inception3 layout with 1008 classes and no aux head, the TF-ported FID blocks):
//
//   block 0  Conv2d_1a_3x3 (s2) → Conv2d_2a_3x3 → Conv2d_2b_3x3 (p1) → max-pool 3/2          → 64
//   block 1  Conv2d_3b_1x1 → Conv2d_4a_3x3 → max-pool 3/2                                    → 192
//   block 2  Mixed_5b/5c/5d (FIDInceptionA) → Mixed_6a (InceptionB) → Mixed_6b–6e (FIDInceptionC) → 768
//   block 3  Mixed_7a (InceptionD) → Mixed_7b (FIDInceptionE_1) → Mixed_7c (FIDInceptionE_2) → global mean → 2048
//
// Quirks reproduced on purpose (they are what makes these the FID weights' network):
//   - the FID A/C/E_1 blocks average-pool 3×3/1 with padding 1 and count_include_pad=False;
//   - Mixed_7c (E_2) max-pools in its pool branch instead of averaging;
//   - every BasicConv2d is conv (no bias) → BatchNorm(eps = 1e-3) → ReLU. BN is folded into the conv
//     once at load: W' = W·γ/√(var+ε), b' = β − mean·γ/√(var+ε).
// Works in NHWC internally (TF.js convolutions); weights are converted from PyTorch's
// [out, in, kh, kw] to TF.js's [kh, kw, in, out] at load. The 1008-class `fc` gives logits for IS.
import * as tf from '@tensorflow/tfjs-core';
import { readWeights } from '../io/index.js';
import { getTensor, toFloat32, type TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { assertShape, checkShape } from '../util/shapes.js';

const BN_EPS = 1e-3;

interface ConvUnit {
  filter: tf.Tensor4D; // [kh, kw, in, out] with BN folded in
  bias: tf.Tensor1D; // [out]
  stride: number;
  pad: [number, number]; // [ph, pw], symmetric as in PyTorch
}

type Pad = [[number, number], [number, number], [number, number], [number, number]];

export type InceptionOutputs = {
  /** [N, 2048] pool3 features (global mean after Mixed_7c) */
  pool3: tf.Tensor2D;
  /** [N, 64] spatial mean of the first max-pool output, when blocks are asked for */
  block0?: tf.Tensor2D;
  /** [N, 192] spatial mean of the second max-pool output */
  block1?: tf.Tensor2D;
  /** [N, 768] spatial mean of Mixed_6e's output */
  block2?: tf.Tensor2D;
  /** [N, 1008] fc logits (for the Inception Score) */
  logits?: tf.Tensor2D;
};

export interface ForwardOptions {
  blocks?: boolean;
  logits?: boolean;
}

/** Names of the 94 conv+BN units (checkpoint prefixes) with their stride and padding. */
function unitSpecs(): [string, number, [number, number]][] {
  const s: [string, number, [number, number]][] = [
    ['Conv2d_1a_3x3', 2, [0, 0]],
    ['Conv2d_2a_3x3', 1, [0, 0]],
    ['Conv2d_2b_3x3', 1, [1, 1]],
    ['Conv2d_3b_1x1', 1, [0, 0]],
    ['Conv2d_4a_3x3', 1, [0, 0]],
  ];
  for (const m of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) {
    s.push(
      [`${m}.branch1x1`, 1, [0, 0]],
      [`${m}.branch5x5_1`, 1, [0, 0]],
      [`${m}.branch5x5_2`, 1, [2, 2]],
      [`${m}.branch3x3dbl_1`, 1, [0, 0]],
      [`${m}.branch3x3dbl_2`, 1, [1, 1]],
      [`${m}.branch3x3dbl_3`, 1, [1, 1]],
      [`${m}.branch_pool`, 1, [0, 0]],
    );
  }
  s.push(
    ['Mixed_6a.branch3x3', 2, [0, 0]],
    ['Mixed_6a.branch3x3dbl_1', 1, [0, 0]],
    ['Mixed_6a.branch3x3dbl_2', 1, [1, 1]],
    ['Mixed_6a.branch3x3dbl_3', 2, [0, 0]],
  );
  for (const m of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) {
    s.push(
      [`${m}.branch1x1`, 1, [0, 0]],
      [`${m}.branch7x7_1`, 1, [0, 0]],
      [`${m}.branch7x7_2`, 1, [0, 3]],
      [`${m}.branch7x7_3`, 1, [3, 0]],
      [`${m}.branch7x7dbl_1`, 1, [0, 0]],
      [`${m}.branch7x7dbl_2`, 1, [3, 0]],
      [`${m}.branch7x7dbl_3`, 1, [0, 3]],
      [`${m}.branch7x7dbl_4`, 1, [3, 0]],
      [`${m}.branch7x7dbl_5`, 1, [0, 3]],
      [`${m}.branch_pool`, 1, [0, 0]],
    );
  }
  s.push(
    ['Mixed_7a.branch3x3_1', 1, [0, 0]],
    ['Mixed_7a.branch3x3_2', 2, [0, 0]],
    ['Mixed_7a.branch7x7x3_1', 1, [0, 0]],
    ['Mixed_7a.branch7x7x3_2', 1, [0, 3]],
    ['Mixed_7a.branch7x7x3_3', 1, [3, 0]],
    ['Mixed_7a.branch7x7x3_4', 2, [0, 0]],
  );
  for (const m of ['Mixed_7b', 'Mixed_7c']) {
    s.push(
      [`${m}.branch1x1`, 1, [0, 0]],
      [`${m}.branch3x3_1`, 1, [0, 0]],
      [`${m}.branch3x3_2a`, 1, [0, 1]],
      [`${m}.branch3x3_2b`, 1, [1, 0]],
      [`${m}.branch3x3dbl_1`, 1, [0, 0]],
      [`${m}.branch3x3dbl_2`, 1, [1, 1]],
      [`${m}.branch3x3dbl_3a`, 1, [0, 1]],
      [`${m}.branch3x3dbl_3b`, 1, [1, 0]],
      [`${m}.branch_pool`, 1, [0, 0]],
    );
  }
  return s;
}

/** Number of conv+BN units in the FID Inception network. */
export const INCEPTION_UNITS = unitSpecs().length; // 94

function foldUnit(w: TensorMap, name: string, stride: number, pad: [number, number], source: string): ConvUnit {
  const W = getTensor(w, `${name}.conv.weight`, source);
  if (W.shape.length !== 4)
    throw new UserError(`${source}: ${name}.conv.weight has shape [${W.shape.join(', ')}], expected [out, in, kh, kw]`);
  const [o, i, kh, kw] = W.shape as [number, number, number, number];
  const gamma = toFloat32(getTensor(w, `${name}.bn.weight`, source));
  const beta = toFloat32(getTensor(w, `${name}.bn.bias`, source));
  const mean = toFloat32(getTensor(w, `${name}.bn.running_mean`, source));
  const variance = toFloat32(getTensor(w, `${name}.bn.running_var`, source));
  for (const [k, v] of [
    ['weight', gamma],
    ['bias', beta],
    ['running_mean', mean],
    ['running_var', variance],
  ] as const) {
    if (v.length !== o) throw new UserError(`${source}: ${name}.bn.${k} has ${v.length} values, expected ${o}`);
  }
  const wf = toFloat32(W);
  // fold in float64, store float32 as [kh, kw, in, out]
  const filter = new Float32Array(kh * kw * i * o);
  const bias = new Float32Array(o);
  for (let oc = 0; oc < o; oc++) {
    const scale = gamma[oc]! / Math.sqrt(variance[oc]! + BN_EPS);
    bias[oc] = beta[oc]! - mean[oc]! * scale;
    for (let ic = 0; ic < i; ic++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++)
          filter[((y * kw + x) * i + ic) * o + oc] = wf[((oc * i + ic) * kh + y) * kw + x]! * scale;
      }
    }
  }
  return { filter: tf.tensor4d(filter, [kh, kw, i, o]), bias: tf.tensor1d(bias), stride, pad };
}

/** pytorch-fid's FID InceptionV3 with BN-folded weights held on the active backend. */
export class FidInception {
  private readonly units = new Map<string, ConvUnit>();
  private readonly fcW: tf.Tensor2D; // [2048, 1008]
  private readonly fcB: tf.Tensor1D; // [1008]
  private readonly countCache = new Map<string, tf.Tensor>();

  /** `weights`: the flat state_dict (566 keys: 94 conv+BN units, num_batches_tracked, fc). */
  constructor(weights: TensorMap, source = 'Inception weights') {
    const missing = unitSpecs().filter(([n]) => !weights.has(`${n}.conv.weight`));
    if (missing.length > 0) {
      throw new UserError(
        `${source} is not the FID Inception state_dict (pt_inception-2015-12-05-6726825d.pth): ${missing.length} of ${INCEPTION_UNITS} conv units are missing, e.g. '${missing[0]![0]}.conv.weight'`,
      );
    }
    try {
      for (const [name, stride, pad] of unitSpecs()) this.units.set(name, foldUnit(weights, name, stride, pad, source));
      const fw = getTensor(weights, 'fc.weight', source);
      checkShape(`${source}: fc.weight`, fw.shape, [1008, 2048]);
      this.fcW = tf.tidy(() => tf.tensor2d(toFloat32(fw), [1008, 2048]).transpose()); // [2048, 1008]
      this.fcB = tf.tensor1d(toFloat32(getTensor(weights, 'fc.bias', source)));
      checkShape(`${source}: fc.bias`, this.fcB.shape, [1008]);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Loads the weights file (.pth legacy/zip or .safetensors) through the common reader. */
  static load(path: string): FidInception {
    return new FidInception(readWeights(path), `'${path}'`);
  }

  dispose(): void {
    for (const u of this.units.values()) {
      u.filter.dispose();
      u.bias.dispose();
    }
    this.units.clear();
    this.fcW?.dispose();
    this.fcB?.dispose();
    for (const t of this.countCache.values()) t.dispose();
    this.countCache.clear();
  }

  /** BasicConv2d: conv + folded BN + ReLU. */
  private conv(name: string, x: tf.Tensor4D): tf.Tensor4D {
    const u = this.units.get(name)!;
    const [ph, pw] = u.pad;
    const pad: Pad | 'valid' =
      ph === 0 && pw === 0
        ? 'valid'
        : [
            [0, 0],
            [ph, ph],
            [pw, pw],
            [0, 0],
          ];
    return tf.fused.conv2d({ x, filter: u.filter, bias: u.bias, strides: u.stride, pad, activation: 'relu' });
  }

  /**
   * 3×3/1 average pool with padding 1 and count_include_pad=False: zero-pad, sum over the window
   * (avg-pool ×9), then divide by the number of real pixels in each window (4, 6 or 9). Written out so
   * that every backend gives the same semantics.
   */
  private avgPoolNoPad(x: tf.Tensor4D): tf.Tensor4D {
    const [, h, w] = x.shape;
    const key = `${h}x${w}`;
    let inv = this.countCache.get(key);
    if (!inv) {
      const c = new Float32Array(h * w);
      for (let y = 0; y < h; y++)
        for (let z = 0; z < w; z++)
          c[y * w + z] =
            9 / ((Math.min(y + 1, h - 1) - Math.max(y - 1, 0) + 1) * (Math.min(z + 1, w - 1) - Math.max(z - 1, 0) + 1));
      inv = tf.keep(tf.tensor4d(c, [1, h, w, 1]));
      this.countCache.set(key, inv);
    }
    const padded = tf.pad(x, [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ]);
    return tf.avgPool(padded, 3, 1, 'valid').mul(inv) as tf.Tensor4D;
  }

  private maxPool(x: tf.Tensor4D, stride: number, pad: 'valid' | 'same'): tf.Tensor4D {
    return tf.maxPool(x, 3, stride, pad);
  }

  private mixedA(m: string, x: tf.Tensor4D): tf.Tensor4D {
    const b1 = this.conv(`${m}.branch1x1`, x);
    const b5 = this.conv(`${m}.branch5x5_2`, this.conv(`${m}.branch5x5_1`, x));
    const b3 = this.conv(`${m}.branch3x3dbl_3`, this.conv(`${m}.branch3x3dbl_2`, this.conv(`${m}.branch3x3dbl_1`, x)));
    const bp = this.conv(`${m}.branch_pool`, this.avgPoolNoPad(x));
    return tf.concat([b1, b5, b3, bp], 3);
  }

  private mixedB(x: tf.Tensor4D): tf.Tensor4D {
    const b3 = this.conv('Mixed_6a.branch3x3', x);
    const bd = this.conv(
      'Mixed_6a.branch3x3dbl_3',
      this.conv('Mixed_6a.branch3x3dbl_2', this.conv('Mixed_6a.branch3x3dbl_1', x)),
    );
    return tf.concat([b3, bd, this.maxPool(x, 2, 'valid')], 3);
  }

  private mixedC(m: string, x: tf.Tensor4D): tf.Tensor4D {
    const b1 = this.conv(`${m}.branch1x1`, x);
    let b7 = x;
    for (const k of ['branch7x7_1', 'branch7x7_2', 'branch7x7_3']) b7 = this.conv(`${m}.${k}`, b7);
    let bd = x;
    for (const k of ['branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5'])
      bd = this.conv(`${m}.${k}`, bd);
    const bp = this.conv(`${m}.branch_pool`, this.avgPoolNoPad(x));
    return tf.concat([b1, b7, bd, bp], 3);
  }

  private mixedD(x: tf.Tensor4D): tf.Tensor4D {
    const b3 = this.conv('Mixed_7a.branch3x3_2', this.conv('Mixed_7a.branch3x3_1', x));
    let b7 = x;
    for (const k of ['branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4'])
      b7 = this.conv(`Mixed_7a.${k}`, b7);
    return tf.concat([b3, b7, this.maxPool(x, 2, 'valid')], 3);
  }

  /** FIDInceptionE_1 (avg pool, count_include_pad=False) when `maxPoolBranch` is false; E_2 (max pool) when true. */
  private mixedE(m: string, x: tf.Tensor4D, maxPoolBranch: boolean): tf.Tensor4D {
    const b1 = this.conv(`${m}.branch1x1`, x);
    const t = this.conv(`${m}.branch3x3_1`, x);
    const b3 = tf.concat([this.conv(`${m}.branch3x3_2a`, t), this.conv(`${m}.branch3x3_2b`, t)], 3);
    const u = this.conv(`${m}.branch3x3dbl_2`, this.conv(`${m}.branch3x3dbl_1`, x));
    const bd = tf.concat([this.conv(`${m}.branch3x3dbl_3a`, u), this.conv(`${m}.branch3x3dbl_3b`, u)], 3);
    // E_2 quirk: the TF graph max-pools here (3×3/1, padding 1 ignored in the max)
    const pooled = maxPoolBranch ? this.maxPool(x, 1, 'same') : this.avgPoolNoPad(x);
    const bp = this.conv(`${m}.branch_pool`, pooled);
    return tf.concat([b1, b3, bd, bp], 3);
  }

  /** x: preprocessed input [N, 299, 299, 3] (NHWC, see preprocess.ts) → pool3 [N, 2048] and, on request, block means / logits. */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): InceptionOutputs {
    assertShape('Inception input', x.shape, [-1, 299, 299, 3]);
    return tf.tidy(() => {
      const out: Partial<InceptionOutputs> = {};
      let h = this.conv('Conv2d_1a_3x3', x); // [N, 149, 149, 32]
      h = this.conv('Conv2d_2a_3x3', h); // [N, 147, 147, 32]
      h = this.conv('Conv2d_2b_3x3', h); // [N, 147, 147, 64]
      h = this.maxPool(h, 2, 'valid'); // [N, 73, 73, 64]
      if (opts.blocks) out.block0 = h.mean([1, 2]) as tf.Tensor2D;
      h = this.conv('Conv2d_3b_1x1', h); // [N, 73, 73, 80]
      h = this.conv('Conv2d_4a_3x3', h); // [N, 71, 71, 192]
      h = this.maxPool(h, 2, 'valid'); // [N, 35, 35, 192]
      if (opts.blocks) out.block1 = h.mean([1, 2]) as tf.Tensor2D;
      h = this.mixedA('Mixed_5b', h); // [N, 35, 35, 256]
      h = this.mixedA('Mixed_5c', h); // [N, 35, 35, 288]
      h = this.mixedA('Mixed_5d', h); // [N, 35, 35, 288]
      h = this.mixedB(h); // [N, 17, 17, 768]
      for (const m of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) h = this.mixedC(m, h); // [N, 17, 17, 768]
      if (opts.blocks) out.block2 = h.mean([1, 2]) as tf.Tensor2D;
      h = this.mixedD(h); // [N, 8, 8, 1280]
      h = this.mixedE('Mixed_7b', h, false); // [N, 8, 8, 2048]
      h = this.mixedE('Mixed_7c', h, true); // [N, 8, 8, 2048]
      const pool3 = h.mean([1, 2]) as tf.Tensor2D; // [N, 2048]
      out.pool3 = pool3;
      if (opts.logits) out.logits = tf.matMul(pool3, this.fcW).add(this.fcB) as tf.Tensor2D; // [N, 1008]
      return out as InceptionOutputs;
    });
  }
}
