// `npm run bench [-- --suite train,sample,inception,cpu] [--backend webgpu|wasm|cpu] [--precision fp32|mixed] [--quick] [--out results/bench]`
//
// Runs the PyTorch side first (bench/torch_ref.py as a child process, when python3 with torch and a
// CUDA GPU are present; it frees the GPU when it exits), then ours on the chosen backend, and writes
// `<out>/<date>-<backend>[-quick].json` and `<out>/latest-<backend>.md` with ratios ours ÷ PyTorch.
// Works from source (tsx) and bundled (esbuild → one .mjs): everything it reads is found from the
// working directory (the repository root) or environment variables, never from this file's location.
//
//   sizes      full: DiT-S/2 and FPDM-S/2 (1/1) at batch 32, then the XL/2 pair (bounded: a few steps,
//              sampling measured at a 2-step budget and extrapolated); --quick: no XL. On the cpu/wasm
//              backends --quick replaces the S/2 pair by a tiny pair (16×16×4 latents, D 64, depth 6,
//              10 classes, batch 4) so the suite finishes in minutes on two cores.
//   fixtures   Inception weights: $FPDM_INCEPTION_WEIGHTS, else inception_fid_ternary.legacy.pt in
//              $FPDM_FIXTURES or tests/fixtures.
//   precision  fp32: PyTorch in float32 with TF32 off. mixed (ours on f16 tensor cores): PyTorch measures
//              every case twice in the same call, float32 and autocast float16 (GradScaler's dynamic loss
//              scaling in training), and every row gives ours ÷ each.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  activeBackend,
  initBackend,
  parseBackendChoice,
  parsePrecision,
  type BackendChoice,
  type Precision,
} from '../src/backends/index.js';
import { setKernelOptions } from '../src/backends/kernels.js';
import {
  createModel,
  ditPreset,
  fpdmFrom,
  modelName,
  validateConfig,
  type AnyModel,
  type DiTConfig,
  type ModelConfig,
} from '../src/models/index.js';
import { atomicWrite } from '../src/util/fs.js';
import { UserError } from '../src/util/errors.js';
import { log } from '../src/util/log.js';
import {
  BENCH_NO_GRAD,
  BENCH_WITH_GRAD,
  benchSettings,
  benchTrainConfig,
  measureInception,
  measureSample,
  measureTrain,
  trainStepFlops,
  type SampleCase,
} from './cases.js';
import {
  markdown,
  sampleLabel,
  sampleRow,
  targets,
  trainRow,
  type BenchDoc,
  type CpuRow,
  type SampleRow,
  type TrainRow,
} from './report.js';
import { readTorchJson, runTorchRef, type TorchResult } from './torch.js';

export const SUITES = ['train', 'sample', 'inception', 'cpu'] as const;
export type Suite = (typeof SUITES)[number];

export interface BenchOptions {
  suites: Suite[];
  backend: BackendChoice;
  /** 'mixed': our forward matmuls on f16 tensor cores (webgpu); default fp32 */
  precision?: Precision;
  quick: boolean;
  /** output directory (created); null = do not write files */
  out: string | null;
  /** timed training steps (S size; XL takes max(2, steps / 3)); warm-up steps before them */
  steps: number;
  warmup: number;
  batch: number;
  /** skip the PyTorch side, or take it from a JSON file recorded earlier */
  torch: 'run' | 'skip' | { json: string };
  /** replaces the model sizes (tests): the DiT trunk of the pair, its batch, and the sampling budget */
  tiny?: { trunk: DiTConfig; batch: number; budget: number };
  inceptionBatch?: number;
  /** model sizes of the full run (default S and XL; --quick: S) */
  sizes?: Array<'S' | 'XL'>;
  /** training variants, gradient checkpointing off and/or on (default off); 'on' runs first (less memory) */
  gradCheckpoint?: Array<'off' | 'on'>;
  /** the command line, recorded */
  command?: string;
  /** webgpu: WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE values to measure training with (the last one is kept for the rest) */
  submitBatch?: number[];
  /** fused optimizer kernels off and/or on (webgpu; default on); the last is kept for the rest */
  fusedOptimizer?: Array<'off' | 'on'>;
  /** fused block kernels off and/or on (webgpu; default on); the last is kept for the rest */
  fusedBlock?: Array<'off' | 'on'>;
  /** explicit training variants (replace the cross product of the three options above) */
  variants?: Variant[];
  /** settings the sampling rows are measured under, each in turn (default: the last training variant's) */
  sampleVariants?: Variant[];
  /** measure peak memory (one extra profiled step of a fresh run per training row); default on */
  memory?: boolean;
  /** most warm-up steps before the timed ones when the step time is not yet flat (default S 12, XL 4) */
  maxWarmup?: number;
}

