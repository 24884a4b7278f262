// The planner: expands a validated spec (grid × precisions × seeds × models × budgets × splits ×
// allocations × reuse) into train runs and sample runs. Each model is trained ONCE per seed and
// precision, and that run is shared by every sampling setting that uses it. A run key is the SHA-256 of
// the canonical JSON (sorted keys) of the run's resolved config (settings.ts: the same for the train
// command), which includes the dataset fingerprint, the tool version and the precision where it is
// not fp32 (so fp32 runs keep the keys of before the setting existed).
import { PRECISIONS, type Precision } from '../backends/index.js';
import { modelName, type ModelConfig } from '../models/config.js';
import { TAG, type Allocation, type ModelFamily } from '../store/names.js';
import type { Tags } from '../store/types.js';
import type { SamplingPlan } from '../diffusion/budget.js';
import { specSamplingPlans, stepCost } from './budget.js';
import type { VaeSpec } from '../vae/spec.js';
import {
  modelConfigOf,
  precisionInKey,
  runKeyOf,
  trainRunConfig,
  type KeyedPrecision,
  type TrainRunConfig,
} from './settings.js';
import {
  datasetShape,
  resolveTrunk,
  specPrecisions,
  type LoadedSpec,
  type MetricChoice,
  type MetricOptions,
  type Spec,
  type TrainingSpec,
} from './spec.js';

/** Everything a train run's result depends on (hashed into its key): settings.ts's TrainRunConfig. */
export type TrainConfig = TrainRunConfig;

export interface SamplingSettings {
  sampler: 'ddpm' | 'ddim';
  eta: number;
  cfg: number;
  /** budget in DiT-step equivalents */
  budget: number;
  steps: number;
  /** FPDM: iterations per step (the mean for non-fixed allocations); null for DiT */
  iters: number | null;
  allocation: Allocation | null;
  tolerance: number | null;
  /** 'tolerance' allocation only: the per-step cap */
  maxItersPerStep?: number;
  reuse: boolean | null;
  samples: number;
  batchSize: number;
}

/** Everything a sample run's result depends on; its train run's key stands for the model and data. */
export interface SampleConfig {
  kind: 'sample';
  trainKey: string;
  sampling: SamplingSettings;
  metrics: MetricChoice[];
  metricOptions: MetricOptions;
  seed: number;
  toolVersion: string;
  /** latent datasets: the VAE that decodes the samples (absent for pixel datasets, so their keys are unchanged) */
  vae?: VaeSpec;
  /** the matmul precision of sampling, where it is not fp32 (settings.ts precisionInKey); the same as its train run's */
  precision?: KeyedPrecision;
}

interface PlannedBase {
  key: string;
  /** model label for tables ('FPDM(DiT-S/2, pre=1, post=1)') */
  label: string;
  modelName: string;
  family: ModelFamily;
  seed: number;
  /** the matmul precision the run computes at (in its key and tags where not fp32) */
  precision: Precision;
  tags: Tags;
  /** the grid point (dotted path → value) of the first variant that planned this run */
  overrides: Record<string, unknown>;
  /** estimated cost in block evaluations (training: forward-equivalents, backward = 2 forwards) */
  cost: number;
}
export interface PlannedTrain extends PlannedBase {
  kind: 'train';
  config: TrainConfig;
  /** all training settings, including those not in the key (checkpoint and log cadence, gradient checkpointing) */
  training: TrainingSpec;
}
export interface PlannedSample extends PlannedBase {
  kind: 'sample';
  parentKey: string;
  config: SampleConfig;
  /** what the sampler executes (planSampling's plan; its settings are in config.sampling) */
  plan: SamplingPlan;
}
export type PlannedRun = PlannedTrain | PlannedSample;

export interface Plan {
  experiment: string;
  /** train runs first (in a stable order), then sample runs */
  runs: PlannedRun[];
}

/** The resolved model config of spec model `name` for the spec's dataset and prediction. */
export function resolveModel(spec: Spec, name: string): ModelConfig {
  return modelConfigOf(
    spec.models[name]!,
    resolveTrunk(spec, name),
    datasetShape(spec.dataset),
    spec.training.prediction,
  );
}

export function runKey(config: TrainConfig | SampleConfig): string {
  return runKeyOf(config);
}

/** The run tags of a precision: none at fp32 (as the key), `precision: 'mixed'` otherwise. */
export function precisionTags(p: Precision): Tags {
  return p === 'fp32' ? {} : { [TAG.precision]: p };
}

function modelTags(m: ModelConfig): Tags {
  if (m.kind !== 'fpdm') return {};
  return {
    [TAG.preDepth]: m.preDepth,
    [TAG.postDepth]: m.postDepth,
    [TAG.sjfbNoGrad]: `${m.noGradIters[0]}-${m.noGradIters[1]}`,
    [TAG.sjfbGrad]: `${m.withGradIters[0]}-${m.withGradIters[1]}`,
  };
}

/** Forward-equivalent block evaluations of training (a backward pass counted as two forwards). */
function trainCost(m: ModelConfig, t: TrainingSpec): number {
  const perImage =
    m.kind === 'dit'
      ? 3 * m.depth
      : 3 * (m.preDepth + m.postDepth + (m.withGradIters[0] + m.withGradIters[1]) / 2) +
        (m.noGradIters[0] + m.noGradIters[1]) / 2;
  return Math.round(t.steps * t.batchSize * perImage);
}

