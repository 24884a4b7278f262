// The paper's comparisons, each computed from the store's rows into tables and chart specs. A
// comparison whose data is absent is not drawn: the section says what was missing instead. Every
// figure keeps to MAX_SERIES series per panel (faceting or summarising beyond it), draws numeric
// quantities on numeric axes, and names models by their short labels (defined in the Models table).
import { PAPER_SIZES, PAPER_TABLE1, PAPER_TABLE1_SETTING } from '../baselines/reference.js';
import { DISTRIBUTION_METRICS, METRIC, METRIC_LABELS, TAG, type MetricName, type ModelFamily } from '../store/names.js';
import type { ArtifactRecord, MetricRecord, RunRecord } from '../store/types.js';
import { aggregate, cmpX, fmtTag, numTag, toPoints, type Agg } from './aggregate.js';
import { barChart, fitSeries, lineChart, type SeriesPoint, type VlSpec } from './figures.js';
import { modelLabels, precisionLabel, splitPrecisionLabel, withoutPrecision } from './labels.js';
import { budgetSummary, configKey, familyOf, LOWER_IS_BETTER, qualityLevel, type BudgetSummary } from './quality.js';
import { residualSection, residualSummary } from './residuals.js';
import { summarize } from './stats.js';
import type { Cell, Column, Table } from './tables.js';
import { verdictsSection } from './verdicts.js';

export { familyOf } from './quality.js';

export interface FigureSpec {
  id: string;
  title: string;
  spec: VlSpec;
}

/** A sample grid shown on the page (`main`: the configuration of the quality figure, first seed). */
export interface GridShown {
  artifact: ArtifactRecord;
  main: boolean;
}

export interface Section {
  id: string;
  title: string;
  description: string;
  tables: Table[];
  figures: FigureSpec[];
  /** sample grids (sample_grids section) */
  grids: GridShown[];
  /** what could not be shown and why */
  skipped: string[];
  /** remarks shown under the section's figures (e.g. series summarised into the data file) */
  notes?: string[];
}

export interface ReportInput {
  runs: RunRecord[];
  /** metric rows of completed runs */
  metrics: MetricRecord[];
  artifacts: ArtifactRecord[];
}

const MiB = 1024 * 1024;

export const label = (name: string) => METRIC_LABELS[name as MetricName] ?? name;

export function section(id: string, title: string, description: string): Section {
  return { id, title, description, tables: [], figures: [], grids: [], skipped: [] };
}

/** The distribution metric the report uses: fid if any completed run has it, else fd_mnist, else kid, else kid_mnist. */
export function distributionMetric(metrics: MetricRecord[]): string | null {
  for (const m of DISTRIBUTION_METRICS)
    if (metrics.some((r) => r.name === m && r.step === null && Number.isFinite(r.value))) return m;
  return null;
}

const statCols = (m: string): Column[] => [
  { key: 'mean', label: `${label(m)} mean`, format: 'num' },
  { key: 'std', label: `${label(m)} std`, format: 'num' },
  { key: 'n', label: 'seeds', format: 'int' },
];
const stat = (a: Agg): Record<string, Cell> => ({ mean: a.mean, std: a.std, n: a.n });
/** distinct numbers, ascending (axis ticks) */
const ticks = (xs: (number | string)[]) =>
  [...new Set(xs.filter((x): x is number => typeof x === 'number'))].sort((a, b) => a - b);
const dropNote = (s: Section, figure: string, dropped: string[]) => {
  if (dropped.length)
    (s.notes ??= []).push(
      `${figure}: ${dropped.length} further series are not drawn (more than a panel can tell apart); they are in the figure's data file: ${dropped.join('; ')}`,
    );
};

export function buildSections(input: ReportInput): Section[] {
  // short labels: every model name in figures and tables is its label (the Models table defines them);
  // results at a precision other than fp32 are labelled as their own model ('DiT [mixed]'), so that no
  // comparison pools them with fp32 ones; the precision section sets the two side by side
  const labels = modelLabels([...input.runs, ...input.metrics]);
  const short = (m: string) => labels.get(m)?.label ?? m;
  const shortRows = input.metrics.map((r) => ({ ...r, model: short(r.model) }));
  const metrics = shortRows.map((r) => ({
    ...r,
    model: precisionLabel(r.model, r.tags),
    tags: withoutPrecision(r.tags),
  }));
  const artifacts = input.artifacts.map((a) => ({
    ...a,
    model: precisionLabel(short(a.model), a.tags),
    tags: withoutPrecision(a.tags),
  }));
  const metric = distributionMetric(metrics);
  const scalar = (name: string) => metrics.filter((r) => r.name === name && r.step === null);
  const dist = metric ? scalar(metric) : [];
  const summary = metric ? budgetSummary(metric, dist) : null;
  const missingMetric = 'no completed run has a distribution metric (fid, fd_mnist, kid or kid_mnist)';
  // the other distribution metrics present get their own budget section (the ablations use `metric`)
  const others = DISTRIBUTION_METRICS.filter((m) => m !== metric && scalar(m).some((r) => Number.isFinite(r.value)));
  const residuals = residualSummary(metrics);
  // only where a result is not fp32: an fp32-only report has the sections it had before precisions
  const precisions = shortRows.some((r) => (r.tags[TAG.precision] ?? 'fp32') !== 'fp32')
    ? [
        precisionSection(
          metric,
          metric ? shortRows.filter((r) => r.name === metric && r.step === null) : [],
          missingMetric,
        ),
      ]
    : [];
  return [
    runsSection(input.runs, labels),
    verdictsSection({ metric, dist, summary, metrics, residuals }),
    budgetSection(metric, dist, summary, missingMetric, metrics),
    ...others.map((m) =>
      budgetSection(m, scalar(m), budgetSummary(m, scalar(m)), missingMetric, metrics, `budget_${m}`),
    ),
    ...precisions,
    smoothingSection(metric, dist, summary, missingMetric),
    reuseAllocationSection(metric, dist, missingMetric),
    depthSection(metric, dist, missingMetric),
    sjfbSection(metric, dist, missingMetric),
    paramsMemorySection(metrics),
    throughputSection(metrics, summary),
    lossSection(metrics),
    residualSection(metrics, residuals),
    gridsSection(artifacts, summary),
  ];
}

