// The paper's comparisons, each computed from the store's rows into tables and chart specs. A
// comparison whose data is absent is not drawn: the section says what was missing instead.
import { DISTRIBUTION_METRICS, METRIC, METRIC_LABELS, TAG, type MetricName, type ModelFamily } from '../store/names.js';
import type { ArtifactRecord, MetricRecord, RunRecord, TagValue } from '../store/types.js';
import { aggregate, cmpX, fmtTag, numTag, toPoints, type Agg } from './aggregate.js';
import { barChart, lineChart, type VlSpec } from './figures.js';
import { summarize } from './stats.js';
import { canonicalJson } from '../store/json.js';
import type { Cell, Column, Table } from './tables.js';

export interface FigureSpec {
  id: string;
  title: string;
  spec: VlSpec;
}

export interface Section {
  id: string;
  title: string;
  description: string;
  tables: Table[];
  figures: FigureSpec[];
  /** sample grids to show (sample_grids section) */
  grids: ArtifactRecord[];
  /** what could not be shown and why */
  skipped: string[];
}

export interface ReportInput {
  runs: RunRecord[];
  /** metric rows of completed runs */
  metrics: MetricRecord[];
  artifacts: ArtifactRecord[];
}

const LOWER_IS_BETTER = new Set<string>([METRIC.fid, METRIC.fdMnist, METRIC.kid, METRIC.kidMnist]);
const MiB = 1024 * 1024;

export function familyOf(model: string, family: ModelFamily | null): ModelFamily | null {
  if (family) return family;
  if (/fpdm/i.test(model)) return 'fpdm';
  if (/dit/i.test(model)) return 'dit';
  return null;
}

const label = (name: string) => METRIC_LABELS[name as MetricName] ?? name;

function section(id: string, title: string, description: string): Section {
  return { id, title, description, tables: [], figures: [], grids: [], skipped: [] };
}

/** The distribution metric the report uses: fid if any completed run has it, else fd_mnist, else kid, else kid_mnist. */
export function distributionMetric(metrics: MetricRecord[]): string | null {
  for (const m of DISTRIBUTION_METRICS) if (metrics.some((r) => r.name === m && r.step === null && Number.isFinite(r.value))) return m;
  return null;
}

const statCols = (m: string): Column[] => [
  { key: 'mean', label: `${label(m)} mean`, format: 'num' },
  { key: 'std', label: `${label(m)} std`, format: 'num' },
  { key: 'n', label: 'seeds', format: 'int' },
];
const stat = (a: Agg): Record<string, Cell> => ({ mean: a.mean, std: a.std, n: a.n });

export function buildSections(input: ReportInput): Section[] {
  const metric = distributionMetric(input.metrics);
  const scalar = (name: string) => input.metrics.filter((r) => r.name === name && r.step === null);
  const dist = metric ? scalar(metric) : [];
  const missingMetric = 'no completed run has a distribution metric (fid, fd_mnist, kid or kid_mnist)';
  // the other distribution metrics present get their own budget section (the ablations use `metric`)
  const others = DISTRIBUTION_METRICS.filter((m) => m !== metric && scalar(m).some((r) => Number.isFinite(r.value)));
  return [
    runsSection(input.runs),
    budgetSection(metric, dist, missingMetric),
    ...others.map((m) => budgetSection(m, scalar(m), missingMetric, `budget_${m}`)),
    smoothingSection(metric, dist, missingMetric),
    reuseAllocationSection(metric, dist, missingMetric),
    depthSection(metric, dist, missingMetric),
    sjfbSection(metric, dist, missingMetric),
    paramsMemorySection(input.metrics),
    throughputSection(input.metrics),
    lossSection(input.metrics),
    residualSection(input.metrics),
    gridsSection(input.artifacts),
  ];
}