/** The tiny pair used by --quick on CPU backends (see the file header). */
export function tinyTrunk(): DiTConfig {
  return validateConfig({
    kind: 'dit',
    inputSize: 16,
    patchSize: 2,
    inChannels: 4,
    hiddenSize: 64,
    depth: 6,
    numHeads: 4,
    mlpRatio: 4,
    classDropoutProb: 0.1,
    numClasses: 10,
    learnSigma: true,
  });
}

interface SizePlan {
  size: string;
  trunk: DiTConfig;
  batch: number;
  steps: number;
  warmup: number;
  maxWarmup: number;
  /** DiT-step budget measured for sampling */
  budget: number;
  sampleRepeats: number;
}

function sizePlans(o: BenchOptions, backend: string): SizePlan[] {
  if (o.tiny)
    return [
      {
        size: 'tiny',
        trunk: o.tiny.trunk,
        batch: o.tiny.batch,
        steps: o.steps,
        warmup: o.warmup,
        maxWarmup: o.maxWarmup ?? o.warmup,
        budget: o.tiny.budget,
        sampleRepeats: 1,
      },
    ];
  const cpuLike = backend === 'cpu' || backend === 'wasm';
  if (o.quick && cpuLike)
    return [
      {
        size: 'tiny',
        trunk: tinyTrunk(),
        batch: 4,
        steps: o.steps,
        warmup: o.warmup,
        maxWarmup: o.maxWarmup ?? o.warmup,
        budget: 20,
        sampleRepeats: 1,
      },
    ];
  const sizes = o.sizes ?? (o.quick ? ['S'] : ['S', 'XL']);
  const plans: SizePlan[] = [];
  if (sizes.includes('S'))
    plans.push({
      size: 'S',
      trunk: ditPreset('DiT-S/2'),
      batch: o.batch,
      steps: o.steps,
      warmup: o.warmup,
      maxWarmup: o.maxWarmup ?? 12,
      budget: 20,
      sampleRepeats: SAMPLE_REPEATS,
    });
  if (sizes.includes('XL'))
    plans.push({
      size: 'XL',
      trunk: ditPreset('DiT-XL/2'),
      batch: o.batch,
      steps: Math.max(1, Math.floor(o.steps / 3)),
      warmup: 1,
      maxWarmup: Math.min(o.maxWarmup ?? 4, 4),
      budget: 2,
      sampleRepeats: SAMPLE_REPEATS,
    });
  return plans;
}

/**
 * Timed sampling passes per case at S/2 and XL/2 (images/s from their median; bench/torch_ref.py times as
 * many): one pass alone moved by up to 15 % between calls at XL/2 (NOTES §20).
 */
const SAMPLE_REPEATS = 3;

function pair(trunk: DiTConfig): [ModelConfig, ModelConfig] {
  return [trunk, fpdmFrom(trunk)];
}

function sampleCases(p: SizePlan): SampleCase[] {
  const [dit, fpdm] = pair(p.trunk);
  return [
    { config: dit, budget: p.budget, steps: p.budget, reuse: false },
    { config: fpdm, budget: p.budget, steps: p.budget, reuse: false },
    { config: fpdm, budget: p.budget, steps: 2 * p.budget, reuse: true },
  ];
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);