function runsSection(runs: RunRecord[], labels: ReturnType<typeof modelLabels>): Section {
  const s = section(
    'runs',
    'Runs, models and provenance',
    'Every run in the database by status, the models (with the short labels the figures use) and the software and hardware the completed runs used.',
  );
  const short = (m: string) => labels.get(m)?.label ?? m;
  // a precision column only where some run is not fp32 (null cells: the column is not shown)
  const mixed = runs.some((r) => (r.tags[TAG.precision] ?? 'fp32') !== 'fp32');
  const precisionOf = (r: RunRecord): string | null => (mixed ? String(r.tags[TAG.precision] ?? 'fp32') : null);
  s.tables.push({
    id: 'models',
    title: 'Models',
    caption: `The short label each figure and table uses for a model, and the model it stands for.${mixed ? " A label with ' [mixed]' appended stands for the model's results at mixed precision (f16 tensor-core matmuls), kept apart from its fp32 results everywhere." : ''}`,
    columns: [
      { key: 'label', label: 'label' },
      { key: 'family', label: 'family' },
      { key: 'model', label: 'model' },
    ],
    rows: [...labels.values()]
      .sort((a, b) => a.label.localeCompare(b.label))
      .map((l) => ({ label: l.label, family: l.family, model: l.model })),
  });
  const counts = new Map<
    string,
    { experiment: string; model: string; precision: string | null; kind: string; status: string; n: number }
  >();
  for (const r of runs) {
    const k = [r.experiment ?? '', r.model, precisionOf(r), r.kind, r.status].join('\u0000');
    const c = counts.get(k) ?? {
      experiment: r.experiment ?? '–',
      model: short(r.model),
      precision: precisionOf(r),
      kind: r.kind,
      status: r.status,
      n: 0,
    };
    c.n++;
    counts.set(k, c);
  }
  s.tables.push({
    id: 'runs',
    title: 'Runs',
    caption: `Number of runs per experiment, model, ${mixed ? 'precision, ' : ''}kind and status.`,
    columns: [
      { key: 'experiment', label: 'experiment' },
      { key: 'model', label: 'model' },
      { key: 'precision', label: 'precision' },
      { key: 'kind', label: 'kind' },
      { key: 'status', label: 'status' },
      { key: 'n', label: 'runs', format: 'int' },
    ],
    rows: [...counts.values()].sort((a, b) =>
      `${a.experiment}${a.model}${a.precision ?? ''}${a.kind}`.localeCompare(
        `${b.experiment}${b.model}${b.precision ?? ''}${b.kind}`,
      ),
    ),
  });
  const prov = new Map<string, Record<string, Cell>>();
  for (const r of runs.filter((x) => x.status === 'completed')) {
    const p = r.provenance;
    const row = {
      backend: p.backend?.name ?? null,
      // runs stored before the precision was recorded computed at fp32
      precision: mixed ? (p.backend?.precision ?? 'fp32') : null,
      version: p.backend?.version ?? null,
      device: p.backend?.device ?? null,
      commit: p.gitCommit ?? null,
      tool: p.toolVersion ?? null,
      host: p.host ?? null,
    };
    const k = JSON.stringify(row);
    const have = prov.get(k) ?? { ...row, n: 0 };
    have.n = (have.n as number) + 1;
    prov.set(k, have);
  }
  if (prov.size)
    s.tables.push({
      id: 'provenance',
      title: 'Provenance',
      caption: `Distinct backend / ${mixed ? 'precision / ' : ''}version / device / git commit / tool version / host combinations of the completed runs.`,
      columns: [
        { key: 'backend', label: 'backend' },
        { key: 'precision', label: 'precision' },
        { key: 'version', label: 'backend version' },
        { key: 'device', label: 'device' },
        { key: 'commit', label: 'git commit' },
        { key: 'tool', label: 'fpdm-exp' },
        { key: 'host', label: 'host' },
        { key: 'n', label: 'runs', format: 'int' },
      ],
      rows: [...prov.values()],
    });
  if (!runs.length) s.skipped.push('the database holds no runs');
  return s;
}

/**
 * The DiT model an FPDM model is compared with, at the same precision (precisionLabel): the same label
 * with FPDM → DiT, else the only DiT model at that precision.
 */
export function pairedDit(model: string, ditModels: string[]): string | null {
  const m = splitPrecisionLabel(model);
  const dits = ditModels.filter((d) => splitPrecisionLabel(d).precision === m.precision);
  const same = dits.find(
    (d) => splitPrecisionLabel(d).base.toLowerCase() === m.base.replace(/fpdm/i, 'DiT').toLowerCase(),
  );
  if (same) return same;
  return dits.length === 1 ? dits[0]! : null;
}

/** (FPDM, DiT) pairs among the models of `rows`. */
export function modelPairs(rows: MetricRecord[]): { fpdm: string; dit: string }[] {
  const fam = new Map(rows.map((r) => [r.model, familyOf(r.model, r.family)]));
  const dits = [...fam]
    .filter(([, f]) => f === 'dit')
    .map(([m]) => m)
    .sort();
  return [...fam]
    .filter(([, f]) => f === 'fpdm')
    .map(([m]) => m)
    .sort()
    .flatMap((fpdm) => {
      const dit = pairedDit(fpdm, dits);
      return dit ? [{ fpdm, dit }] : [];
    });
}

