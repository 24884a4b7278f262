// `fpdm-exp check --baseline FILE [--db FILE] [--update] [--json]`: the CI regression gate.
// Exit 0 when no metric is worse than its baseline beyond tolerance, 3 on a regression, 2 on a
// malformed baseline or a metric missing from the database.
import type { Command } from 'commander';
import { runCheck, type CheckResult } from '../../report/check.js';
import { formatCell } from '../../report/tables.js';
import { inspectDatabase } from '../../store/store.js';
import { RegressionError } from '../../util/errors.js';
import { prepareFileTarget, requireFile } from '../../util/fs.js';
import { emitJson, log } from '../../util/log.js';
import { formatTable } from '../table.js';
import { DEFAULT_DB } from './report.js';

/** Integers in full (exact checks), other numbers to 6 significant digits. */
function fmt(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  return formatCell(Number(v.toPrecision(6)), 'text');
}

export interface CheckOptions {
  baseline: string;
  db: string;
  update?: boolean;
}

export async function run(opts: CheckOptions): Promise<CheckResult> {
  requireFile(opts.baseline, 'baseline file (--baseline)');
  if (opts.update) prepareFileTarget(opts.baseline, 'baseline file (--baseline with --update)', { createDir: false });
  inspectDatabase(opts.db);
  return runCheck(opts);
}

export function register(program: Command): void {
  program
    .command('check')
    .description('compare the latest runs with a baseline file; exit 3 on a regression beyond tolerance')
    .requiredOption(
      '--baseline <file>',
      'baseline (JSON or YAML): checks with metric, select, expected, tolerance, better',
    )
    .option('--db <file>', 'results database', DEFAULT_DB)
    .option('--update', "rewrite the baseline's expected values from the current results (tolerances kept)")
    .option('--json', 'print the results as JSON on stdout')
    .action(async (o: { baseline: string; db: string; update?: boolean; json?: boolean }) => {
      const r = await run({ baseline: o.baseline, db: o.db, ...(o.update ? { update: true } : {}) });
      if (o.json) emitJson(r);
      else
        process.stdout.write(
          formatTable(
            ['check', 'value', 'baseline', 'delta', 'allowed', 'better', 'seeds', 'verdict'],
            r.rows.map((x) => [
              x.name,
              fmt(x.value),
              fmt(x.baseline),
              fmt(x.delta),
              fmt(x.allowed),
              x.better,
              x.n,
              x.verdict.toUpperCase(),
            ]),
          ),
        );
      if (r.updated) return log(`updated ${r.baseline} with the current values (tolerances kept)`);
      if (r.regressions.length)
        throw new RegressionError(
          `${r.regressions.length} of ${r.rows.length} checks regressed: ${r.regressions.map((x) => `${x.name} (${fmt(x.value)} vs ${fmt(x.baseline)}, allowed ${fmt(x.allowed)})`).join('; ')}`,
        );
      log(`all ${r.rows.length} checks passed`);
    });
}
