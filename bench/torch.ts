// Runs bench/torch_ref.py (the PyTorch side) as a child process and parses its one JSON line.
// The script is found through $FPDM_BENCH_TORCH_REF, else bench/torch_ref.py under the working
// directory (the repository root; also when this file is bundled). The interpreter is
// $FPDM_BENCH_PYTHON or python3.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The precision of a PyTorch row (torch_ref.py --precision): 'fp32' float32 with TF32 off; 'fp16' the
 * forward under torch.autocast float16 (f32 master weights, GradScaler's dynamic loss scaling in training).
 */
export type TorchPrecision = 'fp32' | 'fp16';

/** A row's precision key; rows written before the key existed are float32. */
export const torchRowKey = (r: { key?: TorchPrecision }): TorchPrecision => r.key ?? 'fp32';

export interface TorchTrain {
  model: string;
  params: number;
  batch: number;
  noGradIters: number | null;
  withGradIters: number | null;
  /** warm-up and timed steps */
  warmup?: number;
  steps?: number;
  medianSeconds: number;
  imagesPerSecond: number;
  peakBytes: number;
  /** torch.utils.checkpoint around each block (and each with-grad fixed-point step); absent = off */
  gradCheckpoint?: boolean;
  /** absent in files written before autocast rows existed: fp32 */
  key?: TorchPrecision;
  /** the dtype in words, e.g. 'float32 (TF32 off)', 'autocast float16' */
  precision?: string;
  /** fp16 rows: GradScaler's API, its scale before and after the steps, timed steps it skipped (inf/NaN gradients) */
  gradScaler?: {
    api: string;
    enabled: boolean;
    initScale: number;
    finalScale: number;
    /** null when the scaler is disabled */
    growthInterval: number | null;
    skippedTimedSteps: number;
  };
}

export interface TorchSample {
  model: string;
  batch: number;
  steps: number;
  iters: number | null;
  reuse: boolean;
  blockEvaluations: number;
  medianSeconds: number;
  imagesPerSecond: number;
  peakBytes: number;
  /** absent in files written before autocast rows existed: fp32 */
  key?: TorchPrecision;
  precision?: string;
}

export interface TorchResult {
  available: boolean;
  /** why the PyTorch side was not measured */
  reason?: string;
  torch?: string;
  cuda?: string;
  device?: string;
  tf32?: { matmul: boolean; cudnn: boolean };
  paramCounts?: { model: string; params: number; expected: number | null; ok: boolean | null }[];
  /** the precisions measured, fp32 first (absent in older files: fp32 only) */
  precisions?: TorchPrecision[];
  /** how the fp16 rows ran (null or absent without them) */
  autocast?: { dtype: string; device: string; fp16ReducedPrecisionReduction: boolean | null } | null;
  train?: TorchTrain[];
  sample?: TorchSample[];
  inception?: { network: string; batch: number; medianSeconds: number; imagesPerSecond: number } | null;
  errors?: string[];
}

export interface TorchArgs {
  suites: string[];
  quick: boolean;
  steps: number;
  noGradIters: number;
  withGradIters: number;
  /** DiT-step budget measured per size, e.g. {S: 20, XL: 2} */
  sampleBudget: Record<string, number>;
  /** model sizes ('S', 'XL'); default: the script's own (S, XL; S only with quick) */
  sizes?: string[];
  /** training variants: gradient checkpointing off and/or on (default off) */
  gradCheckpoint?: Array<'off' | 'on'>;
  /** rows per case (default: the script's own, fp32) */
  precisions?: TorchPrecision[];
}

export function torchScriptPath(): string {
  return process.env.FPDM_BENCH_TORCH_REF ?? resolve(process.cwd(), 'bench', 'torch_ref.py');
}

const TORCH_SUITES = ['train', 'sample', 'inception'];

/** The script's command line (after the script path) for these arguments. */
export function torchRefArgs(a: TorchArgs): string[] {
  return [
    '--json',
    '--suite',
    a.suites.filter((s) => TORCH_SUITES.includes(s)).join(','),
    '--steps',
    String(a.steps),
    '--no-grad-iters',
    String(a.noGradIters),
    '--with-grad-iters',
    String(a.withGradIters),
    '--sample-budget',
    Object.entries(a.sampleBudget)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    ...(a.quick ? ['--quick'] : []),
    ...(a.sizes ? ['--sizes', a.sizes.join(',')] : []),
    ...(a.gradCheckpoint ? ['--grad-checkpoint', a.gradCheckpoint.join(',')] : []),
    ...(a.precisions ? ['--precision', a.precisions.join(',')] : []),
  ];
}

/**
 * Runs the PyTorch side; never throws: a missing interpreter/script/torch/CUDA comes back as available=false
 * with the reason. The time limit is per precision (each one measures every case again).
 */
export function runTorchRef(a: TorchArgs, timeoutSeconds = 900): TorchResult {
  const script = torchScriptPath();
  if (!existsSync(script))
    return {
      available: false,
      reason: `${script} not found (set FPDM_BENCH_TORCH_REF or run from the repository root)`,
    };
  const python = process.env.FPDM_BENCH_PYTHON ?? 'python3';
  if (!a.suites.some((s) => TORCH_SUITES.includes(s)))
    return { available: false, reason: 'no suite with a PyTorch side was selected' };
  const r = spawnSync(python, [script, ...torchRefArgs(a)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
    timeout: timeoutSeconds * (a.precisions?.length ?? 1) * 1000,
  });
  if (r.error) return { available: false, reason: `${python} could not be run (${r.error.message})` };
  const lines = (r.stdout ?? '')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  if (lines.length === 0)
    return { available: false, reason: `${python} ${script} exited with status ${r.status} and printed no JSON` };
  try {
    return JSON.parse(lines[lines.length - 1]!) as TorchResult;
  } catch (e) {
    return { available: false, reason: `the PyTorch side printed malformed JSON (${(e as Error).message})` };
  }
}

/** A PyTorch result recorded earlier (the JSON line torch_ref.py prints), e.g. to re-use GPU numbers or in tests. */
export function readTorchJson(path: string): TorchResult {
  return JSON.parse(readFileSync(path, 'utf8')) as TorchResult;
}