function budgetSection(
  metric: string | null,
  rows: MetricRecord[],
  summary: BudgetSummary | null,
  missing: string,
  all: MetricRecord[],
  id = 'budget',
): Section {
  const title = metric ? `${label(metric)} vs sampling budget` : 'Distribution metric vs sampling budget';
  const s = section(
    id,
    title,
    'Quality against sampling compute, one line per model: its configuration run at the most budgets (named in the table; ablation variants are in the sections below); mean ± std over seeds as bands. Budget in DiT-step equivalents (block evaluations / depth). Where several steps × iterations splits were run at a budget, the best one (by mean) is shown and named in the table.',
  );
  if (!metric || !summary) return (s.skipped.push(missing), s);
  if (!summary.points.length) return (s.skipped.push(`no ${metric} row carries a '${TAG.budget}' tag`), s);
  s.tables.push({
    id: `${metric}_vs_budget`,
    title,
    caption: `${label(metric)} (${metric}) mean and sample std over seeds per model and budget; steps × iterations is the split shown, 'splits' how many were run.`,
    columns: [
      { key: 'model', label: 'model' },
      { key: 'budget', label: 'budget', format: 'num' },
      { key: 'steps', label: 'steps' },
      { key: 'iters', label: 'iters' },
      ...statCols(metric),
      { key: 'splits', label: 'splits', format: 'int' },
      { key: 'config', label: 'configuration' },
    ],
    rows: summary.points.map((a) => ({
      model: a.series,
      budget: a.budget,
      steps: a.steps,
      iters: a.iters,
      splits: a.splits,
      config: a.configText,
      ...stat(a),
    })),
  });
  const fam = new Map(rows.map((r) => [r.model, familyOf(r.model, r.family) ?? 'other']));
  const fit = fitSeries(toPoints(summary.points), [(p) => String(fam.get(p.series) ?? 'other').toUpperCase()]);
  dropNote(s, title, fit.dropped);
  const ql = qualityLevel(metric, rows);
  const refBand = ql
    ? {
        lo: ql.real[0],
        hi: ql.real[1],
        text: `real images: ${ql.real[0]}–${ql.real[1]} (${ql.numImages} vs ${ql.referenceImages})`,
      }
    : undefined;
  s.figures.push({
    id: `${metric}_vs_budget`,
    title,
    spec: lineChart({
      id: `${metric}_vs_budget`,
      title,
      xTitle: 'Sampling budget (DiT-step equivalents, log scale)',
      yTitle: label(metric),
      seriesTitle: 'model',
      xLog: true,
      xTicks: ticks(summary.points.map((p) => p.budget)),
      points: fit.points,
      ...(refBand ? { refBand } : {}),
    }),
  });
  if (ql)
    (s.notes ??= []).push(
      `The green band is what real images score on ${metric} with the same image counts: ${ql.source}.`,
    );
  if (id === 'budget') paperQuality(s, metric, summary, all);
  return s;
}

/** The paper's Table 1 beside ours at the budgets it reports (5, 10, 20 DiT-step equivalents). */
function paperQuality(s: Section, metric: string, summary: BudgetSummary, all: MetricRecord[]): void {
  const at = (model: string, budget: number) => summary.points.find((p) => p.series === model && p.budget === budget);
  const change = (f: number | undefined, d: number | undefined) => (f !== undefined && d ? (f / d - 1) * 100 : null);
  const rows: Record<string, Cell>[] = [];
  for (const { fpdm, dit } of modelPairs(all.filter((r) => r.name === metric))) {
    for (const p of PAPER_TABLE1) {
      const [d, f] = [at(dit, p.budget), at(fpdm, p.budget)];
      rows.push({
        budget: p.budget,
        blocks: p.blocks,
        paper_dit: p.dit.ddpm,
        paper_fpdm: p.fpdm.ddpm,
        paper_change: change(p.fpdm.ddpm, p.dit.ddpm),
        paper_dit_ddim: p.dit.ddim,
        paper_fpdm_ddim: p.fpdm.ddim,
        pair: `${fpdm} vs ${dit}`,
        ours_dit: d?.mean ?? null,
        ours_fpdm: f?.mean ?? null,
        ours_change: change(f?.mean, d?.mean),
      });
    }
  }
  if (!rows.length) return void s.skipped.push('paper vs ours: no FPDM model with a paired DiT model');
  const lower = LOWER_IS_BETTER.has(metric);
  const pairs = [...new Set(rows.map((r) => r.pair))];
  s.tables.push({
    id: `paper_vs_ours_${metric}`,
    title: `The paper's Table 1 beside ours, at its budgets`,
    caption: `Paper: ${PAPER_TABLE1_SETTING} (block evaluations 140 / 280 / 560 = 5 / 10 / 20 DiT-step equivalents). Ours: ${label(metric)} (${metric}) means over seeds at the same budgets in DiT-step equivalents of our models; a different dataset, resolution and metric, so compare the FPDM-vs-DiT change (${lower ? 'negative: FPDM better' : 'positive: FPDM better'}), not the levels.${pairs.length === 1 ? ` Ours: ${pairs[0]}.` : ''}`,
    columns: [
      { key: 'budget', label: 'budget', format: 'num' },
      { key: 'blocks', label: 'paper block evals', format: 'int' },
      { key: 'paper_dit', label: 'paper DiT FID (DDPM)', format: 'num' },
      { key: 'paper_fpdm', label: 'paper FPDM FID (DDPM)', format: 'num' },
      { key: 'paper_change', label: 'paper FPDM vs DiT', format: 'pct' },
      { key: 'paper_dit_ddim', label: 'paper DiT FID (DDIM)', format: 'num' },
      { key: 'paper_fpdm_ddim', label: 'paper FPDM FID (DDIM)', format: 'num' },
      ...(pairs.length > 1 ? [{ key: 'pair', label: 'ours' }] : []),
      { key: 'ours_dit', label: `ours DiT ${label(metric)}`, format: 'num' },
      { key: 'ours_fpdm', label: `ours FPDM ${label(metric)}`, format: 'num' },
      { key: 'ours_change', label: 'ours FPDM vs DiT', format: 'pct' },
    ],
    rows,
  });
}

