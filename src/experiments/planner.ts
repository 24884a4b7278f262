// The planner: expands a validated spec (grid × seeds × models × budgets × splits × allocations ×
// reuse) into train runs and sample runs. Each model is trained ONCE per seed and that run is shared
// by every sampling setting that uses it. A run key is the SHA-256 of the canonical JSON (sorted keys)
// of the run's resolved config, which includes the dataset fingerprint and the tool version.
import { fpdmFrom, modelName, validateConfig, type DiTConfig, type ModelConfig } from '../models/config.js';
import { canonicalJson, sha256Hex } from '../store/json.js';
import { TAG, type Allocation, type ModelFamily } from '../store/names.js';
import type { Tags } from '../store/types.js';
import type { SamplingPlan } from '../diffusion/budget.js';
import { specSamplingPlans, stepCost } from './budget.js';
import { datasetShape, resolveTrunk, type DatasetSpec, type LoadedSpec, type MetricChoice, type MetricOptions, type Spec, type TrainingSpec } from './spec.js';

/** Everything a train run's result depends on (hashed into its key). */
export interface TrainConfig {
  kind: 'train';
  /** the spec's name for the model (e.g. 'fpdm') */
  modelName: string;
  model: ModelConfig;
  training: TrainingSpec;
  dataset: DatasetSpec;
  datasetFingerprint: string;
  seed: number;
  toolVersion: string;
}

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
}

interface PlannedBase {
  key: string;
  /** model label for tables ('FPDM(DiT-S/2, pre=1, post=1)') */
  label: string;
  modelName: string;
  family: ModelFamily;
  seed: number;
  tags: Tags;
  /** the grid point (dotted path → value) of the first variant that planned this run */
  overrides: Record<string, unknown>;
  /** estimated cost in block evaluations (training: forward-equivalents, backward = 2 forwards) */
  cost: number;
}
export interface PlannedTrain extends PlannedBase {
  kind: 'train';
  config: TrainConfig;
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

/** The resolved model config of spec model `name` for the spec's dataset and loss. */
export function resolveModel(spec: Spec, name: string): ModelConfig {
  const m = spec.models[name]!;
  const t = resolveTrunk(spec, name);
  const shape = datasetShape(spec.dataset);
  const dit: DiTConfig = validateConfig({
    kind: 'dit',
    inputSize: shape.imageSize,
    patchSize: t.patchSize,
    inChannels: shape.channels,
    hiddenSize: t.hiddenSize,
    depth: t.depth,
    numHeads: t.heads,
    mlpRatio: t.mlpRatio,
    classDropoutProb: shape.classes > 1 ? t.classDropout : 0,
    numClasses: shape.classes,
    learnSigma: spec.training.loss === 'hybrid',
  });
  if (m.kind === 'dit') return dit;
  return fpdmFrom(dit, {
    preDepth: m.pre,
    postDepth: m.post,
    noGradIters: m.sjfb.noGrad,
    withGradIters: m.sjfb.withGrad,
    prePostTimestepConditioning: m.prePostTimestepConditioning,
  });
}

export function runKey(config: TrainConfig | SampleConfig): string {
  return sha256Hex(canonicalJson(config));
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
      : 3 * (m.preDepth + m.postDepth + (m.withGradIters[0] + m.withGradIters[1]) / 2) + (m.noGradIters[0] + m.noGradIters[1]) / 2;
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
    for (const seed of s.seeds) {
      for (const name of Object.keys(s.models).sort()) {
        const model = resolveModel(s, name);
        const config: TrainConfig = {
          kind: 'train', modelName: name, model, training: s.training, dataset: s.dataset,
          datasetFingerprint: fingerprints[vi]!, seed, toolVersion,
        };
        const key = runKey(config);
        const label = modelName(model);
        const base = { label, modelName: name, family: model.kind, seed, overrides: variant.overrides };
        if (!trains.has(key)) trains.set(key, { ...base, kind: 'train', key, config, tags: { ...modelTags(model) }, cost: trainCost(model, s.training) });
        for (const { sampling, plan } of samplingSettings(s, model)) {
          const sc: SampleConfig = {
            kind: 'sample', trainKey: key, sampling, metrics: [...s.metrics].sort(), metricOptions: s.metricOptions, seed, toolVersion,
          };
          const skey = runKey(sc);
          if (samples.has(skey)) continue;
          const tags: Tags = { ...modelTags(model), [TAG.budget]: sampling.budget, [TAG.steps]: sampling.steps };
          if (sampling.iters !== null) tags[TAG.iters] = sampling.iters;
          if (sampling.allocation !== null) tags[TAG.allocation] = sampling.allocation;
          if (sampling.reuse !== null) tags[TAG.reuse] = sampling.reuse;
          samples.set(skey, {
            ...base, kind: 'sample', key: skey, parentKey: key, config: sc, tags, plan,
            cost: plan.blockEvals * sampling.samples * (sampling.cfg > 1 ? 2 : 1),
          });
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
    budgets: sp.budgets, splits: sp.splits, allocations: [sp.allocation].flat(), tolerance: sp.tolerance, diffusionSteps: s.training.diffusionSteps,
  });
  if (issues.length > 0) throw new Error(`planner: a validated spec gave plan issues: ${issues.map((i) => i.message).join('; ')}`);
  const common = { sampler: sp.sampler, eta: sp.eta, cfg: sp.cfg, samples: sp.samples, batchSize: sp.batchSize };
  const out: { sampling: SamplingSettings; plan: SamplingPlan }[] = [];
  for (const plan of plans) {
    if (plan.budget === null) throw new Error('planner: a spec plan without a budget');
    const settings = { ...common, budget: plan.budget, steps: plan.steps, iters: plan.iters, allocation: plan.allocation, tolerance: plan.tolerance };
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
  const trainKeys = plan.runs.filter((r) => r.kind === 'train').map((r) => r.key).sort();
  const mine = new Set(trainKeys.filter((_, j) => j % count === index));
  return { ...plan, runs: plan.runs.filter((r) => mine.has(r.kind === 'train' ? r.key : r.parentKey)) };
}

/** Parses `--shard i/n` (0-based i < n). */
export function parseShard(text: string): { index: number; count: number } | null {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  return count >= 1 && index < count ? { index, count } : null;
}