function gitCommitOfCwd(): string | null {
  // a bundle (the GPU machine) carries the commit recorded by scripts/gpu/prepare.sh; it wins over the
  // .git there, which may be a stale copy of the repository's history
  const recorded =
    process.env.FPDM_GIT_COMMIT ??
    (process.env.APP && existsSync(join(process.env.APP, 'COMMIT'))
      ? readFileSync(join(process.env.APP, 'COMMIT'), 'utf8').trim()
      : null);
  if (recorded) return `${recorded} (recorded at bundling)`;
  try {
    const opts = { stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'], encoding: 'utf8' as const };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim().length > 0;
    return head + (dirty ? '-dirty' : '');
  } catch {
    return null;
  }
}

function packageVersionOfCwd(): string | null {
  try {
    return (JSON.parse(readFileSync(resolve('package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

export function findInceptionWeights(): string | null {
  const env = process.env.FPDM_INCEPTION_WEIGHTS;
  if (env) return env;
  const dirs = [process.env.FPDM_FIXTURES, resolve('tests', 'fixtures')].filter((d): d is string => Boolean(d));
  for (const d of dirs) {
    const p = join(d, 'inception_fid_ternary.legacy.pt');
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * Parses `SB:OPT:BLOCK[:EPI[:RAW[:STEP]]][,…]`, e.g. `15:off:off,200:on:on:on:on:on` (submit batch, fused
 * optimizer, fused block kernels, their epilogue fusions, the direct-dispatch block, the whole training
 * step on it without a tape; RAW and STEP are off when left out, so a variant string keeps the meaning it
 * had before they existed).
 */
export function parseVariants(s: string, flag: string): Variant[] {
  return s.split(',').map((item) => {
    const m = /^(\d+):(on|off):(on|off)(?::(on|off|nobias)(?::(on|off)(?::(on|off))?)?)?$/.exec(item.trim());
    if (!m || Number(m[1]) < 1)
      throw new UserError(
        `${flag}: '${item}' is not SUBMIT_BATCH:on|off:on|off[:on|off|nobias[:on|off[:on|off]]] (e.g. 200:on:on, 200:on:on:off without the fused epilogues, 200:on:on:on:on with the direct-dispatch block, 200:on:on:on:on:on with the whole training step on it, no tape)`,
      );
    return {
      submitBatch: Number(m[1]),
      fused: m[2] === 'on',
      block: m[3] === 'on',
      epilogue: m[4] !== 'off',
      bias: m[4] !== 'off' && m[4] !== 'nobias',
      raw: m[5] === 'on',
      step: m[6] === 'on',
      last: false,
    };
  });
}

/**
 * submit batch, fused optimizer, fused block kernels, their epilogue fusions (bias in matMul, gated
 * residual, Σ_T gate gradients), the whole block on directly dispatched kernels (src/backends/webgpu/dit-block.ts)
 */
export interface Variant {
  submitBatch: number | null;
  fused: boolean;
  block: boolean;
  epilogue: boolean;
  bias: boolean;
  raw: boolean;
  /** with raw: the whole training step without a tape (src/backends/webgpu/train-step.ts) */
  step: boolean;
  last: boolean;
}

function trainVariants(o: BenchOptions): Variant[] {
  if (o.variants?.length) return o.variants.map((v, i, all) => ({ ...v, last: i === all.length - 1 }));
  const sb: Array<number | null> = o.submitBatch?.length ? o.submitBatch : [null];
  const fo = o.fusedOptimizer?.length ? o.fusedOptimizer : ['on' as const];
  const fb = o.fusedBlock?.length ? o.fusedBlock : ['on' as const];
  const out: Variant[] = [];
  for (const k of fb)
    for (const f of fo)
      for (const b of sb)
        out.push({
          submitBatch: b,
          fused: f === 'on',
          block: k === 'on',
          epilogue: true,
          bias: true,
          raw: true,
          step: true,
          last: false,
        });
  out[out.length - 1]!.last = true;
  return out;
}

function applyVariant(v: Variant): void {
  if (v.submitBatch !== null && tf.getBackend() === 'webgpu')
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', v.submitBatch);
  setKernelOptions({
    fusedOptimizer: v.fused,
    fusedBlock: v.block,
    fusedEpilogue: v.epilogue,
    fusedBias: v.bias,
    rawBlock: v.raw,
    directStep: v.step,
  });
}

function variantText(v: Variant): string {
  return tf.getBackend() === 'webgpu'
    ? ` (submit batch ${tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')}, fused optimizer ${v.fused ? 'on' : 'off'}, fused block kernels ${v.block ? (v.epilogue ? (v.bias ? 'on' : 'on, bias not in the matMul') : 'on without epilogues') : 'off'}, direct-dispatch block ${v.raw ? 'on' : 'off'}, training step without a tape ${v.raw && v.step ? 'on' : 'off'})`
    : '';
}

/** Runs the selected suites and returns the document (also written under `out` when set). */
export async function runBench(o: BenchOptions): Promise<BenchDoc> {
  const info = await initBackend(o.backend, { precision: o.precision ?? 'fp32' });
  // ours at mixed precision: every row against PyTorch's autocast float16 and its float32 rows
  const mixed = info.precision === 'mixed';
  const plans = sizePlans(o, info.name);
  const notes: string[] = [
    `S-JFB draws fixed to n_ng = ${BENCH_NO_GRAD}, n_g = ${BENCH_WITH_GRAD} (means of U{0..10} and U{1..12}, the latter 6.5 rounded up) on both sides`,
    'ours: peak memory = TF.js engine live tensor bytes at the worst kernel of one profiled training step (weights, AdamW moments, EMA copy, gradients, activations); pooled buffers not included (backend pool shown apart); on webgpu the scratch buffers of the direct-dispatch kernels (intermediates shared by all block calls, not tensors; held by the process, so a row may include those of rows run before it) shown apart and added to ours in the memory ratios and the FPDM/DiT target. PyTorch: torch.cuda.max_memory_allocated (same contents, caching-allocator blocks in use)',
    'training: 1000 classes (tiny: 10), learned sigma, hybrid loss, AdamW lr 1e-4, EMA 0.9999, batch from the table; images/s = batch / median step seconds after warm-up',
    `sampling: DDPM over respaced steps, no CFG, one batch; images/s and wall ms from the median of ${SAMPLE_REPEATS} timed passes (ours after two warm-up passes, the second profiled; PyTorch after one); budgets below 20 are measured at that budget and extrapolated to 20 (images/s × budget / 20)`,
  ];
  const torchWanted = o.suites.some((s) => s === 'train' || s === 'sample' || s === 'inception');
  let torch: TorchResult;
  if (o.torch === 'skip' || !torchWanted)
    torch = { available: false, reason: o.torch === 'skip' ? '--no-torch' : 'no suite with a PyTorch side' };
  else if (o.torch === 'run') {
    if (o.tiny || plans[0]!.size === 'tiny')
      torch = {
        available: false,
        reason: 'reduced (tiny) model sizes: the PyTorch side runs only the S/2 and XL/2 presets',
      };
    else {
      log('bench: running the PyTorch side (bench/torch_ref.py)');
      torch = runTorchRef({
        suites: o.suites,
        quick: o.quick,
        steps: o.steps,
        noGradIters: BENCH_NO_GRAD,
        withGradIters: BENCH_WITH_GRAD,
        sampleBudget: Object.fromEntries(plans.map((p) => [p.size, p.budget])),
        sizes: plans.map((p) => p.size),
        gradCheckpoint: o.gradCheckpoint,
        precisions: mixed ? ['fp32', 'fp16'] : undefined,
      });
    }
  } else torch = readTorchJson(o.torch.json);
  if (!torch.available) log(`bench: PyTorch side not measured: ${torch.reason}`);

  const train: TrainRow[] = [];
  const sample: SampleRow[] = [];
  let inception: BenchDoc['inception'] = null;
  const cpu: CpuRow[] = [];
  // Order: the S pair (train, sample), Inception, then XL: a model too large for the device (DiT-XL/2
  // training on naive kernels may not fit) comes last, so a failure there costs no other row. Within a
  // pair FPDM trains first for the same reason.
  const runInception = async (): Promise<void> => {
    const cpuLike = info.name === 'cpu' || info.name === 'wasm';
    const batch = o.inceptionBatch ?? (o.quick && cpuLike ? 2 : 50);
    const torchIps = torch.inception?.imagesPerSecond ?? null;
    const weights = findInceptionWeights();
    if (!weights) {
      inception = {
        ours: null,
        torchImagesPerSecond: torchIps,
        ratio: null,
        error:
          'Inception weights not found: set FPDM_INCEPTION_WEIGHTS or FPDM_FIXTURES (inception_fid_ternary.legacy.pt)',
      };
    } else {
      log(`bench: inception, batch ${batch}`);
      try {
        const m = await measureInception(weights, batch, 1, o.quick ? 2 : 5);
        // the ratio compares images/s; PyTorch runs batch 50 (ours too on the GPU)
        inception = { ours: m, torchImagesPerSecond: torchIps, ratio: torchIps ? m.imagesPerSecond / torchIps : null };
      } catch (e) {
        inception = { ours: null, torchImagesPerSecond: torchIps, ratio: null, error: errText(e) };
      }
    }
  };
  // written after each model size and at the end, so a crash of a later case (e.g. an XL model that
  // exhausts GPU memory, which Dawn reports by aborting the process) keeps what was measured before it
  const snapshot = (partial: string | null): BenchDoc => {
    const backendInfo = activeBackend();
    const doc: BenchDoc = {
      date: new Date().toISOString(),
      command: o.command ?? 'runBench()',
      backend: {
        name: backendInfo.name,
        version: backendInfo.version,
        device: backendInfo.device,
        precision: backendInfo.precision ?? 'fp32',
      },
      versions: {
        'fpdm-exp': packageVersionOfCwd(),
        node: process.version,
        'tfjs-core': tf.version_core,
        [backendInfo.package]: backendInfo.version ?? null,
        torch: torch.torch ?? null,
      },
      gitCommit: gitCommitOfCwd(),
      quick: o.quick,
      settings: benchSettings(),
      notes: [
        ...(partial ? [`PARTIAL: ${partial}`] : []),
        ...(plans[0]!.size === 'tiny'
          ? [
              ...notes,
              `reduced sizes: ${modelName(plans[0]!.trunk)} on ${plans[0]!.trunk.inputSize}×${plans[0]!.trunk.inputSize}×${plans[0]!.trunk.inChannels}, ${plans[0]!.trunk.numClasses} classes, batch ${plans[0]!.batch}`,
            ]
          : notes),
      ],
      torch,
      train,
      sample,
      inception,
      cpu,
      targets: targets(train, sample, mixed),
    };
    if (o.out) {
      mkdirSync(o.out, { recursive: true });
      const day = doc.date.slice(0, 10);
      const base = `${day}-${doc.backend.name}${o.quick ? '-quick' : ''}`;
      atomicWrite(join(o.out, `${base}.json`), JSON.stringify(doc, null, 1) + '\n');
      atomicWrite(join(o.out, `latest-${doc.backend.name}.md`), markdown(doc));
      log(`bench: wrote ${join(o.out, `${base}.json`)} and ${join(o.out, `latest-${doc.backend.name}.md`)}`);
    }
    return doc;
  };
  for (const [index, p] of plans.entries()) {
    if (o.suites.includes('train')) {
      // checkpointed variants first (less memory), FPDM before DiT: what may not fit runs last
      for (const variant of trainVariants(o)) {
        applyVariant(variant);
        for (const ck of (['on', 'off'] as const).filter((v) => (o.gradCheckpoint ?? ['off']).includes(v))) {
          const ckpt = ck === 'on';
          const at = train.length; // rows go in at this index as they finish: table order DiT, then FPDM
          for (const c of [...pair(p.trunk)].reverse()) {
            const name = modelName(c);
            log(
              `bench: train ${name}${ckpt ? ' (gradient checkpointing)' : ''}, batch ${p.batch}, ${p.warmup}–${Math.max(p.warmup, p.maxWarmup)} warm-up + ${p.steps} timed steps${variantText(variant)}`,
            );
            try {
              train.splice(
                at,
                0,
                trainRow(
                  name,
                  p.batch,
                  await measureTrain(c, p.batch, p.warmup, p.steps, ckpt, {
                    maxWarmup: p.maxWarmup,
                    memory: o.memory !== false && variant.last,
                  }),
                  torch,
                  undefined,
                  ckpt,
                  mixed,
                ),
              );
            } catch (e) {
              if (e instanceof UserError) throw e;
              log(`bench: train ${name} failed: ${errText(e)}`);
              train.splice(at, 0, trainRow(name, p.batch, null, torch, errText(e), ckpt, mixed));
            }
            snapshot(`written during the ${p.size} training rows; later cases had not run yet`);
          }
        }
      }
    }
    if (o.suites.includes('sample')) {
      const sampleVariants = o.sampleVariants?.length
        ? o.sampleVariants.map((v, i, all) => ({ ...v, last: i === all.length - 1 }))
        : [null];
      for (const sv of sampleVariants) {
        if (sv) applyVariant(sv);
        const built = new Map<ModelConfig, AnyModel>();
        for (const sc of sampleCases(p)) {
          const name = modelName(sc.config);
          // FPDM (1 pre, 1 post): steps·(2 + iters) = depth·budget block evaluations, as torch_ref.py plans it
          const iters =
            sc.config.kind === 'fpdm'
              ? (sc.config.depth * sc.budget) / sc.steps - sc.config.preDepth - sc.config.postDepth
              : null;
          const match = { model: name, steps: sc.steps, iters, reuse: sc.reuse, batch: p.batch };
          log(
            `bench: sample ${name}, budget ${sc.budget}, ${sc.steps} steps${sc.reuse ? ', reuse' : ''}${sv ? variantText(sv) : ''}`,
          );
          try {
            let model = built.get(sc.config);
            if (!model) {
              for (const m of built.values()) m.dispose(); // one model alive at a time
              built.clear();
              model = createModel(sc.config, 0);
              built.set(sc.config, model);
            }
            const m = await measureSample(model, sc, p.batch, p.sampleRepeats);
            sample.push(sampleRow(sampleLabel(m), match, m, torch, undefined, mixed));
          } catch (e) {
            if (e instanceof UserError) throw e;
            log(`bench: sample ${name} failed: ${errText(e)}`);
            sample.push(
              sampleRow(
                `${name}, ${sc.steps} steps${sc.reuse ? ', reuse' : ''}`,
                match,
                null,
                torch,
                errText(e),
                mixed,
              ),
            );
          }
        }
        for (const m of built.values()) m.dispose();
      }
    }
    if (index === 0 && o.suites.includes('inception')) await runInception();
    if (index < plans.length - 1) snapshot(`written after the ${p.size} models; later cases had not run yet`);
  }

  if (o.suites.includes('cpu')) {
    const trunk = o.tiny?.trunk ?? tinyTrunk();
    const batch = o.tiny?.batch ?? 4;
    const rows = pair(trunk).map((c) => ({
      c,
      row: {
        model: modelName(c),
        batch,
        stepFlops: trainStepFlops(benchTrainConfig(c), batch),
        wasm: null,
        cpu: null,
        wasmOverCpu: null,
      } as CpuRow,
    }));
    for (const b of ['wasm', 'cpu'] as const) {
      try {
        await initBackend(b);
      } catch (e) {
        // e.g. a GPU machine's bundle without the wasm package: recorded, the other rows stand
        for (const { row } of rows) row.error = `${row.error ? `${row.error}; ` : ''}${b}: ${errText(e)}`;
        continue;
      }
      for (const { c, row } of rows) {
        log(`bench: cpu suite, ${row.model} on ${b}`);
        try {
          const m = await measureTrain(c, batch, 1, Math.max(1, Math.min(o.steps, 3)));
          row[b] = { medianSeconds: m.timing.medianSeconds, gflopsPerSecond: m.gflopsPerSecond };
        } catch (e) {
          row.error = `${b}: ${errText(e)}`;
        }
      }
    }
    for (const { row } of rows) {
      row.wasmOverCpu = row.wasm && row.cpu ? row.wasm.gflopsPerSecond / row.cpu.gflopsPerSecond : null;
      cpu.push(row);
    }
  }
  return snapshot(null);
}

/** Parses the command line (argv without node and the script). */
export function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = {
    suites: [...SUITES],
    backend: 'auto',
    quick: false,
    out: 'results/bench',
    steps: 10,
    warmup: 2,
    batch: 32,
    torch: 'run',
    gradCheckpoint: ['off'],
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UserError(`${flag} needs a value`);
    return v;
  };
  const posInt = (s: string, flag: string): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag}: '${s}' is not a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--suite': {
        const list = value(i++, a)
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = list.filter((s) => !(SUITES as readonly string[]).includes(s));
        if (bad.length || list.length === 0)
          throw new UserError(
            `--suite: '${bad.join(',') || '(empty)'}' is not a suite; choose from ${SUITES.join(', ')} (comma-separated)`,
          );
        o.suites = list as Suite[];
        break;
      }
      case '--backend':
        o.backend = parseBackendChoice(value(i++, a));
        break;
      case '--precision':
        o.precision = parsePrecision(value(i++, a));
        break;
      case '--quick':
        o.quick = true;
        break;
      case '--out':
        o.out = value(i++, a);
        break;
      case '--no-write':
        o.out = null;
        break;
      case '--steps':
        o.steps = posInt(value(i++, a), a);
        break;
      case '--warmup':
        o.warmup = posInt(value(i++, a), a);
        break;
      case '--batch':
        o.batch = posInt(value(i++, a), a);
        break;
      case '--no-torch':
        o.torch = 'skip';
        break;
      case '--sizes': {
        const list = value(i++, a)
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean);
        if (list.length === 0 || list.some((v) => v !== 'S' && v !== 'XL'))
          throw new UserError(`--sizes: '${list.join(',')}' is not a list of S, XL`);
        o.sizes = list as Array<'S' | 'XL'>;
        break;
      }
      case '--grad-checkpoint': {
        const v = value(i++, a);
        if (v !== 'off' && v !== 'on' && v !== 'both')
          throw new UserError(`--grad-checkpoint: '${v}' is not off, on or both`);
        o.gradCheckpoint = v === 'both' ? ['off', 'on'] : [v];
        break;
      }
      case '--submit-batch': {
        const list = value(i++, a)
          .split(',')
          .map((v) => posInt(v.trim(), a));
        o.submitBatch = list;
        break;
      }
      case '--fused-optimizer': {
        const v = value(i++, a);
        if (v !== 'off' && v !== 'on' && v !== 'both')
          throw new UserError(`--fused-optimizer: '${v}' is not off, on or both`);
        o.fusedOptimizer = v === 'both' ? ['off', 'on'] : [v];
        break;
      }
      case '--fused-block': {
        const v = value(i++, a);
        if (v !== 'off' && v !== 'on' && v !== 'both')
          throw new UserError(`--fused-block: '${v}' is not off, on or both`);
        o.fusedBlock = v === 'both' ? ['off', 'on'] : [v];
        break;
      }
      case '--variants':
        o.variants = parseVariants(value(i++, a), a);
        break;
      case '--sample-variants':
        o.sampleVariants = parseVariants(value(i++, a), a);
        break;
      case '--memory': {
        const v = value(i++, a);
        if (v !== 'off' && v !== 'on') throw new UserError(`--memory: '${v}' is not off or on`);
        o.memory = v === 'on';
        break;
      }
      case '--max-warmup':
        o.maxWarmup = posInt(value(i++, a), a);
        break;
      case '--torch-json': {
        const p = value(i++, a);
        if (!existsSync(p)) throw new UserError(`--torch-json: '${p}' does not exist`);
        o.torch = { json: p };
        break;
      }
      case '--help':
      case '-h':
        throw new UserError(
          'usage: npm run bench -- [--suite train,sample,inception,cpu] [--backend webgpu|wasm|cpu|auto] [--precision fp32|mixed (mixed: the PyTorch side in float32 and in autocast float16)] [--quick] [--out DIR | --no-write] [--steps N] [--warmup N] [--batch N] [--sizes S,XL] [--grad-checkpoint off|on|both] [--submit-batch N[,N…]] [--fused-optimizer off|on|both] [--fused-block off|on|both] [--variants SB:OPT:BLOCK[:EPI[:RAW[:STEP]]],…] [--sample-variants SB:OPT:BLOCK[:EPI[:RAW[:STEP]]],…] (EPI on|off|nobias, RAW on|off, STEP on|off) [--memory on|off] [--max-warmup N] [--no-torch | --torch-json FILE]',
        );
      default:
        throw new UserError(`unknown option '${a}'; see --help`);
    }
  }
  o.command = `npm run bench -- ${argv.join(' ')}`.trim();
  return o;
}

async function main(): Promise<void> {
  // `npm run bench -- --vae …`: the SD-VAE decode bench (bench/vae.ts, its own options)
  if (process.argv.includes('--vae')) return (await import('./vae.js')).vaeBenchMain(process.argv.slice(2));
  try {
    const doc = await runBench(parseArgs(process.argv.slice(2)));
    process.stdout.write(markdown(doc));
  } catch (e) {
    if (e instanceof UserError) {
      log(`error: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }
  // the webgpu device and wasm worker handles can keep the event loop alive
  process.exit(0);
}

// runs when executed (from source or bundled), not when imported by tests
const entry = process.argv[1] ?? '';
if (/bench[\\/]main\.(ts|mjs|js)$/.test(entry)) void main();