function smoothingSection(
  metric: string | null,
  rows: MetricRecord[],
  summary: BudgetSummary | null,
  missing: string,
): Section {
  const title = `Timestep smoothing: ${metric ? label(metric) : 'metric'} vs sampling steps at a fixed budget`;
  const s = section(
    'smoothing',
    title,
    'FPDM at a fixed budget, trading sampling steps against fixed-point iterations per step (fixed allocation, the main configuration of the quality figure); one line per budget, one panel per model. At S steps each step runs (budget·depth)/S − pre − post iterations. The dashed line is the DiT at the same budget.',
  );
  if (!metric || !summary) return (s.skipped.push(missing), s);
  const main = (r: MetricRecord) => summary.mainConfig.get(r.model) === configKey(r);
  const cand = rows.filter(
    (r) =>
      familyOf(r.model, r.family) === 'fpdm' &&
      main(r) &&
      numTag(r, TAG.steps) !== undefined &&
      numTag(r, TAG.iters) !== undefined &&
      numTag(r, TAG.budget) !== undefined &&
      (r.tags[TAG.allocation] ?? 'fixed') === 'fixed',
  );
  const aggs = aggregate(cand, {
    x: (r) => numTag(r, TAG.steps),
    base: (r) => `${r.model}\u0000${numTag(r, TAG.budget)}`,
    consumed: [TAG.steps, TAG.iters, TAG.budget, TAG.allocation, TAG.numImages, 'reference_images'],
  });
  const bySeries = new Map<string, Agg[]>();
  for (const a of aggs) (bySeries.get(a.series) ?? bySeries.set(a.series, []).get(a.series)!).push(a);
  const keep = [...bySeries.values()].filter((as) => as.length >= 2).flat();
  if (!keep.length)
    return (s.skipped.push(`no FPDM model has two or more steps × iterations splits of one budget with ${metric}`), s);
  const parse = (a: Agg) => {
    const [model, budget] = a.series.split('\u0000');
    return { model: model!, budget: Number(budget) };
  };
  const itersOf = (a: Agg) => cand.find((r) => a.runIds.includes(r.runId))?.tags[TAG.iters] ?? null;
  const sorted = keep.sort(
    (a, b) =>
      parse(a).model.localeCompare(parse(b).model) ||
      parse(a).budget - parse(b).budget ||
      (a.x as number) - (b.x as number),
  );
  s.tables.push({
    id: `smoothing_${metric}`,
    title,
    caption: `${label(metric)} mean and sample std over seeds for each steps × iterations split of a budget.`,
    columns: [
      { key: 'series', label: 'model @ budget' },
      { key: 'split', label: 'steps × iters' },
      { key: 'steps', label: 'steps', format: 'int' },
      { key: 'iters', label: 'iterations per step', format: 'int' },
      ...statCols(metric),
    ],
    rows: sorted.map((a) => ({
      series: `${parse(a).model} @ budget ${parse(a).budget}`,
      split: `${a.x}×${fmtTag(itersOf(a))}`,
      steps: a.x,
      iters: itersOf(a) as Cell,
      ...stat(a),
    })),
  });
  const multi = new Set(sorted.map((a) => parse(a).model)).size > 1;
  const pts: SeriesPoint[] = sorted.map((a) => ({
    ...toPoints([a])[0]!,
    series: `budget ${parse(a).budget}`,
    style: 'FPDM',
    ...(multi ? { panel: parse(a).model } : {}),
  }));
  // DiT at the same budget, as a flat dashed reference over the FPDM's range of steps
  for (const [series, as] of bySeries) {
    if (as.length < 2) continue;
    const { model, budget } = parse(as[0]!);
    const dit = summary.points.find(
      (p) =>
        familyOf(p.series, null) === 'dit' && p.budget === budget && (pairedDit(model, [p.series]) ?? '') === p.series,
    );
    if (!dit) continue;
    const xs = as.map((a) => a.x as number);
    for (const x of [Math.min(...xs), Math.max(...xs)])
      pts.push({
        series: `budget ${budget}`,
        x,
        mean: dit.mean,
        lo: dit.mean,
        hi: dit.mean,
        n: dit.n,
        style: `${dit.series} at the same budget`,
        ...(multi ? { panel: model } : {}),
      });
    void series;
  }
  const fit = fitSeries(pts, []);
  dropNote(s, title, fit.dropped);
  s.figures.push({
    id: `smoothing_${metric}`,
    title,
    spec: lineChart({
      id: `smoothing_${metric}`,
      title,
      xTitle: 'Sampling steps (log scale; fewer steps = more iterations per step)',
      yTitle: label(metric),
      seriesTitle: 'budget',
      styleTitle: 'model',
      xLog: true,
      xTicks: ticks(pts.map((p) => p.x)),
      points: fit.points,
    }),
  });
  return s;
}

/**
 * fp32 beside mixed precision: per model, budget and sampling configuration run at both, the
 * distribution metric's mean and std over seeds at each, their difference, and whether it is within
 * the seed spread (the fp32 sample std: how far two seeds at one precision already differ).
 */
function precisionSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const title = `Precision: ${metric ? label(metric) : 'metric'} at fp32 and mixed`;
  const s = section(
    'precision',
    title,
    "The same models, seeds and sampling settings trained and sampled at fp32 and at mixed precision (f16 tensor-core matmuls with f32 accumulation, on webgpu): mean ± std over seeds at each, and the difference against the seed spread. Elsewhere in this report the mixed results are labelled '<model> [mixed]'.",
  );
  if (!metric) return (s.skipped.push(missing), s);
  const precisionOf = (r: MetricRecord) => String(r.tags[TAG.precision] ?? 'fp32');
  const aggs = aggregate(rows, {
    x: precisionOf,
    base: (r) => `${r.model} @ budget ${fmtTag(r.tags[TAG.budget])}`,
    consumed: [TAG.precision, TAG.budget, TAG.numImages, 'reference_images'],
  });
  const bySeries = new Map<string, Map<string, Agg>>();
  for (const a of aggs)
    (bySeries.get(a.series) ?? bySeries.set(a.series, new Map()).get(a.series)!).set(String(a.x), a);
  const pairs = [...bySeries]
    .filter(([, m]) => m.has('fp32') && m.has('mixed'))
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  if (!pairs.length) return (s.skipped.push(`no configuration has ${metric} at both fp32 and mixed precision`), s);
  const table = pairs.map(([series, m]) => {
    const [f, x] = [m.get('fp32')!, m.get('mixed')!];
    const spread = f.n >= 2 ? f.std : null;
    const diff = x.mean - f.mean;
    return {
      series,
      fp32_mean: f.mean,
      fp32_std: f.std,
      fp32_n: f.n,
      mixed_mean: x.mean,
      mixed_std: x.std,
      mixed_n: x.n,
      diff,
      spread,
      within: spread === null ? null : Math.abs(diff) <= spread ? 'yes' : 'no',
    };
  });
  s.tables.push({
    id: `precision_${metric}`,
    title,
    caption: `${label(metric)} (${metric}) mean and sample std over seeds at each precision, per model @ budget (and sampling configuration where several were run); 'within the seed spread': |mixed − fp32| ≤ the fp32 std over seeds (– with fewer than two fp32 seeds).`,
    columns: [
      { key: 'series', label: 'model @ budget' },
      { key: 'fp32_mean', label: 'fp32 mean', format: 'num' },
      { key: 'fp32_std', label: 'fp32 std', format: 'num' },
      { key: 'fp32_n', label: 'fp32 seeds', format: 'int' },
      { key: 'mixed_mean', label: 'mixed mean', format: 'num' },
      { key: 'mixed_std', label: 'mixed std', format: 'num' },
      { key: 'mixed_n', label: 'mixed seeds', format: 'int' },
      { key: 'diff', label: 'mixed − fp32', format: 'num' },
      { key: 'spread', label: 'seed spread (fp32 std)', format: 'num' },
      { key: 'within', label: 'within the seed spread' },
    ],
    rows: table,
  });
  const judged = table.filter((r) => r.within !== null);
  if (judged.length)
    (s.notes ??= []).push(
      `${judged.filter((r) => r.within === 'yes').length} of ${judged.length} configurations score the same ${metric} at mixed as at fp32 within the seed spread.`,
    );
  const keep = pairs.flatMap(([, m]) => [m.get('fp32')!, m.get('mixed')!]);
  const fit = fitSeries(toPoints(keep), [(p) => /@ budget (\S+)/.exec(p.series)?.[0] ?? p.series]);
  dropNote(s, title, fit.dropped);
  s.figures.push({
    id: `precision_${metric}`,
    title,
    spec: barChart({
      id: `precision_${metric}`,
      title,
      xTitle: 'precision',
      yTitle: label(metric),
      seriesTitle: 'model @ budget',
      points: fit.points,
    }),
  });
  return s;
}