export interface PlanInputs {
  spec: LoadedSpec;
  /** dataset fingerprint of each variant's dataset spec (same order as spec.variants) */
  fingerprints: string[];
  toolVersion: string;
}

/** Expands a loaded spec into runs. Pure: the same inputs give the same runs, keys and order. */
export function planRuns({ spec, fingerprints, toolVersion }: PlanInputs): Plan {
  const trains = new Map<string, PlannedTrain>();
  const samples = new Map<string, PlannedSample>();
  spec.variants.forEach((variant, vi) => {
    const s = variant.spec;
    for (const precision of specPrecisions(s)) {
      for (const seed of s.seeds) {
        for (const name of Object.keys(s.models).sort()) {
          const model = resolveModel(s, name);
          const config = trainRunConfig({
            model,
            training: s.training,
            dataset: s.dataset,
            datasetFingerprint: fingerprints[vi]!,
            seed,
            toolVersion,
            precision,
          });
          const key = runKey(config);
          const label = modelName(model);
          const base = { label, modelName: name, family: model.kind, seed, precision, overrides: variant.overrides };
          if (!trains.has(key))
            trains.set(key, {
              ...base,
              kind: 'train',
              key,
              config,
              training: s.training,
              tags: { ...modelTags(model), ...precisionTags(precision) },
              cost: trainCost(model, s.training),
            });
          for (const { sampling, plan } of samplingSettings(s, model)) {
            const sc: SampleConfig = {
              kind: 'sample',
              trainKey: key,
              sampling,
              metrics: [...s.metrics].sort(),
              metricOptions: s.metricOptions,
              seed,
              toolVersion,
              ...(s.vae ? { vae: s.vae } : {}),
              ...precisionInKey(precision),
            };
            const skey = runKey(sc);
            if (samples.has(skey)) continue;
            const tags: Tags = { ...modelTags(model), [TAG.budget]: sampling.budget, [TAG.steps]: sampling.steps };
            if (sampling.iters !== null) tags[TAG.iters] = sampling.iters;
            if (sampling.allocation !== null) tags[TAG.allocation] = sampling.allocation;
            if (sampling.reuse !== null) tags[TAG.reuse] = sampling.reuse;
            Object.assign(tags, precisionTags(precision));
            samples.set(skey, {
              ...base,
              kind: 'sample',
              key: skey,
              parentKey: key,
              config: sc,
              tags,
              plan,
              cost: plan.blockEvals * sampling.samples * (sampling.cfg > 1 ? 2 : 1),
            });
          }
        }
      }
    }
  });
  return { experiment: spec.base.name, runs: [...trains.values(), ...samples.values()] };
}

/**
 * The sampling runs of one model: its plans (experiments/budget.ts specSamplingPlans → planSampling:
 * DiT one per budget; FPDM budgets × splits × allocations) × reuse. The spec was validated with the
 * same function, so no plan is refused here.
 */
function samplingSettings(s: Spec, m: ModelConfig): { sampling: SamplingSettings; plan: SamplingPlan }[] {
  const sp = s.sampling;
  const { plans, issues } = specSamplingPlans(stepCost(m), {
    budgets: sp.budgets,
    splits: sp.splits,
    allocations: [sp.allocation].flat(),
    tolerance: sp.tolerance,
    maxItersPerStep: sp.maxItersPerStep,
    diffusionSteps: s.training.diffusionSteps,
  });
  if (issues.length > 0)
    throw new Error(`planner: a validated spec gave plan issues: ${issues.map((i) => i.message).join('; ')}`);
  const common = { sampler: sp.sampler, eta: sp.eta, cfg: sp.cfg, samples: sp.samples, batchSize: sp.batchSize };
  const out: { sampling: SamplingSettings; plan: SamplingPlan }[] = [];
  for (const plan of plans) {
    if (plan.budget === null) throw new Error('planner: a spec plan without a budget');
    const settings = {
      ...common,
      budget: plan.budget,
      steps: plan.steps,
      iters: plan.iters,
      allocation: plan.allocation,
      tolerance: plan.tolerance,
      ...(plan.maxItersPerStep !== null ? { maxItersPerStep: plan.maxItersPerStep } : {}),
    };
    if (m.kind === 'dit') out.push({ sampling: { ...settings, reuse: null }, plan });
    else for (const reuse of [sp.reuse].flat()) out.push({ sampling: { ...settings, reuse }, plan });
  }
  return out;
}

/**
 * The i-th of n slices of a plan (`--shard i/n`). The unit is a train run with all its sample runs
 * (so no model is trained twice): train keys sorted, slice i takes those at positions ≡ i (mod n).
 */
export function shardPlan(plan: Plan, index: number, count: number): Plan {
  const trainKeys = plan.runs
    .filter((r) => r.kind === 'train')
    .map((r) => r.key)
    .sort();
  const mine = new Set(trainKeys.filter((_, j) => j % count === index));
  return { ...plan, runs: plan.runs.filter((r) => mine.has(r.kind === 'train' ? r.key : r.parentKey)) };
}

/** The precisions of a plan's runs, in PRECISIONS order (fp32 first; empty for an empty plan). */
export function planPrecisions(plan: Plan): Precision[] {
  const have = new Set(plan.runs.map((r) => r.precision));
  return PRECISIONS.filter((p) => have.has(p));
}

/** Parses `--shard i/n` (0-based i < n). */
export function parseShard(text: string): { index: number; count: number } | null {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  return count >= 1 && index < count ? { index, count } : null;
}
