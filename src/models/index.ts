// Public entry of the models package: build a model from a config (fresh or from a state_dict), load
// and export weights by PyTorch names, count parameters. The model registry is this one switch.
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import type { TensorMap } from '../io/tensor.js';
import type { ModelConfig } from './config.js';
import { DiT } from './dit.js';
import { FPDM } from './fpdm.js';
import type { DiffusionModel } from './model.js';
import { countTree, paramsFromStateDict, stateDictOf, type LoadReport, type ParamCount } from './params.js';

export * from './config.js';
export * from './model.js';
export { DiT } from './dit.js';
export { FPDM, type PreResult } from './fpdm.js';
export {
  countParams,
  countTree,
  paramSpecs,
  POS_EMBED,
  type ParamCount,
  type ParamTree,
  type ParamSpec,
  type LoadReport,
} from './params.js';
export {
  solveFixedPoint,
  solveFixedPointAsync,
  validateSolver,
  type FixedSolveResult,
  type SolverOptions,
  type SolveReport,
  type SolverKind,
} from './solver.js';
export { modelFlops, type FlopCount } from './flops.js';

export type AnyModel = DiT | FPDM;

/** A fresh model with the reference initialisation; `seed` may be a number, a string or an Rng. */
export function createModel(config: ModelConfig, seed: number | string | Rng = 0): AnyModel {
  const rng = seed instanceof Rng ? seed : new Rng(seed);
  return config.kind === 'dit' ? DiT.init(config, rng) : FPDM.init(config, rng);
}

/** A model whose weights come from a state_dict (PyTorch names). See paramsFromStateDict for the checks. */
export function modelFromStateDict(
  config: ModelConfig,
  sd: TensorMap,
  opts: { strict?: boolean; source?: string } = {},
): { model: AnyModel; report: LoadReport } {
  const { params, report } = paramsFromStateDict(config, sd, opts);
  const model = config.kind === 'dit' ? new DiT(config, params) : new FPDM(config, params);
  return { model, report };
}

/**
 * Loads a state_dict into an existing model's variables (same checks as modelFromStateDict: the first
 * mismatching shape is named; missing/unexpected names are listed).
 */
export function loadStateDict(
  model: DiffusionModel,
  sd: TensorMap,
  opts: { strict?: boolean; source?: string } = {},
): LoadReport {
  const { params, report } = paramsFromStateDict(model.config, sd, opts);
  for (const [name, v] of model.params) {
    const src = params.get(name);
    if (!src) throw new UserError(`state_dict lacks '${name}'`);
    v.assign(src);
  }
  tf.dispose([...params.values()]);
  return report;
}

/** The model's weights as a state_dict with PyTorch names (pos_embed included, as PyTorch saves it); reads asynchronously. */
export async function exportStateDict(model: DiffusionModel): Promise<TensorMap> {
  return stateDictOf(model.config, model.params);
}

/** Parameter count of a built model (the pos_embed buffer excluded). */
export function modelParamCount(model: DiffusionModel): ParamCount {
  return countTree(model.params);
}