/** A bar comparison of configurations (x) within series, kept only where a series has 2+ configurations. */
function configBars(
  s: Section,
  metric: string,
  rows: MetricRecord[],
  o: {
    id: string;
    title: string;
    xTitle: string;
    x: (r: MetricRecord) => string | undefined;
    consumed: string[];
    xCol: string;
    none: string;
    byFamily?: boolean;
  },
): void {
  const who = (r: MetricRecord) => (o.byFamily ? (familyOf(r.model, r.family) ?? r.model).toUpperCase() : r.model);
  const aggs = aggregate(rows, {
    x: o.x,
    base: (r) => `${who(r)} @ budget ${fmtTag(r.tags[TAG.budget])}`,
    consumed: [TAG.budget, TAG.numImages, 'reference_images', ...o.consumed],
  });
  const xs = new Map<string, Set<string>>();
  for (const a of aggs) (xs.get(a.series) ?? xs.set(a.series, new Set()).get(a.series)!).add(String(a.x));
  const keep = aggs.filter((a) => xs.get(a.series)!.size >= 2);
  if (!keep.length) return void s.skipped.push(o.none);
  s.tables.push({
    id: o.id,
    title: o.title,
    caption: `${label(metric)} mean and sample std over seeds.`,
    columns: [{ key: 'series', label: 'model @ budget' }, { key: 'x', label: o.xCol }, ...statCols(metric)],
    rows: keep.map((a) => ({ series: a.series, x: String(a.x), ...stat(a) })),
  });
  const fit = fitSeries(toPoints(keep.sort((a, b) => cmpX(a.x, b.x))), [
    (p) => /@ budget (\S+)/.exec(p.series)?.[0] ?? p.series,
  ]);
  dropNote(s, o.title, fit.dropped);
  s.figures.push({
    id: o.id,
    title: o.title,
    spec: barChart({
      id: o.id,
      title: o.title,
      xTitle: o.xTitle,
      yTitle: label(metric),
      seriesTitle: 'model @ budget',
      points: fit.points,
    }),
  });
}

function reuseAllocationSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const s = section(
    'reuse_allocation',
    'Solution reuse and iteration allocation at equal budget',
    'FPDM with fixed-point solution reuse on/off and iteration schedules (fixed, increasing, decreasing, tolerance) at the same budget and split.',
  );
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter(
    (r) =>
      familyOf(r.model, r.family) === 'fpdm' &&
      (r.tags[TAG.reuse] !== undefined || r.tags[TAG.allocation] !== undefined),
  );
  configBars(s, metric, cand, {
    id: `reuse_allocation_${metric}`,
    title: `${label(metric)}: allocation schedule and solution reuse`,
    xTitle: 'allocation / reuse',
    xCol: 'allocation / reuse',
    x: (r) => `${fmtTag(r.tags[TAG.allocation] ?? 'fixed')} / reuse ${fmtTag(r.tags[TAG.reuse] ?? false)}`,
    consumed: [TAG.allocation, TAG.reuse, TAG.iters],
    none: `no FPDM model was run with two or more allocation / reuse settings at one budget with ${metric}`,
  });
  return s;
}

function depthSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const s = section(
    'depth',
    'Pre/post depth',
    'FPDM with different numbers of explicit blocks before and after the fixed-point block.',
  );
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter((r) => numTag(r, TAG.preDepth) !== undefined && numTag(r, TAG.postDepth) !== undefined);
  // models of different depths carry different labels: series by family (models still never pool:
  // two models at the same depth become separate series)
  configBars(s, metric, cand, {
    byFamily: true,
    id: `depth_${metric}`,
    title: `${label(metric)} vs pre/post depth`,
    xTitle: 'pre / post blocks',
    xCol: 'pre / post',
    x: (r) => `${numTag(r, TAG.preDepth)} / ${numTag(r, TAG.postDepth)}`,
    consumed: [TAG.preDepth, TAG.postDepth],
    none: `fewer than two pre/post depth settings with ${metric} at one budget`,
  });
  return s;
}

function sjfbSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const s = section(
    'sjfb',
    'S-JFB iteration ranges',
    'FPDM trained with different stochastic Jacobian-free backpropagation ranges: iterations without gradient and with gradient.',
  );
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter((r) => r.tags[TAG.sjfbNoGrad] !== undefined && r.tags[TAG.sjfbGrad] !== undefined);
  configBars(s, metric, cand, {
    id: `sjfb_${metric}`,
    title: `${label(metric)} vs S-JFB ranges`,
    xTitle: 'no-grad / grad iterations',
    xCol: 'no-grad / grad',
    x: (r) => `${fmtTag(r.tags[TAG.sjfbNoGrad])} / ${fmtTag(r.tags[TAG.sjfbGrad])}`,
    consumed: [TAG.sjfbNoGrad, TAG.sjfbGrad],
    none: `fewer than two S-JFB range settings with ${metric} at one budget`,
  });
  return s;
}

export interface SizeRow {
  model: string;
  family: ModelFamily | null;
  vs: string | null;
  [col: string]: Cell;
}

