// From a spec file to a plan: load and validate the spec, open each variant's dataset for its
// fingerprint, expand into runs, take the shard. Shared by `run`, `run --dry-run` and `plan`.
import { existsSync } from 'node:fs';
import type { BackendChoice, Precision } from '../backends/index.js';
import type { Dataset } from '../data/dataset.js';
import { canonicalJson } from '../store/json.js';
import type { RunStatus } from '../store/names.js';
import { openStore } from '../store/store.js';
import { UserError } from '../util/errors.js';
import { toolVersion } from '../util/version.js';
import { openSpecDataset } from './datasets.js';
import { planRuns, shardPlan, type Plan, type PlannedRun } from './planner.js';
import { loadSpec, specPrecisions, type DatasetSpec, type LoadedSpec } from './spec.js';

/**
 * The global options that are also spec fields. Each, when given, overrides the spec's field (at every
 * grid point); when not given (`--backend auto`, no `--precision`), the spec's field decides.
 */
export interface RunFlags {
  backend?: BackendChoice;
  precision?: Precision;
  /** the one precision this process runs (`run --only-precision`): only it is checked against the backend */
  only?: Precision;
}

export interface Prepared {
  spec: LoadedSpec;
  /** the whole plan */
  full: Plan;
  /** the runs of this shard (= full without --shard) */
  plan: Plan;
  /** training dataset per canonical dataset spec */
  datasets: Map<string, Dataset>;
  /** the backend the runs use: --backend unless auto, else the spec's `backend:`, else auto */
  backend: BackendChoice;
  /** how the runs' precision was asked for, for messages: '--precision mixed' or 'precision: mixed (spec.yaml)' */
  asked: (p: Precision) => string;
}

export function datasetId(d: DatasetSpec): string {
  return canonicalJson(d);
}

/** The spec with every grid point's precision replaced by `precision` (the global --precision). */
function withPrecision(spec: LoadedSpec, precision: Precision): LoadedSpec {
  return {
    ...spec,
    base: { ...spec.base, precision },
    variants: spec.variants.map((v) => ({ ...v, spec: { ...v.spec, precision } })),
  };
}

/**
 * Refuses mixed precision on a backend other than webgpu (or auto) where a flag brought the two
 * together (a spec alone was refused when it was validated), naming the flag and the spec's field.
 */
function checkFlags(spec: LoadedSpec, flags: RunFlags): void {
  const mixed =
    flags.only !== undefined
      ? flags.only === 'mixed'
      : spec.variants.some((v) => specPrecisions(v.spec).includes('mixed'));
  const flagBackend = flags.backend !== undefined && flags.backend !== 'auto' ? flags.backend : undefined;
  const backend = flagBackend ?? spec.base.backend ?? 'auto';
  if (!mixed || backend === 'auto' || backend === 'webgpu') return;
  const cpu = `mixed precision (f16 tensor-core matmuls) runs on the webgpu backend only`;
  if (flags.precision !== undefined && flagBackend !== undefined)
    throw new UserError(
      `--precision mixed runs on the webgpu backend only (f16 tensor-core matmuls), not on '${backend}': use --backend webgpu, or --precision fp32`,
    );
  if (flags.precision !== undefined)
    throw new UserError(
      `--precision mixed: ${cpu}, and the spec ${spec.file} says backend: ${backend}; fix: add --backend webgpu (it overrides the spec's backend), or leave --precision out`,
    );
  throw new UserError(
    `--backend ${backend}: the spec ${spec.file} runs at precision mixed, and ${cpu}; fix: --backend webgpu, or --precision fp32 (it overrides the spec's precision)`,
  );
}

export async function prepare(
  specPath: string,
  shard?: { index: number; count: number },
  flags: RunFlags = {},
): Promise<Prepared> {
  const loaded = loadSpec(specPath);
  const spec = flags.precision === undefined ? loaded : withPrecision(loaded, flags.precision);
  checkFlags(spec, flags);
  const datasets = new Map<string, Dataset>();
  const fingerprints: string[] = [];
  for (const v of spec.variants) {
    const id = datasetId(v.spec.dataset);
    if (!datasets.has(id)) datasets.set(id, await openSpecDataset(v.spec.dataset, 'train'));
    fingerprints.push(datasets.get(id)!.fingerprint);
  }
  const full = planRuns({ spec, fingerprints, toolVersion: toolVersion() });
  const plan = shard ? shardPlan(full, shard.index, shard.count) : full;
  const backend =
    flags.backend !== undefined && flags.backend !== 'auto' ? flags.backend : (spec.base.backend ?? 'auto');
  const asked = (p: Precision) =>
    flags.precision !== undefined ? `--precision ${p}` : `precision: ${p} (${spec.file})`;
  return { spec, full, plan, datasets, backend, asked };
}

/** The runs of a plan at one precision (a process computes at one: its webgpu device is made for it). */
export function atPrecision(plan: Plan, precision: Precision): Plan {
  return { ...plan, runs: plan.runs.filter((r) => r.precision === precision) };
}

export interface PlanRow {
  kind: 'train' | 'sample';
  key: string;
  model: string;
  seed: number;
  budget: number | null;
  steps: number | null;
  iters: number | null;
  allocation: string | null;
  reuse: boolean | null;
  precision: Precision;
  status: RunStatus | 'new';
  cost: number;
  /** grid point, e.g. {"training.steps": 200} */
  overrides: Record<string, unknown>;
  /** the train run a sample run uses */
  parentKey: string | null;
}

/** Status of each planned run in the database at `dbPath` (read only; 'new' where absent or no db). */
export function planStatus(plan: Plan, dbPath: string): PlanRow[] {
  const statuses = new Map<string, RunStatus>();
  if (existsSync(dbPath)) {
    const store = openStore(dbPath, { readonly: true });
    try {
      for (const r of store.listRuns({ experiment: plan.experiment })) statuses.set(r.key, r.status);
    } finally {
      store.close();
    }
  }
  return plan.runs.map((r) => planRow(r, statuses.get(r.key) ?? 'new'));
}

function planRow(r: PlannedRun, status: RunStatus | 'new'): PlanRow {
  const s = r.kind === 'sample' ? r.config.sampling : null;
  return {
    kind: r.kind,
    key: r.key,
    model: r.modelName,
    seed: r.seed,
    budget: s?.budget ?? null,
    steps: s?.steps ?? null,
    iters: s?.iters ?? null,
    allocation: s?.allocation ?? null,
    reuse: s?.reuse ?? null,
    precision: r.precision,
    status,
    cost: r.cost,
    overrides: r.overrides,
    parentKey: r.kind === 'sample' ? r.parentKey : null,
  };
}
