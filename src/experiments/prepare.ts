// From a spec file to a plan: load and validate the spec, open each variant's dataset for its
// fingerprint, expand into runs, take the shard. Shared by `run`, `run --dry-run` and `plan`.
import { existsSync } from 'node:fs';
import type { Dataset } from '../data/dataset.js';
import { canonicalJson } from '../store/json.js';
import type { RunStatus } from '../store/names.js';
import { openStore } from '../store/store.js';
import { toolVersion } from '../util/version.js';
import { openSpecDataset } from './datasets.js';
import { planRuns, shardPlan, type Plan, type PlannedRun } from './planner.js';
import { loadSpec, type DatasetSpec, type LoadedSpec } from './spec.js';

export interface Prepared {
  spec: LoadedSpec;
  /** the whole plan */
  full: Plan;
  /** the runs of this shard (= full without --shard) */
  plan: Plan;
  /** training dataset per canonical dataset spec */
  datasets: Map<string, Dataset>;
}

export function datasetId(d: DatasetSpec): string {
  return canonicalJson(d);
}

export async function prepare(specPath: string, shard?: { index: number; count: number }): Promise<Prepared> {
  const spec = loadSpec(specPath);
  const datasets = new Map<string, Dataset>();
  const fingerprints: string[] = [];
  for (const v of spec.variants) {
    const id = datasetId(v.spec.dataset);
    if (!datasets.has(id)) datasets.set(id, await openSpecDataset(v.spec.dataset, 'train'));
    fingerprints.push(datasets.get(id)!.fingerprint);
  }
  const full = planRuns({ spec, fingerprints, toolVersion: toolVersion() });
  const plan = shard ? shardPlan(full, shard.index, shard.count) : full;
  return { spec, full, plan, datasets };
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
    status,
    cost: r.cost,
    overrides: r.overrides,
    parentKey: r.kind === 'sample' ? r.parentKey : null,
  };
}
