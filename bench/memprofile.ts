// `node --import tsx bench/memprofile.ts [--model dit|fpdm] [--backend cpu|wasm] [--batch 2] [--width 384]
//   [--depth 2] [--heads 6] [--input 32] [--no-grad 5] [--with-grad 7] [--grad-checkpoint] [--top 25]`
//
// Where the memory of one training step goes (a diagnosis tool, not part of the benchmark table):
//   1. the training step of src/training/loop.ts (`trainModel`, one step) under a buffer probe
//      (bench/buffers.ts): peak distinct-buffer bytes vs the engine's per-handle numBytes;
//   2. the same step's forward written out (q_sample, S-JFB, model, hybrid loss) inside
//      tf.variableGrads, stopping at the end of the forward to list what the gradient tape keeps
//      alive: every saved tensor (deduplicated by buffer), grouped by the kernel that saves it and by
//      the kernel that produced it, with shapes;
//   3. a formula for the activations PyTorch autograd keeps for the same model (eager, no
//      checkpointing, math attention), for comparison.
// Runs at small batch on the CPU backends: activation bytes scale linearly with the batch.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendChoice } from '../src/backends/index.js';
import { trainingLosses } from '../src/diffusion/losses.js';
import { createDiffusion, diffusionConfig } from '../src/diffusion/process.js';
import {
  applyLabelDrop,
  createModel,
  fpdmFrom,
  modelName,
  validateConfig,
  type DiTConfig,
  type ModelConfig,
} from '../src/models/index.js';
import { FPDM } from '../src/models/fpdm.js';
import { trainModel } from '../src/training/loop.js';
import { ensureWasmTrainingKernels } from '../src/training/wasm-kernels.js';
import { Rng } from '../src/util/rng.js';
import { latentDataset } from './cases.js';
import { measureBuffers, startBufferProbe } from './buffers.js';

interface TapeNode {
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
}

const MB = (b: number): string => (b / 2 ** 20).toFixed(1);

function args(argv: string[]): Record<string, string | true> {
  const o: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) o[a.slice(2)] = true;
    else {
      o[a.slice(2)] = v;
      i++;
    }
  }
  return o;
}

/**
 * Activations PyTorch autograd keeps for one training step (float32 bytes), eager mode, math attention
 * (scores and probabilities both saved), no checkpointing: per DiT block, per token, in floats:
 *   LN1 in x (D, shared with the residual) + LN out·modulate (D) + modulated (D, qkv input) + qkv (3D)
 *   + q·scale (D) + attn scores (K·T) + softmax out (K·T) + attn out merged (D, proj input) + proj out (D, gate)
 *   + x1 (D) + LN2 (D) + modulated (D, fc1 input) + fc1 out (4D, GELU input) + GELU out (4D, fc2 input)
 *   + fc2 out (D, gate) ≈ 18D + 8D(mlp) + 2·K·T.
 * Weights, gradients, Adam moments and the EMA copy add 4 × params × 4 bytes (+1 × for gradients).
 */