/** Parameters and peak memory per model (means), with "saved" against the paired DiT. */
export function sizeRows(metrics: MetricRecord[]): {
  rows: SizeRow[];
  shown: { name: string; col: string; title: string; unit: string; scale: number; ckpt: boolean }[];
} {
  const ckptOf = (r: MetricRecord) => r.name === METRIC.peakTrainBytes && r.tags[TAG.gradCheckpoint] === true;
  const qs = [
    { name: METRIC.params, col: 'params_M', title: 'Parameters', unit: 'M', scale: 1e6, ckpt: false },
    {
      name: METRIC.peakTrainBytes,
      col: 'train_MiB',
      title: 'Peak training memory',
      unit: 'MiB',
      scale: MiB,
      ckpt: false,
    },
    {
      name: METRIC.peakTrainBytes,
      col: 'train_ckpt_MiB',
      title: 'Peak training memory, gradient checkpointing',
      unit: 'MiB',
      scale: MiB,
      ckpt: true,
    },
    {
      name: METRIC.peakSampleBytes,
      col: 'sample_MiB',
      title: 'Peak sampling memory',
      unit: 'MiB',
      scale: MiB,
      ckpt: false,
    },
  ];
  const models = new Map<string, { family: ModelFamily | null; vals: Record<string, number[]> }>();
  for (const r of metrics) {
    const q = qs.find((x) => x.name === r.name && x.ckpt === ckptOf(r));
    if (r.step !== null || !q || !Number.isFinite(r.value)) continue;
    const m = models.get(r.model) ?? { family: familyOf(r.model, r.family), vals: {} };
    (m.vals[q.col] ??= []).push(r.value);
    models.set(r.model, m);
  }
  const dits = [...models].filter(([, m]) => m.family === 'dit').map(([k]) => k);
  const mean = (model: string, col: string) => {
    const v = models.get(model)?.vals[col];
    return v?.length ? summarize(v).mean : null;
  };
  const rows: SizeRow[] = [];
  for (const [model, m] of [...models].sort(([a], [b]) => a.localeCompare(b))) {
    const pair = m.family === 'fpdm' ? pairedDit(model, dits) : null;
    const row: SizeRow = { model, family: m.family, vs: pair };
    for (const q of qs) {
      const v = mean(model, q.col);
      row[q.col] = v === null ? null : v / q.scale;
      const d = pair ? mean(pair, q.col) : null;
      row[`${q.col}_saved`] = v !== null && d ? (1 - v / d) * 100 : null;
    }
    rows.push(row);
  }
  // databases from before the checkpointed measurement have no such column
  return { rows, shown: qs.filter((q) => !q.ckpt || rows.some((r) => r[q.col] !== null)) };
}

function paramsMemorySection(metrics: MetricRecord[]): Section {
  const s = section(
    'params_memory',
    'Parameters and peak memory',
    'Trainable parameters and peak tensor memory during training and sampling; "saved" is 1 − FPDM / DiT against the paired DiT model. Values are means over the completed runs that measured them. The paper\'s own figures are beside ours in the last table and figure, labelled as the paper\'s.',
  );
  const { rows, shown } = sizeRows(metrics);
  if (!rows.length)
    return (s.skipped.push('no completed run recorded params, peak_train_bytes or peak_sample_bytes'), s);
  s.tables.push({
    id: 'params_memory',
    title: 'Parameters and peak memory',
    caption:
      'Parameters in millions, memory in MiB (2^20 bytes); saved = 1 − FPDM/DiT against the DiT model named in "vs".',
    columns: [
      { key: 'model', label: 'model' },
      { key: 'family', label: 'family' },
      { key: 'vs', label: 'vs' },
      ...shown.flatMap((q): Column[] => [
        { key: q.col, label: `${q.title} (${q.unit})`, format: 'num' },
        { key: `${q.col}_saved`, label: `${q.title} saved`, format: 'pct' },
      ]),
    ],
    rows,
  });
  // one figure, one panel per quantity (each its own y scale), bars labelled with the saving
  const pts: SeriesPoint[] = [];
  for (const q of shown) {
    const mine = rows
      .filter((r) => r[q.col] !== null)
      .map((r): SeriesPoint => {
        const saved = r[`${q.col}_saved`];
        return {
          series: String(r.family ?? 'other'),
          x: String(r.model),
          mean: r[q.col] as number,
          lo: r[q.col] as number,
          hi: r[q.col] as number,
          n: 1,
          panel: `${q.title} (${q.unit})`,
          ...(typeof saved === 'number' ? { label: `${saved >= 0 ? '−' : '+'}${Math.abs(saved).toFixed(1)}%` } : {}),
        };
      });
    if (!mine.length) s.skipped.push(`${q.title}: no run recorded ${q.name}`);
    pts.push(...mine);
  }
  const fit = fitSeries(pts, []);
  dropNote(s, 'parameters and memory', fit.dropped);
  if (pts.length)
    s.figures.push({
      id: 'params_memory',
      title: 'Parameters and peak memory, DiT vs FPDM',
      spec: barChart({
        id: 'params_memory',
        title: 'Parameters and peak memory (labels: the FPDM change against its DiT)',
        xTitle: 'model (labels: Models table)',
        yTitle: '',
        seriesTitle: 'family',
        sharedLegend: true,
        points: fit.points,
      }),
    });
  paperSizes(s, rows);
  return s;
}

/** The paper's parameter and training-memory reductions beside ours. */
function paperSizes(s: Section, rows: SizeRow[]): void {
  const pairs = rows.filter((r) => r.vs !== null);
  if (!pairs.length) return void s.skipped.push('paper vs ours: no FPDM model with a paired DiT model');
  const P = PAPER_SIZES;
  const paperSaved = {
    params_M: (1 - P.params.fpdm / P.params.dit) * 100,
    train_MiB: (1 - P.trainMemoryBytes.fpdm / P.trainMemoryBytes.dit) * 100,
  };
  const tableRows: Record<string, Cell>[] = [];
  const pts: SeriesPoint[] = [];
  const quantities = [
    {
      col: 'params_M',
      name: 'parameters',
      paper: `${P.params.dit / 1e6}M → ${P.params.fpdm / 1e6}M`,
      saved: paperSaved.params_M,
    },
    {
      col: 'train_MiB',
      name: 'training memory',
      paper: `${P.trainMemoryBytes.dit / 1e9} GB → ${P.trainMemoryBytes.fpdm / 1e9} GB`,
      saved: paperSaved.train_MiB,
    },
    { col: 'train_ckpt_MiB', name: 'training memory, ckpt', paper: null, saved: null },
  ];
  for (const q of quantities) {
    if (q.saved !== null)
      pts.push({
        series: 'paper (DiT-XL/2 vs FPDM, ImageNet)',
        x: q.name,
        mean: q.saved,
        lo: q.saved,
        hi: q.saved,
        n: 1,
        label: `${q.saved.toFixed(1)}%`,
      });
    for (const r of pairs) {
      const ours = r[`${q.col}_saved`];
      if (typeof ours !== 'number' && q.saved === null) continue;
      tableRows.push({
        quantity: q.name,
        paper: q.paper,
        paper_saved: q.saved,
        ours: `${r.model} vs ${r.vs}`,
        ours_saved: typeof ours === 'number' ? ours : null,
      });
      if (typeof ours === 'number')
        pts.push({
          series: `ours (${r.model} vs ${r.vs})`,
          x: q.name,
          mean: ours,
          lo: ours,
          hi: ours,
          n: 1,
          label: `${ours.toFixed(1)}%`,
        });
    }
  }
  s.tables.push({
    id: 'paper_vs_ours_sizes',
    title: 'Parameters and training memory saved: the paper beside ours',
    caption: `Saved = 1 − FPDM/DiT (negative: FPDM larger). Paper: ${P.params.setting}; ${P.trainMemoryBytes.setting}. Ours: the means of the table above; the paper did not report a checkpointed measurement.`,
    columns: [
      { key: 'quantity', label: 'quantity' },
      { key: 'paper', label: 'paper (DiT → FPDM)' },
      { key: 'paper_saved', label: 'paper saved', format: 'pct' },
      { key: 'ours', label: 'ours' },
      { key: 'ours_saved', label: 'ours saved', format: 'pct' },
    ],
    rows: tableRows,
  });
  const fit = fitSeries(pts, []);
  dropNote(s, 'saved vs paper', fit.dropped);
  s.figures.push({
    id: 'saved_vs_paper',
    title: 'Saved by FPDM against DiT: the paper and ours',
    spec: barChart({
      id: 'saved_vs_paper',
      title: 'Saved by FPDM against DiT (1 − FPDM/DiT)',
      xTitle: 'quantity',
      yTitle: 'saved (%)',
      seriesTitle: 'source',
      points: fit.points,
    }),
  });
}

