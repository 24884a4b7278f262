// Training checkpoints: one safetensors file of weights (`model.*`, `ema.*`, `opt.m.*`, `opt.v.*`)
// plus a JSON sidecar `checkpoint.json` (resolved config, step, RNG states, run key, provenance) that
// names the weights file and its SHA-256.
//
// Crash safety: a kill at ANY moment leaves a consistent last checkpoint, because
//   1. the new weights go to a new file `ckpt-<step>.safetensors` (temporary file, fsync, rename),
//   2. only then is the sidecar replaced (temporary file, fsync, rename): the rename is the commit,
//   3. only then are weights files the sidecar no longer names deleted.
// A reader trusts only the sidecar; the weights it names are checked against the recorded hash.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { atomicWrite } from '../util/fs.js';
import type { RngState } from '../util/rng.js';
import type { LossScaleState } from './loss-scale.js';

/** Steps between checkpoints when none is given: a tenth of the steps, at least 1, at most 1000 (the one default). */
export function defaultCheckpointEvery(steps: number): number {
  return Math.min(1000, Math.max(1, Math.round(steps / 10)));
}

export const SIDECAR = 'checkpoint.json';
export const CHECKPOINT_FORMAT = 'fpdm-exp-checkpoint/1';

/** What the sidecar records. `config` is the resolved training config of the caller (opaque here). */
export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  /** completed optimizer steps */
  step: number;
  /** weights file name, relative to the checkpoint directory */
  weights: string;
  /** SHA-256 (hex) of the weights file */
  sha256: string;
  config: unknown;
  /** RNG states: the training stream and the data iterator's state */
  rng: { train: RngState; data: unknown };
  optimizer: { stepCount: number };
  /** per-step records so far (loss, and for FPDM the fixed-point residual) */
  history: StepRecord[];
  runKey: string | null;
  toolVersion: string;
  gitCommit: string | null;
  /** precision: only when not fp32 ('mixed': f16 tensor-core matmuls on webgpu) */
  backend: { name: string; version?: string; device?: string; precision?: string };
  /** loss scaling's state after `step` (mixed precision's direct training step only) */
  lossScale?: LossScaleState;
  status: 'running' | 'completed' | 'diverged';
  /** the step whose loss was not finite (status 'diverged'); the weights are those of `step` */
  divergedAt: number | null;
  createdAt: string;
}

export interface StepRecord {
  step: number;
  loss: number;
  /** FPDM: relative fixed-point residual of the last with-grad iteration */
  residual?: number;
  /** FPDM: S-JFB iteration counts drawn for this batch */
  noGradIters?: number;
  withGradIters?: number;
  lr: number;
  gradNorm: number;
  seconds: number;
  /** loss scaling (mixed precision): the scale S of this step */
  lossScale?: number;
  /** loss scaling: the gradients overflowed at this scale; the update was skipped and S halved */
  overflow?: true;
}

export interface CheckpointData {
  meta: CheckpointMeta;
  /** every tensor of the weights file, with its prefix (`model.`, `ema.`, `opt.m.`, `opt.v.`) */
  tensors: TensorMap;
}

const WEIGHTS_RE = /^ckpt-\d+\.safetensors$/;

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function weightsFileName(step: number): string {
  return `ckpt-${String(step).padStart(8, '0')}.safetensors`;
}

/**
 * Writes a checkpoint into `dir` crash-safely (see the file comment). `tensors` holds every prefixed
 * tensor; `meta` everything but the file name and hash, which are filled in here.
 */
export function writeCheckpoint(
  dir: string,
  tensors: TensorMap,
  meta: Omit<CheckpointMeta, 'weights' | 'sha256' | 'format'>,
): CheckpointMeta {
  const weights = weightsFileName(meta.step);
  const wpath = join(dir, weights);
  writeSafetensors(wpath, tensors, { format: 'pt', producer: 'fpdm-exp', step: String(meta.step) }); // 1
  const full: CheckpointMeta = { format: CHECKPOINT_FORMAT, ...meta, weights, sha256: sha256File(wpath) };
  atomicWrite(join(dir, SIDECAR), [JSON.stringify(full, null, 1) + '\n']); // 2
  for (const name of readdirSync(dir)) {
    // 3
    const stale =
      (WEIGHTS_RE.test(name) && name !== weights) || /^\.(ckpt-\d+\.safetensors|checkpoint\.json)\.tmp-\d+$/.test(name);
    if (stale) rmSync(join(dir, name), { force: true });
  }
  return full;
}

/** Reads only the sidecar of `dir`, or null when the directory has no checkpoint yet. */
export function readCheckpointMeta(dir: string): CheckpointMeta | null {
  const p = join(dir, SIDECAR);
  if (!existsSync(p)) return null;
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(readFileSync(p, 'utf8')) as CheckpointMeta;
  } catch (e) {
    throw new UserError(
      `checkpoint sidecar '${p}' is not valid JSON (${(e as Error).message}): it is corrupt; delete the directory to start over`,
    );
  }
  if (meta.format !== CHECKPOINT_FORMAT)
    throw new UserError(
      `'${p}' is not an fpdm-exp checkpoint sidecar (format '${String(meta.format)}', expected '${CHECKPOINT_FORMAT}')`,
    );
  return meta;
}

/** Reads the last checkpoint of `dir` (null if none), verifying the weights file's hash. */
export function readCheckpoint(dir: string): CheckpointData | null {
  const meta = readCheckpointMeta(dir);
  if (!meta) return null;
  const wpath = join(dir, meta.weights);
  if (!existsSync(wpath))
    throw new UserError(
      `checkpoint '${join(dir, SIDECAR)}' names weights '${meta.weights}', which do not exist: the directory was modified by hand`,
    );
  const hash = sha256File(wpath);
  if (hash !== meta.sha256)
    throw new UserError(
      `checkpoint weights '${wpath}' are corrupt: SHA-256 ${hash.slice(0, 12)}… differs from the recorded ${meta.sha256.slice(0, 12)}…`,
    );
  return { meta, tensors: readSafetensors(wpath).tensors };
}

/** The tensors under one prefix (`model`, `ema`, `opt.m`, `opt.v`) with the prefix removed. */
export function tensorsWithPrefix(tensors: TensorMap, prefix: string): TensorMap {
  const out: TensorMap = new Map();
  const p = `${prefix}.`;
  for (const [k, v] of tensors) if (k.startsWith(p)) out.set(k.slice(p.length), v);
  return out;
}

/** Adds `prefix.` to every name. */
export function withPrefix(tensors: TensorMap, prefix: string): TensorMap {
  const out: TensorMap = new Map();
  for (const [k, v] of tensors) out.set(`${prefix}.${k}`, v);
  return out;
}
