// `fpdm-exp run SPEC.yaml [--db DB] [--dry-run] [--shard i/n] [--retry-failed] [--json]`: plans the
// spec's runs, trains each model once, samples at every budget, measures, stores, prints a summary and
// writes the report. Re-running is safe: completed runs are skipped, interrupted ones resume.
//
// Scale-out without a queue: `--shard i/n` runs the i-th of n slices of the plan (a train run and all
// its sample runs stay in one slice), each into its own bundle (a --db path plus artifacts/ beside it);
// `fpdm-exp collect` merges the bundles afterwards (keyed by run key, so repeating it is harmless).
//   Slurm job array (sbatch --array=0-7):
//     fpdm-exp run spec.yaml --shard $SLURM_ARRAY_TASK_ID/8 --db results/shards/$SLURM_ARRAY_TASK_ID/fpdm.sqlite
//   Kubernetes Indexed Job (completionMode: Indexed, completions: 8):
//     fpdm-exp run spec.yaml --shard $JOB_COMPLETION_INDEX/8 --db /results/shard-$JOB_COMPLETION_INDEX/fpdm.sqlite
//   then:  fpdm-exp collect results/shards/* --db results/fpdm.sqlite && fpdm-exp report --db results/fpdm.sqlite
import { Option, type Command } from 'commander';
import { dirname, join } from 'node:path';
import { UserError } from '../../util/errors.js';
import { runExperiment, type RunSummary } from '../../experiments/runner.js';
import { buildReport } from '../../report/index.js';
import { inspectDatabase } from '../../store/store.js';
import { prepareDir, prepareFileTarget } from '../../util/fs.js';
import { warn } from '../../util/log.js';
import type { ProgressMode } from '../../experiments/progress.js';
import { emitJson } from '../../util/log.js';
import type { GlobalOptions } from '../context.js';
import { formatTable } from '../table.js';
import { DEFAULT_DB, formatPlan, run as planRun, shardOption } from './plan.js';

export interface RunOptions {
  spec: string;
  db: string;
  dryRun?: boolean;
  shard?: string;
  retryFailed?: boolean;
  globals: GlobalOptions;
  progress?: ProgressMode;
  artifacts?: string;
  /** write the report (tables, figures, HTML) of the experiment after the run (default true; not for shards) */
  report?: boolean;
}

export interface RunCommandResult extends RunSummary {
  /** index.html of the report written after the run, or null */
  report: string | null;
}

export async function run(opts: RunOptions): Promise<RunCommandResult> {
  if (opts.globals.precision === 'mixed')
    throw new UserError(
      "--precision mixed is not available for experiments yet: their stored results are keyed without the precision, so mixed and fp32 numbers would share keys; use it with 'train' and 'sample', or run experiments at --precision fp32",
    );
  // output paths are checked before any work starts: a long run never loses its work to a bad path at its end
  prepareFileTarget(opts.db, 'database (--db)', { createDir: false });
  inspectDatabase(opts.db);
  prepareDir(
    opts.artifacts ?? join(dirname(opts.db), 'artifacts'),
    opts.artifacts ? '--artifacts directory' : 'artifacts directory beside --db',
    { create: false },
  );
  const summary = await runExperiment({
    spec: opts.spec,
    db: opts.db,
    shard: shardOption(opts.shard),
    retryFailed: opts.retryFailed,
    backend: opts.globals.backend,
    progress: opts.globals.quiet ? 'none' : (opts.progress ?? 'auto'),
    artifactsDir: opts.artifacts,
  });
  let report: string | null = null;
  if ((opts.report ?? true) && !opts.shard) {
    // the report is a view of the database: a failure to draw it does not undo the stored results
    try {
      const r = await buildReport({
        db: opts.db,
        experiment: summary.experiment,
        out: join(dirname(opts.db), 'report', summary.experiment),
      });
      report = r.index;
    } catch (e) {
      warn(
        `the report could not be written (${(e as Error).message}); the results are stored; run \`fpdm-exp report --db ${opts.db}\` later`,
      );
    }
  }
  return { ...summary, report };
}

const PROGRESS_MODES: ProgressMode[] = ['auto', 'bar', 'plain', 'none'];