function throughputSection(metrics: MetricRecord[], summary: BudgetSummary | null): Section {
  const s = section(
    'throughput',
    'Throughput at equal budgets',
    "Images per second with the work behind them: block evaluations and FLOPs per image (by formula) and wall-clock seconds of the sampling pass; mean ± std over seeds. The main table and figure show, per model and budget, the configuration and split of the quality figure (where that split measured no throughput, the configuration's split with the most steps); every configuration is in the full CSV.",
  );
  const qs = [METRIC.imagesPerSecond, METRIC.blockEvals, METRIC.flops, METRIC.sampleSeconds] as const;
  const rows = metrics.filter(
    (r) => (qs as readonly string[]).includes(r.name) && r.step === null && numTag(r, TAG.budget) !== undefined,
  );
  if (!rows.length) return (s.skipped.push(`no completed run recorded ${qs.join(', ')} with a '${TAG.budget}' tag`), s);
  const main =
    summary && summary.points.length
      ? summary
      : budgetSummary(
          METRIC.imagesPerSecond,
          rows.filter((r) => r.name === METRIC.imagesPerSecond),
        );
  // per (model, budget): the quality figure's split where it measured throughput, else the main configuration's split with the most steps
  const pick = new Map<string, string>();
  const splitOf = (r: MetricRecord) => `${fmtTag(r.tags[TAG.steps])}×${fmtTag(r.tags[TAG.iters])}`;
  for (const r of rows.filter(
    (x) => x.name === METRIC.imagesPerSecond && main.mainConfig.get(x.model) === configKey(x),
  )) {
    const k = `${r.model}\u0000${numTag(r, TAG.budget)}`;
    const c = main.chosen.get(k);
    const have = pick.get(k);
    if (c && `${c.steps}×${c.iters}` === splitOf(r)) pick.set(k, splitOf(r));
    else if (
      !have ||
      (!(c && `${c.steps}×${c.iters}` === have) && (numTag(r, TAG.steps) ?? 0) > Number(have.split('×')[0]))
    )
      pick.set(k, splitOf(r));
  }
  const isMain = (r: MetricRecord) =>
    main.mainConfig.get(r.model) === configKey(r) &&
    pick.get(`${r.model}\u0000${numTag(r, TAG.budget)}`) === splitOf(r);
  const build = (subset: MetricRecord[], keepConfig: boolean) => {
    const per = new Map<string, Record<string, Cell>>();
    const tput: Agg[] = [];
    for (const q of qs) {
      const aggs = aggregate(
        subset.filter((r) => r.name === q),
        {
          x: (r) => numTag(r, TAG.budget),
          base: (r) =>
            keepConfig
              ? `${r.model}\u0000${configKey(r)}\u0000${fmtTag(r.tags[TAG.steps])}×${fmtTag(r.tags[TAG.iters])}`
              : r.model,
          consumed: keepConfig ? [TAG.budget] : [TAG.budget, TAG.steps, TAG.iters],
        },
      );
      if (q === METRIC.imagesPerSecond) tput.push(...aggs);
      for (const a of aggs) {
        const k = `${a.series}\u0000${a.x}`;
        const r0 = subset.find((r) => r.runId === a.runIds[0])!;
        const rest = Object.entries(r0.tags).filter(
          ([k2]) =>
            ![
              TAG.seed,
              TAG.budget,
              TAG.steps,
              TAG.iters,
              TAG.preDepth,
              TAG.postDepth,
              TAG.sjfbGrad,
              TAG.sjfbNoGrad,
            ].includes(k2 as never),
        );
        const row = per.get(k) ?? {
          model: r0.model,
          budget: a.x,
          steps: fmtTag(r0.tags[TAG.steps]),
          iters: fmtTag(r0.tags[TAG.iters]),
          config: rest.map(([k2, v]) => `${k2}=${fmtTag(v)}`).join(', ') || null,
        };
        row[q] = a.mean;
        if (q === METRIC.imagesPerSecond) ((row.ips_std = a.std), (row.n = a.n));
        per.set(k, row);
      }
    }
    return {
      rows: [...per.values()].sort(
        (a, b) =>
          String(a.model).localeCompare(String(b.model)) ||
          (a.budget as number) - (b.budget as number) ||
          String(a.steps).localeCompare(String(b.steps), 'en', { numeric: true }),
      ),
      tput,
    };
  };
  const columns: Column[] = [
    { key: 'model', label: 'model' },
    { key: 'budget', label: 'budget', format: 'num' },
    { key: 'steps', label: 'steps' },
    { key: 'iters', label: 'iters' },
    { key: METRIC.blockEvals, label: 'block evals / image', format: 'num' },
    { key: METRIC.flops, label: 'FLOPs / image', format: 'num' },
    { key: METRIC.sampleSeconds, label: 'seconds', format: 'num' },
    { key: METRIC.imagesPerSecond, label: 'images/s mean', format: 'num' },
    { key: 'ips_std', label: 'images/s std', format: 'num' },
    { key: 'n', label: 'seeds', format: 'int' },
  ];
  const m = build(rows.filter(isMain), false);
  s.tables.push({
    id: 'throughput',
    title: 'Throughput at equal budgets',
    caption:
      'Per model and budget, the configuration and split of the quality figure: block evaluations and FLOPs per image, seconds of the sampling pass, images/s (mean and std over seeds).',
    columns,
    rows: m.rows,
  });
  const everything = build(rows, true);
  if (everything.rows.length > m.rows.length)
    s.tables.push({
      id: 'throughput_all',
      title: 'Throughput of every configuration',
      caption: 'Every sampling configuration (split, allocation, reuse) per model and budget.',
      columns: [...columns.slice(0, 4), { key: 'config', label: 'configuration' }, ...columns.slice(4)],
      rows: everything.rows,
      filesOnly: true,
    });
  if (m.tput.length) {
    const fit = fitSeries(toPoints(m.tput), []);
    dropNote(s, 'throughput', fit.dropped);
    s.figures.push({
      id: 'throughput',
      title: 'Throughput (images/s) at equal budgets',
      spec: lineChart({
        id: 'throughput',
        title: 'Throughput at equal budgets',
        xTitle: 'Sampling budget (DiT-step equivalents, log scale)',
        yTitle: label(METRIC.imagesPerSecond),
        seriesTitle: 'model',
        xLog: true,
        xTicks: ticks(m.tput.map((a) => a.x)),
        points: fit.points,
      }),
    });
  } else s.skipped.push(`throughput figure: no run recorded ${METRIC.imagesPerSecond}`);
  return s;
}

