// Quality vs budget, computed once and shared by the budget section, the throughput table (whose main
// line is the configuration shown here) and the verdicts: per model, the configuration run at the most
// budgets, and at each budget its best steps × iterations split (by mean over seeds).
import { QUALITY_LEVELS, type QualityLevel } from '../baselines/reference.js';
import { canonicalJson } from '../store/json.js';
import { METRIC, TAG, type ModelFamily } from '../store/names.js';
import type { MetricRecord, TagValue, Tags } from '../store/types.js';
import { aggregate, fmtTag, numTag, type Agg } from './aggregate.js';
import { summarize } from './stats.js';

export const LOWER_IS_BETTER = new Set<string>([METRIC.fid, METRIC.fdMnist, METRIC.kid, METRIC.kidMnist]);

export function familyOf(model: string, family: ModelFamily | null): ModelFamily | null {
  if (family) return family;
  if (/fpdm/i.test(model)) return 'fpdm';
  if (/dit/i.test(model)) return 'dit';
  return null;
}

/** The configuration of a row apart from seed, budget and split: model plus the other tags. */
export function configKey(r: { model: string; tags: Tags }): string {
  const {
    [TAG.seed]: _s,
    [TAG.steps]: _st,
    [TAG.iters]: _it,
    [TAG.budget]: _b,
    [TAG.numImages]: _n,
    reference_images: _ri,
    ...rest
  } = r.tags;
  return canonicalJson({ model: r.model, rest });
}

export interface BudgetPoint extends Agg {
  budget: number;
  steps: string;
  iters: string;
  /** how many splits were run at this budget */
  splits: number;
  /** the configuration's other tags, as text */
  configText: string;
  /** configKey of the rows */
  cfg: string;
}

export interface BudgetSummary {
  points: BudgetPoint[];
  /** model → configKey of its main configuration */
  mainConfig: Map<string, string>;
  /** (model, budget) → the chosen split */
  chosen: Map<string, { steps: string; iters: string }>;
}

/** Per model and budget: the main configuration's best split, mean ± std over seeds. */
export function budgetSummary(metric: string, rows: MetricRecord[]): BudgetSummary {
  const withBudget = rows.filter((r) => numTag(r, TAG.budget) !== undefined && Number.isFinite(r.value));
  const cover = new Map<string, { model: string; budgets: Set<number>; rows: number }>();
  for (const r of withBudget) {
    const c = cover.get(configKey(r)) ?? { model: r.model, budgets: new Set(), rows: 0 };
    c.budgets.add(numTag(r, TAG.budget)!);
    c.rows++;
    cover.set(configKey(r), c);
  }
  const mainConfig = new Map<string, string>();
  for (const [k, c] of [...cover].sort(
    ([ka, a], [kb, b]) => b.budgets.size - a.budgets.size || b.rows - a.rows || ka.localeCompare(kb),
  ))
    if (!mainConfig.has(c.model)) mainConfig.set(c.model, k);
  const mainRows = withBudget.filter((r) => mainConfig.get(r.model) === configKey(r));
  const groups = new Map<
    string,
    { cfg: string; model: string; budget: number; steps: string; iters: string; values: number[] }
  >();
  for (const r of mainRows) {
    const [budget, steps, iters] = [numTag(r, TAG.budget)!, fmtTag(r.tags[TAG.steps]), fmtTag(r.tags[TAG.iters])];
    const k = `${r.model}\u0000${budget}\u0000${steps}\u0000${iters}`;
    const g = groups.get(k) ?? { cfg: configKey(r), model: r.model, budget, steps, iters, values: [] };
    g.values.push(r.value);
    groups.set(k, g);
  }
  const lower = LOWER_IS_BETTER.has(metric);
  const best = new Map<string, { steps: string; iters: string; mean: number; tried: number }>();
  for (const g of groups.values()) {
    const k = `${g.model}\u0000${g.budget}`;
    const mean = summarize(g.values).mean;
    const b = best.get(k);
    if (!b || (lower ? mean < b.mean : mean > b.mean))
      best.set(k, { steps: g.steps, iters: g.iters, mean, tried: (b?.tried ?? 0) + 1 });
    else b.tried++;
  }
  const chosen = new Map([...best].map(([k, b]) => [k, { steps: b.steps, iters: b.iters }]));
  const isChosen = (r: MetricRecord) => {
    const b = best.get(`${r.model}\u0000${numTag(r, TAG.budget)}`);
    return b !== undefined && b.steps === fmtTag(r.tags[TAG.steps]) && b.iters === fmtTag(r.tags[TAG.iters]);
  };
  const aggs = aggregate(mainRows.filter(isChosen), {
    x: (r) => numTag(r, TAG.budget),
    consumed: [TAG.budget, TAG.steps, TAG.iters, TAG.numImages, 'reference_images'],
  });
  const points = aggs.map((a): BudgetPoint => {
    const b = best.get(`${a.model}\u0000${a.x}`)!;
    const cfg = mainConfig.get(a.model)!;
    const rest = (JSON.parse(cfg) as { rest: Record<string, TagValue> }).rest;
    const configText =
      Object.entries(rest)
        .map(([k, v]) => `${k}=${fmtTag(v)}`)
        .join(', ') || '–';
    return { ...a, budget: a.x as number, steps: b.steps, iters: b.iters, splits: b.tried, configText, cfg };
  });
  return { points, mainConfig, chosen };
}

/** The real-data level of `metric` at the image counts of `rows`, where one was measured. */
export function qualityLevel(metric: string, rows: MetricRecord[]): QualityLevel | null {
  const n = rows.map((r) => r.tags[TAG.numImages]).find((v) => typeof v === 'number');
  const ref = rows.map((r) => r.tags.reference_images).find((v) => typeof v === 'number');
  return (
    QUALITY_LEVELS.find(
      (q) => q.metric === metric && q.numImages === n && (ref === undefined || q.referenceImages === ref),
    ) ?? null
  );
}
