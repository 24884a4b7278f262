// Wall-time estimates for `plan` and `run --dry-run`: the work of each run by the FLOPs formula
// (models/flops.ts), divided by the speed measured on this machine and backend.
//
// Calibration: for each distinct model shape (tokens, width, heads, MLP ratio, patch, channels) and
// batch size in the plan, a one-block DiT of that shape is built and timed — forward passes at the
// sampling batch size, forward + backward (tf.variableGrads) at the training batch size — giving
// FLOP/s for sampling and for training at that size. Small models run far below a machine's peak
// (per-op overhead dominates), so the rate is measured per shape rather than assumed. Results are
// cached in $XDG_CACHE_HOME/fpdm-exp/calibration.json, keyed by backend, its version, the device,
// the tool version and the shape, so a second `plan` measures nothing.
//
// What an estimate covers: training steps (a backward pass = 2 forwards by formula; FPDM: the mean of
// its S-JFB draws, no-grad iterations as forwards) and sampling passes (steps × forward at the run's
// iterations, ×2 with guidance). Not covered: optimizer and EMA updates, checkpoint writes, data
// loading, and metric evaluation (Inception / classifier features), which add to the wall time.
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { initBackend, type BackendChoice } from '../backends/index.js';
import { cacheDir } from '../metrics/weights.js';
import { createModel, modelFlops, type ModelConfig } from '../models/index.js';
import { ensureWasmTrainingKernels } from '../training/wasm-kernels.js';
import { atomicWrite } from '../util/fs.js';
import { toolVersion } from '../util/version.js';
import type { Plan, PlannedRun, TrainConfig } from './planner.js';

/** Calibration batches are capped here (the rate at larger batches is at least this one's: conservative). */
const MAX_CAL_BATCH = 64;
/** Each timing repeats until this many seconds have passed (after one warm-up call). */
const CAL_SECONDS = 0.4;

export interface RunEstimate {
  key: string;
  kind: 'train' | 'sample';
  model: string;
  /** FLOPs of the run by formula */
  flops: number;
  seconds: number;
}

export interface PlanEstimate {
  backend: string;
  version: string;
  device: string;
  /** measured FLOP/s per calibration key (sampling forward, training step) */
  rates: {
    shape: string;
    batch: number;
    forwardFlops: number;
    trainFlops: number;
    cached: boolean;
    measuredAt: string;
    load: number;
    cores: number;
  }[];
  /** the calibration cache file (delete it to measure again) */
  cacheFile: string;
  /** seconds spent calibrating now (0 when every rate came from the cache) */
  calibrationSeconds: number;
  runs: RunEstimate[];
  totalSeconds: number;
  pendingSeconds: number;
  note: string;
}

interface CalEntry {
  rate: number;
  measuredAt: string;
  /** 1-minute load average and CPU count when measured (a busy machine measures slow) */
  load: number;
  cores: number;
}

function cachePath(): string {
  return join(cacheDir(), 'calibration.json');
}

function readCache(): Record<string, CalEntry> {
  try {
    return JSON.parse(readFileSync(cachePath(), 'utf8')) as Record<string, CalEntry>;
  } catch {
    return {};
  }
}

/** The one-block model whose speed stands for every model of this shape. */
function probeConfig(c: ModelConfig): ModelConfig {
  return {
    kind: 'dit',
    inputSize: c.inputSize,
    patchSize: c.patchSize,
    inChannels: c.inChannels,
    hiddenSize: c.hiddenSize,
    depth: 1,
    numHeads: c.numHeads,
    mlpRatio: c.mlpRatio,
    classDropoutProb: c.classDropoutProb,
    numClasses: c.numClasses,
    learnSigma: c.learnSigma,
  };
}

const shapeKey = (c: ModelConfig) =>
  `T${(c.inputSize / c.patchSize) ** 2}-D${c.hiddenSize}-K${c.numHeads}-r${c.mlpRatio}-P${c.patchSize}-C${c.inChannels}${c.learnSigma ? '-sigma' : ''}`;

/** Seconds per call of `f`, after one warm-up call, repeated for at least CAL_SECONDS. */
async function timeIt(f: () => tf.Tensor | tf.Tensor[]): Promise<number> {
  const sync = async (t: tf.Tensor | tf.Tensor[]) => {
    const ts = Array.isArray(t) ? t : [t];
    await ts[0]!.data();
    tf.dispose(ts);
  };
  await sync(f());
  let n = 0;
  const t0 = performance.now();
  do {
    await sync(f());
    n++;
  } while (performance.now() - t0 < CAL_SECONDS * 1000);
  return (performance.now() - t0) / 1000 / n;
}