function runsSection(runs: RunRecord[]): Section {
  const s = section('runs', 'Runs and provenance', 'Every run in the database by status, and the software and hardware the completed runs used.');
  const counts = new Map<string, { experiment: string; model: string; kind: string; status: string; n: number }>();
  for (const r of runs) {
    const k = [r.experiment ?? '', r.model, r.kind, r.status].join('\u0000');
    const c = counts.get(k) ?? { experiment: r.experiment ?? '–', model: r.model, kind: r.kind, status: r.status, n: 0 };
    c.n++;
    counts.set(k, c);
  }
  s.tables.push({
    id: 'runs', title: 'Runs', caption: 'Number of runs per experiment, model, kind and status.',
    columns: [{ key: 'experiment', label: 'experiment' }, { key: 'model', label: 'model' }, { key: 'kind', label: 'kind' }, { key: 'status', label: 'status' }, { key: 'n', label: 'runs', format: 'int' }],
    rows: [...counts.values()].sort((a, b) => `${a.experiment}${a.model}${a.kind}`.localeCompare(`${b.experiment}${b.model}${b.kind}`)),
  });
  const prov = new Map<string, Record<string, Cell>>();
  for (const r of runs.filter((x) => x.status === 'completed')) {
    const p = r.provenance;
    const row = { backend: p.backend?.name ?? null, version: p.backend?.version ?? null, device: p.backend?.device ?? null, commit: p.gitCommit ?? null, tool: p.toolVersion ?? null, host: p.host ?? null };
    const k = JSON.stringify(row);
    const have = prov.get(k) ?? { ...row, n: 0 };
    have.n = (have.n as number) + 1;
    prov.set(k, have);
  }
  if (prov.size)
    s.tables.push({
      id: 'provenance', title: 'Provenance', caption: 'Distinct backend / version / device / git commit / tool version / host combinations of the completed runs.',
      columns: [{ key: 'backend', label: 'backend' }, { key: 'version', label: 'backend version' }, { key: 'device', label: 'device' }, { key: 'commit', label: 'git commit' }, { key: 'tool', label: 'fpdm-exp' }, { key: 'host', label: 'host' }, { key: 'n', label: 'runs', format: 'int' }],
      rows: [...prov.values()],
    });
  if (!runs.length) s.skipped.push('the database holds no runs');
  return s;
}

