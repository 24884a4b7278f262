// A small MNIST CNN whose penultimate layer is the feature space of the `fd_mnist` metric: a
// Fréchet distance for runs without Inception weights (reported as fd_mnist, never as FID).
//
// Architecture (PyTorch-style parameter names and layouts, so the weights load into torch as is):
//   input  [N, 1, 28, 28] grey in [−1, 1] (background −1)
//   conv1  5×5 valid, 1→32, ReLU, max-pool 2   → [N, 32, 12, 12]
//   conv2  5×5 valid, 32→64, ReLU, max-pool 2  → [N, 64, 4, 4]
//   flatten (C, H, W order, as torch)           → [N, 1024]
//   fc1    1024→128, ReLU                       → [N, 128]  ← the features (F = 128, post-ReLU)
//   fc2    128→10                               → [N, 10] logits
// 184 586 parameters. TF.js convolutions are NHWC, so the forward converts at its entry and back
// before flattening; the convolutions carry their own gradient (see conv2dValid).
//
// Mapping generated images to the classifier input (`toClassifierInput`): channels are averaged
// (MNIST's 3-channel form repeats the grey channel); 28×28 is used as is; 32×32 is center-cropped to
// 28×28 (the exact inverse of the MNIST loader's 2-px zero padding); any other size is resized to
// 28×28 with an antialiased bilinear filter (Pillow's BILINEAR on floats).
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors } from '../io/safetensors.js';
import { f32, toFloat32, type TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { assertShape, shapeStr } from '../util/shapes.js';
import { PACKAGE_ROOT } from '../util/version.js';
import { resizeF32 } from '../data/resample.js';

export const MNIST_CLASSIFIER_INPUT_SIZE = 28;
export const MNIST_FEATURE_DIM = 128;
/** The shipped weights (trained by scripts/train-mnist-classifier.ts). */
export const MNIST_CLASSIFIER_WEIGHTS = join(PACKAGE_ROOT, 'assets', 'mnist_classifier.safetensors');

export const MNIST_CLASSIFIER_SHAPES = {
  'conv1.weight': [32, 1, 5, 5],
  'conv1.bias': [32],
  'conv2.weight': [64, 32, 5, 5],
  'conv2.bias': [64],
  'fc1.weight': [MNIST_FEATURE_DIM, 1024],
  'fc1.bias': [MNIST_FEATURE_DIM],
  'fc2.weight': [10, MNIST_FEATURE_DIM],
  'fc2.bias': [10],
} as const satisfies Record<string, readonly number[]>;

export type MnistParamName = keyof typeof MNIST_CLASSIFIER_SHAPES;
export const MNIST_PARAM_NAMES = Object.keys(MNIST_CLASSIFIER_SHAPES) as MnistParamName[];
export type MnistClassifierParams = Record<MnistParamName, tf.Variable>;

/**
 * Stride-1 'valid' 2-D convolution with its gradient written out, because the wasm backend has no
 * Conv2DBackpropFilter kernel (training with plain tf.conv2d fails there). The filter gradient is
 * itself a convolution: dW[a, b, i, o] = Σ_{n,y,x} X[n, y+a, x+b, i] · dY[n, y, x, o], i.e. conv2d of
 * Xᵀ [I, H, W, N] with dYᵀ [H', W', N, O]; the input gradient is the full convolution of dY with
 * the flipped filter, also a conv2d (wasm's Conv2DBackpropInput is ~10× slower than its conv2d).
 * x: [N, H, W, I], w: [kh, kw, I, O] → [N, H−kh+1, W−kw+1, O].
 */
export const conv2dValid = tf.customGrad(((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.conv2d(x, w, 1, 'valid'),
    gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
      const [kh, kw] = ws.shape;
      const dyPad = tf.pad(dy, [
        [0, 0],
        [kh - 1, kh - 1],
        [kw - 1, kw - 1],
        [0, 0],
      ]) as tf.Tensor4D; // [N, H+kh−1, W+kw−1, O]
      const wFlip = tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D; // [kh, kw, O, I]
      const dx = tf.conv2d(dyPad, wFlip, 1, 'valid'); // [N, H, W, I]
      const dwT = tf.conv2d(tf.transpose(xs, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid'); // [I, kh, kw, O]
      return [dx, tf.transpose(dwT, [1, 2, 0, 3])]; // [N, H, W, I], [kh, kw, I, O]
    },
  };
}) as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]) as (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D;

export class MnistClassifier {
  constructor(readonly params: MnistClassifierParams) {}

  /** PyTorch's default initialisation (U(±1/√fan_in) for weights and biases), from a host Rng. */
  static init(rng: Rng): MnistClassifier {
    const params = {} as MnistClassifierParams;
    for (const name of MNIST_PARAM_NAMES) {
      const shape = MNIST_CLASSIFIER_SHAPES[name];
      const weightShape = MNIST_CLASSIFIER_SHAPES[name.replace('.bias', '.weight') as MnistParamName];
      const fanIn = weightShape.slice(1).reduce((a: number, b: number) => a * b, 1);
      const bound = 1 / Math.sqrt(fanIn);
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * bound;
      params[name] = tf.variable(tf.tensor(data, [...shape]), true, `mnist_classifier/${name}`);
    }
    return new MnistClassifier(params);
  }

  /** From host tensors; the first tensor that is missing or has the wrong shape is a UserError. */
  static fromTensorMap(map: TensorMap, source: string): MnistClassifier {
    const params = {} as MnistClassifierParams;
    for (const name of MNIST_PARAM_NAMES) {
      const t = map.get(name);
      const expected = MNIST_CLASSIFIER_SHAPES[name];
      if (!t)
        throw new UserError(`${source}: tensor '${name}' is missing; it is not an fpdm-exp MNIST classifier file`);
      if (shapeStr(t.shape) !== shapeStr(expected)) {
        throw new UserError(
          `${source}: tensor '${name}' has shape ${shapeStr(t.shape)}, expected ${shapeStr(expected)}`,
        );
      }
      params[name] = tf.variable(tf.tensor(toFloat32(t), [...expected]), false, `mnist_classifier/${name}`);
    }
    return new MnistClassifier(params);
  }

  /** The weights as host tensors (read asynchronously: webgpu cannot read synchronously under Node). */
  async toTensorMap(): Promise<TensorMap> {
    const map: TensorMap = new Map();
    for (const name of MNIST_PARAM_NAMES)
      map.set(name, f32(MNIST_CLASSIFIER_SHAPES[name], (await this.params[name].data()) as Float32Array));
    return map;
  }

  /** x: [N, 1, 28, 28] in [−1, 1] → features [N, 128] (post-ReLU fc1) and logits [N, 10]. */
  forward(x: tf.Tensor4D): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    assertShape('MNIST classifier input', x.shape, [-1, 1, MNIST_CLASSIFIER_INPUT_SIZE, MNIST_CLASSIFIER_INPUT_SIZE]);
    return tf.tidy(() => {
      const p = this.params;
      const n = x.shape[0];
      const hwio = (w: tf.Tensor) => tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D; // [O, I, kh, kw] → [kh, kw, I, O]
      let h = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D; // [N, 28, 28, 1]
      h = tf.relu(tf.add(conv2dValid(h, hwio(p['conv1.weight'])), p['conv1.bias'])) as tf.Tensor4D; // [N, 24, 24, 32]
      h = tf.maxPool(h, 2, 2, 'valid'); // [N, 12, 12, 32]
      h = tf.relu(tf.add(conv2dValid(h, hwio(p['conv2.weight'])), p['conv2.bias'])) as tf.Tensor4D; // [N, 8, 8, 64]
      h = tf.maxPool(h, 2, 2, 'valid'); // [N, 4, 4, 64]
      const flat = tf.reshape(tf.transpose(h, [0, 3, 1, 2]), [n, 1024]) as tf.Tensor2D; // [N, 1024] in (C, H, W) order
      const features = tf.relu(tf.add(tf.matMul(flat, p['fc1.weight'], false, true), p['fc1.bias'])) as tf.Tensor2D; // [N, 128]
      const logits = tf.add(tf.matMul(features, p['fc2.weight'], false, true), p['fc2.bias']) as tf.Tensor2D; // [N, 10]
      return { features, logits };
    });
  }

  dispose(): void {
    for (const name of MNIST_PARAM_NAMES) this.params[name].dispose();
  }
}

