// The runner: the only place that composes model + diffusion + training + sampling + metrics + store.
//
//   plan (spec → runs) → register them as pending → repeat until every run is resolved:
//     for each train run (sorted by key): claim it → train (or resume its checkpoint) → store
//       then each of its sample runs: claim → sample at the budget → measure → store
//     runs another process holds ('busy') are waited for; failed/diverged ones are re-run only with
//     retryFailed; sample runs of a failed train run are reported as blocked.
//
// Crash safety: every status change and every result is one IMMEDIATE transaction of the store, and
// training checkpoints are atomic, so a kill at any moment loses nothing stored; a re-run claims the
// interrupted run again (its owner is dead) and resumes from the checkpoint. Two processes on the same
// database and spec never do a run twice because claiming is atomic.
//
// Precision: a process computes at one precision (mixed needs a webgpu device made for it, fp32 runs on
// TF.js's own). A plan at one precision runs here; a plan at several (`precision: [fp32, mixed]`) runs
// each precision's runs in a process of its own, one after the other (`runGroups`, which the CLI gives:
// it starts itself again with `--only-precision`), on the same database, and this process summarises.
import { releaseSpecVaes } from '../vae/spec.js';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { initBackend, type BackendChoice, type BackendInfo, type Precision } from '../backends/index.js';
import type { ShardRecord } from '../store/merge.js';
import type { RunStatus } from '../store/names.js';
import { openStore, type Store } from '../store/store.js';
import type { Provenance, RunInput } from '../store/types.js';
import { log } from '../util/log.js';
import { invariant, UserError } from '../util/errors.js';
import { planPrecisions, type PlannedRun, type PlannedSample, type PlannedTrain } from './planner.js';
import { atPrecision, datasetId, prepare, type Prepared } from './prepare.js';
import type { ProgressMode } from './progress.js';
import { baseProvenance } from './provenance.js';
import { executeSample } from './sample_run.js';
import { executeTrain } from './train_run.js';

export interface RunExperimentOptions {
  spec: string;
  db: string;
  shard?: { index: number; count: number };
  retryFailed?: boolean;
  /** the global --backend; 'auto' lets the spec's `backend:` decide */
  backend: BackendChoice;
  /** the global --precision when given: replaces the spec's `precision:` (at every grid point) */
  precision?: Precision;
  /** run only the plan's runs at this precision (a process of `runGroups`) */
  only?: Precision;
  /** runs a plan of several precisions, one process per precision (absent: such a plan is refused) */
  runGroups?: RunGroups;
  progress?: ProgressMode;
  /** where checkpoints and sample grids go (default: `artifacts/` beside the database) */
  artifactsDir?: string;
  /** tests: stop each train run after this many steps in this process (the run stays 'running') */
  stopTrainingAfter?: number;
  /** seconds between polls while another process holds a run this one needs (default 2) */
  pollSeconds?: number;
}

/**
 * Runs the runs of each precision in a process of its own, one precision after the other, into the
 * same database (and the same --shard), returning each process's summary; throws when one fails. A
 * process has one webgpu device, made for its precision. `backend` and `asked` are the prepared ones,
 * for a check of every precision before the first process starts.
 */
export type RunGroups = (o: {
  precisions: Precision[];
  backend: BackendChoice;
  asked: (p: Precision) => string;
}) => Promise<RunSummary[]>;

export type Outcome = 'completed' | 'skipped' | 'failed' | 'diverged' | 'blocked' | 'stopped';

export interface RunSummaryRow {
  key: string;
  kind: 'train' | 'sample';
  model: string;
  label: string;
  seed: number;
  budget: number | null;
  steps: number | null;
  iters: number | null;
  allocation: string | null;
  reuse: boolean | null;
  precision: Precision;
  /** what this process did with the run */
  outcome: Outcome;
  /** the run's status in the database at the end */
  status: RunStatus | 'absent';
  /** the headline metrics of the run (name → value) */
  metrics: Record<string, number>;
  error: string | null;
}

export interface RunSummary {
  experiment: string;
  db: string;
  shard: string | null;
  backend: { name: string; version: string | null; device: string | null };
  /** the precisions of the runs (fp32 first) */
  precisions: Precision[];
  runs: RunSummaryRow[];
  seconds: number;
}

/** `provenance.shard` of the runs of a `--shard i/n` (so `collect` can name the shards a set of bundles lacks) */
function shardRecord(p: Prepared, opts: RunExperimentOptions): { shard: ShardRecord } | undefined {
  return opts.shard && { shard: { ...opts.shard, trainRuns: p.full.runs.filter((r) => r.kind === 'train').length } };
}

