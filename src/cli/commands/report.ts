// `fpdm-exp report [--db FILE] [--experiment NAME] [--out DIR] [--json]`: rebuilds the tables and
// figures from the database alone.
import type { Command } from 'commander';
import type { ReportOptions, ReportResult } from '../../report/index.js';
import { inspectDatabase } from '../../store/store.js';
import { prepareDir } from '../../util/fs.js';
import { emitJson, log } from '../../util/log.js';

export const DEFAULT_DB = 'results/fpdm.sqlite';
export const DEFAULT_REPORT_DIR = 'results/report';

export async function run(opts: ReportOptions): Promise<ReportResult> {
  // the paths first, before the database is read or anything drawn
  inspectDatabase(opts.db);
  prepareDir(opts.out, 'report --out directory', { create: false });
  // loaded on use: vega + vega-lite take about a second to import, which other commands should not pay
  const { buildReport } = await import('../../report/index.js');
  return buildReport(opts);
}

export function register(program: Command): void {
  program
    .command('report')
    .description('rebuild tables (Markdown, LaTeX, CSV), figures (SVG, PNG) and index.html from the results database')
    .option('--db <file>', 'results database', DEFAULT_DB)
    .option('--experiment <name>', 'only this experiment (default: all)')
    .option('--out <dir>', 'output directory', DEFAULT_REPORT_DIR)
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: { db: string; experiment?: string; out: string; json?: boolean }) => {
      const r = await run({
        db: o.db,
        out: o.out,
        ...(o.experiment === undefined ? {} : { experiment: o.experiment }),
      });
      if (o.json) return emitJson(r);
      log(
        `report: ${r.runs} runs, metric ${r.metric ?? '(none)'}, ${r.tables.length} tables, ${r.figures.length} figures, ${r.grids.length} sample grids`,
      );
      for (const s of r.skipped) log(`  not shown (${s.section}): ${s.reason}`);
      process.stdout.write(`${r.index}\n`);
    });
}