function lossSection(metrics: MetricRecord[]): Section {
  const s = section('train_loss', 'Training loss curves', 'Training loss per optimizer step, mean ± std over seeds.');
  const rows = metrics.filter((r) => r.name === METRIC.trainLoss && r.step !== null);
  if (!rows.length) return (s.skipped.push(`no completed run recorded ${METRIC.trainLoss} with steps`), s);
  const aggs = aggregate(rows, { x: (r) => r.step ?? undefined, consumed: [] });
  const bySeries = new Map<string, Agg[]>();
  for (const a of aggs) (bySeries.get(a.series) ?? bySeries.set(a.series, []).get(a.series)!).push(a);
  s.tables.push({
    id: 'train_loss',
    title: 'Training loss',
    caption: 'First and last logged training loss per model (mean and std over seeds).',
    columns: [
      { key: 'model', label: 'model' },
      { key: 'steps', label: 'last step', format: 'int' },
      { key: 'first', label: 'first loss', format: 'num' },
      { key: 'last', label: 'last loss mean', format: 'num' },
      { key: 'last_std', label: 'last loss std', format: 'num' },
      { key: 'n', label: 'seeds', format: 'int' },
    ],
    rows: [...bySeries].map(([series, as]) => ({
      model: series,
      steps: as.at(-1)!.x as number,
      first: as[0]!.mean,
      last: as.at(-1)!.mean,
      last_std: as.at(-1)!.std,
      n: as.at(-1)!.n,
    })),
  });
  const fam = new Map(rows.map((r) => [r.model, familyOf(r.model, r.family) ?? 'other']));
  const fit = fitSeries(toPoints(aggs), [(p) => String(fam.get(p.series.split(' (')[0]!) ?? 'other').toUpperCase()]);
  dropNote(s, 'training loss', fit.dropped);
  s.figures.push({
    id: 'train_loss',
    title: 'Training loss',
    spec: lineChart({
      id: 'train_loss',
      title: 'Training loss',
      xTitle: 'optimizer step',
      yTitle: label(METRIC.trainLoss),
      seriesTitle: 'model',
      xInteger: true,
      yLog: true,
      points: fit.points,
    }),
  });
  return s;
}

/** Sample grids: the quality figure's configuration per model and budget (first seed) on the page; the rest linked. */
function gridsSection(artifacts: ArtifactRecord[], summary: BudgetSummary | null): Section {
  const s = section(
    'sample_grids',
    'Sample grids',
    'Sample grids of the configuration in the quality figure, per model and budget (first seed); click a thumbnail for the full image. Every other stored grid is listed below the thumbnails.',
  );
  const grids = artifacts.filter((a) => a.kind === 'sample_grid');
  if (!grids.length) return (s.skipped.push('no completed run stored a sample_grid artifact'), s);
  const sorted = grids.sort(
    (a, b) =>
      a.model.localeCompare(b.model) ||
      cmpX((a.tags[TAG.budget] as number) ?? 0, (b.tags[TAG.budget] as number) ?? 0) ||
      ((a.tags[TAG.seed] as number) ?? 0) - ((b.tags[TAG.seed] as number) ?? 0) ||
      a.id - b.id,
  );
  // an artifact's tags are its run's plus its own (e.g. images: 64): compare the run's configuration only
  const cfgOf = (a: ArtifactRecord) =>
    configKey({ model: a.model, tags: Object.fromEntries(Object.entries(a.tags).filter(([k]) => k !== 'images')) });
  const isMainCfg = (a: ArtifactRecord) => {
    if (!summary || !summary.mainConfig.size) return true;
    if (summary.mainConfig.get(a.model) !== cfgOf(a)) return false;
    const c = summary.chosen.get(`${a.model}\u0000${a.tags[TAG.budget]}`);
    return c === undefined || (c.steps === fmtTag(a.tags[TAG.steps]) && c.iters === fmtTag(a.tags[TAG.iters]));
  };
  // one thumbnail per (model, budget): the quality figure's split, else the main configuration, else the first grid
  const key = (a: ArtifactRecord) => `${a.model}\u0000${a.tags[TAG.budget]}`;
  const inMain = (a: ArtifactRecord) =>
    !summary || !summary.mainConfig.size || summary.mainConfig.get(a.model) === cfgOf(a);
  const thumb = new Map<string, ArtifactRecord>();
  for (const test of [isMainCfg, inMain, () => true])
    for (const a of sorted) if (!thumb.has(key(a)) && test(a)) thumb.set(key(a), a);
  const shown = new Set(thumb.values());
  s.grids = sorted.map((a) => ({ artifact: a, main: shown.has(a) }));
  return s;
}

export function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^_+|_+$/g, '') || 'x';
}