/** Measured FLOP/s of the one-block probe at `batch`: forward only, and a training step (forward + backward). */
async function measure(c: ModelConfig, batch: number, mode: 'forward' | 'train'): Promise<number> {
  const probe = probeConfig(c);
  if (mode === 'train') ensureWasmTrainingKernels();
  const model = createModel(probe, 0);
  const n = Math.min(batch, MAX_CAL_BATCH);
  const x = tf.randomNormal([n, probe.inChannels, probe.inputSize, probe.inputSize]) as tf.Tensor4D;
  const t = tf.fill([n], 500) as tf.Tensor1D;
  const y = tf.zeros([n], 'int32') as tf.Tensor1D;
  try {
    const flops = modelFlops(probe).forward() * n * (mode === 'train' ? 3 : 1);
    const seconds =
      mode === 'forward'
        ? await timeIt(() => model.forward(x, t, y).out)
        : await timeIt(() => {
            const { value, grads } = tf.variableGrads(
              () => tf.mean(tf.square(model.forward(x, t, y).out)) as tf.Scalar,
            );
            return [value, ...Object.values(grads)];
          });
    return flops / seconds;
  } finally {
    tf.dispose([x, t, y]);
    model.dispose();
  }
}

/** FLOPs of a training run by formula: steps · batch · (3 · gradient path + no-grad iterations). */
function trainFlops(c: TrainConfig): number {
  const m = c.model;
  const f = modelFlops(m);
  const mean = (r: [number, number]) => (r[0] + r[1]) / 2;
  const perImage =
    m.kind === 'dit'
      ? 3 * f.forward()
      : 3 * (f.fixed + mean(m.withGradIters) * f.perIteration) + mean(m.noGradIters) * f.perIteration;
  return c.training.steps * c.training.batchSize * perImage;
}

/**
 * Estimates every run of `plan` (statuses from `rows`: completed runs are not pending). Calibrates
 * on `backend` where the cache has no rate. Never throws for a calibration problem: returns null
 * with the reason logged by the caller's formatter instead.
 */