/** Loads classifier weights (default: the shipped ones). */
export function loadMnistClassifier(path = MNIST_CLASSIFIER_WEIGHTS): MnistClassifier {
  const { tensors } = readSafetensors(path);
  return MnistClassifier.fromTensorMap(tensors, path);
}

/**
 * Maps images [N, C, H, W] (C 1 or 3, H = W, values in [−1, 1]) to the classifier input
 * [N, 1, 28, 28]: channel mean, then as is (28), center crop (32) or bilinear resize (other sizes).
 */
export function toClassifierInput(x: Float32Array, shape: readonly number[]): Float32Array {
  assertShape('images for the MNIST classifier', shape, [-1, -1, -1, -1]);
  const [n, c, h, w] = shape as [number, number, number, number];
  if (c !== 1 && c !== 3) throw new UserError(`images for the MNIST classifier have ${c} channels; expected 1 or 3`);
  if (h !== w) throw new UserError(`images for the MNIST classifier are ${h}×${w}; expected square images`);
  if (x.length !== n * c * h * w)
    throw new Error(`toClassifierInput: ${x.length} values do not fill ${shapeStr(shape)}`);
  const s = MNIST_CLASSIFIER_INPUT_SIZE;
  const out = new Float32Array(n * s * s); // [N, 1, 28, 28]
  const grey = new Float32Array(h * w); // [H, W]
  for (let i = 0; i < n; i++) {
    grey.fill(0);
    for (let k = 0; k < c; k++) {
      const base = (i * c + k) * h * w;
      for (let j = 0; j < h * w; j++) grey[j]! += x[base + j]! / c;
    }
    if (h === s) {
      out.set(grey, i * s * s);
    } else if (h === 32) {
      for (let y = 0; y < s; y++) out.set(grey.subarray((y + 2) * 32 + 2, (y + 2) * 32 + 2 + s), i * s * s + y * s);
    } else {
      out.set(resizeF32(grey, h, w, s, s, 'bilinear'), i * s * s);
    }
  }
  return out;
}