const fmt = (v: number | undefined, digits = 4): string =>
  v === undefined
    ? '-'
    : Math.abs(v) >= 1e4 || Number.isInteger(v)
      ? Math.round(v).toLocaleString('en-US')
      : v.toPrecision(digits);

export function formatSummary(s: RunCommandResult): string {
  const samples = s.runs.filter((r) => r.kind === 'sample');
  const trains = s.runs.filter((r) => r.kind === 'train');
  const distName = ['fid', 'fd_mnist', 'kid'].find((n) => samples.some((r) => r.metrics[n] !== undefined));
  const table = formatTable(
    [
      'model',
      'seed',
      'budget',
      'steps',
      'iters',
      'alloc',
      'reuse',
      'status',
      distName ?? 'quality',
      'block evals/img',
      'images/s',
      'params',
    ],
    samples.map((r) => [
      r.model,
      r.seed,
      r.budget ?? '-',
      r.steps ?? '-',
      r.iters ?? '-',
      r.allocation ?? '-',
      r.reuse === null ? '-' : String(r.reuse),
      r.status === 'completed' ? (r.outcome === 'skipped' ? 'done earlier' : 'completed') : r.status,
      distName ? fmt(r.metrics[distName]) : '-',
      fmt(r.metrics.block_evals),
      fmt(r.metrics.images_per_s, 3),
      fmt(r.metrics.params),
    ]),
  );
  const trainLine = trains
    .map(
      (r) =>
        `${r.model} (seed ${r.seed}): ${r.status}${r.metrics.train_seconds !== undefined ? `, ${r.metrics.train_seconds.toFixed(1)} s` : ''}${r.metrics.params !== undefined ? `, ${fmt(r.metrics.params)} params` : ''}`,
    )
    .join('; ');
  const problems = s.runs.filter((r) => r.error).map((r) => `  ${r.kind} ${r.model} ${r.key.slice(0, 12)}: ${r.error}`);
  return (
    `experiment ${s.experiment}${s.shard ? ` (shard ${s.shard})` : ''} on ${s.backend.name}: ${s.runs.length} runs in ${s.seconds.toFixed(1)} s; database ${s.db}\n` +
    `training: ${trainLine || 'none'}\n` +
    table +
    (problems.length ? `problems:\n${problems.join('\n')}\n` : '') +
    (s.report ? `report: ${s.report}\n` : '')
  );
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('run')
    .description('plan, train, sample, measure and store the runs of an experiment spec; print a summary table')
    .argument('<spec>', 'experiment spec (YAML), e.g. experiments/quickstart.yaml')
    .option('--db <path>', 'results database (a bundle when used with --shard)', DEFAULT_DB)
    .option('--dry-run', 'print the runs, their keys, what is done and the estimated cost; compute nothing')
    .option('--shard <i/n>', 'run only the i-th of n slices of the plan (0-based), e.g. a Slurm array task')
    .option('--retry-failed', 're-run runs that failed or diverged earlier')
    .option('--artifacts <dir>', 'where checkpoints and sample grids go (default: artifacts/ beside the database)')
    .addOption(
      new Option('--progress <mode>', 'auto (bars on a terminal, lines otherwise), bar, plain or none')
        .choices(PROGRESS_MODES)
        .default('auto'),
    )
    .option('--no-report', 'do not write the report after the run')
    .option('--json', 'print JSON on stdout')
    .action(
      async (
        spec: string,
        o: {
          db: string;
          dryRun?: boolean;
          shard?: string;
          retryFailed?: boolean;
          artifacts?: string;
          progress: string;
          report: boolean;
          json?: boolean;
        },
      ) => {
        if (o.dryRun) {
          const r = await planRun({ spec, db: o.db, shard: o.shard, backend: globals().backend });
          if (o.json) return emitJson(r);
          process.stdout.write(formatPlan(r));
          return;
        }
        const progress = o.progress as ProgressMode;
        const s = await run({
          spec,
          db: o.db,
          shard: o.shard,
          retryFailed: o.retryFailed,
          globals: globals(),
          progress,
          artifacts: o.artifacts,
          report: o.report,
        });
        if (o.json) return emitJson(s);
        process.stdout.write(formatSummary(s));
      },
    );
}
