// `buildReport`: the database → tables (Markdown, LaTeX, CSV), figures (SVG, PNG, spec, data),
// copied sample grids and one light index.html linking them all. Reads the database only (read-only open).
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { UserError } from '../util/errors.js';
import { atomicWrite } from '../util/fs.js';
import { openStore } from '../store/store.js';
import { sha256Hex } from '../store/json.js';
import { TAG } from '../store/names.js';
import { fmtTag } from './aggregate.js';
import { renderFigure, type FigureFiles } from './figures.js';
import { renderPage, type PageSection } from './html.js';
import { buildSections, distributionMetric, slug, type Section } from './sections.js';
import { toCsv, toLatex, toMarkdown } from './tables.js';

export interface ReportOptions {
  db: string;
  experiment?: string;
  out: string;
}

export interface ReportResult {
  out: string;
  index: string;
  metric: string | null;
  /** every file written, relative to `out` */
  files: string[];
  tables: string[];
  figures: string[];
  grids: string[];
  /** section id → reasons something was not shown */
  skipped: { section: string; reason: string }[];
  runs: number;
}

const MANIFEST = '.report-files.json';

export async function buildReport(opts: ReportOptions): Promise<ReportResult> {
  const store = openStore(opts.db, { readonly: true });
  let sections: Section[];
  let runsCount: number;
  let metric: string | null;
  try {
    if (opts.experiment !== undefined && !store.experiments().some((e) => e.name === opts.experiment)) {
      const names = store.experiments().map((e) => e.name);
      throw new UserError(
        `experiment '${opts.experiment}' is not in ${opts.db}; it has: ${names.length ? names.join(', ') : '(no experiments)'}`,
      );
    }
    const filter = opts.experiment === undefined ? {} : { experiment: opts.experiment };
    const runs = store.listRuns(filter);
    const metrics = store.metrics({ ...filter, status: ['completed'] });
    const artifacts = store.artifacts({ ...filter, status: ['completed'] });
    runsCount = runs.length;
    metric = distributionMetric(metrics);
    sections = buildSections({ runs, metrics, artifacts });
  } finally {
    store.close();
  }

  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const write = (rel: string, data: string | Uint8Array) => (
    atomicWrite(join(out, rel), [data]),
    written.push(rel),
    rel
  );
  const result: ReportResult = {
    out,
    index: join(out, 'index.html'),
    metric,
    files: written,
    tables: [],
    figures: [],
    grids: [],
    skipped: [],
    runs: runsCount,
  };

  const pages: PageSection[] = [];
  const markdown: string[] = [
    `# FPDM report`,
    '',
    `Database: \`${opts.db}\`${opts.experiment ? `, experiment \`${opts.experiment}\`` : ''}.`,
    '',
  ];
  for (const s of sections) {
    const page: PageSection = { section: s, tables: [], figures: [], grids: [] };
    markdown.push(`## ${s.title}`, '', s.description, '');
    for (const n of s.notes ?? []) markdown.push(`> ${n}`, '');
    for (const f of s.figures) {
      const files: FigureFiles = await renderFigure(f.spec, out, 'figures', f.id, f.title);
      written.push(files.svg, files.png, files.spec, files.data);
      page.figures.push(files);
      result.figures.push(f.id);
      markdown.push(`![${f.title}](${files.svg})`, '');
    }
    for (const t of s.tables) {
      const files = {
        md: write(`tables/${t.id}.md`, toMarkdown(t)),
        tex: write(`tables/${t.id}.tex`, toLatex(t)),
        csv: write(`tables/${t.id}.csv`, toCsv(t)),
      };
      page.tables.push({ table: t, files });
      result.tables.push(t.id);
      markdown.push(
        t.filesOnly
          ? `**${t.title}** (${t.rows.length} rows): [CSV](${files.csv}), [Markdown](${files.md}).\n`
          : toMarkdown(t),
      );
    }
    const extra: string[] = [];
    for (const { artifact: g, main } of s.grids) {
      const title = `${g.model}, budget ${fmtTag(g.tags[TAG.budget])}, ${g.tags[TAG.iters] !== undefined ? `${fmtTag(g.tags[TAG.steps])} steps × ${fmtTag(g.tags[TAG.iters])} iters` : `${fmtTag(g.tags[TAG.steps])} steps`}${g.tags[TAG.allocation] !== undefined && g.tags[TAG.allocation] !== 'fixed' ? `, ${fmtTag(g.tags[TAG.allocation])}` : ''}${g.tags[TAG.reuse] === false ? ', no reuse' : ''}, seed ${fmtTag(g.tags[TAG.seed])}`;
      if (!existsSync(g.absPath)) {
        s.skipped.push(`sample grid of ${title}: file ${g.path} (relative to the database) is missing`);
        continue;
      }
      const bytes = readFileSync(g.absPath);
      if (sha256Hex(bytes) !== g.sha256) {
        s.skipped.push(`sample grid of ${title}: ${g.path} no longer matches the SHA-256 recorded in the database`);
        continue;
      }
      const ext = extname(g.absPath).toLowerCase();
      const file = write(
        `grids/${slug(g.model)}_b${slug(fmtTag(g.tags[TAG.budget]))}_s${slug(fmtTag(g.tags[TAG.seed]))}_${g.id}${ext}`,
        bytes,
      );
      page.grids.push({ title, file, sha256: g.sha256, main });
      result.grids.push(file);
      if (main) markdown.push(`![${title}](${file})`, '');
      else extra.push(`[${title}](${file})`);
    }
    if (extra.length) markdown.push(`Further sample grids: ${extra.join(' · ')}`, '');
    for (const why of s.skipped)
      (result.skipped.push({ section: s.id, reason: why }), markdown.push(`_Not shown: ${why}._`, ''));
    pages.push(page);
  }
  write('report.md', markdown.join('\n'));
  const html = renderPage({
    title: `FPDM report${opts.experiment ? `: ${opts.experiment}` : ''}`,
    generated: new Date().toISOString(),
    database: opts.db,
    experiment: opts.experiment ?? null,
    metric,
    sections: pages,
    extraLinks: [{ href: 'report.md', text: 'all tables (Markdown)' }],
  });
  write('index.html', html);
  removeStale(out, written);
  return result;
}

/** Deletes files the previous report wrote that this one did not (so a skipped figure disappears). */
function removeStale(out: string, written: string[]): void {
  const path = join(out, MANIFEST);
  let before: string[] = [];
  try {
    before = JSON.parse(readFileSync(path, 'utf8')) as string[];
  } catch {
    // first report in this directory
  }
  const now = new Set(written);
  for (const f of before) if (!now.has(f) && !f.includes('..')) rmSync(join(out, f), { force: true });
  atomicWrite(path, [JSON.stringify(written, null, 1)]);
}
