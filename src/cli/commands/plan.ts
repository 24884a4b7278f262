// `fpdm-exp plan SPEC.yaml [--db DB] [--shard i/n] [--json]`: validates a spec and prints its runs,
// their keys, what the database already holds, and the estimated cost, without computing anything.
// `fpdm-exp run SPEC --dry-run` prints the same.
import type { Command } from 'commander';
import { parseShard } from '../../experiments/planner.js';
import { planStatus, prepare, type PlanRow } from '../../experiments/prepare.js';
import { estimatePlan, formatEstimate, type PlanEstimate } from '../../experiments/estimate.js';
import type { BackendChoice, Precision } from '../../backends/index.js';
import type { GlobalOptions } from '../context.js';
import { UserError } from '../../util/errors.js';
import { emitJson } from '../../util/log.js';
import { formatTable } from '../table.js';

export const DEFAULT_DB = 'results/fpdm.sqlite';

export interface PlanOptions {
  spec: string;
  db: string;
  shard?: string;
  /** backend whose measured speed the wall-time estimate uses (default auto) */
  backend?: BackendChoice;
  /** the global --precision when given: replaces the spec's precision, as in `run` */
  precision?: Precision;
}

export interface PlanResult {
  experiment: string;
  shard: string | null;
  runs: PlanRow[];
  totals: {
    runs: number;
    train: number;
    sample: number;
    completed: number;
    pending: number;
    failed: number;
    costBlockEvals: number;
    pendingCostBlockEvals: number;
  };
  /** wall time per run and in all, from the FLOPs formula and the speed measured on this backend */
  estimate: PlanEstimate | { error: string };
}

export function shardOption(text: string | undefined): { index: number; count: number } | undefined {
  if (text === undefined) return undefined;
  const s = parseShard(text);
  if (!s)
    throw new UserError(
      `--shard '${text}' is not i/n with 0 <= i < n (e.g. --shard 0/4; Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)`,
    );
  return s;
}

export async function run(opts: PlanOptions): Promise<PlanResult> {
  const p = await prepare(opts.spec, shardOption(opts.shard), { backend: opts.backend, precision: opts.precision });
  const rows = planStatus(p.plan, opts.db);
  const done = rows.filter((r) => r.status === 'completed');
  const failed = rows.filter((r) => r.status === 'failed' || r.status === 'diverged');
  const pending = rows.filter((r) => r.status !== 'completed' && r.status !== 'failed' && r.status !== 'diverged');
  return {
    experiment: p.plan.experiment,
    shard: opts.shard ?? null,
    runs: rows,
    totals: {
      runs: rows.length,
      train: rows.filter((r) => r.kind === 'train').length,
      sample: rows.filter((r) => r.kind === 'sample').length,
      completed: done.length,
      pending: pending.length,
      failed: failed.length,
      costBlockEvals: rows.reduce((a, r) => a + r.cost, 0),
      pendingCostBlockEvals: pending.reduce((a, r) => a + r.cost, 0),
    },
    estimate: await estimatePlan(p.plan, rows, opts.backend ?? 'auto'),
  };
}

const dash = (v: unknown): string => (v === null || v === undefined ? '-' : String(v));

export function formatPlan(r: PlanResult): string {
  // the precision column only where a run is not fp32 (an fp32 plan reads as before the setting)
  const precisionCol = r.runs.some((x) => x.precision !== 'fp32');
  const table = formatTable(
    [
      'kind',
      'model',
      'seed',
      ...(precisionCol ? ['precision'] : []),
      'budget',
      'steps',
      'iters',
      'alloc',
      'reuse',
      'key',
      'trained by',
      'status',
      'cost (block evals)',
      'grid',
    ],
    r.runs.map((x) => [
      x.kind,
      x.model,
      x.seed,
      ...(precisionCol ? [x.precision] : []),
      dash(x.budget),
      dash(x.steps),
      dash(x.iters),
      dash(x.allocation),
      dash(x.reuse),
      x.key.slice(0, 12),
      x.parentKey?.slice(0, 12) ?? '-',
      x.status,
      x.cost.toLocaleString('en-US'),
      Object.entries(x.overrides)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' ') || '-',
    ]),
  );
  const t = r.totals;
  return (
    `experiment ${r.experiment}${r.shard ? ` (shard ${r.shard})` : ''}: ${t.runs} runs (${t.train} train, ${t.sample} sample); ` +
    `${t.completed} completed, ${t.pending} to do, ${t.failed} failed/diverged\n` +
    table +
    `estimated cost: ${t.costBlockEvals.toLocaleString('en-US')} block evaluations in all, ${t.pendingCostBlockEvals.toLocaleString('en-US')} still to do ` +
    `(training counts a backward pass as two forwards)\n` +
    formatEstimate(r.estimate)
  );
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('plan')
    .description(
      'validate a spec and print its runs, keys, status in the database and estimated cost, without computing',
    )
    .argument('<spec>', 'experiment spec (YAML), e.g. experiments/quickstart.yaml')
    .option('--db <path>', 'results database', DEFAULT_DB)
    .option('--shard <i/n>', 'only the i-th of n slices of the plan')
    .option('--json', 'print JSON on stdout')
    .action(async (spec: string, opts: { db: string; shard?: string; json?: boolean }) => {
      const g = globals();
      const r = await run({ spec, db: opts.db, shard: opts.shard, backend: g.backend, precision: g.precision });
      if (opts.json) return emitJson(r);
      process.stdout.write(formatPlan(r));
    });
}