export function torchActivationBytes(c: ModelConfig, batch: number, blocksInGraph: number): number {
  const t = (c.inputSize / c.patchSize) ** 2;
  const d = c.hiddenSize;
  const perTokenFloats = 16 * d + 2 * c.mlpRatio * d + 2 * c.numHeads * t;
  return 4 * batch * t * perTokenFloats * blocksInGraph;
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const backend = parseBackendChoice(String(a.backend ?? 'wasm'));
  await initBackend(backend);
  ensureWasmTrainingKernels();
  const num = (k: string, d: number): number => (a[k] === undefined ? d : Number(a[k]));
  const batch = num('batch', 2);
  const trunk: DiTConfig = validateConfig({
    kind: 'dit',
    inputSize: num('input', 32),
    patchSize: 2,
    inChannels: 4,
    hiddenSize: num('width', 384),
    depth: num('depth', 2),
    numHeads: num('heads', 6),
    mlpRatio: 4,
    classDropoutProb: 0.1,
    numClasses: num('classes', 1000),
    learnSigma: true,
  }) as DiTConfig;
  const ng = num('no-grad', 5);
  const wg = num('with-grad', 7);
  const config: ModelConfig =
    a.model === 'fpdm'
      ? {
          ...fpdmFrom(trunk),
          noGradIters: [ng, ng],
          withGradIters: [wg, wg],
          ...(a['grad-checkpoint'] ? { gradCheckpoint: true } : {}),
        }
      : { ...trunk, ...(a['grad-checkpoint'] ? { gradCheckpoint: true } : {}) };
  const top = num('top', 25);
  console.log(
    `# ${modelName(config)}, batch ${batch}, backend ${tf.getBackend()}${a['grad-checkpoint'] ? ', gradient checkpointing' : ''}`,
  );

  // 1. the loop's own step
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-memprofile-'));
  try {
    const base = tf.memory().numBytes;
    const { buffers } = await measureBuffers(
      () =>
        trainModel({
          model: config,
          diffusion: diffusionConfig(),
          dataset: latentDataset(config, Math.max(batch, 8)),
          steps: 10,
          batch,
          seed: 0,
          outDir: dir,
          checkpointEvery: 1000,
          stopAfter: 1,
        }),
      base,
    );
    console.log(
      `\n## 1. one trainModel step: peak distinct buffers ${MB(buffers.peakBufferBytes - base)} MiB, peak per-handle numBytes ${MB(buffers.peakHandleBytes - base)} MiB (both above the ${MB(base)} MiB alive before)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // 2. the forward's tape
  const model = createModel(config, 0);
  const process_ = createDiffusion(diffusionConfig());
  const rng = new Rng('memprofile');
  const [N, C, H] = [batch, config.inChannels, config.inputSize];
  const x0 = tf.tensor4d(rng.normals(N * C * H * H), [N, C, H, H]);
  const noise = tf.tensor4d(rng.normals(N * C * H * H), [N, C, H, H]);
  const tIdx = Array.from({ length: N }, () => rng.int(0, 999));
  const xT = process_.qSample(x0, tIdx, noise);
  const tModel = process_.modelTimesteps(tIdx);
  const plan = model.sampleTrainingPlan(rng, N);
  const y = tf.tensor1d(
    applyLabelDrop(
      Int32Array.from({ length: N }, (_, i) => i % trunk.numClasses),
      plan.dropMask,
      trunk.numClasses,
    ),
    'int32',
  );
  const state = model instanceof FPDM ? model.noGradState(xT, tModel, y, plan.noGrad) : undefined;
  const paramBytes = [...model.params.values()].reduce((s, v) => s + v.size * 4, 0);
  const before = tf.memory().numBytes; // weights + inputs, one handle per buffer
  const probe = startBufferProbe(before, true);
  let endOfForward = 0;
  const saved = new Map<object, { bytes: number; shape: number[]; by: string; from: string }>();
  const { value, grads } = tf.variableGrads(() => {
    const r = model.forward(
      xT,
      tModel,
      y,
      model instanceof FPDM ? { state, iters: plan.withGrad, trackResiduals: false } : {},
    );
    if (r.state) tf.dispose(r.state.z);
    const loss = tf.mean(
      trainingLosses(process_, { modelOutput: r.out, xStart: x0, xT, noise, t: tIdx }).loss,
    ) as tf.Scalar;
    endOfForward = probe.now();
    const tape = (tf.engine() as unknown as { state: { activeTape: TapeNode[] } }).state.activeTape;
    const producer = new Map<object, string>();
    // the kernel that made a buffer: skip nodes whose output shares an input's buffer (reshape, clone)
    for (const node of tape) {
      const ins = new Set(Object.values(node.inputs).map((t) => t.dataId));
      for (const o of node.outputs)
        if (o && !ins.has(o.dataId) && !producer.has(o.dataId)) producer.set(o.dataId, node.kernelName);
    }
    for (const node of tape) {
      for (const s of node.saved ?? []) {
        if (saved.has(s.dataId)) continue;
        saved.set(s.dataId, {
          bytes: s.size * 4,
          shape: s.shape,
          by: node.kernelName,
          from: producer.get(s.dataId) ?? '(outside the tape)',
        });
      }
    }
    console.log(
      `\n## 2. end of forward: ${tape.length} tape nodes; live distinct buffers ${MB(endOfForward - before)} MiB above weights+inputs (${MB(paramBytes)} MiB of parameters)`,
    );
    return loss;
  }, [...model.params.values()]);
  const rep = probe.stop();
  // a coarse timeline of the step: live buffers every 1/40 of the kernels, and where the peak is
  const tr = rep.trace!;
  const at = tr.findIndex(([, b]) => b === rep.peakBufferBytes);
  console.log(
    `timeline (MiB above weights+inputs, every ${Math.ceil(tr.length / 40)} kernels of ${tr.length}; peak at kernel ${at}, ${tr[at]?.[0]}):`,
  );
  console.log(
    tr
      .filter((_, i) => i % Math.ceil(tr.length / 40) === 0)
      .map(([, b]) => `${MB(b - before)}`)
      .join(' '),
  );
  if (a.around)
    console.log(
      tr
        .slice(Math.max(0, at - Number(a.around)), at + 3)
        .map(([k, b], i) => `${at - Number(a.around) + i}:${k}:${MB(b - before)}`)
        .join(' '),
    );
  const gradBytes = Object.values(grads).reduce((s, g) => s + g.size * 4, 0);
  tf.dispose([value, ...Object.values(grads), x0, noise, xT, tModel, y]);
  if (state) state.z.dispose();
  model.dispose();
  const savedTotal = [...saved.values()].reduce((s, v) => s + v.bytes, 0);
  const fromOutside = [...saved.values()]
    .filter((v) => v.from === '(outside the tape)')
    .reduce((s, v) => s + v.bytes, 0);
  console.log(
    `saved for backprop (distinct buffers): ${MB(savedTotal)} MiB, of which ${MB(fromOutside)} MiB are weights/inputs made outside the tape`,
  );
  console.log(
    `peak of the forward+backward: ${MB(rep.peakBufferBytes - before)} MiB above weights+inputs (per-handle numBytes: ${MB(rep.peakHandleBytes - before)} MiB); gradients ${MB(gradBytes)} MiB`,
  );
  const group = (key: (v: { by: string; from: string; shape: number[] }) => string): [string, number, number][] => {
    const m = new Map<string, [number, number]>();
    for (const v of saved.values()) {
      if (v.from === '(outside the tape)') continue;
      const k = key(v);
      const e = m.get(k) ?? [0, 0];
      m.set(k, [e[0] + v.bytes, e[1] + 1]);
    }
    return [...m.entries()].map(([k, [b, n]]) => [k, b, n] as [string, number, number]).sort((p, q) => q[1] - p[1]);
  };
  console.log('\n### saved activations by the kernel that produced them → the kernel that saves them, shape');
  console.log('| produced by → saved by | shape | count | MiB |\n| --- | --- | --- | --- |');
  for (const [k, b, n] of group((v) => `${v.from} → ${v.by} | [${v.shape.join(', ')}]`).slice(0, top))
    console.log(`| ${k} | ${n} | ${MB(b)} |`);
  console.log('\n### by producing kernel');
  for (const [k, b, n] of group((v) => v.from).slice(0, top)) console.log(`- ${k}: ${MB(b)} MiB (${n} buffers)`);
  const blocks = config.kind === 'dit' ? config.depth : config.preDepth + config.postDepth + plan.withGrad;
  console.log(
    `\n## 3. PyTorch autograd (formula, eager, math attention): ${MB(torchActivationBytes(config, batch, blocks))} MiB of block activations for ${blocks} blocks in the graph`,
  );
}

void main();
