// The host side of the training step, counted: per step of the training loop (src/training/loop.ts,
// `trainModel`), the loop's host milliseconds (onTiming's hostMs: everything outside the wait for the
// step's one host read) and what the step asked of the device and of TF.js — bind groups, buffers and
// command encoders created, queue writes and submits, direct dispatches, new TF.js tensors. On a machine
// without a GPU (SwiftShader's Vulkan) the host columns are what to read: SwiftShader computes on the
// same CPU, so the wall and wait times are not a GPU's.
//
//   npm run bench:host -- --model FPDM-S/2 [--hidden 64] [--input 8] [--batch 8] [--steps 6]
//                        [--precision fp32|mixed] [--grad-checkpoint] [--profile FILE] [--json]
//
// --hidden and --input shrink the model's width and latent side while keeping its structure (depth,
// heads, FPDM's pre/post blocks and the bench's fixed S-JFB draws, bench/cases.ts), so the step records
// the same dispatches as the full model's on a slow device. Without them the preset is used as is
// (on a GPU: the same step the bench's train suite times). --profile writes a V8 CPU profile
// (.cpuprofile, for Chrome's DevTools or a script) of the main thread from the end of step 2 to the end
// of the run: the steps after the first ones, which compile the pipelines.
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type Precision } from '../src/backends/index.js';
import { rawKernels } from '../src/backends/webgpu/raw.js';
import { diffusionConfig } from '../src/diffusion/process.js';
import { ditPreset, fpdmFrom, validateConfig, type ModelConfig } from '../src/models/config.js';
import { trainModel } from '../src/training/loop.js';
import { UserError } from '../src/util/errors.js';
import { benchTrainConfig, latentDataset } from './cases.js';

interface HostOptions {
  model: string;
  hidden?: number;
  input?: number;
  batch: number;
  steps: number;
  precision: Precision;
  gradCheckpoint: boolean;
  /** where to write the CPU profile of steps 3.. (none when absent) */
  profile?: string;
  json: boolean;
}

/** What one step asked of the device and of TF.js (differences of running counts). */
export interface StepCounts {
  bindGroups: number;
  buffers: number;
  encoders: number;
  writeBuffers: number;
  submits: number;
  rawDispatches: number;
  tensors: number;
}

export interface HostStepRow extends StepCounts {
  step: number;
  hostMs: number;
  waitMs: number;
}

function parseHostArgs(argv: string[]): HostOptions {
  const o: HostOptions = {
    model: 'DiT-S/2',
    batch: 8,
    steps: 6,
    precision: 'fp32',
    gradCheckpoint: false,
    json: false,
  };
  const num = (i: number, flag: string): number => {
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag}: '${argv[i + 1]}' is not a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--model':
        o.model = argv[++i] ?? '';
        break;
      case '--hidden':
        o.hidden = num(i++, a);
        break;
      case '--input':
        o.input = num(i++, a);
        break;
      case '--batch':
        o.batch = num(i++, a);
        break;
      case '--steps':
        o.steps = num(i++, a);
        break;
      case '--precision': {
        const p = argv[++i];
        if (p !== 'fp32' && p !== 'mixed') throw new UserError(`--precision: '${p}' is not fp32 or mixed`);
        o.precision = p;
        break;
      }
      case '--grad-checkpoint':
        o.gradCheckpoint = true;
        break;
      case '--profile':
        o.profile = argv[++i] ?? '';
        if (!o.profile) throw new UserError('--profile needs a file name');
        break;
      case '--json':
        o.json = true;
        break;
      default:
        throw new UserError(
          `unknown option '${a}'; usage: --model DiT-S/2|FPDM-S/2|DiT-XL/2|FPDM-XL/2 [--hidden D] [--input side] [--batch N] [--steps N] [--precision fp32|mixed] [--grad-checkpoint] [--profile FILE] [--json]`,
        );
    }
  }
  return o;
}