function budgetSection(metric: string | null, rows: MetricRecord[], missing: string, id = 'budget'): Section {
  const title = metric ? `${label(metric)} vs sampling budget` : 'Distribution metric vs sampling budget';
  const s = section(id, title, 'One line per model: its configuration run at the most budgets (named in the table; ablation variants are in the sections below); mean ± std over seeds as bands. Budget in DiT-step equivalents (block evaluations / depth). Where several steps × iterations splits were run at a budget, the best one (by mean) is shown and named in the table.');
  if (!metric) return (s.skipped.push(missing), s);
  const withBudget = rows.filter((r) => numTag(r, TAG.budget) !== undefined);
  if (!withBudget.length) return (s.skipped.push(`no ${metric} row carries a '${TAG.budget}' tag`), s);
  // best steps × iterations split per (model, other configuration, budget), averaged over seeds
  const cfgKey = (r: MetricRecord) => {
    const { [TAG.seed]: _s, [TAG.steps]: _st, [TAG.iters]: _it, [TAG.budget]: _b, ...rest } = r.tags;
    return canonicalJson({ model: r.model, rest });
  };
  // one line per model: the configuration (tags other than budget/steps/iters/seed) covering the most budgets
  const cover = new Map<string, { model: string; budgets: Set<number>; rows: number }>();
  for (const r of withBudget) {
    const c = cover.get(cfgKey(r)) ?? { model: r.model, budgets: new Set(), rows: 0 };
    c.budgets.add(numTag(r, TAG.budget)!);
    c.rows++;
    cover.set(cfgKey(r), c);
  }
  const mainCfg = new Map<string, string>();
  for (const [k, c] of [...cover].sort(([ka, a], [kb, b]) => b.budgets.size - a.budgets.size || b.rows - a.rows || ka.localeCompare(kb)))
    if (!mainCfg.has(c.model)) mainCfg.set(c.model, k);
  const mainRows = withBudget.filter((r) => mainCfg.get(r.model) === cfgKey(r));
  const splitGroups = new Map<string, { cfg: string; budget: number; steps: string; iters: string; values: number[]; runIds: number[] }>();
  for (const r of mainRows) {
    if (!Number.isFinite(r.value)) continue;
    const [budget, steps, iters] = [numTag(r, TAG.budget)!, fmtTag(r.tags[TAG.steps]), fmtTag(r.tags[TAG.iters])];
    const k = `${cfgKey(r)}\u0000${budget}\u0000${steps}\u0000${iters}`;
    const g = splitGroups.get(k) ?? { cfg: cfgKey(r), budget, steps, iters, values: [], runIds: [] };
    g.values.push(r.value);
    g.runIds.push(r.runId);
    splitGroups.set(k, g);
  }
  const lower = LOWER_IS_BETTER.has(metric);
  const best = new Map<string, { steps: string; iters: string; mean: number; runIds: number[]; tried: number }>();
  for (const g of splitGroups.values()) {
    const k = `${g.cfg}\u0000${g.budget}`;
    const mean = summarize(g.values).mean;
    const b = best.get(k);
    const tried = (b?.tried ?? 0) + 1;
    if (!b || (lower ? mean < b.mean : mean > b.mean)) best.set(k, { steps: g.steps, iters: g.iters, mean, runIds: g.runIds, tried });
    else b.tried = tried;
  }
  const choiceOfRun = new Map<number, { steps: string; iters: string; tried: number }>();
  for (const b of best.values()) for (const id of b.runIds) choiceOfRun.set(id, b);
  const aggs = aggregate(mainRows.filter((r) => choiceOfRun.has(r.runId)), { x: (r) => numTag(r, TAG.budget), consumed: [TAG.budget, TAG.steps, TAG.iters] });
  const cfgText = (model: string) => {
    const rest = (JSON.parse(mainCfg.get(model)!) as { rest: Record<string, unknown> }).rest;
    return Object.entries(rest).map(([k, v]) => `${k}=${fmtTag(v as TagValue)}`).join(', ') || '–';
  };
  const rowsOut = aggs.map((a) => {
    const c = choiceOfRun.get(a.runIds[0]!)!;
    return { model: a.series, budget: a.x, steps: c.steps, iters: c.iters, splits: c.tried, config: cfgText(a.model), ...stat(a) };
  });
  s.tables.push({
    id: `${metric}_vs_budget`, title, caption: `${label(metric)} (${metric}) mean and sample std over seeds per model and budget; steps × iterations is the split shown, 'splits' how many were run.`,
    columns: [{ key: 'model', label: 'model' }, { key: 'budget', label: 'budget', format: 'num' }, { key: 'steps', label: 'steps' }, { key: 'iters', label: 'iters' }, ...statCols(metric), { key: 'splits', label: 'splits', format: 'int' }, { key: 'config', label: 'configuration' }],
    rows: rowsOut,
  });
  s.figures.push({ id: `${metric}_vs_budget`, title, spec: lineChart({ id: `${metric}_vs_budget`, title, xTitle: 'Sampling budget (DiT-step equivalents)', yTitle: label(metric), seriesTitle: 'model', points: toPoints(aggs) }) });
  return s;
}

function smoothingSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const title = `Timestep smoothing: ${metric ? label(metric) : 'metric'} vs steps × iterations at a fixed budget`;
  const s = section('smoothing', title, 'FPDM at a fixed budget, trading sampling steps against fixed-point iterations per step (fixed allocation).');
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter((r) => familyOf(r.model, r.family) === 'fpdm' && numTag(r, TAG.steps) !== undefined && numTag(r, TAG.iters) !== undefined && numTag(r, TAG.budget) !== undefined && (r.tags[TAG.allocation] ?? 'fixed') === 'fixed');
  const aggs = aggregate(cand, { x: (r) => `${numTag(r, TAG.steps)}×${numTag(r, TAG.iters)}`, base: (r) => `${r.model} @ budget ${numTag(r, TAG.budget)}`, consumed: [TAG.steps, TAG.iters, TAG.budget, TAG.allocation] });
  const xs = new Map<string, Set<string>>();
  for (const a of aggs) (xs.get(a.series) ?? xs.set(a.series, new Set()).get(a.series)!).add(String(a.x));
  const keep = aggs.filter((a) => xs.get(a.series)!.size >= 2).sort((a, b) => a.series.localeCompare(b.series) || parseFloat(String(a.x)) - parseFloat(String(b.x)));
  if (!keep.length) return (s.skipped.push(`no FPDM model has two or more steps × iterations splits of one budget with ${metric}`), s);
  s.tables.push({
    id: `smoothing_${metric}`, title, caption: `${label(metric)} mean and sample std over seeds for each steps × iterations split.`,
    columns: [{ key: 'series', label: 'model @ budget' }, { key: 'split', label: 'steps × iters' }, ...statCols(metric)],
    rows: keep.map((a) => ({ series: a.series, split: String(a.x), ...stat(a) })),
  });
  const sorted = [...keep].sort((a, b) => parseFloat(String(a.x)) - parseFloat(String(b.x)));
  s.figures.push({ id: `smoothing_${metric}`, title, spec: lineChart({ id: `smoothing_${metric}`, title, xTitle: 'Steps × iterations per step', yTitle: label(metric), seriesTitle: 'model @ budget', xType: 'ordinal', points: toPoints(sorted) }) });
  return s;
}

/** A bar comparison of configurations (x) within series, kept only where a series has 2+ configurations. */
function configBars(s: Section, metric: string, rows: MetricRecord[], o: { id: string; title: string; xTitle: string; x: (r: MetricRecord) => string | undefined; consumed: string[]; xCol: string; none: string; byFamily?: boolean }): void {
  const who = (r: MetricRecord) => (o.byFamily ? (familyOf(r.model, r.family) ?? r.model).toUpperCase() : r.model);
  const aggs = aggregate(rows, { x: o.x, base: (r) => `${who(r)} @ budget ${fmtTag(r.tags[TAG.budget])}`, consumed: [TAG.budget, ...o.consumed] });
  const xs = new Map<string, Set<string>>();
  for (const a of aggs) (xs.get(a.series) ?? xs.set(a.series, new Set()).get(a.series)!).add(String(a.x));
  const keep = aggs.filter((a) => xs.get(a.series)!.size >= 2);
  if (!keep.length) return void s.skipped.push(o.none);
  s.tables.push({
    id: o.id, title: o.title, caption: `${label(metric)} mean and sample std over seeds.`,
    columns: [{ key: 'series', label: 'model @ budget' }, { key: 'x', label: o.xCol }, ...statCols(metric)],
    rows: keep.map((a) => ({ series: a.series, x: String(a.x), ...stat(a) })),
  });
  s.figures.push({ id: o.id, title: o.title, spec: barChart({ id: o.id, title: o.title, xTitle: o.xTitle, yTitle: label(metric), seriesTitle: 'model @ budget', points: toPoints(keep.sort((a, b) => cmpX(a.x, b.x))) }) });
}

function reuseAllocationSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const s = section('reuse_allocation', 'Solution reuse and iteration allocation at equal budget', 'FPDM with fixed-point solution reuse on/off and iteration schedules (fixed, increasing, decreasing, tolerance) at the same budget.');
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter((r) => familyOf(r.model, r.family) === 'fpdm' && (r.tags[TAG.reuse] !== undefined || r.tags[TAG.allocation] !== undefined));
  configBars(s, metric, cand, {
    id: `reuse_allocation_${metric}`, title: `${label(metric)}: allocation schedule and solution reuse`, xTitle: 'allocation / reuse', xCol: 'allocation / reuse',
    x: (r) => `${fmtTag(r.tags[TAG.allocation] ?? 'fixed')} / reuse ${fmtTag(r.tags[TAG.reuse] ?? false)}`, consumed: [TAG.allocation, TAG.reuse, TAG.iters],
    none: `no FPDM model was run with two or more allocation / reuse settings at one budget with ${metric}`,
  });
  return s;
}

function depthSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const s = section('depth', 'Pre/post depth', 'FPDM with different numbers of explicit blocks before and after the fixed-point block.');
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter((r) => numTag(r, TAG.preDepth) !== undefined && numTag(r, TAG.postDepth) !== undefined);
  // models of different depths carry different labels: series by family (models still never pool:
  // two models at the same depth become separate series)
  configBars(s, metric, cand, {
    byFamily: true,
    id: `depth_${metric}`, title: `${label(metric)} vs pre/post depth`, xTitle: 'pre / post blocks', xCol: 'pre / post',
    x: (r) => `${numTag(r, TAG.preDepth)} / ${numTag(r, TAG.postDepth)}`, consumed: [TAG.preDepth, TAG.postDepth],
    none: `fewer than two pre/post depth settings with ${metric} at one budget`,
  });
  return s;
}

function sjfbSection(metric: string | null, rows: MetricRecord[], missing: string): Section {
  const s = section('sjfb', 'S-JFB iteration ranges', 'FPDM trained with different stochastic Jacobian-free backpropagation ranges: iterations without gradient and with gradient.');
  if (!metric) return (s.skipped.push(missing), s);
  const cand = rows.filter((r) => r.tags[TAG.sjfbNoGrad] !== undefined && r.tags[TAG.sjfbGrad] !== undefined);
  configBars(s, metric, cand, {
    id: `sjfb_${metric}`, title: `${label(metric)} vs S-JFB ranges`, xTitle: 'no-grad / grad iterations', xCol: 'no-grad / grad',
    x: (r) => `${fmtTag(r.tags[TAG.sjfbNoGrad])} / ${fmtTag(r.tags[TAG.sjfbGrad])}`, consumed: [TAG.sjfbNoGrad, TAG.sjfbGrad],
    none: `fewer than two S-JFB range settings with ${metric} at one budget`,
  });
  return s;
}

/** The DiT model an FPDM model is compared with: the same label with FPDM → DiT, else the only DiT model. */
export function pairedDit(model: string, ditModels: string[]): string | null {
  const same = ditModels.find((d) => d.toLowerCase() === model.replace(/fpdm/i, 'DiT').toLowerCase());
  if (same) return same;
  return ditModels.length === 1 ? ditModels[0]! : null;
}

