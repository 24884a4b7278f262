// Fixed-point residuals ‖z_{k+1} − z_k‖ / ‖z_k‖ during sampling, in two separate views:
//   - vs timestep: the residual the solver stopped at (its last iteration) at each diffusion timestep,
//     one line per sampling configuration; this is the convergence check every run can give;
//   - vs iteration: the residual at each fixed-point iteration, one line per timestep (a few, evenly
//     spaced), for runs that stored every iteration.
// The page shows a summary per configuration; the per-timestep numbers go to a CSV.
import type { MetricRecord, Tags } from '../store/types.js';
import { canonicalJson } from '../store/json.js';
import { aggregate, fmtTag, numTag, toPoints } from './aggregate.js';
import { fitSeries, lineChart, MAX_SERIES, type SeriesPoint } from './figures.js';
import { METRIC, TAG } from '../store/names.js';
import { label, section, slug, type Section } from './sections.js';
import type { Cell } from './tables.js';

/** A final residual at or below this counts as converged (stated on the page and in the verdicts). */
export const CONVERGED = 0.05;
/** panels of the vs-iteration view per model (configurations beyond it are in the CSV) */
const MAX_PANELS = 6;

export interface ResidualConfig {
  model: string;
  budget: number | null;
  steps: number | null;
  iters: number | null;
  allocation: string;
  reuse: boolean | null;
  /** short name: "10×2 decreasing, reuse off" */
  name: string;
  /** timestep → mean over seeds of the last iteration's residual, and its iteration count */
  final: Map<number, { mean: number; std: number | null; n: number; iterations: number }>;
  /** timestep → per-iteration means (only where every iteration was stored) */
  curves: Map<number, { first: number; last: number; iterations: number }>;
  /** rows of runs that stored every iteration */
  curveRows: MetricRecord[];
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface ResidualStats {
  median: number;
  max: number;
  tAtMax: number;
  /** share of logged timesteps with final residual <= CONVERGED */
  converged: number;
  timesteps: number;
}

export function residualStats(c: ResidualConfig): ResidualStats {
  const entries = [...c.final];
  const vals = entries.map(([, v]) => v.mean);
  const [tAtMax, top] = entries.reduce((a, b) => (b[1].mean > a[1].mean ? b : a));
  return {
    median: median(vals),
    max: top.mean,
    tAtMax,
    converged: vals.filter((v) => v <= CONVERGED).length / vals.length,
    timesteps: vals.length,
  };
}

function configName(tags: Tags): string {
  if (tags[TAG.steps] === undefined) return `budget ${fmtTag(tags[TAG.budget] ?? null)}`;
  const reuse = tags[TAG.reuse] === undefined ? '' : `, reuse ${fmtTag(tags[TAG.reuse])}`;
  return `${fmtTag(tags[TAG.steps])}×${fmtTag(tags[TAG.iters])} ${fmtTag(tags[TAG.allocation] ?? 'fixed')}${reuse}`;
}

/** Residual rows grouped by sampling configuration (model + tags without seed and t), seeds averaged. */
export function residualSummary(metrics: MetricRecord[]): ResidualConfig[] {
  const rows = metrics.filter(
    (r) =>
      r.name === METRIC.fpResidual && r.step !== null && numTag(r, TAG.t) !== undefined && Number.isFinite(r.value),
  );
  const perRunT = new Map<string, number>();
  for (const r of rows)
    perRunT.set(`${r.runId}\u0000${numTag(r, TAG.t)}`, (perRunT.get(`${r.runId}\u0000${numTag(r, TAG.t)}`) ?? 0) + 1);
  const curveRuns = new Set([...perRunT].filter(([, n]) => n > 1).map(([k]) => Number(k.split('\u0000')[0])));
  const lastStep = new Map<string, number>();
  for (const r of rows) {
    const k = `${r.runId}\u0000${numTag(r, TAG.t)}`;
    lastStep.set(k, Math.max(lastStep.get(k) ?? -1, r.step!));
  }
  const groups = new Map<string, { tags: Tags; model: string; rows: MetricRecord[] }>();
  for (const r of rows) {
    const { [TAG.seed]: _s, [TAG.t]: _t, ...tags } = r.tags;
    const k = canonicalJson({ model: r.model, tags });
    const g = groups.get(k) ?? { tags, model: r.model, rows: [] };
    g.rows.push(r);
    groups.set(k, g);
  }
  const out: ResidualConfig[] = [];
  for (const g of groups.values()) {
    const finals = g.rows.filter((r) => lastStep.get(`${r.runId}\u0000${numTag(r, TAG.t)}`) === r.step);
    const final = new Map<number, { mean: number; std: number | null; n: number; iterations: number }>();
    for (const a of aggregate(finals, { x: (r) => numTag(r, TAG.t), base: () => 'x', consumed: [TAG.t] })) {
      const iterations = Math.max(
        ...finals.filter((r) => a.runIds.includes(r.runId) && numTag(r, TAG.t) === a.x).map((r) => r.step! + 1),
      );
      final.set(a.x as number, { mean: a.mean, std: a.std, n: a.n, iterations });
    }
    const curveRows = g.rows.filter((r) => curveRuns.has(r.runId));
    const curves = new Map<number, { first: number; last: number; iterations: number }>();
    const byT = new Map<number, MetricRecord[]>();
    for (const r of curveRows)
      (byT.get(numTag(r, TAG.t)!) ?? byT.set(numTag(r, TAG.t)!, []).get(numTag(r, TAG.t)!)!).push(r);
    for (const [t, rs] of byT) {
      const at = (k: number) => {
        const v = rs.filter((r) => r.step === k).map((r) => r.value);
        return v.reduce((a, b) => a + b, 0) / v.length;
      };
      const kmax = Math.max(...rs.map((r) => r.step!));
      curves.set(t, { first: at(0), last: at(kmax), iterations: kmax + 1 });
    }
    const num = (k: string) => (typeof g.tags[k] === 'number' ? (g.tags[k] as number) : null);
    out.push({
      model: g.model,
      budget: num(TAG.budget),
      steps: num(TAG.steps),
      iters: num(TAG.iters),
      allocation: String(g.tags[TAG.allocation] ?? 'fixed'),
      reuse: typeof g.tags[TAG.reuse] === 'boolean' ? (g.tags[TAG.reuse] as boolean) : null,
      name: configName(g.tags),
      final,
      curves,
      curveRows,
    });
  }
  return out.sort(
    (a, b) =>
      a.model.localeCompare(b.model) ||
      (a.budget ?? 0) - (b.budget ?? 0) ||
      (a.steps ?? 0) - (b.steps ?? 0) ||
      a.name.localeCompare(b.name),
  );
}

export function residualSection(metrics: MetricRecord[], configs: ResidualConfig[]): Section {
  const s = section(
    'fp_residual',
    'Fixed-point residuals',
    `Relative residual ‖z_{k+1} − z_k‖ / ‖z_k‖ of the fixed-point solver while sampling (log scale). Two views: the residual where the solver stopped, against the diffusion timestep (one line per sampling configuration, one panel per budget); and, where runs stored every iteration, the residual against the iteration (one line per timestep). A final residual at or below ${CONVERGED} counts as converged. The per-timestep numbers are in the CSV.`,
  );
  if (!configs.length)
    return (
      s.skipped.push(`no completed run recorded ${METRIC.fpResidual} with iteration steps and a '${TAG.t}' tag`),
      s
    );
  const multiModel = new Set(configs.map((c) => c.model)).size > 1;
  // summary per configuration (on the page)
  s.tables.push({
    id: 'fp_residual',
    title: 'Fixed-point residual per sampling configuration',
    caption: `Residual of the last iteration over the logged timesteps (mean over seeds at each timestep): median, largest (and where), and the share of timesteps at or below ${CONVERGED}.`,
    columns: [
      { key: 'model', label: 'model' },
      { key: 'budget', label: 'budget', format: 'num' },
      { key: 'config', label: 'steps × iters, allocation, reuse' },
      { key: 'timesteps', label: 'timesteps', format: 'int' },
      { key: 'median', label: 'final residual median', format: 'num' },
      { key: 'max', label: 'final residual max', format: 'num' },
      { key: 'tmax', label: 't of max', format: 'int' },
      { key: 'converged', label: `converged (≤ ${CONVERGED})`, format: 'pct' },
    ],
    rows: configs.map((c) => {
      const st = residualStats(c);
      return {
        model: c.model,
        budget: c.budget,
        config: c.name,
        timesteps: st.timesteps,
        median: st.median,
        max: st.max,
        tmax: st.tAtMax,
        converged: st.converged * 100,
      };
    }),
  });
  // every timestep (files only)
  const long: Record<string, Cell>[] = [];
  for (const c of configs)
    for (const [t, f] of [...c.final].sort((a, b) => b[0] - a[0])) {
      const cv = c.curves.get(t);
      long.push({
        model: c.model,
        budget: c.budget,
        config: c.name,
        t,
        iterations: f.iterations,
        first: cv?.first ?? null,
        last: f.mean,
        last_std: f.std,
        n: f.n,
      });
    }
  s.tables.push({
    id: 'fp_residual_by_timestep',
    title: 'Fixed-point residual per timestep',
    caption:
      'Per configuration and timestep: iterations run, residual of the first iteration (where every iteration was stored) and of the last (mean and std over seeds).',
    columns: [
      { key: 'model', label: 'model' },
      { key: 'budget', label: 'budget', format: 'num' },
      { key: 'config', label: 'steps × iters, allocation, reuse' },
      { key: 't', label: 'timestep', format: 'int' },
      { key: 'iterations', label: 'iterations', format: 'int' },
      { key: 'first', label: 'first residual', format: 'num' },
      { key: 'last', label: 'last residual', format: 'num' },
      { key: 'last_std', label: 'last residual std', format: 'num' },
      { key: 'n', label: 'seeds', format: 'int' },
    ],
    rows: long,
    filesOnly: true,
  });
  // view 1: final residual vs timestep
  const byName = new Map<string, ResidualConfig>();
  const pts: SeriesPoint[] = [];
  for (const c of configs) {
    const series = multiModel ? `${c.model}: ${c.name}` : c.name;
    byName.set(series, c);
    for (const [t, f] of c.final)
      if (f.mean > 0) pts.push({ series, x: t, mean: f.mean, lo: f.mean, hi: f.mean, n: f.n });
  }
  const cfg = (p: SeriesPoint) => byName.get(p.series)!;
  const fit = fitSeries(
    pts.map((p) => (multiModel ? { ...p, panel: cfg(p).model } : p)),
    [
      (p) => `budget ${fmtTag(cfg(p).budget)}`,
      (p) => `budget ${fmtTag(cfg(p).budget)}, reuse ${fmtTag(cfg(p).reuse)}`,
      (p) => `budget ${fmtTag(cfg(p).budget)}, reuse ${fmtTag(cfg(p).reuse)}, ${cfg(p).allocation}`,
    ],
  );
  if (fit.dropped.length)
    (s.notes ??= []).push(
      `residual vs timestep: ${fit.dropped.length} configurations not drawn (in the CSV): ${fit.dropped.join('; ')}`,
    );
  s.figures.push({
    id: 'fp_residual_by_timestep',
    title: 'Fixed-point residual at the last iteration vs diffusion timestep',
    spec: lineChart({
      id: 'fp_residual_by_timestep',
      title: 'Residual where the solver stopped, vs timestep',
      xTitle: 'diffusion timestep t (sampling goes 999 → 0)',
      yTitle: `${label(METRIC.fpResidual)} (last iteration)`,
      seriesTitle: 'steps × iterations, allocation, reuse',
      yLog: true,
      points: fit.points,
    }),
  });
  // view 2: residual vs iteration, where stored
  const withCurves = configs.filter((c) => c.curveRows.length);
  if (!withCurves.length)
    s.skipped.push(
      'residual vs iteration: no run stored the residual of every iteration (only the last one per timestep), so only the residual-vs-timestep view is drawn',
    );
  for (const model of [...new Set(withCurves.map((c) => c.model))]) {
    const mine = withCurves.filter((c) => c.model === model);
    const shownCfg = mine.slice(0, MAX_PANELS);
    if (mine.length > shownCfg.length)
      (s.notes ??= []).push(
        `residual vs iteration, ${model}: ${mine.length - shownCfg.length} further configurations are in the CSV`,
      );
    const points: SeriesPoint[] = [];
    for (const c of shownCfg) {
      const ts = [...new Set(c.curveRows.map((r) => numTag(r, TAG.t)!))].sort((a, b2) => b2 - a);
      const keep = new Set(
        ts.length <= MAX_SERIES
          ? ts
          : Array.from({ length: MAX_SERIES }, (_, i) => ts[Math.round((i * (ts.length - 1)) / (MAX_SERIES - 1))]!),
      );
      const aggs = aggregate(
        c.curveRows.filter((r) => keep.has(numTag(r, TAG.t)!)),
        { x: (r) => r.step ?? undefined, base: (r) => `t=${numTag(r, TAG.t)}`, consumed: [TAG.t] },
      );
      const panel = shownCfg.length > 1 ? `budget ${fmtTag(c.budget)}, ${c.name}` : undefined;
      for (const p of toPoints(aggs.filter((a) => a.mean > 0)))
        points.push({ ...p, series: p.series.replace(/ \(.*\)$/, ''), ...(panel ? { panel } : {}) });
    }
    const id = `fp_residual_${slug(model)}`;
    s.figures.push({
      id,
      title: `Fixed-point residual vs iteration: ${model}`,
      spec: lineChart({
        id,
        title: `Residual vs fixed-point iteration, ${model}`,
        xTitle: 'fixed-point iteration',
        yTitle: label(METRIC.fpResidual),
        seriesTitle: 'timestep',
        yLog: true,
        xInteger: true,
        points,
      }),
    });
  }
  return s;
}