/** What the store is told of a planned run when it is claimed. */
export function runInput(r: PlannedRun, experiment: string, provenance?: Provenance): RunInput {
  return {
    key: r.key,
    experiment,
    kind: r.kind,
    model: r.label,
    family: r.family,
    parentKey: r.kind === 'sample' ? r.parentKey : null,
    seed: r.seed,
    config: r.config,
    tags: r.tags,
    ...(provenance ? { provenance } : {}),
  };
}

const sleep = (s: number) => new Promise((res) => setTimeout(res, s * 1000));

export async function runExperiment(opts: RunExperimentOptions): Promise<RunSummary> {
  const started = performance.now();
  const all: Prepared = await prepare(opts.spec, opts.shard, {
    backend: opts.backend,
    precision: opts.precision,
    only: opts.only,
  });
  const precisions = planPrecisions(all.plan);
  if (opts.only === undefined && precisions.length > 1) return runEachPrecision(all, precisions, opts, started);
  const precision = opts.only ?? precisions[0] ?? 'fp32';
  const p: Prepared = opts.only === undefined ? all : { ...all, plan: atPrecision(all.plan, opts.only) };
  const backend: BackendInfo = await initBackend(p.backend, { precision, asked: p.asked(precision) });
  const dbDir = dirname(resolve(opts.db));
  mkdirSync(dbDir, { recursive: true });
  const artifactsDir = resolve(opts.artifactsDir ?? join(dbDir, 'artifacts'));
  const store = openStore(opts.db);
  const outcomes = new Map<string, { outcome: Outcome; error: string | null }>();
  try {
    store.upsertExperiment(p.plan.experiment, p.spec.text);
    store.addPendingRuns(p.plan.runs.map((r) => runInput(r, p.plan.experiment, shardRecord(p, opts))));
    const prov0 = baseProvenance(backend);
    const trains = p.plan.runs
      .filter((r): r is PlannedTrain => r.kind === 'train')
      .sort((a, b) => a.key.localeCompare(b.key));
    const samplesOf = new Map<string, PlannedSample[]>();
    for (const r of p.plan.runs)
      if (r.kind === 'sample') samplesOf.set(r.parentKey, [...(samplesOf.get(r.parentKey) ?? []), r]);
    log(
      `experiment ${p.plan.experiment}: ${p.plan.runs.length} runs (${trains.length} train) on ${backend.name}${backend.device ? ` (${backend.device})` : ''}${precision !== 'fp32' ? ` at precision ${precision}` : ''}; database ${opts.db}`,
    );

    for (;;) {
      let waiting = false;
      for (const tr of trains) {
        if (!outcomes.has(tr.key)) {
          const o = await attempt(store, tr, p, prov0, opts, artifactsDir, null);
          if (o === 'busy') {
            waiting = true;
            continue;
          }
          outcomes.set(tr.key, o);
        }
        const trainStatus = store.getRun(tr.key)?.status;
        for (const sr of samplesOf.get(tr.key) ?? []) {
          if (outcomes.has(sr.key)) continue;
          if (trainStatus !== 'completed') {
            if (trainStatus === 'running') {
              waiting = true;
              continue;
            }
            outcomes.set(sr.key, {
              outcome: 'blocked',
              error: `its train run ${tr.key.slice(0, 12)} is ${trainStatus ?? 'absent'}`,
            });
            continue;
          }
          const o = await attempt(store, sr, p, prov0, opts, artifactsDir, tr);
          if (o === 'busy') {
            waiting = true;
            continue;
          }
          outcomes.set(sr.key, o);
        }
      }
      if (!waiting || opts.stopTrainingAfter !== undefined) break;
      await sleep(opts.pollSeconds ?? 2);
    }
    return summarize(store, p, opts, backend, outcomes, (performance.now() - started) / 1000);
  } finally {
    store.close();
    releaseSpecVaes(); // the VAE of a latent spec is loaded once for all its sample runs
  }
}

/**
 * A plan of several precisions: `runGroups` runs each precision's runs in a process of its own; the
 * summary is then read from the database, with what each process did with its runs.
 */