function paramsMemorySection(metrics: MetricRecord[]): Section {
  const s = section('params_memory', 'Parameters and peak memory', 'Trainable parameters and peak tensor memory during training and sampling; "saved" is 1 − FPDM / DiT against the paired DiT model. Values are means over the completed runs that measured them.');
  // training memory rows carry grad_checkpoint (absent in older databases: measured without)
  const ckptOf = (r: MetricRecord) => r.name === METRIC.peakTrainBytes && r.tags[TAG.gradCheckpoint] === true;
  const qs = [
    { name: METRIC.params, col: 'params_M', title: 'Parameters', unit: 'M', scale: 1e6, ckpt: false },
    { name: METRIC.peakTrainBytes, col: 'train_MiB', title: 'Peak training memory', unit: 'MiB', scale: MiB, ckpt: false },
    { name: METRIC.peakTrainBytes, col: 'train_ckpt_MiB', title: 'Peak training memory, gradient checkpointing', unit: 'MiB', scale: MiB, ckpt: true },
    { name: METRIC.peakSampleBytes, col: 'sample_MiB', title: 'Peak sampling memory', unit: 'MiB', scale: MiB, ckpt: false },
  ];
  const models = new Map<string, { family: ModelFamily | null; vals: Record<string, number[]> }>();
  for (const r of metrics) {
    const q = qs.find((x) => x.name === r.name && x.ckpt === ckptOf(r));
    if (r.step !== null || !q || !Number.isFinite(r.value)) continue;
    const m = models.get(r.model) ?? { family: familyOf(r.model, r.family), vals: {} };
    (m.vals[q.col] ??= []).push(r.value);
    models.set(r.model, m);
  }
  if (!models.size) return (s.skipped.push('no completed run recorded params, peak_train_bytes or peak_sample_bytes'), s);
  const dits = [...models].filter(([, m]) => m.family === 'dit').map(([k]) => k);
  const mean = (model: string, col: string) => { const v = models.get(model)?.vals[col]; return v?.length ? summarize(v).mean : null; };
  const rows: Record<string, Cell>[] = [];
  for (const [model, m] of [...models].sort(([a], [b]) => a.localeCompare(b))) {
    const pair = m.family === 'fpdm' ? pairedDit(model, dits) : null;
    const row: Record<string, Cell> = { model, family: m.family, vs: pair };
    for (const q of qs) {
      const v = mean(model, q.col);
      row[q.col] = v === null ? null : v / q.scale;
      const d = pair ? mean(pair, q.col) : null;
      row[`${q.col}_saved`] = v !== null && d ? (1 - v / d) * 100 : null;
    }
    rows.push(row);
  }
  // databases from before the checkpointed measurement have no such column
  const shown = qs.filter((q) => !q.ckpt || rows.some((r) => r[q.col] !== null));
  s.tables.push({
    id: 'params_memory', title: 'Parameters and peak memory', caption: 'Parameters in millions, memory in MiB (2^20 bytes); saved = 1 − FPDM/DiT against the DiT model named in "vs".',
    columns: [
      { key: 'model', label: 'model' }, { key: 'family', label: 'family' }, { key: 'vs', label: 'vs' },
      ...shown.flatMap((q): Column[] => [{ key: q.col, label: `${q.title} (${q.unit})`, format: 'num' }, { key: `${q.col}_saved`, label: `${q.title} saved`, format: 'pct' }]),
    ],
    rows,
  });
  for (const q of shown) {
    const pts = rows.filter((r) => r[q.col] !== null).map((r) => {
      const saved = r[`${q.col}_saved`];
      return { series: String(r.family ?? 'other'), x: String(r.model), mean: r[q.col] as number, lo: r[q.col] as number, hi: r[q.col] as number, n: 1, ...(typeof saved === 'number' ? { label: `${saved >= 0 ? '−' : '+'}${Math.abs(saved).toFixed(1)}%` } : {}) };
    });
    if (!pts.length) {
      s.skipped.push(`${q.title}: no run recorded ${q.name}`);
      continue;
    }
    const id = `bars_${q.ckpt ? `${q.name}_ckpt` : q.name}`;
    s.figures.push({ id, title: `${q.title} (${q.unit})`, spec: barChart({ id, title: `${q.title}, DiT vs FPDM`, xTitle: 'model', yTitle: `${q.title} (${q.unit})`, seriesTitle: 'family', points: pts }) });
  }
  return s;
}