export async function estimatePlan(
  plan: Plan,
  rows: { key: string; status: string }[],
  backend: BackendChoice,
): Promise<PlanEstimate | { error: string }> {
  let info;
  try {
    info = await initBackend(backend);
  } catch (e) {
    return { error: `no time estimate: backend '${backend}' could not be initialised (${(e as Error).message})` };
  }
  const prefix = `${info.name}|${info.version ?? '?'}|${info.device ?? '?'}|${toolVersion()}`;
  const cache = readCache();
  const trains = new Map(
    plan.runs.filter((r): r is Extract<PlannedRun, { kind: 'train' }> => r.kind === 'train').map((r) => [r.key, r]),
  );
  const rates: PlanEstimate['rates'] = [];
  const t0 = performance.now();
  let wrote = false;
  const rateFor = async (c: ModelConfig, batch: number, mode: 'forward' | 'train'): Promise<number> => {
    const key = `${prefix}|${shapeKey(c)}|b${Math.min(batch, MAX_CAL_BATCH)}|${mode}`;
    let cached = true;
    if (!cache[key]) {
      cache[key] = {
        rate: await measure(c, batch, mode),
        measuredAt: new Date().toISOString(),
        load: loadavg()[0]!,
        cores: cpus().length,
      };
      cached = false;
      wrote = true;
    }
    const shape = shapeKey(c);
    let row = rates.find((r) => r.shape === shape && r.batch === Math.min(batch, MAX_CAL_BATCH));
    const e = cache[key]!;
    if (!row)
      rates.push(
        (row = {
          shape,
          batch: Math.min(batch, MAX_CAL_BATCH),
          forwardFlops: NaN,
          trainFlops: NaN,
          cached,
          measuredAt: e.measuredAt,
          load: e.load ?? 0,
          cores: e.cores ?? cpus().length,
        }),
      );
    row.load = Math.max(row.load, e.load ?? 0);
    row[mode === 'forward' ? 'forwardFlops' : 'trainFlops'] = cache[key]!.rate;
    row.cached &&= cached;
    return cache[key]!.rate;
  };
  const runs: RunEstimate[] = [];
  try {
    await estimateRuns();
  } catch (e) {
    return { error: `no time estimate: calibrating on ${info.name} failed (${(e as Error).message})` };
  }
  async function estimateRuns(): Promise<void> {
    for (const r of plan.runs) {
      if (r.kind === 'train') {
        const flops = trainFlops(r.config);
        runs.push({
          key: r.key,
          kind: 'train',
          model: r.modelName,
          flops,
          seconds: flops / (await rateFor(r.config.model, r.config.training.batchSize, 'train')),
        });
      } else {
        const parent = trains.get(r.parentKey);
        if (!parent) continue;
        const s = r.config.sampling;
        const m = parent.config.model;
        const flops = s.samples * (s.cfg > 1 ? 2 : 1) * s.steps * modelFlops(m).forward(s.iters ?? 0);
        runs.push({
          key: r.key,
          kind: 'sample',
          model: r.modelName,
          flops,
          seconds: flops / (await rateFor(m, s.batchSize, 'forward')),
        });
      }
    }
  }
  if (wrote) {
    try {
      atomicWrite(cachePath(), [JSON.stringify(cache, null, 1)]);
    } catch {
      // an unwritable cache only means the next plan calibrates again
    }
  }
  const done = new Set(rows.filter((x) => x.status === 'completed').map((x) => x.key));
  return {
    backend: info.name,
    version: info.version ?? '?',
    device: info.device ?? '?',
    rates,
    cacheFile: cachePath(),
    calibrationSeconds: ((performance.now() - t0) / 1000) * (wrote ? 1 : 0),
    runs,
    totalSeconds: runs.reduce((a, x) => a + x.seconds, 0),
    pendingSeconds: runs.filter((x) => !done.has(x.key)).reduce((a, x) => a + x.seconds, 0),
    note: `FLOPs by formula ÷ FLOP/s measured here on a one-block model of the same shape${plan.runs.some((r) => r.precision !== 'fp32') ? ' at fp32 (mixed-precision runs too)' : ''}; excludes optimizer/EMA updates, checkpoints, data loading and metric evaluation`,
  };
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${(s / 60).toFixed(s < 600 ? 1 : 0)} min`;
  return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
}

/** Plain-text lines for `plan` / `run --dry-run`: per kind and model, then the total. */
export function formatEstimate(e: PlanEstimate | { error: string } | null): string {
  if (!e) return '';
  if ('error' in e) return `${e.error}\n`;
  const groups = new Map<string, RunEstimate[]>();
  for (const r of e.runs)
    (groups.get(`${r.kind} ${r.model}`) ?? groups.set(`${r.kind} ${r.model}`, []).get(`${r.kind} ${r.model}`)!).push(r);
  const lines = [...groups].map(([k, rs]) => {
    const s = rs.map((r) => r.seconds);
    const [lo, hi] = [Math.min(...s), Math.max(...s)];
    const each =
      formatDuration(lo) === formatDuration(hi)
        ? `≈ ${formatDuration(lo)} each`
        : `${formatDuration(lo)} – ${formatDuration(hi)} each`;
    return `  ${k}: ${rs.length} run${rs.length === 1 ? '' : 's'}, ${each}, ${formatDuration(s.reduce((a, b) => a + b, 0))} in all`;
  });
  const gf = (v: number) => `${(v / 1e9).toPrecision(3)} GFLOP/s`;
  const rates = e.rates.map(
    (r) =>
      `${r.shape} batch ${r.batch}: ${[Number.isFinite(r.forwardFlops) ? `sampling ${gf(r.forwardFlops)}` : '', Number.isFinite(r.trainFlops) ? `training ${gf(r.trainFlops)}` : ''].filter(Boolean).join(', ')}`,
  );
  const busy = e.rates.filter((r) => r.load > r.cores);
  const worst = busy.length ? busy.reduce((a, b) => (b.load > a.load ? b : a)) : null;
  return (
    `estimated wall time on ${e.backend} ${e.version} (${e.device}), one process: ${formatDuration(e.totalSeconds)} in all, ${formatDuration(e.pendingSeconds)} still to do\n` +
    lines.join('\n') +
    '\n' +
    `  speed ${e.calibrationSeconds > 0 ? `measured now (${e.calibrationSeconds.toFixed(1)} s calibration, cached)` : 'from the calibration cache'}: ${rates.join('; ')}\n` +
    `  (${e.note}; per-run seconds in --json)\n` +
    (worst
      ? `  note: the machine was busy while measuring (load average up to ${worst.load.toFixed(1)} on ${worst.cores} cores, ${worst.measuredAt}), so these times are pessimistic for an idle machine; delete ${e.cacheFile} to measure again\n`
      : '')
  );
}