/** The bench's config of `name` ('DiT-S/2', 'FPDM-XL/2', …), narrowed to `hidden` and `input` where given. */
function modelOf(o: HostOptions): ModelConfig {
  const fpdm = o.model.startsWith('FPDM-');
  const trunk = ditPreset(fpdm ? `DiT-${o.model.slice(5)}` : o.model, {
    ...(o.input ? { inputSize: o.input } : {}),
  });
  const narrowed = validateConfig({ ...trunk, ...(o.hidden ? { hiddenSize: o.hidden } : {}) });
  return benchTrainConfig(fpdm ? fpdmFrom(narrowed as typeof trunk) : narrowed);
}

/** Running counts of the device calls a step makes (the device's and its queue's methods wrapped once). */
function countDevice(): () => StepCounts {
  const rk = rawKernels();
  if (!rk) throw new UserError('bench:host needs the webgpu backend');
  const d = rk.device as unknown as Record<string, (...a: unknown[]) => unknown> & {
    queue: Record<string, (...a: unknown[]) => unknown>;
  };
  const c = { bindGroups: 0, buffers: 0, encoders: 0, writeBuffers: 0, submits: 0 };
  const wrap = (o: Record<string, (...a: unknown[]) => unknown>, name: string, field: keyof typeof c) => {
    const f = o[name]!.bind(o);
    o[name] = (...a: unknown[]) => {
      c[field]++;
      return f(...a);
    };
  };
  wrap(d, 'createBindGroup', 'bindGroups');
  wrap(d, 'createBuffer', 'buffers');
  wrap(d, 'createCommandEncoder', 'encoders');
  wrap(d.queue, 'writeBuffer', 'writeBuffers');
  wrap(d.queue, 'submit', 'submits');
  // TF.js numbers its tensors from a static counter of the Engine class
  const engine = tf.engine().constructor as unknown as { nextTensorId: number };
  return () => ({ ...c, rawDispatches: rk.counters.dispatches, tensors: engine.nextTensorId });
}

/** Trains `steps` steps of the model and returns one row per step. */
export async function hostSteps(o: HostOptions): Promise<{ model: ModelConfig; rows: HostStepRow[] }> {
  await initBackend('webgpu', { precision: o.precision });
  const model = modelOf(o);
  const read = countDevice();
  const rows: HostStepRow[] = [];
  let last = read();
  let timing = { hostMs: NaN, waitMs: NaN };
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-host-'));
  const session = o.profile ? new Session() : null;
  session?.connect();
  let profiling: Promise<unknown> | null = null;
  try {
    await trainModel({
      model,
      diffusion: diffusionConfig(),
      dataset: latentDataset(model, Math.max(o.batch * 4, 64)),
      steps: o.steps,
      batch: o.batch,
      seed: 0,
      outDir: dir,
      checkpointEvery: 1_000_000,
      gradCheckpoint: o.gradCheckpoint,
      onTiming: (t) => {
        timing = t;
      },
      onStep: (r) => {
        const now = read();
        const diff = Object.fromEntries(
          Object.keys(now).map((k) => [k, now[k as keyof StepCounts] - last[k as keyof StepCounts]]),
        ) as unknown as StepCounts;
        rows.push({ step: r.step, ...timing, ...diff });
        last = now;
        if (session && r.step === 2)
          profiling = session
            .post('Profiler.setSamplingInterval', { interval: 100 })
            .then(() => session.post('Profiler.enable'))
            .then(() => session.post('Profiler.start'));
      },
    });
    if (session && profiling) {
      await profiling;
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(o.profile!, JSON.stringify(profile));
    }
  } finally {
    session?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
  return { model, rows };
}

async function main(): Promise<void> {
  const o = parseHostArgs(process.argv.slice(2));
  const { model, rows } = await hostSteps(o);
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ options: o, model, rows }, null, 2)}\n`);
    return;
  }
  const cols = Object.keys(rows[0] ?? {}) as Array<keyof HostStepRow>;
  const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  process.stdout.write(`${cols.join('\t')}\n`);
  for (const r of rows) process.stdout.write(`${cols.map((c) => fmt(r[c])).join('\t')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(e instanceof UserError ? 2 : 1);
});
