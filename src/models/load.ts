// Files → models: a config JSON with the reference constructor's keyword arguments, and weights in any
// format src/io reads (.safetensors, PyTorch .pt zip or legacy, training checkpoints' `ema`/`model`).
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { requireFile } from '../util/fs.js';
import { readWeights } from '../io/index.js';
import { fromReferenceKwargs, type ModelConfig } from './config.js';
import { modelFromStateDict, type AnyModel } from './index.js';
import type { LoadReport } from './params.js';

/** Reads a JSON file of reference keyword arguments (`{"input_size": 32, "fixed_point": true, …}`). */
export function readModelConfig(path: string): ModelConfig {
  requireFile(path, 'model config');
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`model config '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return fromReferenceKwargs(obj, `model config '${path}'`);
}

/** Builds `config` with the weights of `ckpt` (`entry` picks `ema` or `model` in a training checkpoint). */
export function loadModel(
  ckpt: string,
  config: ModelConfig,
  opts: { entry?: 'ema' | 'model'; strict?: boolean } = {},
): { model: AnyModel; report: LoadReport } {
  requireFile(ckpt, 'checkpoint');
  const sd = readWeights(ckpt, { entry: opts.entry });
  return modelFromStateDict(config, sd, { strict: opts.strict, source: `checkpoint '${ckpt}'` });
}