async function runEachPrecision(
  p: Prepared,
  precisions: Precision[],
  opts: RunExperimentOptions,
  started: number,
): Promise<RunSummary> {
  if (!opts.runGroups)
    throw new UserError(
      `${p.spec.file} runs at precisions ${precisions.join(' and ')}, and a process computes at one (its webgpu device is made for it): run it with \`fpdm-exp run\`, which starts a process per precision, or one precision at a time with --precision`,
    );
  const groups = await opts.runGroups({ precisions, backend: p.backend, asked: p.asked });
  const outcomes = new Map<string, { outcome: Outcome; error: string | null }>();
  for (const g of groups) for (const r of g.runs) outcomes.set(r.key, { outcome: r.outcome, error: r.error });
  const first = groups[0]?.backend ?? { name: p.backend, version: null, device: null };
  const store = openStore(opts.db, { readonly: true });
  try {
    return summarize(store, p, opts, first, outcomes, (performance.now() - started) / 1000);
  } finally {
    store.close();
  }
}

/** Claims and executes one run; 'busy' when another live process holds it. */
async function attempt(
  store: Store,
  run: PlannedRun,
  p: Prepared,
  prov0: Provenance,
  opts: RunExperimentOptions,
  artifactsDir: string,
  parent: PlannedTrain | null,
): Promise<{ outcome: Outcome; error: string | null } | 'busy'> {
  invariant(
    run.precision === ((prov0.backend?.precision as Precision | undefined) ?? 'fp32'),
    () => `runner: a ${run.precision} run on a backend at precision ${prov0.backend?.precision}`,
  );
  const provenance: Provenance = {
    ...prov0,
    ...shardRecord(p, opts),
    config: run.config,
    runKey: run.key,
    seed: run.seed,
    startedAt: new Date().toISOString(),
  };
  const claim = store.claimRun(runInput(run, p.plan.experiment, provenance), { retryFailed: opts.retryFailed });
  if (claim.outcome === 'busy') return 'busy';
  if (claim.outcome === 'done') return { outcome: 'skipped', error: null };
  if (claim.outcome === 'failed')
    return {
      outcome: claim.run.status === 'diverged' ? 'diverged' : 'failed',
      error: `${claim.run.error ?? 'failed earlier'} (re-run with --retry-failed)`,
    };
  const runId = claim.run.id;
  if (claim.previous === 'running')
    log(`resuming interrupted ${run.kind} run ${run.key.slice(0, 12)} (${run.modelName})`);
  try {
    if (run.kind === 'train') {
      const dataset = p.datasets.get(datasetId(run.config.dataset))!;
      const o = await executeTrain({
        store,
        runId,
        run,
        dataset,
        artifactsDir,
        progress: opts.progress ?? 'auto',
        stopAfter: opts.stopTrainingAfter,
      });
      return { outcome: o, error: null };
    }
    await executeSample({ store, runId, run, parent: parent!, artifactsDir, progress: opts.progress ?? 'auto' });
    return { outcome: 'completed', error: null };
  } catch (e) {
    // only the user's mistake is stored as the run's failure; a bug propagates (exit 1 with its stack)
    // and leaves the run claimed by this dead process, so a later `run` resumes it once fixed
    if (!(e instanceof UserError)) throw e;
    store.failRun(runId, e.message);
    log(`${run.kind} run ${run.key.slice(0, 12)} (${run.modelName}) failed: ${e.message}`);
    return { outcome: 'failed', error: e.message };
  }
}

function summarize(
  store: Store,
  p: Prepared,
  opts: RunExperimentOptions,
  backend: { name: string; version?: string | null; device?: string | null },
  outcomes: Map<string, { outcome: Outcome; error: string | null }>,
  seconds: number,
): RunSummary {
  const rows: RunSummaryRow[] = p.plan.runs.map((r) => {
    const rec = store.getRun(r.key);
    const metrics: Record<string, number> = {};
    if (rec) for (const m of store.metrics({ key: r.key })) if (m.step === null) metrics[m.name] = m.value;
    const s = r.kind === 'sample' ? r.config.sampling : null;
    const o = outcomes.get(r.key) ?? { outcome: 'stopped' as Outcome, error: null };
    return {
      key: r.key,
      kind: r.kind,
      model: r.modelName,
      label: r.label,
      seed: r.seed,
      budget: s?.budget ?? null,
      steps: s?.steps ?? null,
      iters: s?.iters ?? null,
      allocation: s?.allocation ?? null,
      reuse: s?.reuse ?? null,
      precision: r.precision,
      outcome: o.outcome,
      status: rec?.status ?? 'absent',
      metrics,
      error: o.error ?? rec?.error ?? null,
    };
  });
  return {
    experiment: p.plan.experiment,
    db: opts.db,
    shard: opts.shard ? `${opts.shard.index}/${opts.shard.count}` : null,
    backend: { name: backend.name, version: backend.version ?? null, device: backend.device ?? null },
    precisions: planPrecisions(p.plan),
    runs: rows,
    seconds,
  };
}