/** Runs `fn` over [N, 1, 28, 28] inputs in chunks of `batch`, concatenating the rows it returns. */
async function mapBatches(
  model: MnistClassifier,
  input: Float32Array,
  batch: number,
  pick: (o: { features: tf.Tensor2D; logits: tf.Tensor2D }) => tf.Tensor2D,
  width: number,
): Promise<Float32Array> {
  const px = MNIST_CLASSIFIER_INPUT_SIZE * MNIST_CLASSIFIER_INPUT_SIZE;
  const n = input.length / px;
  const out = new Float32Array(n * width);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const rows = tf.tidy(() => {
      const x = tf.tensor4d(input.subarray(s * px, (s + m) * px), [
        m,
        1,
        MNIST_CLASSIFIER_INPUT_SIZE,
        MNIST_CLASSIFIER_INPUT_SIZE,
      ]);
      return pick(model.forward(x));
    });
    try {
      out.set((await rows.data()) as Float32Array, s * width);
    } finally {
      rows.dispose();
    }
  }
  return out;
}

/** Penultimate-layer features of images [N, C, H, W] in [−1, 1] → [N, 128] (row-major). */
export async function mnistFeatures(
  model: MnistClassifier,
  x: Float32Array,
  shape: readonly number[],
  batch = 250,
): Promise<Float32Array> {
  return mapBatches(model, toClassifierInput(x, shape), batch, (o) => o.features, MNIST_FEATURE_DIM);
}

/** Predicted digit of each image [N, C, H, W] in [−1, 1] → [N]. */
export async function mnistPredict(
  model: MnistClassifier,
  x: Float32Array,
  shape: readonly number[],
  batch = 250,
): Promise<Int32Array> {
  const logits = await mapBatches(model, toClassifierInput(x, shape), batch, (o) => o.logits, 10);
  const n = logits.length / 10;
  const pred = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < 10; k++) if (logits[i * 10 + k]! > logits[i * 10 + best]!) best = k;
    pred[i] = best;
  }
  return pred;
}

/** Fraction of images whose predicted digit equals the label. */
export async function mnistAccuracy(
  model: MnistClassifier,
  x: Float32Array,
  shape: readonly number[],
  labels: Int32Array,
): Promise<number> {
  const pred = await mnistPredict(model, x, shape);
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / pred.length;
}