function throughputSection(metrics: MetricRecord[]): Section {
  const s = section('throughput', 'Throughput at equal budgets', 'Images per second with the work behind them: block evaluations and FLOPs per image (by formula) and wall-clock seconds of the sampling pass, per model and budget; mean ± std over seeds.');
  const qs = [METRIC.imagesPerSecond, METRIC.blockEvals, METRIC.flops, METRIC.sampleSeconds] as const;
  const per = new Map<string, Record<string, Cell>>();
  const tput: Agg[] = [];
  for (const q of qs) {
    const aggs = aggregate(metrics.filter((r) => r.name === q && r.step === null), { x: (r) => numTag(r, TAG.budget), consumed: [TAG.budget] });
    if (q === METRIC.imagesPerSecond) tput.push(...aggs);
    for (const a of aggs) {
      const k = `${a.series}\u0000${a.x}`;
      const row = per.get(k) ?? { model: a.series, budget: a.x };
      row[q] = a.mean;
      if (q === METRIC.imagesPerSecond) (row.ips_std = a.std), (row.n = a.n);
      per.set(k, row);
    }
  }
  if (!per.size) return (s.skipped.push(`no completed run recorded ${qs.join(', ')} with a '${TAG.budget}' tag`), s);
  s.tables.push({
    id: 'throughput', title: 'Throughput at equal budgets', caption: 'Per model and budget: block evaluations and FLOPs per image, seconds of the sampling pass, images/s (mean and std over seeds).',
    columns: [
      { key: 'model', label: 'model' }, { key: 'budget', label: 'budget', format: 'num' },
      { key: METRIC.blockEvals, label: 'block evals / image', format: 'num' }, { key: METRIC.flops, label: 'FLOPs / image', format: 'num' },
      { key: METRIC.sampleSeconds, label: 'seconds', format: 'num' }, { key: METRIC.imagesPerSecond, label: 'images/s mean', format: 'num' },
      { key: 'ips_std', label: 'images/s std', format: 'num' }, { key: 'n', label: 'seeds', format: 'int' },
    ],
    rows: [...per.values()].sort((a, b) => String(a.model).localeCompare(String(b.model)) || (a.budget as number) - (b.budget as number)),
  });
  if (tput.length)
    s.figures.push({ id: 'throughput', title: 'Throughput (images/s) at equal budgets', spec: barChart({ id: 'throughput', title: 'Throughput at equal budgets', xTitle: 'Sampling budget (DiT-step equivalents)', yTitle: label(METRIC.imagesPerSecond), seriesTitle: 'model', points: toPoints(tput.sort((a, b) => cmpX(a.x, b.x))).map((p) => ({ ...p, x: String(p.x) })) }) });
  else s.skipped.push(`throughput figure: no run recorded ${METRIC.imagesPerSecond}`);
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
    id: 'train_loss', title: 'Training loss', caption: 'First and last logged training loss per model (mean and std over seeds).',
    columns: [{ key: 'model', label: 'model' }, { key: 'steps', label: 'last step', format: 'int' }, { key: 'first', label: 'first loss', format: 'num' }, { key: 'last', label: 'last loss mean', format: 'num' }, { key: 'last_std', label: 'last loss std', format: 'num' }, { key: 'n', label: 'seeds', format: 'int' }],
    rows: [...bySeries].map(([series, as]) => ({ model: series, steps: as.at(-1)!.x as number, first: as[0]!.mean, last: as.at(-1)!.mean, last_std: as.at(-1)!.std, n: as.at(-1)!.n })),
  });
  s.figures.push({ id: 'train_loss', title: 'Training loss', spec: lineChart({ id: 'train_loss', title: 'Training loss', xTitle: 'optimizer step', yTitle: label(METRIC.trainLoss), seriesTitle: 'model', xInteger: true, points: toPoints(aggs) }) });
  return s;
}

