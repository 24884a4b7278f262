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
//
// Precision: the spec's `precision:` (default fp32), or the global --precision, which overrides it as
// --backend overrides `backend:`. A process computes at one precision, so a spec at several
// (`precision: [fp32, mixed]`) runs as this command started again once per precision with the hidden
// `--only-precision P` (same database, same --shard), one after the other; this process then prints
// the summary of all and writes the report.
import { spawn } from 'node:child_process';
import { Option, type Command } from 'commander';
import { dirname, join } from 'node:path';
import { parsePrecision, requirePrecision, type Precision } from '../../backends/index.js';
import { EXIT, UserError } from '../../util/errors.js';
import { runExperiment, type RunGroups, type RunSummary } from '../../experiments/runner.js';
import { buildReport } from '../../report/index.js';
import { inspectDatabase } from '../../store/store.js';
import { prepareDir, prepareFileTarget } from '../../util/fs.js';
import { log, warn } from '../../util/log.js';
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
  /** run only the runs at this precision (the processes a spec of several precisions is run as) */
  only?: Precision;
}

export interface RunCommandResult extends RunSummary {
  /** index.html of the report written after the run, or null */
  report: string | null;
}

export async function run(opts: RunOptions): Promise<RunCommandResult> {
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
    precision: opts.globals.precision,
    only: opts.only,
    runGroups: onePerPrecision(opts),
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

/**
 * The runner's RunGroups for the CLI: checks that every precision can run here before any process
 * starts (so a GPU without the mixed-precision features is found before the fp32 runs are done), then
 * runs this command again for each precision (`--only-precision P`, no report, --json), one after the
 * other: their logs go to this process's stderr, their summaries come back as JSON. `cli` is how this
 * command is started (node's arguments and the script: this process's own by default, less a debugger's
 * --inspect, whose port this process holds).
 */
export function onePerPrecision(
  opts: RunOptions,
  cli: string[] = [...process.execArgv.filter((a) => !a.startsWith('--inspect')), process.argv[1]!],
): RunGroups {
  return async ({ precisions, backend, asked }) => {
    for (const p of precisions) await requirePrecision(backend, p, asked(p));
    const g = opts.globals;
    const out: RunSummary[] = [];
    for (const p of precisions) {
      const args = [
        ...cli,
        '--backend',
        g.backend,
        ...(g.precision !== undefined ? ['--precision', g.precision] : []),
        ...(g.quiet ? ['--quiet'] : []),
        'run',
        opts.spec,
        '--db',
        opts.db,
        '--only-precision',
        p,
        '--no-report',
        '--json',
        '--progress',
        g.quiet ? 'none' : (opts.progress ?? 'auto'),
        ...(opts.shard !== undefined ? ['--shard', opts.shard] : []),
        ...(opts.retryFailed ? ['--retry-failed'] : []),
        ...(opts.artifacts !== undefined ? ['--artifacts', opts.artifacts] : []),
      ];
      log(`precision ${p}: its runs in a process of their own`);
      const r = await child(process.execPath, args);
      // interrupted (Ctrl-C, a scheduler's SIGTERM): end as it did; a run of the spec again resumes
      if (r.signal === 'SIGINT' || r.signal === 'SIGTERM') {
        process.kill(process.pid, r.signal);
        await new Promise((res) => setTimeout(res, 10_000)); // the signal ends this process meanwhile
      }
      if (r.code === EXIT.user)
        throw new UserError(
          `the runs at precision ${p} stopped (the message above says why); what was stored is kept: run the spec again to go on`,
        );
      if (r.code !== EXIT.ok)
        throw new Error(
          `the process of the runs at precision ${p} ended with ${r.code ?? r.signal} (its output is above)`,
        );
      out.push(summaryOf(r.stdout, p));
    }
    return out;
  };
}

/**
 * The summary a `run --json` printed (emitJson: from a line '{' to the next line '}', the only lines
 * at the outer level), whatever else a native library may have written to the same stdout.
 */
function summaryOf(stdout: string, p: Precision): RunSummary {
  const lines = stdout.split('\n');
  const start = lines.indexOf('{');
  const end = lines.indexOf('}', start);
  if (start < 0 || end < 0)
    throw new Error(`the process of the runs at precision ${p} printed no summary: ${stdout.slice(0, 500)}`);
  return JSON.parse(lines.slice(start, end + 1).join('\n')) as RunSummary;
}

/** Runs a process with stderr shared and stdout collected; SIGINT and SIGTERM sent to this one reach it too. */
function child(
  command: string,
  args: string[],
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  return new Promise((resolveChild, reject) => {
    const c = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const forward = (sig: NodeJS.Signals) => c.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    let stdout = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.on('error', reject);
    c.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolveChild({ code, signal, stdout });
    });
  });
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
  // the precision column only where a run is not fp32: an fp32 summary reads as before the setting
  const precisionCol = s.runs.some((r) => r.precision !== 'fp32');
  const table = formatTable(
    [
      'model',
      'seed',
      ...(precisionCol ? ['precision'] : []),
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
      ...(precisionCol ? [r.precision] : []),
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
        `${r.model} (seed ${r.seed}${precisionCol ? `, ${r.precision}` : ''}): ${r.status}${r.metrics.train_seconds !== undefined ? `, ${r.metrics.train_seconds.toFixed(1)} s` : ''}${r.metrics.params !== undefined ? `, ${fmt(r.metrics.params)} params` : ''}`,
    )
    .join('; ');
  const problems = s.runs.filter((r) => r.error).map((r) => `  ${r.kind} ${r.model} ${r.key.slice(0, 12)}: ${r.error}`);
  return (
    `experiment ${s.experiment}${s.shard ? ` (shard ${s.shard})` : ''} on ${s.backend.name}${precisionCol ? ` at ${s.precisions.join(' and ')}` : ''}: ${s.runs.length} runs in ${s.seconds.toFixed(1)} s; database ${s.db}\n` +
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
    .addOption(
      new Option('--only-precision <p>', 'run only the runs at this precision (how a spec of several is run)')
        .argParser(parsePrecision)
        .hideHelp(),
    )
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
          onlyPrecision?: Precision;
        },
      ) => {
        if (o.dryRun) {
          const g = globals();
          const r = await planRun({ spec, db: o.db, shard: o.shard, backend: g.backend, precision: g.precision });
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
          only: o.onlyPrecision,
        });
        if (o.json) return emitJson(s);
        process.stdout.write(formatSummary(s));
      },
    );
}