function residualSection(metrics: MetricRecord[]): Section {
  const s = section('fp_residual', 'Fixed-point residual vs iteration', 'Relative residual ‖z_{k+1} − z_k‖ / ‖z_k‖ at each fixed-point iteration, one line per diffusion timestep, mean over seeds (log scale). At most 10 timesteps per model are drawn, evenly spaced; the CSV beside the figure has them all.');
  const rows = metrics.filter((r) => r.name === METRIC.fpResidual && r.step !== null && numTag(r, TAG.t) !== undefined);
  if (!rows.length) return (s.skipped.push(`no completed run recorded ${METRIC.fpResidual} with iteration steps and a '${TAG.t}' tag`), s);
  const tableRows: Record<string, Cell>[] = [];
  // models that logged only the final iteration's residual per timestep: residual vs timestep instead
  // (decided per run: a run with at most one row per timestep stored final residuals only)
  const perRunT = new Map<string, number>();
  for (const r of rows) perRunT.set(`${r.runId}\u0000${numTag(r, TAG.t)}`, (perRunT.get(`${r.runId}\u0000${numTag(r, TAG.t)}`) ?? 0) + 1);
  const curveRuns = new Set([...perRunT].filter(([, n]) => n > 1).map(([k]) => Number(k.split('\u0000')[0])));
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const finalOnly = models.filter((m) => !rows.some((r) => r.model === m && curveRuns.has(r.runId)));
  if (finalOnly.length) {
    const mine = rows.filter((r) => finalOnly.includes(r.model));
    const aggs = aggregate(mine, { x: (r) => numTag(r, TAG.t), consumed: [TAG.t] });
    for (const a of aggs) tableRows.push({ model: a.series, series: `t=${a.x}`, iters: (mine.find((r) => a.runIds.includes(r.runId) && numTag(r, TAG.t) === a.x)?.step ?? 0) + 1, first: null, last: a.mean });
    s.figures.push({
      id: 'fp_residual_by_timestep', title: 'Final fixed-point residual per timestep',
      spec: lineChart({ id: 'fp_residual_by_timestep', title: 'Final fixed-point residual per timestep', xTitle: 'diffusion timestep t', yTitle: `${label(METRIC.fpResidual)} (last iteration)`, seriesTitle: 'model', yLog: true, points: toPoints(aggs.filter((a) => a.mean > 0)) }),
    });
    s.skipped.push(`${finalOnly.join(', ')}: only the last iteration's residual was stored per timestep, so residual vs timestep is drawn instead of residual vs iteration`);
  }
  for (const model of models.filter((m) => !finalOnly.includes(m))) {
    const mine = rows.filter((r) => r.model === model);
    const aggs = aggregate(mine, { x: (r) => r.step ?? undefined, base: (r) => `t=${numTag(r, TAG.t)}`, consumed: [TAG.t] });
    const ts = [...new Set(mine.map((r) => numTag(r, TAG.t)!))].sort((a, b) => b - a);
    const shown = new Set(ts.length <= 10 ? ts : Array.from({ length: 10 }, (_, i) => ts[Math.round((i * (ts.length - 1)) / 9)]!));
    const bySeries = new Map<string, Agg[]>();
    for (const a of aggs) (bySeries.get(a.series) ?? bySeries.set(a.series, []).get(a.series)!).push(a);
    for (const [series, as] of bySeries) tableRows.push({ model, series, iters: as.length, first: as[0]!.mean, last: as.at(-1)!.mean });
    const pts = toPoints(aggs.filter((a) => shown.has(Number(/^t=(-?[\d.]+)/.exec(a.series)?.[1])) && a.mean > 0));
    const id = `fp_residual_${slug(model)}`;
    s.figures.push({ id, title: `Fixed-point residual: ${model}`, spec: lineChart({ id, title: `Fixed-point residual, ${model}`, xTitle: 'fixed-point iteration', yTitle: label(METRIC.fpResidual), seriesTitle: 'timestep', yLog: true, xInteger: true, points: pts }) });
  }
  s.tables.push({
    id: 'fp_residual', title: 'Fixed-point residuals', caption: 'Residual at the first and last iteration per model and timestep (mean over seeds).',
    columns: [{ key: 'model', label: 'model' }, { key: 'series', label: 'timestep' }, { key: 'iters', label: 'iterations', format: 'int' }, { key: 'first', label: 'first residual', format: 'num' }, { key: 'last', label: 'last residual', format: 'num' }],
    rows: tableRows,
  });
  return s;
}

function gridsSection(artifacts: ArtifactRecord[]): Section {
  const s = section('sample_grids', 'Sample grids', 'Sample grids stored by the runs, per model and budget.');
  const grids = artifacts.filter((a) => a.kind === 'sample_grid');
  if (!grids.length) return (s.skipped.push('no completed run stored a sample_grid artifact'), s);
  s.grids = grids.sort((a, b) => a.model.localeCompare(b.model) || cmpX((a.tags[TAG.budget] as number) ?? 0, (b.tags[TAG.budget] as number) ?? 0) || a.id - b.id);
  return s;
}

export function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^_+|_+$/g, '') || 'x';
}
